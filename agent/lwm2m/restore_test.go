package lwm2m

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// runServer serves s until the returned stop is called (or the test
// ends).
func runServer(t *testing.T, s *Server) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	select {
	case <-s.Serving():
	case <-time.After(2 * time.Second):
		t.Fatal("server did not start serving")
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("serve did not return after cancel")
		}
	}
	t.Cleanup(stop)
	return stop
}

func newTestServer(t *testing.T, addr string) (*Server, *recorder) {
	t.Helper()
	h := newRecorder()
	s, err := NewServer(Config{Addr: addr, Types: testTypes}, h)
	if err != nil {
		t.Fatalf("new server: %v", err)
	}
	return s, h
}

// A registration restored into a new server on the same port is live:
// the device's Update is 2.04 and requests reach it at its address, with
// no new Register.
func TestRestoreAfterRestart(t *testing.T) {
	first, h1 := newTestServer(t, "127.0.0.1:0")
	stopFirst := runServer(t, first)
	addr := first.Addr().String()
	d := newDevice(t, first.Addr())
	res, id := d.register([]string{"ep=restored", "lt=300", "lwm2m=1.1", "b=U"}, testLinks)
	if res.code != codes.Created {
		t.Fatalf("register: %v", res.code)
	}
	reg := h1.wait(t, "registered", 2*time.Second).reg
	stopFirst()

	second, h2 := newTestServer(t, addr)
	if err := second.Restore(reg); err != nil {
		t.Fatalf("restore: %v", err)
	}
	runServer(t, second)

	got, ok := second.Registration("restored")
	if !ok || got.ID != id || !got.Restored || got.Tenant != "t1" || got.DeviceID != "dev-restored" || len(got.Objects) != len(reg.Objects) {
		t.Fatalf("restored registration %+v, %v", got, ok)
	}
	// a request reaches the device at its stored address
	recs, err := second.Read(context.Background(), "restored", node.ResourcePath(3, 0, 0))
	if err != nil || len(recs) != 1 || recs[0].Value.Str != "Open Mobile Alliance" {
		t.Fatalf("read after restore: %v %v", recs, err)
	}
	// its Update to the old location is answered 2.04
	for i, wantRestored := range []bool{true, false} {
		up, err := d.do(codes.POST, "/rd/"+id, nil, 0, nil)
		if err != nil || up.code != codes.Changed {
			t.Fatalf("update %d after restore: %v %v, want 2.04", i, up.code, err)
		}
		if e := h2.wait(t, "updated", 2*time.Second); e.reg.Restored != wantRestored {
			t.Fatalf("update %d: Restored %v, want %v", i, e.reg.Restored, wantRestored)
		}
	}
	h2.none(t, "registered", 200*time.Millisecond)
}

// Serving is closed once Serve answers, not before: a request to a
// restored registration made as soon as it is closed reaches the device.
func TestServingBeforeRequests(t *testing.T) {
	for i := range 20 { // the race it closes was a matter of microseconds
		first, h1 := newTestServer(t, "127.0.0.1:0")
		stopFirst := runServer(t, first)
		addr := first.Addr().String()
		d := newDevice(t, first.Addr())
		ep := fmt.Sprintf("serving-%d", i)
		if res, _ := d.register([]string{"ep=" + ep, "lt=300", "lwm2m=1.1", "b=U"}, testLinks); res.code != codes.Created {
			t.Fatalf("register: %v", res.code)
		}
		reg := h1.wait(t, "registered", 2*time.Second).reg
		stopFirst()

		second, _ := newTestServer(t, addr)
		if err := second.Restore(reg); err != nil {
			t.Fatalf("restore: %v", err)
		}
		select {
		case <-second.Serving():
			t.Fatal("Serving closed before Serve")
		default:
		}
		stop := runServer(t, second) // returns once Serving is closed
		if _, err := second.Read(context.Background(), ep, node.ResourcePath(3, 0, 0)); err != nil {
			t.Fatalf("read as soon as the server serves: %v", err)
		}
		stop()
	}
}

