package coapclient

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseEvent(t *testing.T) {
	for _, tc := range []struct {
		name, line string
		ok         bool
		want       Event
	}{
		{"fields", "event=download-done method=push bytes=12 sha256=ab", true,
			Event{Name: "download-done", Fields: map[string]string{"method": "push", "bytes": "12", "sha256": "ab"}}},
		{"no fields", "event=start", true, Event{Name: "start", Fields: map[string]string{}}},
		{"value with =", "event=write path=/5/0/1 value=coap://h/fw?a=b", true,
			Event{Name: "write", Fields: map[string]string{"path": "/5/0/1", "value": "coap://h/fw?a=b"}}},
		{"libcoap log", "Jan 01 00:00:00.000 WARN coap_send: session closed", false, Event{}},
		{"empty", "", false, Event{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, ok := ParseEvent(tc.line)
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
			if !ok {
				return
			}
			tc.want.Line = tc.line
			if !reflect.DeepEqual(e, tc.want) {
				t.Fatalf("got %+v, want %+v", e, tc.want)
			}
		})
	}
}

func TestEventMatches(t *testing.T) {
	e, _ := ParseEvent("event=state state=2 result=0")
	for _, tc := range []struct {
		name string
		kv   []string
		want bool
	}{
		{"state", nil, true},
		{"state", []string{"state=2"}, true},
		{"state", []string{"state=2", "result=0"}, true},
		{"state", []string{"state=1"}, false},
		{"state", []string{"missing=0"}, false},
		{"notify", nil, false},
	} {
		if got := e.Matches(tc.name, tc.kv...); got != tc.want {
			t.Errorf("Matches(%q, %q) = %v, want %v", tc.name, tc.kv, got, tc.want)
		}
	}
}

func TestConfigArgs(t *testing.T) {
	got := Config{
		Server: "coaps://127.0.0.1:5684", Endpoint: "ep", Identity: "id", Key: []byte{0xab, 0x01},
		Lifetime: 90 * time.Second, Delivery: "push", Protocols: []string{"coap", "coaps"}, BlockSZX: 4,
		Fail: "integrity", DownloadTimeout: 5 * time.Second, Extra: []string{"-debug", "7"},
	}.Args()
	want := "-server coaps://127.0.0.1:5684 -ep ep -id id -key ab01 -lt 90 -delivery push -protocols coap,coaps -block-szx 4 -fail integrity -download-timeout 5 -debug 7"
	if strings.Join(got, " ") != want {
		t.Fatalf("Args() = %q\nwant      %q", strings.Join(got, " "), want)
	}
}

// TestClientRejectsBadFlags builds the client and checks that it refuses
// what it cannot do before it sends anything.
func TestClientRejectsBadFlags(t *testing.T) {
	bin := Build(t)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no server", []string{"-ep", "x"}, "-server and -ep are required"},
		{"coaps without key", []string{"-server", "coaps://127.0.0.1:5684", "-ep", "x"}, "coaps needs -id and -key"},
		{"http server", []string{"-server", "http://127.0.0.1:80", "-ep", "x"}, "-server: coap://"},
		{"bad failure", []string{"-server", "coap://127.0.0.1:5683", "-ep", "x", "-fail", "sometimes"}, "-fail:"},
		{"bad key", []string{"-server", "coap://127.0.0.1:5683", "-ep", "x", "-key", "xyz1"}, "-key:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Start(t, bin, tc.args...)
			<-c.Done()
			if err := c.Stop(); err == nil || !strings.Contains(c.Output(), tc.want) {
				t.Fatalf("exit %v, output %q, want an error with %q", err, c.Output(), tc.want)
			}
		})
	}
}
