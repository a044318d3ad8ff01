package storetest

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

var replicaCases = []suiteCase{
	{"PendingSince", testPendingSince},
	{"RegistrationByID", testRegistrationByID},
	{"Lease", testLease},
	{"ConcurrentLease", testConcurrentLease},
	{"ConcurrentSend", testConcurrentSend},
}

// holdRegistration writes the lwm2m fragment of a live registration id
// held by replica, as the session layer does.
func holdRegistration(t *testing.T, s store.Engine, tenant, dev, endpoint, id, replica string) {
	t.Helper()
	check(t, s.UpdateFragments(ctx, tenant, dev, map[string]any{"lwm2m": map[string]any{
		"endpoint": endpoint, "registrationId": id, store.ReplicaField: replica, "lifetime": int64(60),
		"lastUpdate": time.Now().UTC().Truncate(time.Millisecond),
	}}))
}

// PendingSince: PENDING operations from a time on, oldest first, each
// with the replica of its device's live registration; not those created
// before, not those no longer PENDING.
func testPendingSince(t *testing.T, s store.Engine) {
	held := device(s, "a", "held")
	ended := device(s, "b", "ended")
	holdRegistration(t, s, "a", held, "ep-held", "reg1", "replica-1")
	holdRegistration(t, s, "b", ended, "ep-ended", "", "replica-2")
	old := must(s.CreateOperation(ctx, "a", store.Operation{DeviceID: held, HasCommand: true, Text: "read /3/0"}))
	// creation times are kept to the millisecond
	since := old.CreationTime.Add(time.Millisecond)
	for !time.Now().After(since) {
		time.Sleep(time.Millisecond)
	}
	ops := must(s.CreateOperations(ctx, "a", commands(held, 3)))
	other := must(s.CreateOperation(ctx, "b", store.Operation{DeviceID: ended, HasCommand: true, Text: "read /3/0"}))
	check(t, s.SetStatus(ctx, "a", ops[1].ID, store.OpExecuting, "", ""))

	got := must(s.PendingSince(ctx, since, 0))
	var ids, replicas []string
	for _, p := range got {
		ids = append(ids, p.Tenant+"/"+p.ID)
		replicas = append(replicas, p.Replica)
		if p.CreationTime.Before(since) {
			t.Errorf("operation %s created %v, before %v", p.ID, p.CreationTime, since)
		}
	}
	want := []string{"a/" + ops[0].ID, "a/" + ops[2].ID, "b/" + other.ID}
	if !slices.Equal(ids, want) {
		t.Fatalf("PendingSince = %v, want %v", ids, want)
	}
	if want := []string{"replica-1", "replica-1", ""}; !slices.Equal(replicas, want) {
		t.Errorf("replicas %v, want %v (an ended registration names none)", replicas, want)
	}
	if got := must(s.PendingSince(ctx, since, 1)); len(got) != 1 || got[0].ID != ops[0].ID {
		t.Errorf("PendingSince limit 1 = %+v", got)
	}
	if got := must(s.PendingSince(ctx, time.Now().Add(time.Hour), 0)); len(got) != 0 {
		t.Errorf("PendingSince the future = %+v", got)
	}
}

// RegistrationByID finds a live registration across tenants, with its
// device's record; an ended one or an unknown id is ErrNotFound.
func testRegistrationByID(t *testing.T, s store.Engine) {
	dev := must(s.CreateDevice(ctx, "acme", "ep-live"))
	holdRegistration(t, s, "acme", dev, "ep-live", "r-live", "replica-1")
	gone := device(s, "acme", "gone")
	holdRegistration(t, s, "acme", gone, "ep-gone", "", "replica-1")
	l, err := s.RegistrationByID(ctx, "r-live")
	if err != nil {
		t.Fatal(err)
	}
	if l.Tenant != "acme" || l.DeviceID != dev || l.Fragment["endpoint"] != "ep-live" || l.Fragment[store.ReplicaField] != "replica-1" {
		t.Errorf("RegistrationByID = %+v", l)
	}
	if l.Record == nil {
		t.Errorf("RegistrationByID of a device with a record: no record")
	}
	for _, id := range []string{"", "r-none"} {
		if _, err := s.RegistrationByID(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("RegistrationByID(%q) = %v, want ErrNotFound", id, err)
		}
	}
}

