package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
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
	{"Executed", testExecuted},
	{"QueueOf", testQueueOf},
	{"QueuedDevices", testQueuedDevices},
	{"RecentOperations", testRecentOperations},
	{"SetOperationFragment", testSetOperationFragment},
	{"QueueConcurrentChanges", testQueueConcurrentChanges},
	{"ConcurrentCreationOrder", testConcurrentCreationOrder},
	{"ConcurrentBatchesOrder", testConcurrentBatchesOrder},
	{"ConcurrentSetStatusFrom", testConcurrentSetStatusFrom},
	{"ListFiltersPagingTotals", testListOperationsFilters},
	{"ExecutingBeforeBoundaries", testExecutingBeforeBoundaries},
	{"OtherTenant", testOperationsOfAnotherTenant},
	{"DeviceDeleted", testOperationsOfDeletedDevice},
}

// Deleting a device fails its PENDING and EXECUTING operations and keeps
// every operation as history; another device's operations, and a device
// of the same id in another tenant, are left as they were.
func testOperationsOfDeletedDevice(t *testing.T, s store.Engine) {
	dev := must(s.CreateDevice(ctx, "acme", "ep-deleted"))
	other := must(s.CreateDevice(ctx, "acme", "ep-other"))
	ops := must(s.CreateOperations(ctx, "acme", append(commands(dev, 3), commands(other, 1)...)))
	check(t, s.SetStatus(ctx, "acme", ops[1].ID, store.OpExecuting, "", ""))
	check(t, s.SetStatus(ctx, "acme", ops[2].ID, store.OpSuccessful, "ok", ""))
	must(s.DeleteManagedObject(ctx, "acme", dev))

	for i, want := range []string{store.OpFailed, store.OpFailed, store.OpSuccessful, store.OpPending} {
		got, err := s.GetOperation(ctx, "acme", ops[i].ID)
		if err != nil || got.Status != want {
			t.Fatalf("operation %d after its device was deleted: %+v, %v; want %s", i, got, err, want)
		}
		if want == store.OpFailed && got.FailureReason != store.FailureDeviceDeleted {
			t.Errorf("operation %d failed for %q, want %q", i, got.FailureReason, store.FailureDeviceDeleted)
		}
	}
	if p := must(s.Pending(ctx, "acme", dev, 0)); len(p) != 0 {
		t.Errorf("pending operations of the deleted device: %+v", p)
	}
	if ex := must(s.Executing(ctx, 0)); len(ex) != 0 {
		t.Errorf("executing after the deletion: %+v", ex)
	}
	var queued []string
	check(t, s.QueuedDevices(ctx, func(tenant, id string) error { queued = append(queued, tenant+"/"+id); return nil }))
	if !slices.Equal(queued, []string{"acme/" + other}) {
		t.Errorf("queued devices after the deletion: %v, want only acme/%s", queued, other)
	}
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

// Executed takes a PENDING operation to its outcome in one change,
// counting the attempt; an operation that left PENDING meanwhile is
// ErrConflict and keeps what it became.
func testExecuted(t *testing.T, s store.Engine) {
	dev := device(s, "a", "ep")
	ops := must(s.CreateOperations(ctx, "a", commands(dev, 3)))
	check(t, s.Executed(ctx, "a", ops[0], store.OpSuccessful, "/3/0/0: 42", ""))
	got := must(s.GetOperation(ctx, "a", ops[0].ID))
	if got.Status != store.OpSuccessful || got.Result != "/3/0/0: 42" || got.Attempts != 1 || !got.HasCommand {
		t.Fatalf("after Executed: %+v", got)
	}
	check(t, s.Executed(ctx, "a", ops[1], store.OpFailed, "", "4.04 Not Found"))
	if got := must(s.GetOperation(ctx, "a", ops[1].ID)); got.Status != store.OpFailed || got.FailureReason != "4.04 Not Found" || got.Attempts != 1 {
		t.Fatalf("after Executed FAILED: %+v", got)
	}
	if pending := must(s.Pending(ctx, "a", dev, 0)); len(pending) != 1 || pending[0].ID != ops[2].ID {
		t.Fatalf("pending: %+v, want only %s", pending, ops[2].ID)
	}
	if got := must(s.ExecutingBefore(ctx, time.Now().Add(time.Second), 0)); len(got) != 0 {
		t.Fatalf("executing: %+v", got)
	}
	// cancelled (here: failed) since it was read as PENDING
	check(t, s.SetStatus(ctx, "a", ops[2].ID, store.OpFailed, "", "cancelled"))
	if err := s.Executed(ctx, "a", ops[2], store.OpSuccessful, "late", ""); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Executed of an operation no longer PENDING: %v, want ErrConflict", err)
	}
	if got := must(s.GetOperation(ctx, "a", ops[2].ID)); got.Status != store.OpFailed || got.FailureReason != "cancelled" || got.Result != "" {
		t.Fatalf("changed by a refused Executed: %+v", got)
	}
	if err := s.Executed(ctx, "a", ops[2], store.OpExecuting, "", ""); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("Executed to EXECUTING: %v, want ErrInvalid", err)
	}
	got.Status = store.OpExecuting
	if err := s.Executed(ctx, "a", got, store.OpSuccessful, "", ""); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("Executed of an operation read as EXECUTING: %v, want ErrInvalid", err)
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
		{"reserved member", "a", op.ID, "tenant", store.ErrInvalid},
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

