package session

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/storetest"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// writeCounter counts the store calls that write a device or its state.
type writeCounter struct {
	store.Engine
	creates, saves, newSaves atomic.Int64
}

func (w *writeCounter) CreateDevice(ctx context.Context, tenant, endpoint string) (string, error) {
	w.creates.Add(1)
	return w.Engine.CreateDevice(ctx, tenant, endpoint)
}

func (w *writeCounter) SaveStates(ctx context.Context, tenant string, f map[string]map[string]any, evs []store.Event) ([]string, []store.Event, error) {
	w.saves.Add(1)
	return w.Engine.SaveStates(ctx, tenant, f, evs)
}

func (w *writeCounter) SaveNewStates(ctx context.Context, tenant string, c []store.NewEndpoint, f map[string]map[string]any, evs []store.Event) ([]string, []string, []store.Event, error) {
	w.newSaves.Add(1)
	return w.Engine.SaveNewStates(ctx, tenant, c, f, evs)
}

func autoRegister(c *Config) { c.AutoRegister = true }

// A Register of a new endpoint is answered once its device, its state
// and its event are stored, by one store change: the device is not
// created on its own before.
func TestAutoRegisterOneChange(t *testing.T) {
	st := &writeCounter{Engine: storetest.OpenTest(t)}
	a := startAgent(t, st, st, time.Hour, autoRegister)
	if got := dialAgent(t, a).register(t, "brand-new"); got.code != codes.Created {
		t.Fatalf("register answered %v", got.code)
	}
	if c, s, n := st.creates.Load(), st.saves.Load(), st.newSaves.Load(); c != 0 || s != 0 || n != 1 {
		t.Fatalf("store calls: %d CreateDevice, %d SaveStates, %d SaveNewStates; want one SaveNewStates", c, s, n)
	}
	ctx := context.Background()
	tenant, id, err := st.DeviceByEndpoint(ctx, "brand-new")
	if err != nil || tenant != ManagementTenant {
		t.Fatalf("endpoint bound to %s/%s (%v)", tenant, id, err)
	}
	mo, err := st.GetManagedObject(ctx, tenant, id)
	if err != nil {
		t.Fatal(err)
	}
	if lw, _ := mo.Fragments["lwm2m"].(map[string]any); lw["endpoint"] != "brand-new" || mo.Fragments["c8y_IsDevice"] == nil {
		t.Fatalf("created device %+v", mo.Fragments)
	}
	evs, _, err := st.ListEvents(ctx, tenant, store.EventFilter{Source: id, Type: EventRegistration})
	if err != nil || len(evs) != 1 {
		t.Fatalf("registration events %+v (%v)", evs, err)
	}
	// registering again changes the device it has
	if got := dialAgent(t, a).register(t, "brand-new"); got.code != codes.Created {
		t.Fatalf("second register answered %v", got.code)
	}
	if n, s := st.newSaves.Load(), st.saves.Load(); n != 1 || s != 1 {
		t.Fatalf("after the second Register: %d SaveNewStates, %d SaveStates; want 1 and 1", n, s)
	}
	if _, total, _ := st.ListManagedObjects(ctx, tenant, store.ManagedObjectFilter{Page: store.Page{WithTotal: true}}); total != 1 {
		t.Fatalf("%d devices, want 1", total)
	}
}

// Registers of one new endpoint from several sockets at once make one
// device; the Registers that lost its creation are not answered 2.01.
func TestAutoRegisterConcurrent(t *testing.T) {
	st := storetest.OpenTest(t)
	a := startAgent(t, st, st, time.Hour, autoRegister)
	const n = 8
	clients := make([]client, n)
	for i := range clients {
		clients[i] = dialAgent(t, a)
	}
	got := make([]codes.Code, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Go(func() {
			<-start
			ans, err := c.post("/rd", "</3/0>", "ep=contested", "lwm2m=1.1")
			if err != nil {
				t.Error(err)
			}
			got[i] = ans.code
		})
	}
	close(start)
	wg.Wait()
	created := 0
	for _, c := range got {
		if c == codes.Created {
			created++
		}
	}
	if created == 0 {
		t.Fatalf("no Register answered 2.01: %v", got)
	}
	ctx := context.Background()
	if _, total, _ := st.ListManagedObjects(ctx, ManagementTenant, store.ManagedObjectFilter{Page: store.Page{WithTotal: true}}); total != 1 {
		t.Fatalf("%d devices for one endpoint (answers %v), want 1", total, got)
	}
	_, id, err := st.DeviceByEndpoint(ctx, "contested")
	if err != nil {
		t.Fatal(err)
	}
	if reg, ok := a.srv.Registration("contested"); !ok || reg.DeviceID != id {
		t.Fatalf("live registration %+v (%v), want of device %s", reg, ok, id)
	}
}
