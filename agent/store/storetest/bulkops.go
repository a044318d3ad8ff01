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

var bulkCases = []suiteCase{
	{"CreateGetList", testBulkCreateGetList},
	{"Steps", testBulkSteps},
	{"DeletedDevicePassedOver", testBulkDeletedDevice},
	{"Cancel", testBulkCancel},
	{"ConcurrentClaimers", testBulkConcurrentClaimers},
}

func devices(s store.Engine, tenant string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = must(s.CreateDevice(ctx, tenant, fmt.Sprintf("%s-ep-%d", tenant, i)))
	}
	return out
}

func newBulk(s store.Engine, tenant string, targets []string, start time.Time, ramp time.Duration) store.BulkOperation {
	return must(s.CreateBulkOperation(ctx, tenant, store.BulkOperation{
		GroupID: "1", StartDate: start, CreationRamp: ramp, Targets: targets,
		Prototype: map[string]any{"c8y_Command": map[string]any{"text": "read /3/0/0"}, "description": "read the maker", "deviceId": "x"},
		Fragments: map[string]any{"note": "fleet"},
	}))
}

func testBulkCreateGetList(t *testing.T, s store.Engine) {
	devs := devices(s, "a", 3)
	start := time.Date(2030, 1, 2, 3, 4, 5, 6e6, time.UTC)
	b := newBulk(s, "a", devs, start, 1500*time.Millisecond)
	got := must(s.GetBulkOperation(ctx, "a", b.ID))
	if got.Status != store.BulkActive || got.Total != 3 || got.Position != 0 || !got.StartDate.Equal(start) || !got.NextAt.Equal(start) ||
		got.CreationRamp != 1500*time.Millisecond || got.GroupID != "1" || got.Progress != (store.BulkProgress{}) || got.Targets != nil {
		t.Errorf("stored %+v", got)
	}
	if c, _ := got.Prototype["c8y_Command"].(map[string]any); c["text"] != "read /3/0/0" || got.Fragments["note"] != "fleet" {
		t.Errorf("prototype %v, fragments %v", got.Prototype, got.Fragments)
	}
	b2 := newBulk(s, "a", devs[:1], start, 0)
	list, total, err := s.ListBulkOperations(ctx, "a", store.Page{Size: 1, WithTotal: true})
	check(t, err)
	if len(list) != 1 || list[0].ID != b.ID || total != 2 {
		t.Errorf("first page %v of %d, want %s of 2", list, total, b.ID)
	}
	list, _, err = s.ListBulkOperations(ctx, "a", store.Page{Size: 1, Current: 2})
	check(t, err)
	if len(list) != 1 || list[0].ID != b2.ID {
		t.Errorf("second page %v, want %s", list, b2.ID)
	}
	if _, err := s.GetBulkOperation(ctx, "b", b.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("tenant b reads a's bulk operation: %v", err)
	}
	if list, _, _ := s.ListBulkOperations(ctx, "b", store.Page{}); len(list) != 0 {
		t.Errorf("tenant b lists a's: %v", list)
	}
	if _, err := s.SetBulkStatus(ctx, "b", b.ID, store.BulkCanceled); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("tenant b cancels a's: %v", err)
	}
	if _, err := s.CreateBulkStep(ctx, "b", got, time.Now()); err == nil {
		t.Errorf("tenant b created an operation of a's bulk operation")
	}
	if _, err := s.CreateBulkOperation(ctx, "a", store.BulkOperation{GroupID: "1", StartDate: start}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("a bulk operation without devices: %v, want ErrInvalid", err)
	}
}