// Batches created at once for two devices each get consecutive ids in
// the order given, and each device's queue is its operations in the
// order of their ids, the order ListOperations gives.
func testConcurrentBatchesOrder(t *testing.T, s store.Engine) {
	devs := []string{device(s, "a", "ep"), device(s, "a", "ep2")}
	const workers, batches, size = 6, 4, 5
	var (
		mu      sync.Mutex
		created [][]store.Operation
		wg      sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			for b := range batches {
				ops := make([]store.Operation, size)
				for i := range ops {
					ops[i] = store.Operation{DeviceID: devs[(w+b+i)%2], HasCommand: true, Text: fmt.Sprintf("read /%d/%d/%d", w, b, i)}
				}
				out, err := s.CreateOperations(ctx, "a", ops)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				created = append(created, out)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	byDevice := map[string][]string{}
	for _, batch := range created {
		first, _ := strconv.ParseInt(batch[0].ID, 10, 64)
		for i, op := range batch {
			if op.ID != strconv.FormatInt(first+int64(i), 10) {
				t.Fatalf("batch ids %v are not consecutive", opIDs(batch))
			}
			byDevice[op.DeviceID] = append(byDevice[op.DeviceID], op.ID)
		}
	}
	for _, dev := range devs {
		want := byDevice[dev]
		slices.SortFunc(want, func(x, y string) int {
			a, _ := strconv.ParseInt(x, 10, 64)
			b, _ := strconv.ParseInt(y, 10, 64)
			return int(a - b)
		})
		if got := opIDs(must(s.Pending(ctx, "a", dev, 0))); !slices.Equal(got, want) {
			t.Fatalf("queue of %s: %v, want %v", dev, got, want)
		}
		if got := opIDs(must2(s.ListOperations(ctx, "a", store.OperationFilter{DeviceID: dev, Page: store.Page{Size: 100}}))); !slices.Equal(got, want) {
			t.Fatalf("list of %s: %v, want %v", dev, got, want)
		}
	}
}

// Of changes of one operation from one status made at once, exactly one
// applies and the others are ErrConflict: the runner, its watchdog and
// the start's recovery never both record an outcome.
func testConcurrentSetStatusFrom(t *testing.T, s store.Engine) {
	dev := device(s, "a", "ep")
	const callers = 8
	race := func(from string, to func(i int) (status, reason string)) (winner int) {
		t.Helper()
		op := must(s.CreateOperation(ctx, "a", store.Operation{DeviceID: dev, HasCommand: true, Text: "read /3/0"}))
		if from == store.OpExecuting {
			check(t, s.SetStatus(ctx, "a", op.ID, store.OpExecuting, "", ""))
		}
		errs := make([]error, callers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range callers {
			wg.Go(func() {
				<-start
				status, reason := to(i)
				errs[i] = s.SetStatusFrom(ctx, "a", op.ID, from, status, "", reason)
			})
		}
		close(start)
		wg.Wait()
		winner = -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("from %s: callers %d and %d both changed operation %s", from, winner, i, op.ID)
			case err == nil:
				winner = i
			case !errors.Is(err, store.ErrConflict):
				t.Fatalf("from %s: caller %d: %v, want ErrConflict", from, i, err)
			}
		}
		if winner < 0 {
			t.Fatalf("from %s: no caller changed operation %s", from, op.ID)
		}
		got := must(s.GetOperation(ctx, "a", op.ID))
		status, reason := to(winner)
		if got.Status != status || got.FailureReason != reason || got.Attempts != 1 {
			t.Fatalf("from %s: operation %+v, want the winner's %s %q after one attempt", from, got, status, reason)
		}
		return winner
	}
	// The watchdog failing a stuck operation while the runner records its
	// outcome.
	race(store.OpExecuting, func(i int) (string, string) {
		if i%2 == 0 {
			return store.OpSuccessful, ""
		}
		return store.OpFailed, fmt.Sprint("stuck ", i)
	})
	// Workers taking the same PENDING operation.
	race(store.OpPending, func(int) (string, string) { return store.OpExecuting, "" })
}

// ListOperations pages through each filter in creation order, with the
// total of the filter's operations, and never lists another tenant's.
func testListOperationsFilters(t *testing.T, s store.Engine) {
	dev, other := device(s, "a", "ep"), device(s, "a", "ep2")
	devB := device(s, "b", "epb")
	statuses := []string{store.OpPending, store.OpExecuting, store.OpSuccessful, store.OpFailed}
	var all []store.Operation
	for i := range 14 {
		d := dev
		if i%3 == 2 {
			d = other
		}
		op := must(s.CreateOperation(ctx, "a", store.Operation{DeviceID: d, HasCommand: true, Text: fmt.Sprint("read /3/0/", i)}))
		// Another tenant's operations interleave with a's, in every status.
		opB := must(s.CreateOperation(ctx, "b", store.Operation{DeviceID: devB, HasCommand: true, Text: "read /3/0"}))
		op.Status = statuses[(i/2)%len(statuses)]
		if op.Status != store.OpPending {
			check(t, s.SetStatus(ctx, "a", op.ID, op.Status, "", ""))
			check(t, s.SetStatus(ctx, "b", opB.ID, op.Status, "", ""))
		}
		all = append(all, op)
	}
	type filter struct{ device, status string }
	filters := []filter{{}, {device: dev}, {device: other}, {device: devB}, {device: "no-such-device"}, {status: "SLEEPING"}}
	for _, st := range statuses {
		filters = append(filters, filter{status: st}, filter{device: dev, status: st}, filter{device: other, status: st})
	}
	const size = 2
	for _, f := range filters {
		var want []string
		for _, op := range all {
			if (f.device == "" || op.DeviceID == f.device) && (f.status == "" || op.Status == f.status) {
				want = append(want, op.ID)
			}
		}
		t.Run(fmt.Sprintf("device %q status %q", f.device, f.status), func(t *testing.T) {
			var got []string
			for page := 1; page <= len(want)/size+1; page++ {
				l, total, err := s.ListOperations(ctx, "a", store.OperationFilter{
					DeviceID: f.device, Status: f.status, Page: store.Page{Size: size, Current: page, WithTotal: true},
				})
				check(t, err)
				if total != int64(len(want)) {
					t.Fatalf("page %d: total %d, want %d", page, total, len(want))
				}
				if n := min(size, len(want)-(page-1)*size); len(l) != n {
					t.Fatalf("page %d: %d operations, want %d", page, len(l), n)
				}
				for _, op := range l {
					if f.status != "" && op.Status != f.status || f.device != "" && op.DeviceID != f.device {
						t.Fatalf("page %d: %+v does not match", page, op)
					}
				}
				got = append(got, opIDs(l)...)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("pages %v, want %v", got, want)
			}
		})
	}
}

// ExecutingBefore(t) finds the operations EXECUTING since before t, by
// their lastUpdated: not one updated at t itself, and one updated a
// nanosecond before t (stored times are in milliseconds).
func testExecutingBeforeBoundaries(t *testing.T, s store.Engine) {
	dev := device(s, "a", "ep")
	devB := device(s, "b", "epb")
	ops := must(s.CreateOperations(ctx, "a", commands(dev, 3)))
	opB := must(s.CreateOperation(ctx, "b", store.Operation{DeviceID: devB, HasCommand: true, Text: "read /3/0"}))
	executing := map[string]time.Time{} // tenant/id: lastUpdated
	for _, op := range []struct{ tenant, id string }{{"a", ops[0].ID}, {"a", ops[1].ID}, {"b", opB.ID}} {
		check(t, s.SetStatus(ctx, op.tenant, op.id, store.OpExecuting, "", ""))
		executing[op.tenant+"/"+op.id] = must(s.GetOperation(ctx, op.tenant, op.id)).LastUpdated
	}
	var boundaries []time.Time
	for _, l := range executing {
		boundaries = append(boundaries, l.Add(-time.Millisecond), l, l.Add(time.Nanosecond), l.Add(time.Millisecond))
	}
	for _, before := range boundaries {
		var want []string
		for id, l := range executing {
			if l.Before(before) {
				want = append(want, id)
			}
		}
		slices.Sort(want)
		for _, limit := range []int{0, 1} {
			var got []string
			for _, o := range must(s.ExecutingBefore(ctx, before, limit)) {
				got = append(got, o.Tenant+"/"+o.ID)
			}
			slices.Sort(got)
			switch {
			case limit == 0 && !slices.Equal(got, want):
				t.Fatalf("ExecutingBefore(%v) = %v, want %v", before, got, want)
			case limit == 1 && (len(got) != min(1, len(want)) || len(got) == 1 && !slices.Contains(want, got[0])):
				t.Fatalf("ExecutingBefore(%v, 1) = %v, want one of %v", before, got, want)
			}
		}
	}
	// One that ends, or goes back to the queue, is no longer found.
	check(t, s.SetStatus(ctx, "a", ops[0].ID, store.OpSuccessful, "ok", ""))
	check(t, s.SetStatus(ctx, "b", opB.ID, store.OpPending, "", ""))
	got := must(s.ExecutingBefore(ctx, time.Now().Add(time.Hour), 0))
	if len(got) != 1 || got[0].Tenant != "a" || got[0].ID != ops[1].ID {
		t.Fatalf("after moves: %+v", got)
	}
}

// Tenant b neither reads nor changes a's operations, with a's ids and
// a's device id, and a's operations are as they were.
func testOperationsOfAnotherTenant(t *testing.T, s store.Engine) {
	dev := device(s, "a", "ep")
	must(s.CreateOperation(ctx, "b", store.Operation{DeviceID: device(s, "b", "epb"), HasCommand: true, Text: "read /3/0"}))
	ops := must(s.CreateOperations(ctx, "a", commands(dev, 3)))
	check(t, s.SetStatus(ctx, "a", ops[1].ID, store.OpExecuting, "", ""))
	check(t, s.SetStatus(ctx, "a", ops[2].ID, store.OpSuccessful, "ok", ""))
	check(t, s.SetPostOperations(ctx, "a", []string{"read /3/0"}))
	executing := ops[1]
	executing.Status = store.OpExecuting
	for _, op := range []store.Operation{ops[0], executing} {
		for _, tc := range operationsRefused(s, op) {
			t.Run(tc.name+" "+op.Status, func(t *testing.T) {
				if err := tc.do(); !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("got %v, want ErrNotFound", err)
				}
			})
		}
	}
	for _, tc := range operationsUnseen(s, dev) {
		t.Run(tc.name, func(t *testing.T) {
			if n, err := tc.n(); err != nil || n != 0 {
				t.Fatalf("b sees %d (%v)", n, err)
			}
		})
	}
	if l, total, err := s.ListOperations(ctx, "b", store.OperationFilter{Page: store.Page{WithTotal: true}}); err != nil || len(l) != 1 || total != 1 {
		t.Fatalf("b's list: %d of %d (%v), want its one operation", len(l), total, err)
	}
	// The lists across tenants name each operation's tenant.
	for _, o := range must(s.Executing(ctx, 0)) {
		if o.Tenant != "a" || o.ID != executing.ID {
			t.Fatalf("executing: %+v", o)
		}
	}
	check(t, s.QueuedDevices(ctx, func(tenant, id string) error {
		if id == dev && tenant != "a" {
			t.Errorf("a's device queued in tenant %q", tenant)
		}
		return nil
	}))
	for i, want := range []string{store.OpPending, store.OpExecuting, store.OpSuccessful} {
		if o := must(s.GetOperation(ctx, "a", ops[i].ID)); o.Status != want || o.FailureReason != "" || len(o.Fragments) != 0 {
			t.Fatalf("a's operation changed: %+v", o)
		}
	}
	if n := must(s.PendingCount(ctx, "a", dev)); n != 1 {
		t.Fatalf("a's queue: %d pending, want 1", n)
	}
}

