package ops

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/storetest"
)

// registered calls Registered and waits for ready.
func registered(t *testing.T, p *PostOps, tenant, device string) {
	t.Helper()
	ready := make(chan struct{})
	p.Registered(tenant, device, func() { close(ready) })
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("ready was not called")
	}
}

func pendingTexts(t *testing.T, st store.Engine, tenant, device string) []string {
	t.Helper()
	ops, err := st.Pending(context.Background(), tenant, device, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, op := range ops {
		if op.Fragments["description"] != PostOpDescription {
			t.Errorf("operation %s has description %v", op.ID, op.Fragments["description"])
		}
		out = append(out, op.Text)
	}
	return out
}

func TestPostOpsQueueInOrderBeforeReady(t *testing.T) {
	st := storetest.OpenTest(t)
	ctx := context.Background()
	devA, err := st.CreateDevice(ctx, "management", "ep-a")
	if err != nil {
		t.Fatal(err)
	}
	cmds := []string{"read /3/0", "observe /3/0/9", "read /1/0/1"}
	if err := st.SetPostOperations(ctx, "management", cmds); err != nil {
		t.Fatal(err)
	}
	p := NewPostOps(PostOpsConfig{Store: st})
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { p.Run(rctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	// ready comes after the operations are stored
	registered(t, p, "management", devA)
	if got := pendingTexts(t, st, "management", devA); !slices.Equal(got, cmds) {
		t.Fatalf("pending %q, want %q", got, cmds)
	}
	registered(t, p, "management", devA)
	if got := pendingTexts(t, st, "management", devA); len(got) != 2*len(cmds) {
		t.Fatalf("after a second registration %d pending, want %d", len(got), 2*len(cmds))
	}

	// a device that is gone: logged, and ready all the same
	registered(t, p, "management", "no-such-device")
	// another tenant without commands: nothing
	registered(t, p, "other", "1")
	if p.Created() != int64(2*len(cmds)) || p.Skipped() != 0 {
		t.Fatalf("created %d skipped %d", p.Created(), p.Skipped())
	}
}

func TestPostOpsFullQueueDoesNotHoldTheDevice(t *testing.T) {
	st := storetest.OpenTest(t)
	p := NewPostOps(PostOpsConfig{Store: st, Queue: 1, Wait: 20 * time.Millisecond})
	// not running: the first waits in the queue, the second finds it full
	p.Registered("management", "1", func() {})
	start := time.Now()
	registered(t, p, "management", "2")
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("a full queue held the registration for %s", d)
	}
	if p.Skipped() != 1 {
		t.Fatalf("skipped %d, want 1", p.Skipped())
	}
	// stopping lets the queued one through
	ready := make(chan struct{})
	p2 := NewPostOps(PostOpsConfig{Store: st, Queue: 1})
	p2.Registered("management", "3", func() { close(ready) })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p2.Run(ctx)
	select {
	case <-ready:
	default:
		t.Fatal("a registration queued at stop was not let through")
	}
}
