package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

var operationCases = []suiteCase{
	{"Lifecycle", testOperations},
	{"ListPaging", testListOperationsPaging},
	{"ListCreationOrder", testListOperationsCreationOrder},
	{"ExecutingFound", testExecutingFound},
	{"SetStatusFinal", testSetStatusFinal},
	{"SetStatusFrom", testSetStatusFrom},
	{"Unsend", testUnsend},
	{"QueueOf", testQueueOf},
	{"QueuedDevices", testQueuedDevices},
	{"RecentOperations", testRecentOperations},
	{"SetOperationFragment", testSetOperationFragment},
	{"QueueConcurrentChanges", testQueueConcurrentChanges},
	{"ConcurrentCreationOrder", testConcurrentCreationOrder},
}

// device makes an object of the tenant for operations to name. The
// operations need only that, so the cases make plain objects rather than
// LwM2M devices: they hold an engine to its operations alone, not to the
// creation of devices with their endpoints and registrations.
func device(s store.Engine, tenant, name string) string {
	return must(s.CreateManagedObject(ctx, tenant, store.ManagedObject{
		Name: name, Type: store.DeviceType, Fragments: map[string]any{"c8y_IsDevice": map[string]any{}},
	})).ID
}

func opIDs(l []store.Operation) (out []string) {
	for _, o := range l {
		out = append(out, o.ID)
	}
	return out
}

func commands(dev string, n int) []store.Operation {
	ops := make([]store.Operation, n)
	for i := range ops {
		ops[i] = store.Operation{DeviceID: dev, HasCommand: true, Text: fmt.Sprint("read /3/0/", i)}
	}
	return ops
}

func testOperations(t *testing.T, s store.Engine) {
	dev := device(s, "a", "ep")
	other := device(s, "a", "ep2")
	devB := device(s, "b", "epb")
	ops := must(s.CreateOperations(ctx, "a", []store.Operation{
		{DeviceID: dev, HasCommand: true, Text: "read /3/0"},
		{DeviceID: dev, HasCommand: true, Text: "read /3/0/1"},
		{DeviceID: other, Fragments: map[string]any{"c8y_Firmware": map[string]any{"name": "fw", "version": "2", "url": "http://x"}}},
		{DeviceID: dev, HasCommand: true, Text: "execute /3/0/4"},
	}))
	for _, op := range ops {
		if op.Status != store.OpPending || op.ID == "" {
			t.Fatalf("new operation: %+v", op)
		}
	}
	if _, err := s.CreateOperation(ctx, "a", store.Operation{DeviceID: devB, Text: "read /3/0"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("operation for another tenant's device: %v", err)
	}
	pendingTexts := func(tenant, id string, limit int) (out []string) {
		t.Helper()
		for _, op := range must(s.Pending(ctx, tenant, id, limit)) {
			out = append(out, op.Text)
		}
		return out
	}
	if got := pendingTexts("a", dev, 2); !slices.Equal(got, []string{"read /3/0", "read /3/0/1"}) {
		t.Fatalf("pending: %v", got)
	}
	check(t, s.SetStatus(ctx, "a", ops[0].ID, store.OpExecuting, "", ""))
	if got := pendingTexts("a", dev, 0); !slices.Equal(got, []string{"read /3/0/1", "execute /3/0/4"}) {
		t.Fatalf("pending while executing: %v", got)
	}
	// A timed-out request goes back to the queue, in creation order.
	check(t, s.SetStatus(ctx, "a", ops[0].ID, store.OpPending, "", ""))
	if got := pendingTexts("a", dev, 1); !slices.Equal(got, []string{"read /3/0"}) {
		t.Fatalf("pending after requeue: %v", got)
	}
	check(t, s.SetStatus(ctx, "a", ops[0].ID, store.OpExecuting, "", ""))
	check(t, s.SetStatus(ctx, "a", ops[0].ID, store.OpSuccessful, "/3/0/0 = acme", ""))
	check(t, s.SetStatus(ctx, "a", ops[1].ID, store.OpFailed, "", "4.04 Not Found"))
	got := must(s.GetOperation(ctx, "a", ops[0].ID))
	if got.Status != store.OpSuccessful || got.Result != "/3/0/0 = acme" || got.Attempts != 2 || got.Text != "read /3/0" {
		t.Fatalf("successful operation: %+v", got)
	}
	if f := must(s.GetOperation(ctx, "a", ops[1].ID)); f.FailureReason != "4.04 Not Found" {
		t.Fatalf("failed operation: %+v", f)
	}
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"status after final", s.SetStatus(ctx, "a", ops[0].ID, store.OpPending, "", ""), store.ErrInvalid},
		{"unknown status", s.SetStatus(ctx, "a", ops[3].ID, "SLEEPING", "", ""), store.ErrInvalid},
		{"missing operation", s.SetStatus(ctx, "a", "no-such-op", store.OpFailed, "", ""), store.ErrNotFound},
		{"get missing operation", func() error { _, err := s.GetOperation(ctx, "a", "no-such-op"); return err }(), store.ErrNotFound},
		{"operation with a dotted fragment", func() error {
			_, err := s.CreateOperation(ctx, "a", store.Operation{DeviceID: dev, Fragments: map[string]any{"bad.name": 1}})
			return err
		}(), store.ErrInvalid},
		{"operation for a missing device", func() error {
			_, err := s.CreateOperation(ctx, "a", store.Operation{DeviceID: "no-such-device", HasCommand: true, Text: "read /3/0"})
			return err
		}(), store.ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !errors.Is(tc.err, tc.want) {
				t.Fatalf("got %v, want %v", tc.err, tc.want)
			}
		})
	}
	if n := must(s.PendingCount(ctx, "a", dev)); n != 1 {
		t.Fatalf("PendingCount = %d, want 1", n)
	}
	list, total, err := s.ListOperations(ctx, "a", store.OperationFilter{DeviceID: dev, Page: store.Page{WithTotal: true}})
	if err != nil || total != 3 || !slices.Equal(opIDs(list), []string{ops[0].ID, ops[1].ID, ops[3].ID}) {
		t.Fatalf("list: %d %v %+v", total, err, list)
	}
	list, _, _ = s.ListOperations(ctx, "a", store.OperationFilter{Status: store.OpPending})
	if len(list) != 2 || list[0].Fragments["c8y_Firmware"] == nil || list[1].Text != "execute /3/0/4" {
		t.Fatalf("pending list: %+v", list)
	}
}

