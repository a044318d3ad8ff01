package realtime

import (
	"fmt"
	"strings"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// kind is the kind of object a channel carries.
type kind int

const (
	kindMeasurement kind = iota
	kindEvent
	kindAlarm
	kindOperation
	kindManagedObject
	// kindValues is the agent's own channel of the last known values of
	// a device's resources: Cumulocity has none for LwM2M values.
	kindValues
	numKinds
)

// prefixes are the channels' names before the id, by kind.
var prefixes = [numKinds]string{"/measurements/", "/events/", "/alarms/", "/operations/", "/managedobjects/", "/lwm2mvalues/"}

// wildcard is the id of the channels of every device.
const wildcard = "*"

// maxIDLength bounds the id of a channel: far above the agent's ids, and
// it keeps a client from making the hub hold long names.
const maxIDLength = 128

// The realtime actions.
const (
	actionCreate = "CREATE"
	actionUpdate = "UPDATE"
	actionDelete = "DELETE"
)

// channel is a channel a client may subscribe to.
type channel struct {
	name string
	kind kind
	id   string // a device ID or wildcard
}

// parseChannel checks a subscription's channel.
func parseChannel(name string) (channel, error) {
	for k, p := range prefixes {
		id, ok := strings.CutPrefix(name, p)
		if !ok {
			continue
		}
		switch {
		case id == "":
			return channel{}, fmt.Errorf("channel %s names no device: give its ID or *", name)
		case len(id) > maxIDLength:
			return channel{}, fmt.Errorf("channel %.40s...: the device ID is longer than %d characters", name, maxIDLength)
		case strings.ContainsAny(id, "/*") && id != wildcard:
			return channel{}, fmt.Errorf("channel %s: the part after %s is a device ID or *, nothing else", name, p)
		}
		return channel{name: name, kind: kind(k), id: id}, nil
	}
	return channel{}, fmt.Errorf("channel %q is none of /measurements/{id}, /events/{id}, /alarms/{id}, /operations/{id}, /managedobjects/{id}, /lwm2mvalues/{id} ({id}: a device ID or *)", name)
}

// change is one change of an object, as a writer announces it.
type change struct {
	tenant string
	kind   kind
	action string
	// device is the id in the channel: the object's source, the
	// operation's device, the managed object itself; "" when only the
	// stored object tells (it is read first).
	device string
	// id is the object's id, what the dispatcher reads when obj is nil
	// and what a deletion carries.
	id  string
	obj any // a store.Measurement, Event, Alarm, Operation, ManagedObject or deviceValues; nil: read it
	at  time.Time
}

func (c change) channel() string { return prefixes[c.kind] + c.device }

// deviceValues are last known values of one device's resources, as the
// store received them.
type deviceValues []store.ResourceValue
