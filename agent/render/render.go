// Package render turns the store's objects into the JSON the agent shows
// of them, in Cumulocity's shapes: the REST API's answers and the
// realtime notifications' data are made by the same functions, so that a
// client sees one object the same way whichever way it came.
//
// Every function takes base, the URL prefix of the agent's links (scheme,
// host and an optional path, without a trailing slash), for the "self"
// members.
package render

import (
	"context"
	"encoding/hex"
	"net/url"
	"strings"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// Time is the form of every time in the agent's JSON: UTC, milliseconds.
func Time(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

// Link is the URL of path (which starts with a slash) under base.
func Link(base, path string) string { return base + path }

// Escape is a path segment of a link.
func Escape(s string) string { return url.PathEscape(s) }

// withFragments is a new object holding fragments, with room for the
// fixed members beside them: those are set after, so that a fragment
// cannot pass for one.
func withFragments(fragments map[string]any, fixed int) map[string]any {
	out := make(map[string]any, len(fragments)+fixed)
	for k, v := range fragments {
		out[k] = v
	}
	return out
}

// Source is the reference to a managed object that measurements, events
// and alarms carry.
func Source(base, id string) map[string]any {
	return map[string]any{"id": id, "self": Link(base, "/inventory/managedObjects/"+Escape(id))}
}

// ManagedObject is an inventory object as GET /inventory/managedObjects/{id}
// answers it.
func ManagedObject(base string, mo store.ManagedObject) map[string]any {
	m := withFragments(mo.Fragments, 6)
	m["id"] = mo.ID
	m["name"] = mo.Name
	m["type"] = mo.Type
	m["creationTime"] = Time(mo.CreationTime)
	m["lastUpdated"] = Time(mo.LastUpdated)
	m["self"] = Link(base, "/inventory/managedObjects/"+Escape(mo.ID))
	return m
}

// Measurement is a measurement as GET /measurement/measurements/{id}
// answers it.
func Measurement(base string, m store.Measurement) map[string]any {
	out := withFragments(m.Fragments, 5)
	out["id"] = m.ID
	out["source"] = Source(base, m.Source)
	out["time"] = Time(m.Time)
	out["type"] = m.Type
	out["self"] = Link(base, "/measurement/measurements/"+Escape(m.ID))
	return out
}

// Event is an event as GET /event/events/{id} answers it.
func Event(base string, e store.Event) map[string]any {
	out := withFragments(e.Fragments, 7)
	out["id"] = e.ID
	out["source"] = Source(base, e.Source)
	out["time"] = Time(e.Time)
	out["creationTime"] = Time(e.CreationTime)
	out["type"] = e.Type
	out["text"] = e.Text
	out["self"] = Link(base, "/event/events/"+Escape(e.ID))
	return out
}

// Alarm is an alarm as GET /alarm/alarms/{id} answers it.
func Alarm(base string, al store.Alarm) map[string]any {
	out := withFragments(al.Fragments, 11)
	out["id"] = al.ID
	out["source"] = Source(base, al.Source)
	out["time"] = Time(al.Time)
	out["firstOccurrenceTime"] = Time(al.FirstOccurrenceTime)
	out["creationTime"] = Time(al.CreationTime)
	out["type"] = al.Type
	out["text"] = al.Text
	out["severity"] = al.Severity
	out["status"] = al.Status
	out["count"] = al.Count
	out["self"] = Link(base, "/alarm/alarms/"+Escape(al.ID))
	return out
}

// Operation is an operation as GET /devicecontrol/operations/{id}
// answers it.
func Operation(base string, op store.Operation) map[string]any {
	out := withFragments(op.Fragments, 8)
	out["id"] = op.ID
	out["deviceId"] = op.DeviceID
	out["status"] = op.Status
	out["creationTime"] = Time(op.CreationTime)
	out["attempts"] = op.Attempts
	out["self"] = Link(base, "/devicecontrol/operations/"+Escape(op.ID))
	if op.HasCommand {
		c := map[string]any{"text": op.Text}
		if op.Result != "" {
			c["result"] = op.Result
		}
		out["c8y_Command"] = c
	}
	if op.FailureReason != "" {
		out["failureReason"] = op.FailureReason
	}
	return out
}

// Secret reports whether a member carries a credential. Credentials (PSK
// keys, passwords) are write-only: everything the agent shows goes
// through Scrub.
func Secret(name string) bool {
	n := strings.ToLower(name)
	return strings.Contains(n, "pskkey") || strings.Contains(n, "password") || n == "adminpass" || strings.HasSuffix(n, "secret")
}

// Scrub removes credential members from a JSON-shaped value, in place.
func Scrub(v any) {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			if Secret(k) {
				delete(t, k)
				continue
			}
			Scrub(e)
		}
	case []any:
		for _, e := range t {
			Scrub(e)
		}
	case []map[string]any:
		for _, e := range t {
			Scrub(e)
		}
	}
}

