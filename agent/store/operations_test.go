package store_test

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/storetest"
)

// TestExecutingFound checks that the operations left EXECUTING are found
// both ways: by the watchdog through the queue documents (with a cut-off
// time) and by the start-up recovery through the operations themselves;
// and that an operation leaves those lists once it moves on.
func TestExecutingFound(t *testing.T) {
	s := storetest.OpenTest(t)
	dev := must(s.CreateDevice(ctx, "a", "ep"))
	devB := must(s.CreateDevice(ctx, "b", "epb"))
	ops := must(s.CreateOperations(ctx, "a", []store.Operation{
		{DeviceID: dev, HasCommand: true, Text: "read /3/0"},
		{DeviceID: dev, HasCommand: true, Text: "execute /3/0/4"},
		{DeviceID: dev, HasCommand: true, Text: "read /3/0/1"},
	}))
	opB := must(s.CreateOperation(ctx, "b", store.Operation{DeviceID: devB, HasCommand: true, Text: "read /5/0/3"}))
	check(t, s.SetStatus(ctx, "a", ops[0].ID, store.OpExecuting, "", ""))
	check(t, s.SetStatus(ctx, "a", ops[1].ID, store.OpExecuting, "", ""))
	check(t, s.SetStatus(ctx, "b", opB.ID, store.OpExecuting, "", ""))

	ids := func(l []store.TenantOperation) (out []string) {
		for _, o := range l {
			out = append(out, o.Tenant+"/"+o.ID+"/"+o.Status)
		}
		slices.Sort(out)
		return out
	}
	want := []string{"a/" + ops[0].ID + "/EXECUTING", "a/" + ops[1].ID + "/EXECUTING", "b/" + opB.ID + "/EXECUTING"}
	slices.Sort(want)
	if got := ids(must(s.Executing(ctx, 0))); !slices.Equal(got, want) {
		t.Fatalf("Executing = %v, want %v", got, want)
	}
	if got := must(s.ExecutingBefore(ctx, time.Now().Add(-time.Hour), 0)); len(got) != 0 {
		t.Fatalf("ExecutingBefore an hour ago = %v, want none", ids(got))
	}
	if got := ids(must(s.ExecutingBefore(ctx, time.Now().Add(time.Second), 0))); !slices.Equal(got, want) {
		t.Fatalf("ExecutingBefore now = %v, want %v", got, want)
	}
	if got := must(s.ExecutingBefore(ctx, time.Now().Add(time.Second), 2)); len(got) != 2 {
		t.Fatalf("ExecutingBefore with limit 2 = %v", ids(got))
	}

	// Back to PENDING: queued again in creation order, no longer executing.
	check(t, s.SetStatus(ctx, "a", ops[0].ID, store.OpPending, "", ""))
	check(t, s.SetStatus(ctx, "b", opB.ID, store.OpSuccessful, "ok", ""))
	pending := must(s.Pending(ctx, "a", dev, 0))
	if len(pending) != 2 || pending[0].ID != ops[0].ID || pending[1].ID != ops[2].ID || pending[0].Attempts != 1 {
		t.Fatalf("pending after requeue: %+v", pending)
	}
	want = []string{"a/" + ops[1].ID + "/EXECUTING"}
	if got := ids(must(s.ExecutingBefore(ctx, time.Now().Add(time.Second), 0))); !slices.Equal(got, want) {
		t.Fatalf("ExecutingBefore after moves = %v, want %v", got, want)
	}
	if got := ids(must(s.Executing(ctx, 0))); !slices.Equal(got, want) {
		t.Fatalf("Executing after moves = %v, want %v", got, want)
	}
}

// TestSetStatusFinal checks that a late outcome does not overwrite one
// recorded already: the watchdog failing an operation and the runner
// recording its answer must not both win.
func TestSetStatusFinal(t *testing.T) {
	s := storetest.OpenTest(t)
	dev := must(s.CreateDevice(ctx, "a", "ep"))
	op := must(s.CreateOperation(ctx, "a", store.Operation{DeviceID: dev, HasCommand: true, Text: "read /3/0"}))
	check(t, s.SetStatus(ctx, "a", op.ID, store.OpExecuting, "", ""))
	check(t, s.SetStatus(ctx, "a", op.ID, store.OpFailed, "", "stuck"))
	err := s.SetStatus(ctx, "a", op.ID, store.OpSuccessful, "late answer", "")
	if !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("success after failure: %v, want ErrInvalid", err)
	}
	got := must(s.GetOperation(ctx, "a", op.ID))
	if got.Status != store.OpFailed || got.FailureReason != "stuck" || got.Result != "" {
		t.Fatalf("operation changed: %+v", got)
	}
}

// TestListOperationsCreationOrder checks GET /devicecontrol/operations'
// order with a device and a status filter, after some operations went
// back and forth between PENDING and EXECUTING (which changes their
// lastUpdated, not their place).
func TestListOperationsCreationOrder(t *testing.T) {
	s := storetest.OpenTest(t)
	dev := must(s.CreateDevice(ctx, "a", "ep"))
	other := must(s.CreateDevice(ctx, "a", "ep2"))
	var want []string
	for i := range 12 {
		d := dev
		if i%3 == 0 {
			d = other
		}
		op := must(s.CreateOperation(ctx, "a", store.Operation{DeviceID: d, HasCommand: true, Text: "read /3/0"}))
		if d == dev {
			want = append(want, op.ID)
		}
	}
	for _, id := range []string{want[3], want[0], want[5]} {
		check(t, s.SetStatus(ctx, "a", id, store.OpExecuting, "", ""))
		check(t, s.SetStatus(ctx, "a", id, store.OpPending, "", ""))
	}
	got, _, err := s.ListOperations(ctx, "a", store.OperationFilter{DeviceID: dev, Status: store.OpPending, Page: store.Page{Size: 100}})
	if err != nil {
		t.Fatal(err)
	}
	var gotIDs []string
	for _, op := range got {
		gotIDs = append(gotIDs, op.ID)
	}
	if !slices.Equal(gotIDs, want) {
		t.Fatalf("list = %v, want creation order %v", gotIDs, want)
	}
}