// Each step creates the next device's operation from the prototype,
// naming the bulk operation; a step from a position read before is
// refused; progress counts the operations by status.
func testBulkSteps(t *testing.T, s store.Engine) {
	devs := devices(s, "a", 3)
	start := nowMilli().Add(-time.Second)
	b := newBulk(s, "a", devs, start, time.Minute)
	if due := must(s.DueBulkOperations(ctx, start.Add(-time.Millisecond), 10)); len(due) != 0 {
		t.Errorf("due before its start: %v", due)
	}
	due := must(s.DueBulkOperations(ctx, start, 10))
	if len(due) != 1 || due[0].Tenant != "a" || due[0].ID != b.ID || due[0].Position != 0 {
		t.Fatalf("due at its start: %+v", due)
	}
	next := start.Add(time.Minute)
	op := must(s.CreateBulkStep(ctx, "a", due[0].BulkOperation, next))
	if op.ID == "" || op.DeviceID != devs[0] || op.Status != store.OpPending || !op.HasCommand || op.Text != "read /3/0/0" ||
		op.Fragments[store.BulkOperationIDField] != b.ID || op.Fragments["description"] != "read the maker" {
		t.Errorf("first operation %+v", op)
	}
	stored := must(s.GetOperation(ctx, "a", op.ID))
	if stored.Fragments[store.BulkOperationIDField] != b.ID || stored.DeviceID != devs[0] {
		t.Errorf("stored operation %+v", stored)
	}
	if _, err := s.CreateBulkStep(ctx, "a", due[0].BulkOperation, next); !errors.Is(err, store.ErrConflict) {
		t.Errorf("a step from position 0 again: %v, want ErrConflict", err)
	}
	got := must(s.GetBulkOperation(ctx, "a", b.ID))
	if got.Status != store.BulkInProgress || got.Position != 1 || !got.NextAt.Equal(next) || got.Progress != (store.BulkProgress{Pending: 1}) {
		t.Errorf("after one step: %+v", got)
	}
	if due := must(s.DueBulkOperations(ctx, next.Add(-time.Millisecond), 10)); len(due) != 0 {
		t.Errorf("due before its next time: %v", due)
	}
	op2 := must(s.CreateBulkStep(ctx, "a", got, next))
	check(t, s.SetStatus(ctx, "a", op.ID, store.OpSuccessful, "ok", ""))
	check(t, s.SetStatus(ctx, "a", op2.ID, store.OpExecuting, "", ""))
	got = must(s.GetBulkOperation(ctx, "a", b.ID))
	if got.Progress != (store.BulkProgress{Executing: 1, Successful: 1}) {
		t.Errorf("progress %+v, want 1 executing and 1 successful", got.Progress)
	}
	if ids := must(s.BulkOperationIDs(ctx, "a", b.ID, store.OpExecuting, 10)); !slices.Equal(ids, []string{op2.ID}) {
		t.Errorf("executing operations %v, want [%s]", ids, op2.ID)
	}
	op3 := must(s.CreateBulkStep(ctx, "a", got, next))
	if op3.DeviceID != devs[2] {
		t.Errorf("third operation for %s, want %s", op3.DeviceID, devs[2])
	}
	got = must(s.GetBulkOperation(ctx, "a", b.ID))
	if got.Running() || got.StatusNow() != store.BulkInProgress {
		t.Errorf("with operations left: running %v, status %s", got.Running(), got.StatusNow())
	}
	if due := must(s.DueBulkOperations(ctx, next.Add(time.Hour), 10)); len(due) != 0 {
		t.Errorf("due with every device served: %v", due)
	}
	if _, err := s.CreateBulkStep(ctx, "a", got, next); !errors.Is(err, store.ErrConflict) {
		t.Errorf("a step past the last device: %v, want ErrConflict", err)
	}
	check(t, s.SetStatus(ctx, "a", op2.ID, store.OpFailed, "", "no"))
	check(t, s.SetStatus(ctx, "a", op3.ID, store.OpSuccessful, "ok", ""))
	got = must(s.GetBulkOperation(ctx, "a", b.ID))
	if got.StatusNow() != store.BulkCompleted || got.Progress != (store.BulkProgress{Successful: 2, Failed: 1}) {
		t.Errorf("all ended: status %s, progress %+v", got.StatusNow(), got.Progress)
	}
}

