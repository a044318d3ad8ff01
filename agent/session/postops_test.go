package session

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/codec"
	"github.com/lwm2m-agent/lwm2m-agent/agent/lwm2m"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/storetest"
)

// calls records, in order, what the hooks told the post-registration
// queue and the operation runner.
type calls struct {
	mu  sync.Mutex
	log []string
	// held are the ready callbacks, kept instead of called
	held []func()
}

func (c *calls) add(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.log = append(c.log, s)
}

func (c *calls) Registered(tenant, device string, ready func()) {
	c.add("post " + device)
	c.mu.Lock()
	c.held = append(c.held, ready)
	c.mu.Unlock()
}

func (c *calls) Reachable(tenant, device string) { c.add("reachable " + device) }

func (c *calls) snapshot() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.log)
}

func TestRunnerHearsOfRegistrationAfterPostOperations(t *testing.T) {
	st := storetest.OpenTest(t)
	state := NewStateWriter(st, 16, time.Millisecond, nil)
	ctx, cancel := context.WithCancel(context.Background())
	go state.Run(ctx)
	t.Cleanup(func() { cancel(); <-state.Done() })
	c := &calls{}
	h := New(Config{Store: st, State: state, Ops: c, PostOps: c})

	reg := lwm2m.Registration{Endpoint: "ep", Tenant: "management", DeviceID: "7", Version: "1.1"}
	h.Registered(ctx, reg)
	if got := c.snapshot(); !slices.Equal(got, []string{"post 7"}) {
		t.Fatalf("before ready: %q", got)
	}
	c.held[0]()
	if got := c.snapshot(); !slices.Equal(got, []string{"post 7", "reachable 7"}) {
		t.Fatalf("after ready: %q", got)
	}
	// an Update goes straight to the runner
	h.Updated(ctx, reg)
	if got := c.snapshot(); !slices.Equal(got, []string{"post 7", "reachable 7", "reachable 7"}) {
		t.Fatalf("after an Update: %q", got)
	}
}

func TestAuthorizeCarriesSerialization(t *testing.T) {
	st := storetest.OpenTest(t)
	ctx := context.Background()
	h := New(Config{Store: st, AutoRegister: true})
	// an auto-registered device (Authorize of a new endpoint reserves its
	// id; its Register's state creates it)
	if _, err := st.CreateDevice(ctx, ManagementTenant, "ep-s"); err != nil {
		t.Fatal(err)
	}
	id, err := h.Authorize(ctx, lwm2m.AuthRequest{Endpoint: "ep-s"})
	if err != nil {
		t.Fatal(err)
	}
	if id.HasSerialization {
		t.Fatalf("a new device has serialization %v", id.Serialization)
	}
	if err := st.SetDeviceSerialization(ctx, id.Tenant, id.DeviceID, "TLV"); err != nil {
		t.Fatal(err)
	}
	again, err := h.Authorize(ctx, lwm2m.AuthRequest{Endpoint: "ep-s"})
	if err != nil {
		t.Fatal(err)
	}
	if again.DeviceID != id.DeviceID || !again.HasSerialization || again.Serialization != codec.TLV {
		t.Fatalf("second Authorize: %+v", again)
	}
}
