package realtime

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// BenchmarkDispatch is the hub's own cost of one measurement sent to
// 1,000 subscribers (100 of /measurements/*, 900 of ten devices'
// channels): matching, rendering and encoding once, and a queue append
// per recipient; the clients' queues are emptied as a connection would.
func BenchmarkDispatch(b *testing.B) {
	h := New(Config{Limits: Limits{ClientsPerUser: 2000, Clients: 2000}})
	h.base = "http://agent"
	u := store.User{Tenant: "t", UserName: "u"}
	var clients []*client
	for i := range 1000 {
		c, err := h.newClient(u, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		name := "/measurements/*"
		if i >= 100 {
			name = "/measurements/" + strconv.Itoa(i%10)
		}
		ch, err := parseChannel(name)
		if err != nil {
			b.Fatal(err)
		}
		if err := h.subscribe(c, []channel{ch}); err != nil {
			b.Fatal(err)
		}
		clients = append(clients, c)
	}
	m := store.Measurement{ID: "1", Source: "3", Type: "c8y_Temperature", Time: time.Now(),
		Fragments: map[string]any{"c8y_Temperature": map[string]any{"T": map[string]any{"value": 21.5, "unit": "C"}}}}
	cs := []change{{tenant: "t", kind: kindMeasurement, action: actionCreate, device: "3", id: "1", obj: m, at: time.Now()}}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		h.dispatch(ctx, cs)
		for _, c := range clients {
			c.take()
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/190, "ns/delivery")
}
