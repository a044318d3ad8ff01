package sqlite

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// newDevice makes an object of the tenant for operations to name.
func newDevice(t testing.TB, s *Store, tenant string) string {
	t.Helper()
	mo, err := s.CreateManagedObject(context.Background(), tenant, store.ManagedObject{Name: "dev", Type: store.DeviceType})
	if err != nil {
		t.Fatal(err)
	}
	return mo.ID
}

// manyDevices makes n objects of the tenant for operations to name, as
// CreateManagedObject stores them but in one change: a change each
// would take a commit each.
func manyDevices(t testing.TB, s *Store, tenant string, n int) []string {
	t.Helper()
	ids := make([]string, n)
	err := s.db.Write(context.Background(), func(tx *Tx) error {
		for i := range ids {
			seq, err := nextID(tx)
			if err != nil {
				return err
			}
			ids[i] = strconv.FormatInt(seq, 10)
			if _, err := tx.Exec(`INSERT INTO managed_objects (tenant, id, seq, name, type, creation_time, last_updated, fragments)
				VALUES (?, ?, ?, 'dev', ?, 0, 0, '{}')`, tenant, ids[i], seq, store.DeviceType); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func command(dev, text string) store.Operation {
	return store.Operation{DeviceID: dev, HasCommand: true, Text: text}
}

// storeWithOperation is a new store with one PENDING operation of
// tenant acme, for the device created just before it.
func storeWithOperation(t *testing.T) (*Store, store.Operation) {
	t.Helper()
	s := newStore(t)
	op, err := s.CreateOperation(context.Background(), "acme", command(newDevice(t, s, "acme"), "read /3/0"))
	if err != nil {
		t.Fatal(err)
	}
	return s, op
}

// Every query of the operations reads the index meant for it, sorts
// only where said, and none reads the whole table or an index of all
// operations where a partial one holds the rows asked for: a plan that
// changed with a reworded query would slow the agent down as its
// history grows, with no test failing otherwise. The queries are the
// engine's own texts, with their arguments.
func TestOperationQueryPlans(t *testing.T) {
	s := newStore(t)
	list := func(f store.OperationFilter) (string, []any) {
		where, args := opFilter("acme", f)
		return "SELECT " + opColumns + " FROM operations WHERE " + where + " ORDER BY seq LIMIT 5 OFFSET 0", args
	}
	count := func(f store.OperationFilter) (string, []any) {
		where, args := opFilter("acme", f)
		return "SELECT count(*) FROM operations WHERE " + where, args
	}
	fixed := func(query string, args ...any) func(store.OperationFilter) (string, []any) {
		return func(store.OperationFilter) (string, []any) { return query, args }
	}
	const (
		active  = "SEARCH operations USING INDEX operations_active (tenant=? AND device=? AND status=?)"
		covered = "SEARCH operations USING COVERING INDEX operations_active (tenant=? AND device=? AND status=?)"
		device  = "SEARCH operations USING INDEX operations_device (tenant=? AND device=?)"
	)
	tests := []struct {
		name  string
		query func(store.OperationFilter) (string, []any)
		f     store.OperationFilter
		want  []string // steps of the plan
		sorts bool     // sorting what the index gives is meant
	}{
		{"pending", fixed(sqlPending, "acme", "1", 5), store.OperationFilter{}, []string{active}, false},
		{"pending count", fixed(sqlPendingCount, "acme", "1"), store.OperationFilter{}, []string{covered}, false},
		// The head of one device's queue and its EXECUTING ones.
		{"queue", fixed(sqlQueueOf, "acme", "1", 5), store.OperationFilter{}, []string{covered, active}, true},
		{"queued devices", fixed(sqlQueuedFirst, 10), store.OperationFilter{},
			[]string{"SCAN operations USING COVERING INDEX operations_active"}, false},
		{"queued devices after", fixed(sqlQueuedAfter, "acme", "1", 10), store.OperationFilter{},
			[]string{"SEARCH operations USING COVERING INDEX operations_active ((tenant,device)>(?,?))"}, false},
		// The few EXECUTING, into creation order.
		{"executing", fixed(sqlExecuting, 10), store.OperationFilter{},
			[]string{"SCAN operations USING INDEX operations_executing"}, true},
		{"executing before", fixed(sqlExecutingBefore, 0, 10), store.OperationFilter{},
			[]string{"SEARCH operations USING INDEX operations_executing (last_updated<?)"}, false},
		{"recent", fixed(sqlRecent, "acme", "1", 10), store.OperationFilter{}, []string{device}, false},
		{"list", list, store.OperationFilter{}, []string{"SEARCH operations USING INDEX operations_tenant (tenant=?)"}, false},
		{"list of device", list, store.OperationFilter{DeviceID: "1"}, []string{device}, false},
		{"list in status", list, store.OperationFilter{Status: store.OpSuccessful},
			[]string{"SEARCH operations USING INDEX operations_status (tenant=? AND status=?)"}, false},
		{"list of device pending", list, store.OperationFilter{DeviceID: "1", Status: store.OpPending}, []string{active}, false},
		{"list of device executing", list, store.OperationFilter{DeviceID: "1", Status: store.OpExecuting}, []string{active}, false},
		{"list of device ended", list, store.OperationFilter{DeviceID: "1", Status: store.OpFailed}, []string{device}, false},
		{"count", count, store.OperationFilter{},
			[]string{"SEARCH operations USING COVERING INDEX operations_tenant (tenant=?)"}, false},
		{"count in status", count, store.OperationFilter{Status: store.OpPending},
			[]string{"SEARCH operations USING COVERING INDEX operations_status (tenant=? AND status=?)"}, false},
		{"count of device pending", count, store.OperationFilter{DeviceID: "1", Status: store.OpPending}, []string{covered}, false},
		{"delete of device", fixed("DELETE FROM operations WHERE tenant = ? AND device = ?", "acme", "1"), store.OperationFilter{},
			[]string{device}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			query, args := tc.query(tc.f)
			plan := explain(t, s.db, query, args...)
			for _, step := range tc.want {
				if !strings.Contains(plan, step) {
					t.Errorf("plan\n%s\nlacks %q", plan, step)
				}
			}
			if sorts := strings.Contains(plan, "TEMP B-TREE"); sorts != tc.sorts {
				t.Errorf("plan\n%s\nsorts: %v, want %v", plan, sorts, tc.sorts)
			}
			for _, step := range strings.Split(plan, "\n") {
				if strings.TrimSpace(step) == "SCAN operations" {
					t.Errorf("plan\n%s\nreads the whole table", plan)
				}
			}
		})
	}
}

// Transition and Unsend change an operation only while it is in the
// status the caller read: an outcome the watchdog recorded meanwhile
// stays, and the runner learns it by ErrConflict.
func TestTransitionFromWhatWasRead(t *testing.T) {
	ctx := context.Background()
	s, op := storeWithOperation(t)
	if err := s.Transition(ctx, "acme", op, store.OpExecuting, "", ""); err != nil {
		t.Fatal(err)
	}
	executing := op
	executing.Status = store.OpExecuting
	if err := s.SetStatusFrom(ctx, "acme", op.ID, store.OpExecuting, store.OpFailed, "", "stuck"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		do   func() error
		want error
	}{
		{"late outcome", func() error { return s.Transition(ctx, "acme", executing, store.OpSuccessful, "late", "") }, store.ErrConflict},
		{"unsend", func() error { return s.Unsend(ctx, "acme", executing) }, store.ErrConflict},
		{"read as pending", func() error { return s.Transition(ctx, "acme", op, store.OpExecuting, "", "") }, store.ErrConflict},
		{"read as ended", func() error {
			ended := op
			ended.Status = store.OpFailed
			return s.Transition(ctx, "acme", ended, store.OpPending, "", "")
		}, store.ErrInvalid},
		{"status not read", func() error {
			unread := op
			unread.Status = ""
			return s.Transition(ctx, "acme", unread, store.OpPending, "", "")
		}, store.ErrInvalid},
		{"missing", func() error {
			missing := executing
			missing.ID = "999999"
			return s.Transition(ctx, "acme", missing, store.OpSuccessful, "", "")
		}, store.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.do(); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	got, err := s.GetOperation(ctx, "acme", op.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != store.OpFailed || got.FailureReason != "stuck" || got.Result != "" || got.Attempts != 1 {
		t.Fatalf("operation after the refused changes: %+v", got)
	}
}

// Only the decimal form of an operation's number is its id, as the
// MongoDB engine keys operations by the id's text.
func TestOperationIDForms(t *testing.T) {
	ctx := context.Background()
	s, op := storeWithOperation(t)
	// Ids are the sequence shared with managed objects.
	if d, _ := strconv.Atoi(op.DeviceID); op.ID != strconv.Itoa(d+1) {
		t.Fatalf("device %s, then operation %s", op.DeviceID, op.ID)
	}
	for _, id := range []string{"0" + op.ID, "+" + op.ID, op.ID + " ", "", "-1", "99999999999999999999"} {
		if _, err := s.GetOperation(ctx, "acme", id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetOperation(%q): %v, want ErrNotFound", id, err)
		}
		if err := s.SetStatus(ctx, "acme", id, store.OpFailed, "", ""); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("SetStatus(%q): %v, want ErrNotFound", id, err)
		}
		if err := s.SetOperationFragment(ctx, "acme", id, "p", 1); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("SetOperationFragment(%q): %v, want ErrNotFound", id, err)
		}
	}
}

// A batch naming a device that is not there stores nothing, neither the
// operations before it in the batch nor their ids' reservation.
func TestCreateOperationsAllOrNothing(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	dev := newDevice(t, s, "acme")
	_, err := s.CreateOperations(ctx, "acme", []store.Operation{command(dev, "read /3/0"), command("999", "read /3/0")})
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("batch with a missing device: %v, want ErrNotFound", err)
	}
	if n := intOf(t, s.db, "SELECT count(*) FROM operations"); n != 0 {
		t.Fatalf("%d operations stored", n)
	}
	op, err := s.CreateOperation(ctx, "acme", command(dev, "read /3/0"))
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := strconv.Atoi(dev); op.ID != strconv.Itoa(d+1) {
		t.Fatalf("device %s, then operation %s after the refused batch", dev, op.ID)
	}
}

// A batch of many operations for many devices is one change, with
// consecutive ids in the order given, each device's queue in that order.
func TestCreateOperationsBigBatch(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	devs := make([]string, 50)
	for i := range devs {
		devs[i] = newDevice(t, s, "acme")
	}
	const n = 5000
	ops := make([]store.Operation, n)
	for i := range ops {
		ops[i] = command(devs[i%len(devs)], fmt.Sprint("read /3/0/", i))
		ops[i].Fragments = map[string]any{"c8y_Note": map[string]any{"i": i}}
	}
	created, err := s.CreateOperations(ctx, "acme", ops)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := strconv.Atoi(created[0].ID)
	for i, op := range created {
		if op.ID != strconv.Itoa(first+i) || op.Text != ops[i].Text || op.Status != store.OpPending {
			t.Fatalf("operation %d created as %+v", i, op)
		}
		if note, _ := op.Fragments["c8y_Note"].(map[string]any); note["i"] != int64(i) {
			t.Fatalf("operation %d fragments %v", i, op.Fragments)
		}
	}
	pending, err := s.Pending(ctx, "acme", devs[7], 0)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := 7; i < n; i += len(devs) {
		want = append(want, created[i].ID)
	}
	var got []string
	for _, op := range pending {
		got = append(got, op.ID)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("queue of a device: %d operations, want %d in creation order", len(got), len(want))
	}
}

// QueuedDevices pages through the devices: more than a page of them are
// each named once, and fn may read the store while it runs.
func TestQueuedDevicesPages(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	var ops []store.Operation
	want := map[string]bool{}
	for i, dev := range manyDevices(t, s, "acme", queuedPage+7) {
		ops = append(ops, command(dev, "read /3/0"), command(dev, "read /3/0"))
		if i%100 != 0 {
			want[dev] = true
		}
	}
	created, err := s.CreateOperations(ctx, "acme", ops)
	if err != nil {
		t.Fatal(err)
	}
	// Every hundredth device has no PENDING operation left.
	for i := 0; i < len(created); i += 200 {
		for _, op := range created[i : i+2] {
			if err := s.SetStatus(ctx, "acme", op.ID, store.OpExecuting, "", ""); err != nil {
				t.Fatal(err)
			}
		}
	}
	seen := map[string]int{}
	err = s.QueuedDevices(ctx, func(tenant, dev string) error {
		if tenant != "acme" {
			t.Errorf("tenant %q", tenant)
		}
		seen[dev]++
		_, err := s.PendingCount(ctx, tenant, dev)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != len(want) {
		t.Fatalf("%d devices named, want %d", len(seen), len(want))
	}
	for dev, n := range seen {
		if !want[dev] || n != 1 {
			t.Fatalf("device %s named %d times (queued: %v)", dev, n, want[dev])
		}
	}
}
