package mongo_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/ferrettest"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/mongo"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/storetest"
)

var ctx = context.Background()

// must unwraps a result in test setup; a failure panics, failing the test
// with the stack of the call.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func check(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func temp(src string, at time.Time, v float64) store.Measurement {
	return store.Measurement{Source: src, Type: "c8y_Temperature", Time: at,
		Fragments: map[string]any{"c8y_Temperature": map[string]any{"T": store.SeriesValue(v, "C")}}}
}

func value(m store.Measurement) float64 {
	return m.Fragments["c8y_Temperature"].(map[string]any)["T"].(map[string]any)["value"].(float64)
}

// Operations and their queues survive a clean restart of the embedded
// store; what survives a killed process is the crash test's concern.
func TestOperationsSurviveRestart(t *testing.T) {
	uri := ferrettest.Start(t)
	s, err := mongo.Open(ctx, mongo.Config{URI: uri, SoleWriter: true})
	check(t, err)
	dev := must(s.CreateDevice(ctx, "a", "ep"))
	ops := must(s.CreateOperations(ctx, "a", []store.Operation{
		{DeviceID: dev, HasCommand: true, Text: "read /3/0"},
		{DeviceID: dev, HasCommand: true, Text: "read /3/0/1"},
	}))
	check(t, s.SetStatus(ctx, "a", ops[0].ID, store.OpExecuting, "", ""))
	check(t, s.Close(ctx))
	s, err = mongo.Open(ctx, mongo.Config{URI: uri, SoleWriter: true})
	check(t, err)
	defer s.Close(ctx)
	if p := must(s.Pending(ctx, "a", dev, 0)); len(p) != 1 || p[0].ID != ops[1].ID {
		t.Fatalf("pending after restart: %+v", p)
	}
	if got := must(s.GetOperation(ctx, "a", ops[0].ID)); got.Status != store.OpExecuting {
		t.Fatalf("executing operation after restart: %+v", got)
	}
}

// A pool of its own shares the store's data and caches, and closing it
// leaves the store working.
func TestPool(t *testing.T) {
	s := storetest.OpenMongo(t)
	p, err := s.Pool(2)
	if err != nil {
		t.Fatal(err)
	}
	mo := must(p.CreateManagedObject(ctx, "t1", store.ManagedObject{Name: "through the pool", Type: "x"}))
	got, err := s.GetManagedObject(ctx, "t1", mo.ID)
	if err != nil || got.Name != "through the pool" {
		t.Fatalf("read through the store: %+v %v", got, err)
	}
	// IDs come from one allocator: none given twice
	other := must(s.CreateManagedObject(ctx, "t1", store.ManagedObject{Name: "direct", Type: "x"}))
	if other.ID == mo.ID {
		t.Fatalf("both got id %s", mo.ID)
	}
	check(t, p.Close(ctx))
	if _, err := s.GetManagedObject(ctx, "t1", other.ID); err != nil {
		t.Fatalf("store after the pool closed: %v", err)
	}
}

// Every refused login costs one bcrypt comparison, whether the tenant,
// the user or only the password is wrong, so that answer times do not
// tell which tenants and users exist; a cached valid login costs none.
func TestLoginComparesEvenForUnknownUsers(t *testing.T) {
	s := storetest.OpenMongo(t)
	must(s.CreateTenant(ctx, "acme", "boss", "Boss-pass-1234!"))
	for _, tc := range []struct {
		name, tenant, user, pass string
		checks                   int64
		ok                       bool
	}{
		{"unknown tenant", "nobody", "boss", "Boss-pass-1234!", 1, false},
		{"unknown user", "acme", "nobody", "Boss-pass-1234!", 1, false},
		{"wrong password", "acme", "boss", "Wrong-pass-1234!", 1, false},
		{"right password", "acme", "boss", "Boss-pass-1234!", 1, true},
		{"right password again, cached", "acme", "boss", "Boss-pass-1234!", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := mongo.PasswordChecks()
			err := s.Authenticate(ctx, tc.tenant, tc.user, tc.pass)
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, store.ErrUnauthorized)) {
				t.Errorf("Authenticate: %v, want ok %v", err, tc.ok)
			}
			if n := mongo.PasswordChecks() - before; n != tc.checks {
				t.Errorf("%d bcrypt comparisons, want %d", n, tc.checks)
			}
		})
	}
}
