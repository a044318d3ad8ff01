package lwm2m

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/testbound"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

var errStoreDown = errors.New("store down")

// changes returns the kinds of the Persist calls so far.
func (h *recorder) changes() []Change {
	var out []Change
	for _, p := range h.persistCalls() {
		out = append(out, p.change)
	}
	return out
}

func (h *recorder) setPersist(err error, gate chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.persistErr, h.persistGate = err, gate
}

// A Register takes effect and is answered only once Persist returned:
// while Persist waits, the endpoint has no registration and the device no
// answer.
func TestRegisterAnsweredAfterPersist(t *testing.T) {
	s, h := startServer(t, Config{})
	gate := make(chan struct{})
	h.setPersist(nil, gate)
	d := newDevice(t, s.Addr())
	answered := make(chan result, 1)
	go func() {
		res, err := d.do(codes.POST, "/rd", []string{"ep=slow", "lt=300"}, message.AppLinkFormat, []byte(testLinks))
		if err != nil {
			t.Error(err)
		}
		answered <- res
	}()
	testbound.Until(t, 2*time.Second, "the Register's Persist", func() bool { return len(h.persistCalls()) == 1 })
	select {
	case res := <-answered:
		t.Fatalf("answered %v before Persist returned", res.code)
	case <-time.After(100 * time.Millisecond):
	}
	if _, ok := s.Registration("slow"); ok {
		t.Fatal("registered before Persist returned")
	}
	h.none(t, "registered", 10*time.Millisecond)
	close(gate)
	res := <-answered
	if res.code != codes.Created {
		t.Fatalf("register answered %v", res.code)
	}
	reg, ok := s.Registration("slow")
	if !ok {
		t.Fatal("not registered after Persist returned")
	}
	p := h.persistCalls()[0]
	if p.change != ChangeRegister || p.reg.ID != reg.ID || p.reg.Lifetime != 300*time.Second || len(p.reg.Objects) != len(reg.Objects) {
		t.Errorf("persisted %v %+v, want the registration made %+v", p.change, p.reg, reg)
	}
	h.wait(t, "registered", 2*time.Second)
}

// A Register whose state is not stored is answered 5.03 with Max-Age and
// makes no registration; one that replaced a live registration leaves it
// live.
func TestRegisterUnstored(t *testing.T) {
	s, h := startServer(t, Config{})
	d := newDevice(t, s.Addr())
	h.setPersist(errStoreDown, nil)
	res, _ := d.register([]string{"ep=dev", "lt=300"}, testLinks)
	if res.code != codes.ServiceUnavailable || res.maxAge < uint32(unstoredRetry/time.Second) || res.maxAge > uint32(2*unstoredRetry/time.Second) {
		t.Fatalf("register answered %v with Max-Age %d, want 5.03 with Max-Age between %v and twice that", res.code, res.maxAge, unstoredRetry)
	}
	if _, ok := s.Registration("dev"); ok {
		t.Fatal("a registration was made")
	}
	if st := s.Stats(); st.Registrations != 0 || st.Registers != 0 || st.Unstored != 1 || st.Rejected != 1 {
		t.Fatalf("stats %+v", st)
	}
	h.none(t, "registered", 100*time.Millisecond)

	h.setPersist(nil, nil)
	res, id := d.register([]string{"ep=dev", "lt=300"}, testLinks)
	if res.code != codes.Created {
		t.Fatalf("register after the store came back answered %v", res.code)
	}
	h.wait(t, "registered", 2*time.Second)
	h.setPersist(errStoreDown, nil)
	if res, _ := d.register([]string{"ep=dev", "lt=60"}, testLinks); res.code != codes.ServiceUnavailable {
		t.Fatalf("second register answered %v", res.code)
	}
	if reg, ok := s.Registration("dev"); !ok || reg.ID != id || reg.Lifetime != 300*time.Second {
		t.Fatalf("after a refused Register: %+v (%v), want registration %s as it was", reg, ok, id)
	}
	h.setPersist(nil, nil)
	if res, err := d.do(codes.POST, "/rd/"+id, nil, 0, nil); err != nil || res.code != codes.Changed {
		t.Fatalf("update of the registration kept: %v %v", res.code, err)
	}
}