// A registration whose lifetime ran out while the agent was down expires
// at once, through the hooks, and its Update is 4.04.
func TestRestoreExpired(t *testing.T) {
	s, h := newTestServer(t, "127.0.0.1:0")
	old := time.Now().Add(-10 * time.Minute)
	reg := Registration{ID: "a1", Endpoint: "gone", Tenant: "t1", DeviceID: "dev-gone", Lifetime: 60 * time.Second,
		Address: "127.0.0.1:9", RegisteredAt: old, UpdatedAt: old}
	if err := s.Restore(reg); err != nil {
		t.Fatalf("restore: %v", err)
	}
	runServer(t, s)
	if e := h.wait(t, "expired", 2*time.Second); e.reg.ID != "a1" || e.reg.Endpoint != "gone" {
		t.Fatalf("expired %+v", e.reg)
	}
	if _, ok := s.Registration("gone"); ok {
		t.Fatal("the expired registration is still live")
	}
	d := newDevice(t, s.Addr())
	if up, err := d.do(codes.POST, "/rd/a1", nil, 0, nil); err != nil || up.code != codes.NotFound {
		t.Fatalf("update of the expired registration: %v %v, want 4.04", up.code, err)
	}
}

// A restored DTLS registration has no session: requests wait for the
// device's next handshake.
func TestRestoreSecureWaitsForSession(t *testing.T) {
	s, _ := newTestServer(t, "127.0.0.1:0")
	reg := Registration{ID: "s1", Endpoint: "secure", Tenant: "t1", DeviceID: "dev-secure", Lifetime: time.Hour,
		Address: "127.0.0.1:9", Secure: true, PSKIdentity: "secure-id", UpdatedAt: time.Now()}
	if err := s.Restore(reg); err != nil {
		t.Fatalf("restore: %v", err)
	}
	runServer(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := s.Read(ctx, "secure", node.ResourcePath(3, 0, 0)); !errors.Is(err, ErrNoSession) {
		t.Fatalf("read of a restored DTLS registration: %v, want ErrNoSession", err)
	}
}

func TestRestoreRefusals(t *testing.T) {
	s, _ := newTestServer(t, "127.0.0.1:0")
	s.cfg.MaxRegistrations = 2
	good := func(id, ep string) Registration {
		return Registration{ID: id, Endpoint: ep, Tenant: "t1", DeviceID: "dev-" + ep, Lifetime: time.Hour,
			Address: "127.0.0.1:9", UpdatedAt: time.Now()}
	}
	if err := s.Restore(good("r1", "one")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		reg  Registration
		want error // nil: any error
	}{
		{"no id", func() Registration { r := good("", "x"); return r }(), nil},
		{"no device", func() Registration { r := good("r2", "x"); r.DeviceID = ""; return r }(), nil},
		{"no lifetime", func() Registration { r := good("r2", "x"); r.Lifetime = 0; return r }(), nil},
		{"plain without address", func() Registration { r := good("r2", "x"); r.Address = ""; return r }(), nil},
		{"unparsable address", func() Registration { r := good("r2", "x"); r.Address = "nowhere"; return r }(), nil},
		{"secure without identity", func() Registration { r := good("r2", "x"); r.Secure = true; return r }(), nil},
		{"same endpoint", good("r2", "one"), ErrRegistered},
		{"same id", good("r1", "two"), ErrRegistered},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Restore(tc.reg)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("Restore: %v, want %v", err, tc.want)
			}
		})
	}
	if err := s.Restore(good("r2", "two")); err != nil {
		t.Fatal(err)
	}
	if err := s.Restore(good("r3", "three")); !errors.Is(err, ErrFull) {
		t.Fatalf("restore beyond MaxRegistrations: %v, want ErrFull", err)
	}
	if n := len(s.Registrations()); n != 2 {
		t.Fatalf("%d registrations live, want 2", n)
	}
}
