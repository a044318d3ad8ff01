package session

import (
	"context"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/rawcoap"
	"github.com/lwm2m-agent/lwm2m-agent/agent/lwm2m"
	"github.com/lwm2m-agent/lwm2m-agent/agent/refusal"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/cache"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/storetest"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// BenchmarkRegister is a known NO_SEC device's plain Register, over
// loopback UDP, through the LwM2M server and these hooks, to the store
// (the embedded FerretDB), with and without the store cache: the
// Register's lookups, its answer, and the state and event the writer
// stores behind it, which the next Registers share the machine with.
func BenchmarkRegister(b *testing.B) {
	for _, name := range []string{"engine", "cached"} {
		b.Run(name, func(b *testing.B) {
			var st store.Engine = storetest.OpenTest(b)
			if name == "cached" {
				st = cache.New(cache.Config{Size: 1000}).Wrap(st)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			id, err := st.CreateIncompleteDevice(ctx, "acme", store.NewDevice{Endpoint: "plain", Registration: store.DeviceRegistration{
				Params: map[string]any{"endpointId": "plain", "securityMode": "NO_SEC"},
			}})
			if err != nil {
				b.Fatal(err)
			}
			if err := st.CompleteDevice(ctx, "acme", id); err != nil {
				b.Fatal(err)
			}
			state := NewStateWriter(st, 8192, 10*time.Millisecond, nil)
			go state.Run(ctx)
			h := New(Config{Store: st, State: state, Refused: refusal.New(nil, 0)})
			srv, err := lwm2m.NewServer(lwm2m.Config{Addr: "127.0.0.1:0", RegisterInterval: -1, PeerRate: -1}, h)
			if err != nil {
				b.Fatal(err)
			}
			done := make(chan struct{})
			go func() { _ = srv.Serve(ctx); close(done) }()
			defer func() { cancel(); <-done; h.Wait(); <-state.Done() }()
			msg := rawcoap.Post(1, []byte{1}, "rd", []string{"ep=plain", "lt=300", "lwm2m=1.1"}, []byte("</3/0>"))
			b.ReportAllocs()
			for b.Loop() {
				if ans := rawcoap.Exchange(b, srv.Addr(), msg); len(ans) < 2 || codes.Code(ans[1]) != codes.Created {
					b.Fatalf("register answered % x", ans)
				}
			}
		})
	}
}