// An Update is persisted as ChangeUpdate when it changes the registration
// and as ChangeRefresh when it only says the device is there; one whose
// state is not stored is answered 5.03 and changes nothing. De-register
// and expiry are persisted before their hooks.
func TestUpdatePersisted(t *testing.T) {
	s, h, d := registered(t, Config{ExpiryGrace: -1}, "dev")
	reg, _ := s.Registration("dev")
	update := func(queries []string, links string) result {
		t.Helper()
		var payload []byte
		if links != "" {
			payload = []byte(links)
		}
		res, err := d.do(codes.POST, "/rd/"+reg.ID, queries, message.AppLinkFormat, payload)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := update(nil, ""); res.code != codes.Changed {
		t.Fatalf("update answered %v", res.code)
	}
	if res := update([]string{"lt=600"}, ""); res.code != codes.Changed {
		t.Fatalf("update answered %v", res.code)
	}
	if res := update(nil, "</3/0>,</5/0>"); res.code != codes.Changed {
		t.Fatalf("update answered %v", res.code)
	}
	want := []Change{ChangeRegister, ChangeRefresh, ChangeUpdate, ChangeUpdate}
	if got := h.changes(); !slices.Equal(got, want) {
		t.Fatalf("persisted %v, want %v", got, want)
	}
	if p := h.persistCalls()[2]; p.reg.Lifetime != 600*time.Second {
		t.Errorf("the Update persisted lifetime %v, want the new 600s", p.reg.Lifetime)
	}

	h.setPersist(errStoreDown, nil)
	if res := update([]string{"lt=1"}, ""); res.code != codes.ServiceUnavailable || res.maxAge == 0 {
		t.Fatalf("update with the store down answered %v, Max-Age %d", res.code, res.maxAge)
	}
	if now, _ := s.Registration("dev"); now.Lifetime != 600*time.Second || len(now.Objects) != 2 {
		t.Fatalf("a refused Update changed the registration: %+v", now)
	}
	h.setPersist(nil, nil)

	if res, err := d.do(codes.DELETE, "/rd/"+reg.ID, nil, 0, nil); err != nil || res.code != codes.Deleted {
		t.Fatalf("de-register: %v %v", res.code, err)
	}
	h.wait(t, "deregistered", 2*time.Second)
	if got := h.changes(); got[len(got)-1] != ChangeDeregister {
		t.Fatalf("persisted %v, want a de-registration last", got)
	}

	if res, _ := d.register([]string{"ep=brief", "lt=1"}, testLinks); res.code != codes.Created {
		t.Fatalf("register answered %v", res.code)
	}
	h.wait(t, "expired", 3*time.Second)
	if got := h.changes(); got[len(got)-1] != ChangeExpire || h.persistCalls()[len(got)-1].reg.Endpoint != "brief" {
		t.Fatalf("persisted %v, want the expiry of brief last", got)
	}
}

// updateUnderWay registers dev with a lifetime of 1 s, then sends an
// Update to a lifetime of 60 s whose Persist waits until the registration
// is past its lifetime, then returns persistErr; answered has the Update's
// answer.
func updateUnderWay(t *testing.T, persistErr error) (s *Server, h *recorder, answered <-chan result) {
	s, h, d := registered(t, Config{ExpiryGrace: -1}, "dev")
	reg, _ := s.Registration("dev")
	if res, err := d.do(codes.POST, "/rd/"+reg.ID, []string{"lt=1"}, 0, nil); err != nil || res.code != codes.Changed {
		t.Fatalf("update: %v %v", res.code, err)
	}
	gate := make(chan struct{})
	h.setPersist(persistErr, gate)
	ans := make(chan result, 1)
	go func() {
		res, err := d.do(codes.POST, "/rd/"+reg.ID, []string{"lt=60"}, 0, nil)
		if err != nil {
			t.Error(err)
		}
		ans <- res
	}()
	time.Sleep(1500 * time.Millisecond) // past the lifetime
	h.none(t, "expired", 10*time.Millisecond)
	close(gate)
	return s, h, ans
}

// A registration that falls due while an Update of it waits for Persist
// is not expired under it: the Update, once stored, renews it.
func TestExpiryWaitsForUpdateUnderWay(t *testing.T) {
	s, h, answered := updateUnderWay(t, nil)
	if res := <-answered; res.code != codes.Changed {
		t.Fatalf("update answered %v", res.code)
	}
	h.none(t, "expired", 500*time.Millisecond)
	if now, ok := s.Registration("dev"); !ok || now.Lifetime != time.Minute {
		t.Fatalf("registration %+v (%v), want it live with the new lifetime", now, ok)
	}
}

// An Update refused because its state was not stored leaves a
// registration that fell due meanwhile to expire.
func TestExpiryAfterUnstoredUpdate(t *testing.T) {
	s, h, answered := updateUnderWay(t, errStoreDown)
	if res := <-answered; res.code != codes.ServiceUnavailable {
		t.Fatalf("update answered %v", res.code)
	}
	h.wait(t, "expired", 2*time.Second)
	if _, ok := s.Registration("dev"); ok {
		t.Fatal("still registered")
	}
}