func testListOperationsPaging(t *testing.T, s store.Engine) {
	dev := device(s, "a", "ep")
	created := opIDs(must(s.CreateOperations(ctx, "a", commands(dev, 7))))
	tests := []struct {
		name  string
		page  store.Page
		want  []string
		total int64
	}{
		{"first page", store.Page{Size: 3, Current: 1, WithTotal: true}, created[:3], 7},
		{"second page", store.Page{Size: 3, Current: 2}, created[3:6], -1},
		{"last page", store.Page{Size: 3, Current: 3, WithTotal: true}, created[6:], 7},
		{"past the end", store.Page{Size: 3, Current: 4, WithTotal: true}, nil, 7},
		{"default size", store.Page{}, created[:store.DefaultPageSize], -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, total, err := s.ListOperations(ctx, "a", store.OperationFilter{DeviceID: dev, Page: tc.page})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(opIDs(got), tc.want) || total != tc.total {
				t.Fatalf("got %v (total %d), want %v (total %d)", opIDs(got), total, tc.want, tc.total)
			}
		})
	}
}

// ListOperations keeps creation order with a device and a status filter
// after some operations went back and forth between PENDING and
// EXECUTING (which changes their lastUpdated, not their place).
func testListOperationsCreationOrder(t *testing.T, s store.Engine) {
	dev := device(s, "a", "ep")
	other := device(s, "a", "ep2")
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
	check(t, err)
	if !slices.Equal(opIDs(got), want) {
		t.Fatalf("list = %v, want creation order %v", opIDs(got), want)
	}
}

// The operations left EXECUTING are found both ways: by the watchdog with
// a cut-off time and by the start-up recovery; an operation leaves those
// lists once it moves on.
func testExecutingFound(t *testing.T, s store.Engine) {
	dev := device(s, "a", "ep")
	devB := device(s, "b", "epb")
	ops := must(s.CreateOperations(ctx, "a", commands(dev, 3)))
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

// A late outcome does not overwrite one recorded already: the watchdog
// failing an operation and the runner recording its answer must not both
// win.
func testSetStatusFinal(t *testing.T, s store.Engine) {
	dev := device(s, "a", "ep")
	op := must(s.CreateOperation(ctx, "a", store.Operation{DeviceID: dev, HasCommand: true, Text: "read /3/0"}))
	check(t, s.SetStatus(ctx, "a", op.ID, store.OpExecuting, "", ""))
	check(t, s.SetStatus(ctx, "a", op.ID, store.OpFailed, "", "stuck"))
	if err := s.SetStatus(ctx, "a", op.ID, store.OpSuccessful, "late answer", ""); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("success after failure: %v, want ErrInvalid", err)
	}
	got := must(s.GetOperation(ctx, "a", op.ID))
	if got.Status != store.OpFailed || got.FailureReason != "stuck" || got.Result != "" {
		t.Fatalf("operation changed: %+v", got)
	}
}