// A lease is its holder's until it expires: renewed by its holder,
// refused to another, taken by another once expired or released.
func testLease(t *testing.T, s store.Engine) {
	now := time.Now().UTC().Truncate(time.Millisecond)
	const ttl = 10 * time.Second
	acquire := func(holder string, at time.Time, want bool) {
		t.Helper()
		got, err := s.AcquireLease(ctx, "watchdog", holder, at, ttl)
		if err != nil || got != want {
			t.Fatalf("AcquireLease(%s, +%v) = %v, %v; want %v", holder, at.Sub(now), got, err, want)
		}
	}
	acquire("a", now, true)
	acquire("b", now.Add(time.Second), false)
	acquire("a", now.Add(5*time.Second), true) // renewed until +15 s
	acquire("b", now.Add(12*time.Second), false)
	acquire("b", now.Add(15*time.Second), true)
	acquire("a", now.Add(16*time.Second), false)
	check(t, s.ReleaseLease(ctx, "watchdog", "a")) // not a's: left
	acquire("a", now.Add(17*time.Second), false)
	check(t, s.ReleaseLease(ctx, "watchdog", "b"))
	acquire("a", now.Add(17*time.Second), true)
	if got, err := s.AcquireLease(ctx, "other", "b", now, ttl); err != nil || !got {
		t.Errorf("a second lease: %v, %v", got, err)
	}
}

// Of replicas taking a free lease at once, one gets it.
func testConcurrentLease(t *testing.T, s store.Engine) {
	const callers = 8
	now := time.Now().UTC()
	got := make([]bool, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range callers {
		wg.Go(func() {
			<-start
			got[i], errs[i] = s.AcquireLease(ctx, "race", string(rune('a'+i)), now, time.Minute)
		})
	}
	close(start)
	wg.Wait()
	n := 0
	for i := range callers {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if got[i] {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d callers got the lease, want 1", n)
	}
}

// Of replicas moving one PENDING operation to EXECUTING at once (to send
// it), one does; the others are ErrConflict.
func testConcurrentSend(t *testing.T, s store.Engine) {
	dev := device(s, "a", "ep")
	for range 3 {
		op := must(s.CreateOperation(ctx, "a", store.Operation{DeviceID: dev, HasCommand: true, Text: "execute /3/0/4"}))
		RaceSend(t, []store.Engine{s}, "a", op, 8)
	}
}

// RaceSend moves op, read PENDING, to EXECUTING from callers goroutines
// spread over stores (replicas of one database) at once, and fails t
// unless exactly one succeeds and the others are ErrConflict.
func RaceSend(t *testing.T, stores []store.Engine, tenant string, op store.Operation, callers int) {
	t.Helper()
	errs := make([]error, callers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range callers {
		wg.Go(func() {
			<-start
			errs[i] = stores[i%len(stores)].Transition(ctx, tenant, op, store.OpExecuting, "", "")
		})
	}
	close(start)
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, store.ErrConflict):
			t.Fatalf("caller %d: %v, want ErrConflict", i, err)
		}
	}
	if won != 1 {
		t.Fatalf("operation %s sent by %d callers, want 1", op.ID, won)
	}
	got := must(stores[0].GetOperation(ctx, tenant, op.ID))
	if got.Status != store.OpExecuting || got.Attempts != 1 {
		t.Fatalf("operation after the race: %+v, want EXECUTING after one attempt", got)
	}
	check(t, stores[0].Transition(ctx, tenant, got, store.OpSuccessful, "done", ""))
}
