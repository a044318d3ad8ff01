package cache_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/cache"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/storetest"
)

// gate holds the next lookup it is armed for between the engine's
// answer and its return to the cache: the moment a concurrent write
// must not be lost in.
type gate struct {
	store.Engine
	armed           chan struct{} // one token arms one lookup
	loaded, release chan struct{}
}

func newGate(e store.Engine) *gate {
	return &gate{Engine: e, armed: make(chan struct{}, 1), loaded: make(chan struct{}), release: make(chan struct{})}
}

func (g *gate) hold() {
	select {
	case <-g.armed:
		g.loaded <- struct{}{}
		<-g.release
	default:
	}
}

func (g *gate) DeviceSettings(ctx context.Context, tenant, id string) (store.DeviceRegistration, error) {
	r, err := g.Engine.DeviceSettings(ctx, tenant, id)
	g.hold()
	return r, err
}

func (g *gate) DeviceByEndpoint(ctx context.Context, ep string) (string, string, error) {
	tenant, id, err := g.Engine.DeviceByEndpoint(ctx, ep)
	g.hold()
	return tenant, id, err
}

func (g *gate) Pending(ctx context.Context, tenant, id string, limit int) ([]store.Operation, error) {
	ops, err := g.Engine.Pending(ctx, tenant, id, limit)
	g.hold()
	return ops, err
}

// within fails the test if ch does not deliver in time.
func within(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not happen within 10 s", what)
	}
}

// A reader that loaded an answer before a write and fills the cache after
// the write's invalidation must not keep it: the write is done, and the
// old answer would be served until pushed out. Each case runs with the
// rule (a fill is refused if its key, or a device, was invalidated since
// its load began) and without it, where the stale answer must show, or
// the case would not test the rule.
func TestFillAfterInvalidationRefused(t *testing.T) {
	cases := []struct {
		name string
		// setup prepares the engine and returns a device id
		setup func(t *testing.T, raw store.Engine) string
		read  func(st store.Engine, id string) string
		write func(t *testing.T, st store.Engine, id string)
		fresh string // what read answers after the write
	}{
		{
			name: "record after SaveDeviceRegistration",
			setup: func(t *testing.T, raw store.Engine) string {
				return must(raw.CreateDevice(ctx, "t1", "ep"))
			},
			read: func(st store.Engine, id string) string {
				r, err := st.DeviceSettings(ctx, "t1", id)
				if err != nil {
					return err.Error()
				}
				return r.SecurityMode()
			},
			write: func(t *testing.T, st store.Engine, id string) {
				check(t, st.SaveDeviceRegistration(ctx, "t1", id, store.DeviceRegistration{
					Params: map[string]any{"securityMode": "PSK", "lwm2mPskId": "x"}, PSKKey: []byte{1},
				}))
			},
			fresh: "PSK",
		},
		{
			// the deletion names no endpoint: the device's invalidation
			// must reach the endpoint's load
			name: "endpoint after DeleteManagedObject",
			setup: func(t *testing.T, raw store.Engine) string {
				return must(raw.CreateDevice(ctx, "t1", "ep"))
			},
			read: func(st store.Engine, _ string) string {
				_, id, err := st.DeviceByEndpoint(ctx, "ep")
				if errors.Is(err, store.ErrNotFound) {
					return "not found"
				}
				return id
			},
			write: func(t *testing.T, st store.Engine, id string) {
				must(st.DeleteManagedObject(ctx, "t1", id))
			},
			fresh: "not found",
		},
		{
			name: "empty queue after CreateOperation",
			setup: func(t *testing.T, raw store.Engine) string {
				return must(raw.CreateDevice(ctx, "t1", "ep"))
			},
			read: func(st store.Engine, id string) string {
				ops, err := st.Pending(ctx, "t1", id, 10)
				if err != nil {
					return err.Error()
				}
				if len(ops) == 0 {
					return "empty"
				}
				return ops[0].Text
			},
			write: func(t *testing.T, st store.Engine, id string) {
				must(st.CreateOperation(ctx, "t1", store.Operation{DeviceID: id, HasCommand: true, Text: "read /3/0"}))
			},
			fresh: "read /3/0",
		},
	}
	for _, tc := range cases {
		for _, rule := range []bool{true, false} {
			name := tc.name
			if !rule {
				name += " without the rule"
			}
			t.Run(name, func(t *testing.T) {
				raw := storetest.OpenTest(t)
				id := tc.setup(t, raw)
				g := newGate(raw)
				st := cache.New(cache.Config{Size: 100}).Wrap(g)
				cache.RefuseStale(rule)
				defer cache.RefuseStale(true)

				g.armed <- struct{}{}
				done := make(chan struct{})
				var old string
				go func() { defer close(done); old = tc.read(st, id) }()
				within(t, g.loaded, "the reader's load")
				tc.write(t, st, id) // done, and invalidated, while the reader holds the old answer
				close(g.release)
				within(t, done, "the reader's return")
				if old == tc.fresh {
					t.Fatalf("the reader loaded %q before the write: the case does not test the order", old)
				}
				got := tc.read(st, id)
				switch {
				case rule && got != tc.fresh:
					t.Fatalf("after the write the cache answers %q (the answer loaded before it), want %q", got, tc.fresh)
				case !rule && got != old:
					t.Fatalf("without the rule the stale %q was expected, the cache answers %q: the case does not show the rule", old, got)
				}
			})
		}
	}
}

func (n *names) SaveDeviceRegistration(_ context.Context, tenant, id string, r store.DeviceRegistration) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.recs[tenant+"/"+id] = r
	return nil
}

// Under readers filling the cache all the time, a read that starts after
// a write returned sees that write.
func TestReadAfterWriteUnderLoad(t *testing.T) {
	n := newNames()
	st := cache.New(cache.Config{Size: 4}).Wrap(n)
	version := func(r store.DeviceRegistration) int { v, _ := r.Params["v"].(int); return v }
	stop := make(chan struct{})
	readers := make(chan struct{})
	for range 4 {
		go func() {
			defer func() { readers <- struct{}{} }()
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, _ = st.DeviceSettings(ctx, "t", "1")
			}
		}()
	}
	for v := 1; v <= 2000; v++ {
		check(t, st.SaveDeviceRegistration(ctx, "t", "1", store.DeviceRegistration{Params: map[string]any{"v": v}}))
		if got := version(must(st.DeviceSettings(ctx, "t", "1"))); got != v {
			close(stop)
			t.Fatalf("after writing version %d the cache answers %d", v, got)
		}
	}
	close(stop)
	for range 4 {
		<-readers
	}
}