func testSetStatusFrom(t *testing.T, s store.Engine) {
	dev := device(s, "a", "ep")
	op := must(s.CreateOperation(ctx, "a", store.Operation{DeviceID: dev, HasCommand: true, Text: "read /3/0"}))
	if err := s.SetStatusFrom(ctx, "a", op.ID, store.OpExecuting, store.OpFailed, "", "stuck"); !errors.Is(err, store.ErrConflict) {
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

func testUnsend(t *testing.T, s store.Engine) {
	dev := device(s, "a", "ep")
	ops := must(s.CreateOperations(ctx, "a", commands(dev, 2)))
	op := ops[0]
	check(t, s.Transition(ctx, "a", op, store.OpExecuting, "", ""))
	if got := must(s.GetOperation(ctx, "a", op.ID)); got.Status != store.OpExecuting {
		t.Fatalf("after Transition: %+v", got)
	}
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

// QueueOf answers the count of PENDING, the oldest of them up to the
// limit, and those EXECUTING; ended ones in neither.
func testQueueOf(t *testing.T, s store.Engine) {
	dev := device(s, "a", "ep")
	ops := must(s.CreateOperations(ctx, "a", commands(dev, 5)))
	check(t, s.SetStatus(ctx, "a", ops[0].ID, store.OpExecuting, "", ""))
	check(t, s.SetStatus(ctx, "a", ops[1].ID, store.OpExecuting, "", ""))
	check(t, s.SetStatus(ctx, "a", ops[1].ID, store.OpSuccessful, "ok", ""))
	q := must(s.QueueOf(ctx, "a", dev, 2))
	if q.PendingCount != 3 || !slices.Equal(opIDs(q.Pending), []string{ops[2].ID, ops[3].ID}) || !slices.Equal(opIDs(q.Executing), []string{ops[0].ID}) {
		t.Fatalf("queue: %d pending, listed %v, executing %v", q.PendingCount, opIDs(q.Pending), opIDs(q.Executing))
	}
	if q := must(s.QueueOf(ctx, "a", "no-such-device", 0)); q.PendingCount != 0 || q.Pending != nil || q.Executing != nil {
		t.Fatalf("queue of a device without one: %+v", q)
	}
}

func testQueuedDevices(t *testing.T, s store.Engine) {
	queued := device(s, "a", "ep")
	idle := device(s, "a", "ep2")
	queuedB := device(s, "b", "epb")
	must(s.CreateOperation(ctx, "a", store.Operation{DeviceID: queued, HasCommand: true, Text: "read /3/0"}))
	done := must(s.CreateOperation(ctx, "a", store.Operation{DeviceID: idle, HasCommand: true, Text: "read /3/0"}))
	check(t, s.SetStatus(ctx, "a", done.ID, store.OpFailed, "", "gone"))
	must(s.CreateOperation(ctx, "b", store.Operation{DeviceID: queuedB, HasCommand: true, Text: "read /3/0"}))
	var got []string
	check(t, s.QueuedDevices(ctx, func(tenant, id string) error {
		got = append(got, tenant+"/"+id)
		return nil
	}))
	slices.Sort(got)
	want := []string{"a/" + queued, "b/" + queuedB}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("QueuedDevices = %v, want %v", got, want)
	}
	stop := errors.New("stop")
	n := 0
	if err := s.QueuedDevices(ctx, func(string, string) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Fatalf("an error of fn: %v after %d calls, want it returned after 1", err, n)
	}
}

// RecentOperations lists a device's ended operations, the most recently
// created first.
func testRecentOperations(t *testing.T, s store.Engine) {
	dev := device(s, "a", "ep")
	ops := must(s.CreateOperations(ctx, "a", commands(dev, 5)))
	check(t, s.SetStatus(ctx, "a", ops[0].ID, store.OpSuccessful, "ok", ""))
	check(t, s.SetStatus(ctx, "a", ops[1].ID, store.OpFailed, "", "no"))
	check(t, s.SetStatus(ctx, "a", ops[2].ID, store.OpExecuting, "", ""))
	check(t, s.SetStatus(ctx, "a", ops[3].ID, store.OpSuccessful, "ok", ""))
	tests := []struct {
		name  string
		limit int
		want  []string
	}{
		{"all ended", 10, []string{ops[3].ID, ops[1].ID, ops[0].ID}},
		{"limited", 2, []string{ops[3].ID, ops[1].ID}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := opIDs(must(s.RecentOperations(ctx, "a", dev, tc.limit))); !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
	if got := must(s.RecentOperations(ctx, "b", dev, 10)); len(got) != 0 {
		t.Fatalf("another tenant sees %d", len(got))
	}
}

// A fragment set on an operation is read back with it (what a firmware
// update resumes from after a restart); the fixed members and other
// tenants' operations are out of its reach.
func testSetOperationFragment(t *testing.T, s store.Engine) {
	dev := device(s, "a", "ep")
	op := must(s.CreateOperation(ctx, "a", store.Operation{DeviceID: dev, HasCommand: true, Text: "fwupdate fw;2;http://h/fw.bin"}))
	check(t, s.SetStatus(ctx, "a", op.ID, store.OpExecuting, "", ""))
	check(t, s.SetOperationFragment(ctx, "a", op.ID, "progress", map[string]any{"step": "download", "state": 1}))
	check(t, s.SetOperationFragment(ctx, "a", op.ID, "progress", map[string]any{"step": "update", "state": 3}))
	got := must(s.GetOperation(ctx, "a", op.ID))
	p, _ := got.Fragments["progress"].(map[string]any)
	if p["step"] != "update" || got.Status != store.OpExecuting || got.Text != op.Text {
		t.Errorf("operation after SetOperationFragment: %+v", got)
	}
	for _, tc := range []struct {
		name, tenant, id, frag string
		want                   error
	}{
		{"fixed member", "a", op.ID, "status", store.ErrInvalid},
		{"dotted name", "a", op.ID, "a.b", store.ErrInvalid},
		{"other tenant", "b", op.ID, "progress", store.ErrNotFound},
		{"missing operation", "a", "no-such-op", "progress", store.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.SetOperationFragment(ctx, tc.tenant, tc.id, tc.frag, 1); !errors.Is(err, tc.want) {
				t.Errorf("err %v, want %v", err, tc.want)
			}
		})
	}
}

// Operations added to a device's queue while others leave it (the API
// queuing while the runner delivers) are all kept: every PENDING
// operation is in the queue when the dust settles.
func testQueueConcurrentChanges(t *testing.T, s store.Engine) {
	dev := device(s, "a", "ep")
	first := must(s.CreateOperations(ctx, "a", commands(dev, 20)))
	var wg sync.WaitGroup
	var created []store.Operation
	var mu sync.Mutex
	for range 4 {
		wg.Go(func() {
			for range 5 {
				ops, err := s.CreateOperations(ctx, "a", commands(dev, 4))
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
	pending := opIDs(must(s.Pending(ctx, "a", dev, 0)))
	want := opIDs(created)
	slices.Sort(pending)
	slices.Sort(want)
	if !slices.Equal(pending, want) {
		t.Fatalf("%d operations in the queue, want the %d created meanwhile", len(pending), len(want))
	}
}

// Operations created at once for one device each appear in its queue
// once, in creation order: the order ListOperations gives, which keeps
// every creator's own operations in the order it made them.
func testConcurrentCreationOrder(t *testing.T, s store.Engine) {
	dev := device(s, "a", "ep")
	const workers, each = 8, 5
	mine := make([][]string, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				op, err := s.CreateOperation(ctx, "a", store.Operation{DeviceID: dev, HasCommand: true, Text: fmt.Sprintf("read /%d/0/%d", w, i)})
				if err != nil {
					t.Error(err)
					return
				}
				mine[w] = append(mine[w], op.ID)
			}
		})
	}
	wg.Wait()
	listed := opIDs(must2(s.ListOperations(ctx, "a", store.OperationFilter{DeviceID: dev, Page: store.Page{Size: 100}})))
	pending := opIDs(must(s.Pending(ctx, "a", dev, 0)))
	if len(pending) != workers*each || !slices.Equal(pending, listed) {
		t.Fatalf("queue %v, want each of the %d operations once in creation order %v", pending, workers*each, listed)
	}
	if n := must(s.PendingCount(ctx, "a", dev)); n != workers*each {
		t.Fatalf("PendingCount = %d, want %d", n, workers*each)
	}
	place := map[string]int{}
	for i, id := range pending {
		place[id] = i
	}
	for w, l := range mine {
		for i := 1; i < len(l); i++ {
			if place[l[i-1]] > place[l[i]] {
				t.Fatalf("creator %d's operations %s and %s queued out of order", w, l[i-1], l[i])
			}
		}
	}
}

// must2 unwraps a list and its total, keeping the list.
func must2[T any](v T, _ int64, err error) T { return must(v, err) }