func testBulkDeletedDevice(t *testing.T, s store.Engine) {
	devs := devices(s, "a", 2)
	b := newBulk(s, "a", devs, nowMilli(), 0)
	must(s.DeleteManagedObject(ctx, "a", devs[0]))
	op := must(s.CreateBulkStep(ctx, "a", b, nowMilli()))
	if op.ID != "" {
		t.Errorf("an operation for a deleted device: %+v", op)
	}
	got := must(s.GetBulkOperation(ctx, "a", b.ID))
	op = must(s.CreateBulkStep(ctx, "a", got, nowMilli()))
	if op.DeviceID != devs[1] {
		t.Errorf("second step for %q, want %s", op.DeviceID, devs[1])
	}
}

// A canceled bulk operation creates nothing more, and is not due.
func testBulkCancel(t *testing.T, s store.Engine) {
	devs := devices(s, "a", 3)
	b := newBulk(s, "a", devs, nowMilli(), 0)
	op := must(s.CreateBulkStep(ctx, "a", b, nowMilli()))
	got := must(s.SetBulkStatus(ctx, "a", b.ID, store.BulkCanceled))
	if got.Status != store.BulkCanceled || got.Progress.Pending != 1 {
		t.Errorf("canceled: %+v", got)
	}
	if _, err := s.CreateBulkStep(ctx, "a", must(s.GetBulkOperation(ctx, "a", b.ID)), nowMilli()); !errors.Is(err, store.ErrConflict) {
		t.Errorf("a step after the cancel: %v, want ErrConflict", err)
	}
	if due := must(s.DueBulkOperations(ctx, nowMilli().Add(time.Hour), 10)); len(due) != 0 {
		t.Errorf("a canceled bulk operation is due: %v", due)
	}
	if _, err := s.SetBulkStatus(ctx, "a", b.ID, store.BulkCanceled); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("canceled again: %v, want ErrInvalid", err)
	}
	if _, err := s.SetBulkStatus(ctx, "a", b.ID, store.BulkCompleted); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("set COMPLETED by hand: %v, want ErrInvalid", err)
	}
	if ids := must(s.BulkOperationIDs(ctx, "a", b.ID, store.OpPending, 10)); !slices.Equal(ids, []string{op.ID}) {
		t.Errorf("pending operations %v, want [%s]", ids, op.ID)
	}
	if got := must(s.SetBulkStatus(ctx, "a", b.ID, store.BulkDeleted)); got.Status != store.BulkDeleted {
		t.Errorf("deleted after the cancel: %s", got.Status)
	}
	if _, err := s.SetBulkStatus(ctx, "a", b.ID, store.BulkDeleted); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("deleted again: %v, want ErrInvalid", err)
	}
	if _, err := s.SetBulkStatus(ctx, "a", "999999", store.BulkCanceled); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("cancel of a missing one: %v, want ErrNotFound", err)
	}
}

// Claimers racing for the steps of one bulk operation (agents on one
// database) give every device exactly one operation.
func testBulkConcurrentClaimers(t *testing.T, s store.Engine) {
	const n, claimers = 12, 6
	devs := devices(s, "a", n)
	b := newBulk(s, "a", devs, nowMilli(), 0)
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		ops []store.Operation
	)
	deadline := time.Now().Add(30 * time.Second)
	for range claimers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				cur, err := s.GetBulkOperation(ctx, "a", b.ID)
				if err != nil {
					t.Error(err)
					return
				}
				if !cur.Running() {
					return
				}
				op, err := s.CreateBulkStep(ctx, "a", cur, nowMilli())
				if errors.Is(err, store.ErrConflict) {
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				ops = append(ops, op)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	var got []string
	for _, op := range ops {
		got = append(got, op.DeviceID)
	}
	slices.Sort(got)
	want := slices.Clone(devs)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("claimed devices %v, want each of %v once", got, want)
	}
	all, _, err := s.ListOperations(ctx, "a", store.OperationFilter{Page: store.Page{Size: 100}})
	check(t, err)
	if len(all) != n {
		t.Errorf("%d operations stored, want %d", len(all), n)
	}
	if p := must(s.GetBulkOperation(ctx, "a", b.ID)).Progress; p.Pending != n {
		t.Errorf("progress %+v, want %d pending", p, n)
	}
}