func TestSetStatusFrom(t *testing.T) {
	s := storetest.OpenTest(t)
	dev := must(s.CreateDevice(ctx, "a", "ep"))
	op := must(s.CreateOperation(ctx, "a", store.Operation{DeviceID: dev, HasCommand: true, Text: "read /3/0"}))
	err := s.SetStatusFrom(ctx, "a", op.ID, store.OpExecuting, store.OpFailed, "", "stuck")
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("fail a PENDING operation as if EXECUTING: %v, want ErrConflict", err)
	}
	if got := must(s.GetOperation(ctx, "a", op.ID)); got.Status != store.OpPending {
		t.Fatalf("operation changed: %+v", got)
	}
	check(t, s.SetStatus(ctx, "a", op.ID, store.OpExecuting, "", ""))
	check(t, s.SetStatusFrom(ctx, "a", op.ID, store.OpExecuting, store.OpFailed, "", "stuck"))
	if got := must(s.GetOperation(ctx, "a", op.ID)); got.Status != store.OpFailed || got.FailureReason != "stuck" {
		t.Fatalf("operation: %+v", got)
	}
}

func TestUnsend(t *testing.T) {
	s := storetest.OpenTest(t)
	dev := must(s.CreateDevice(ctx, "a", "ep"))
	ops := must(s.CreateOperations(ctx, "a", []store.Operation{
		{DeviceID: dev, HasCommand: true, Text: "read /3/0"},
		{DeviceID: dev, HasCommand: true, Text: "read /3/0/1"},
	}))
	op := ops[0]
	check(t, s.Transition(ctx, "a", op, store.OpExecuting, "", ""))
	op.Status = store.OpExecuting
	check(t, s.Unsend(ctx, "a", op))
	pending := must(s.Pending(ctx, "a", dev, 0))
	if len(pending) != 2 || pending[0].ID != op.ID || pending[0].Attempts != 0 {
		t.Fatalf("pending after unsend: %+v", pending)
	}
	if got := must(s.ExecutingBefore(ctx, time.Now().Add(time.Second), 0)); len(got) != 0 {
		t.Fatalf("still executing: %+v", got)
	}
	if err := s.Unsend(ctx, "a", pending[1]); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("unsend of a pending operation: %v", err)
	}
}

// Operations added to a device's queue while others leave it (the API
// queuing while the runner delivers) are all kept: every PENDING
// operation is in the queue when the dust settles.
func TestQueueConcurrentChanges(t *testing.T) {
	s := storetest.OpenTest(t)
	dev := must(s.CreateDevice(ctx, "a", "ep"))
	first := must(s.CreateOperations(ctx, "a", make40(dev)))
	var wg sync.WaitGroup
	var created []store.Operation
	var mu sync.Mutex
	for range 4 {
		wg.Go(func() {
			for range 5 {
				ops, err := s.CreateOperations(ctx, "a", make40(dev)[:4])
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				created = append(created, ops...)
				mu.Unlock()
			}
		})
	}
	wg.Go(func() {
		for _, op := range first {
			if err := s.SetStatus(ctx, "a", op.ID, store.OpExecuting, "", ""); err != nil {
				t.Error(err)
				return
			}
			if err := s.SetStatus(ctx, "a", op.ID, store.OpSuccessful, "ok", ""); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Wait()
	pending := must(s.Pending(ctx, "a", dev, 0))
	if len(pending) != len(created) {
		t.Fatalf("%d operations in the queue, want the %d created meanwhile", len(pending), len(created))
	}
}

func make40(dev string) []store.Operation {
	ops := make([]store.Operation, 40)
	for i := range ops {
		ops[i] = store.Operation{DeviceID: dev, HasCommand: true, Text: "read /3/0/0"}
	}
	return ops
}

// QueueOf answers from one queue document: the count of PENDING, the
// oldest of them up to the limit, and those EXECUTING; ended ones in
// neither.
func TestQueueOf(t *testing.T) {
	s := storetest.OpenTest(t)
	dev := must(s.CreateDevice(ctx, "a", "ep"))
	ops := must(s.CreateOperations(ctx, "a", make40(dev)[:5]))
	check(t, s.SetStatus(ctx, "a", ops[0].ID, store.OpExecuting, "", ""))
	check(t, s.SetStatus(ctx, "a", ops[1].ID, store.OpExecuting, "", ""))
	check(t, s.SetStatus(ctx, "a", ops[1].ID, store.OpSuccessful, "ok", ""))
	q := must(s.QueueOf(ctx, "a", dev, 2))
	ids := func(l []store.Operation) (out []string) {
		for _, o := range l {
			out = append(out, o.ID)
		}
		return out
	}
	if q.PendingCount != 3 || !slices.Equal(ids(q.Pending), []string{ops[2].ID, ops[3].ID}) || !slices.Equal(ids(q.Executing), []string{ops[0].ID}) {
		t.Fatalf("queue: %d pending, listed %v, executing %v", q.PendingCount, ids(q.Pending), ids(q.Executing))
	}
	if q := must(s.QueueOf(ctx, "a", "no-such-device", 0)); q.PendingCount != 0 || q.Pending != nil || q.Executing != nil {
		t.Fatalf("queue of a device without one: %+v", q)
	}
}