// Scrubbed is v without credential members, as Scrub makes it, but
// leaves v as it is: where v holds none, it is returned itself, and
// otherwise the maps and slices on the way to them are copied. Values
// the caller shares with others (what a writer stored, read by the
// realtime notifications meanwhile) are never changed.
func Scrubbed(v any) any {
	out, _ := scrubbed(v)
	return out
}

func scrubbed(v any) (any, bool) {
	switch t := v.(type) {
	case map[string]any:
		var out map[string]any
		for k, e := range t {
			s, changed := scrubbed(e)
			if !Secret(k) && !changed {
				continue
			}
			if out == nil {
				out = make(map[string]any, len(t))
				for k2, e2 := range t {
					out[k2] = e2
				}
			}
			if Secret(k) {
				delete(out, k)
			} else {
				out[k] = s
			}
		}
		if out == nil {
			return v, false
		}
		return out, true
	case []any:
		var out []any
		for i, e := range t {
			s, changed := scrubbed(e)
			if !changed {
				continue
			}
			if out == nil {
				out = append([]any(nil), t...)
			}
			out[i] = s
		}
		if out == nil {
			return v, false
		}
		return out, true
	case []map[string]any:
		var out []map[string]any
		for i, e := range t {
			s, changed := scrubbed(e)
			if !changed {
				continue
			}
			if out == nil {
				out = append([]map[string]any(nil), t...)
			}
			out[i] = s.(map[string]any)
		}
		if out == nil {
			return v, false
		}
		return out, true
	}
	return v, false
}

// Value is a resource's value in JSON: opaque bytes as hex, as the
// objects view and the shell show them.
func Value(v any) any {
	if b, ok := v.([]byte); ok {
		return hex.EncodeToString(b)
	}
	return v
}

// Values are last known values of a device's resources, as the
// /lwm2mvalues/{id} realtime channel carries them: the device, and per
// path the value, its type and when the device reported it.
func Values(base, device string, vals []store.ResourceValue) map[string]any {
	out := make([]map[string]any, len(vals))
	for i, v := range vals {
		out[i] = map[string]any{"path": v.Path, "value": Value(v.Value), "type": v.Type, "time": Time(v.Time)}
	}
	return map[string]any{"source": Source(base, device), "values": out}
}

// ReferencesShown bounds the references of each kind an object's answer
// carries: a group of a fleet has thousands of child assets, which its
// collection (GET .../childAssets) pages through.
const ReferencesShown = 100

// WithReferences adds to a managed object's rendering its references as
// Cumulocity shows them: per kind, {"self","references":[{"managedObject":
// {"id","name","self"},"self"}]} (the first ReferencesShown), and the
// objects it is a child of (assetParents, ...).
func WithReferences(ctx context.Context, base string, st store.References, tenant string, out map[string]any) error {
	id, _ := out["id"].(string)
	path := "/inventory/managedObjects/" + Escape(id) + "/"
	all, err := st.AllReferences(ctx, tenant, id, ReferencesShown)
	if err != nil {
		return err
	}
	for _, kind := range store.ReferenceKinds {
		kids := all.Children[kind]
		refs := make([]map[string]any, len(kids))
		for i, k := range kids {
			refs[i] = Reference(base, kind, id, map[string]any{"id": k.ID, "name": k.Name, "self": Link(base, "/inventory/managedObjects/"+Escape(k.ID))})
		}
		out[kind] = map[string]any{"self": Link(base, path+kind), "references": refs}
		parents := all.Parents[kind]
		prefs := make([]map[string]any, len(parents))
		for i, p := range parents {
			prefs[i] = map[string]any{"managedObject": map[string]any{"id": p, "self": Link(base, "/inventory/managedObjects/"+Escape(p))}}
		}
		out[store.ParentsName(kind)] = map[string]any{"self": Link(base, path+store.ParentsName(kind)), "references": prefs}
	}
	return nil
}

// Reference is one child reference of parent: {"managedObject": child,
// "self"}.
func Reference(base, kind, parent string, child map[string]any) map[string]any {
	id, _ := child["id"].(string)
	return map[string]any{
		"managedObject": child,
		"self":          Link(base, "/inventory/managedObjects/"+Escape(parent)+"/"+kind+"/"+Escape(id)),
	}
}
