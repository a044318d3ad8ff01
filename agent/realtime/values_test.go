package realtime_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/apitest"
	"github.com/lwm2m-agent/lwm2m-agent/agent/realtime"
	"github.com/lwm2m-agent/lwm2m-agent/agent/realtime/bayeux"
	"github.com/lwm2m-agent/lwm2m-agent/agent/render"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// The last known values a device reports arrive on its /lwm2mvalues/
// channel, over both transports, as the store received them; another
// tenant subscribed to the same channel hears nothing of them.
func TestValuesChannel(t *testing.T) {
	for _, transport := range []string{bayeux.LongPolling, bayeux.WebSocket} {
		t.Run(transport, func(t *testing.T) {
			e := newEnv(t, realtime.Limits{})
			dev := e.device("a", "meter")
			c := e.dial("a", transport)
			if err := c.Subscribe(ctx, "/lwm2mvalues/"+dev); err != nil {
				t.Fatal(err)
			}
			other := e.dial("b", transport)
			if err := other.Subscribe(ctx, "/lwm2mvalues/"+dev, "/lwm2mvalues/*"); err != nil {
				t.Fatal(err)
			}
			at := time.Date(2026, 12, 6, 14, 27, 16, 140e6, time.UTC)
			vals := []store.ResourceValue{
				{Path: "/3303/0/5700", Value: 21.5, Type: "FLOAT", Time: at},
				{Path: "/19/0/0/0", Value: []byte{0xca, 0xfe}, Type: "OPAQUE", Time: at},
			}
			if err := e.st.SaveValues(ctx, "a", dev, vals); err != nil {
				t.Fatal(err)
			}
			want := render.Values(e.url, dev, vals)
			expect(t, next(t, c), "/lwm2mvalues/"+dev, "UPDATE", want)
			if got := want["values"].([]map[string]any)[1]["value"]; got != "cafe" {
				t.Fatalf("opaque value rendered %v, want hex", got)
			}

			// b's own device comes first for b: a's values never reached it
			devB := e.device("b", "b-meter")
			if err := e.st.SaveValues(ctx, "b", devB, vals[:1]); err != nil {
				t.Fatal(err)
			}
			expect(t, next(t, other), "/lwm2mvalues/"+devB, "UPDATE", render.Values(e.url, devB, vals[:1]))
		})
	}
}

// Deleting a device through the REST API announces a DELETE carrying its
// ID, to the subscribers of the device's channel and of every device's.
func TestDeviceDeletionAnnounced(t *testing.T) {
	e := newEnv(t, realtime.Limits{})
	dev := e.device("a", "meter")
	all := e.dial("a", bayeux.LongPolling)
	one := e.dial("a", bayeux.WebSocket)
	if err := all.Subscribe(ctx, "/managedobjects/*"); err != nil {
		t.Fatal(err)
	}
	if err := one.Subscribe(ctx, "/managedobjects/"+dev); err != nil {
		t.Fatal(err)
	}
	if code, body := apitest.Send(t, e.url, "a/admin", "a-pass", "DELETE", "/inventory/managedObjects/"+dev, nil); code != http.StatusNoContent {
		t.Fatalf("DELETE: HTTP %d %s", code, body)
	}
	for _, c := range []*bayeux.Client{all, one} {
		m := next(t, c)
		expect(t, m, "/managedobjects/"+dev, "DELETE", nil)
		if string(m.Data.Data) != `"`+dev+`"` {
			t.Fatalf("DELETE carries %s, want the id %q", m.Data.Data, dev)
		}
	}
}