// refused is a call of tenant b on what tenant a stored, which must be
// ErrNotFound.
type refused struct {
	name string
	do   func() error
}

// unseen is a read of tenant b of what tenant a stored, which must find
// nothing (or answer ErrNotFound).
type unseen struct {
	name string
	n    func() (int, error)
}

// operationsRefused are tenant b's changes of tenant a's operation op,
// as a read it, and of operations for op's device.
func operationsRefused(s store.Engine, op store.Operation) []refused {
	executing := op
	executing.Status = store.OpExecuting
	return []refused{
		{"create operation for a's device", func() error {
			_, err := s.CreateOperation(ctx, "b", store.Operation{DeviceID: op.DeviceID, HasCommand: true, Text: "read /3/0"})
			return err
		}},
		{"get operation", func() error { _, err := s.GetOperation(ctx, "b", op.ID); return err }},
		{"set operation status", func() error { return s.SetStatus(ctx, "b", op.ID, store.OpFailed, "", "") }},
		{"set operation status from", func() error {
			return s.SetStatusFrom(ctx, "b", op.ID, op.Status, store.OpFailed, "", "")
		}},
		{"transition", func() error { return s.Transition(ctx, "b", op, store.OpFailed, "", "") }},
		{"unsend", func() error { return s.Unsend(ctx, "b", executing) }},
		{"operation fragment", func() error { return s.SetOperationFragment(ctx, "b", op.ID, "progress", 1) }},
	}
}

