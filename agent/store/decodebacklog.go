package store

import (
	"fmt"
	"time"
)

// DecodeValue is a raw value waiting in the decode backlog
// (DecodeBacklog): what a device reported for a resource whose
// functionality names a decoder or a custom action plugin, with what the
// plugin is to be told of it.
type DecodeValue struct {
	// Seq is the value's place in the backlog, set by AppendDecodes:
	// within a group, a later value has a greater Seq.
	Seq      int64
	Tenant   string
	Device   string // managed object ID
	Endpoint string
	Path     string // the resource (instance) path, /O/I/R[/RI]
	// Decoder names the plugin; Argument is what the functionality adds
	// after its name (decoder:<name>:<argument>).
	Decoder  string
	Argument string
	// Action marks a value for a custom action plugin (plugin:<name>),
	// which takes typed values, rather than for a decoder.
	Action bool
	// Type is the value's resource data type (OPAQUE, STRING, ...): how
	// Value's bytes are read back.
	Type  string
	Value []byte
	Time  time.Time // the device's time of the value, or its arrival
	// Queued is when the value was appended; Attempts counts the times
	// it was handed back for a retry.
	Queued   time.Time
	Attempts int
}

// DecodeGroup names a value's group: its device's values for its
// decoder, which wait and are taken in order.
type DecodeGroup struct{ Tenant, Device, Decoder string }

// Group returns the value's group.
func (v DecodeValue) Group() DecodeGroup { return DecodeGroup{v.Tenant, v.Device, v.Decoder} }

// DecodeBacklogStat is how many values wait for one decoder, and since
// when the oldest of them waits.
type DecodeBacklogStat struct {
	Decoder string
	Waiting int64
	Oldest  time.Time
}

// PrepareDecodeValues checks values for AppendDecodes and returns them
// as an engine stores them. It refuses, with ErrInvalid naming the
// first, a value that names no device or decoder, or that is of another
// tenant than the one it is appended for; a zero Queued becomes now, and
// a nil Value an empty one, which both engines read back alike.
func PrepareDecodeValues(tenant string, vals []DecodeValue, now time.Time) ([]DecodeValue, error) {
	if tenant == "" {
		return nil, fmt.Errorf("decode backlog: no tenant: %w", ErrInvalid)
	}
	out := make([]DecodeValue, len(vals))
	for i, v := range vals {
		switch {
		case v.Tenant != tenant:
			return nil, fmt.Errorf("decode backlog: value %d is of tenant %q, appended for %q: %w", i, v.Tenant, tenant, ErrInvalid)
		case v.Device == "" || v.Decoder == "":
			return nil, fmt.Errorf("decode backlog: value %d names no device or no decoder: %w", i, ErrInvalid)
		}
		if v.Queued.IsZero() {
			v.Queued = now
		}
		if v.Value == nil {
			v.Value = []byte{}
		}
		out[i] = v
	}
	return out, nil
}

// DecodeGroups returns the groups of vals, each once, in the order they
// first appear.
func DecodeGroups(vals []DecodeValue) []DecodeGroup {
	seen := make(map[DecodeGroup]bool, 1)
	var out []DecodeGroup
	for _, v := range vals {
		if g := v.Group(); !seen[g] {
			seen[g] = true
			out = append(out, g)
		}
	}
	return out
}
