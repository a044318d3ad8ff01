package render

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

func TestScrubbed(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want any
		// same says the value itself must come back (nothing to remove)
		same bool
	}{
		{name: "scalar", in: "x", want: "x", same: true},
		{name: "no secret", in: map[string]any{"a": map[string]any{"b": 1}}, want: map[string]any{"a": map[string]any{"b": 1}}, same: true},
		{name: "top-level secret", in: map[string]any{"a": 1, "adminPass": "x"}, want: map[string]any{"a": 1}},
		{name: "nested secret", in: map[string]any{"a": map[string]any{"pskKey": "k", "b": 2}, "c": 3},
			want: map[string]any{"a": map[string]any{"b": 2}, "c": 3}},
		{name: "in a list", in: []any{map[string]any{"password": "p"}, 1}, want: []any{map[string]any{}, 1}},
		{name: "list of objects", in: []map[string]any{{"x": 1}, {"clientSecret": "s", "y": 2}},
			want: []map[string]any{{"x": 1}, {"y": 2}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before, err := json.Marshal(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			got := Scrubbed(tc.in)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Scrubbed = %#v, want %#v", got, tc.want)
			}
			after, _ := json.Marshal(tc.in)
			if string(before) != string(after) {
				t.Errorf("the input changed: %s, was %s", after, before)
			}
			if m, ok := tc.in.(map[string]any); ok && tc.same && reflect.ValueOf(got).Pointer() != reflect.ValueOf(m).Pointer() {
				t.Errorf("a value without secrets was copied")
			}
		})
	}
}

func TestShapes(t *testing.T) {
	at := time.Date(2025, 3, 1, 12, 0, 0, 123_456_789, time.FixedZone("x", 3600))
	const base = "http://agent"
	tests := []struct {
		name string
		got  map[string]any
		want string
	}{
		{"measurement", Measurement(base, store.Measurement{ID: "7", Source: "3", Type: "c8y_T", Time: at,
			Fragments: map[string]any{"c8y_T": map[string]any{"T": map[string]any{"value": 21.5, "unit": "C"}}}}),
			`{"c8y_T":{"T":{"unit":"C","value":21.5}},"id":"7","self":"http://agent/measurement/measurements/7","source":{"id":"3","self":"http://agent/inventory/managedObjects/3"},"time":"2025-03-01T11:00:00.123Z","type":"c8y_T"}`},
		{"operation", Operation(base, store.Operation{ID: "9", DeviceID: "3", Status: store.OpFailed, CreationTime: at, HasCommand: true,
			Text: "read /3/0", FailureReason: "4.04"}),
			`{"attempts":0,"c8y_Command":{"text":"read /3/0"},"creationTime":"2025-03-01T11:00:00.123Z","deviceId":"3","failureReason":"4.04","id":"9","self":"http://agent/devicecontrol/operations/9","status":"FAILED"}`},
		{"managed object with an id to escape", ManagedObject(base, store.ManagedObject{ID: "a/b", Name: "n", Type: "t", CreationTime: at, LastUpdated: at}),
			`{"creationTime":"2025-03-01T11:00:00.123Z","id":"a/b","lastUpdated":"2025-03-01T11:00:00.123Z","name":"n","self":"http://agent/inventory/managedObjects/a%2Fb","type":"t"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(tc.got)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tc.want {
				t.Errorf("got  %s\nwant %s", b, tc.want)
			}
		})
	}
}