// operationsUnseen are tenant b's reads of the queue and the operations
// of tenant a's device dev, and of b's operations EXECUTING, of which
// it has none.
func operationsUnseen(s store.Engine, dev string) []unseen {
	return []unseen{
		{"operations of a's device", func() (int, error) {
			l, total, err := s.ListOperations(ctx, "b", store.OperationFilter{DeviceID: dev, Page: store.Page{WithTotal: true}})
			return len(l) + int(total), err
		}},
		{"pending operations of a's device", func() (int, error) {
			l, _, err := s.ListOperations(ctx, "b", store.OperationFilter{DeviceID: dev, Status: store.OpPending})
			return len(l), err
		}},
		{"executing operations", func() (int, error) {
			l, _, err := s.ListOperations(ctx, "b", store.OperationFilter{Status: store.OpExecuting})
			return len(l), err
		}},
		{"pending", func() (int, error) { l, err := s.Pending(ctx, "b", dev, 0); return len(l), err }},
		{"pending count", func() (int, error) { return s.PendingCount(ctx, "b", dev) }},
		{"queue", func() (int, error) {
			q, err := s.QueueOf(ctx, "b", dev, 0)
			return q.PendingCount + len(q.Pending) + len(q.Executing), err
		}},
		{"recent operations", func() (int, error) { l, err := s.RecentOperations(ctx, "b", dev, 10); return len(l), err }},
	}
}
