package realtime

import (
	"strings"
	"testing"
)

func TestParseChannel(t *testing.T) {
	tests := []struct {
		name string
		kind kind
		id   string
		err  string
	}{
		{name: "/measurements/*", kind: kindMeasurement, id: "*"},
		{name: "/measurements/42", kind: kindMeasurement, id: "42"},
		{name: "/events/7", kind: kindEvent, id: "7"},
		{name: "/alarms/*", kind: kindAlarm, id: "*"},
		{name: "/operations/9", kind: kindOperation, id: "9"},
		{name: "/managedobjects/*", kind: kindManagedObject, id: "*"},
		{name: "/measurements/", err: "names no device"},
		{name: "/measurements/**", err: "a device ID or *"},
		{name: "/measurements/1/2", err: "a device ID or *"},
		{name: "/measurements/a*", err: "a device ID or *"},
		{name: "/measurements/" + strings.Repeat("1", maxIDLength+1), err: "longer than"},
		{name: "/alarmsWithChildren/1", err: "none of"},
		{name: "/meta/connect", err: "none of"},
		{name: "/service/x", err: "none of"},
		{name: "", err: "none of"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ch, err := parseChannel(tc.name)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want one saying %q", err, tc.err)
				}
				return
			}
			if err != nil || ch.kind != tc.kind || ch.id != tc.id || ch.name != tc.name {
				t.Fatalf("%+v, %v; want kind %d id %q", ch, err, tc.kind, tc.id)
			}
		})
	}
}

func TestDecodeBatch(t *testing.T) {
	tests := []struct {
		name string
		in   string
		n    int
		err  string
	}{
		{name: "array", in: `[{"channel":"/meta/handshake","id":"1"},{"channel":"/meta/connect","id":2}]`, n: 2},
		{name: "one object", in: ` {"channel":"/meta/connect","clientId":"x"}`, n: 1},
		{name: "empty array", in: `[]`, err: "no message"},
		{name: "not JSON", in: `channel=/meta/handshake`, err: "not Bayeux messages"},
		{name: "no channel", in: `[{"id":"1"}]`, err: "without channel"},
		{name: "too many", in: "[" + strings.Repeat(`{"channel":"/meta/connect"},`, maxBatch) + `{"channel":"/meta/connect"}]`, err: "at most"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msgs, err := decodeBatch([]byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want one saying %q", err, tc.err)
				}
				return
			}
			if err != nil || len(msgs) != tc.n {
				t.Fatalf("%d messages, %v; want %d", len(msgs), err, tc.n)
			}
		})
	}
}

// A message id is echoed as the client gave it, string or number.
func TestRepliesEchoIDs(t *testing.T) {
	msgs, err := decodeBatch([]byte(`[{"channel":"/meta/connect","id":"7"},{"channel":"/meta/connect","id":8}]`))
	if err != nil {
		t.Fatal(err)
	}
	got := string(encodeBatch([]reply{{Channel: metaConnect, ID: msgs[0].ID}, {Channel: metaConnect, ID: msgs[1].ID}}, nil, nil))
	want := `[{"channel":"/meta/connect","id":"7","successful":false},{"channel":"/meta/connect","id":8,"successful":false}]`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}
