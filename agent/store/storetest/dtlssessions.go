package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

var dtlsSessionCases = []suiteCase{
	{"RoundTrip", testSessionRoundTrip},
	{"Lookups", testSessionLookups},
	{"Replace", testSessionReplace},
	{"Reserve", testSessionReserve},
	{"ReserveConcurrent", testSessionReserveConcurrent},
	{"Touch", testSessionTouch},
	{"DeleteScoped", testSessionDeleteScoped},
	{"Invalid", testSessionInvalid},
}

func session(identity, tenant, id string, cid []byte, addr string) store.DTLSSession {
	return store.DTLSSession{Identity: identity, Tenant: tenant, ID: id, LocalCID: cid, PeerCID: []byte{9, 9},
		Addr: addr, State: []byte("sealed-" + id), SeqBound: 1024, PeerSeq: 7, LastActive: ms(time.Now())}
}

func sameSession(t *testing.T, got, want store.DTLSSession) {
	t.Helper()
	if got.Identity != want.Identity || got.Tenant != want.Tenant || got.ID != want.ID || !bytes.Equal(got.LocalCID, want.LocalCID) ||
		!bytes.Equal(got.PeerCID, want.PeerCID) || got.Addr != want.Addr || !bytes.Equal(got.State, want.State) ||
		got.SeqBound != want.SeqBound || got.PeerSeq != want.PeerSeq || !got.LastActive.Equal(want.LastActive) {
		t.Fatalf("read back %+v, want %+v", got, want)
	}
}

func testSessionRoundTrip(t *testing.T, s store.Engine) {
	d := session("dev-1", "acme", "s1", []byte{1, 2, 3, 4, 5, 6, 7, 8}, "192.0.2.1:5000")
	check(t, s.PutDTLSSession(ctx, d))
	sameSession(t, must(s.DTLSSessionByIdentity(ctx, "dev-1")), d)
	// without Connection IDs
	n := session("dev-2", "acme", "s2", nil, "192.0.2.2:5000")
	n.PeerCID = nil
	check(t, s.PutDTLSSession(ctx, n))
	got := must(s.DTLSSessionByIdentity(ctx, "dev-2"))
	if len(got.LocalCID) != 0 || len(got.PeerCID) != 0 {
		t.Fatalf("Connection IDs read back %x %x, stored none", got.LocalCID, got.PeerCID)
	}
	if _, err := s.DTLSSessionByIdentity(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown identity: %v, want ErrNotFound", err)
	}
}

func testSessionLookups(t *testing.T, s store.Engine) {
	a := session("dev-a", "acme", "sa", []byte("cid-aaaa"), "192.0.2.1:5000")
	b := session("dev-b", "other", "sb", []byte("cid-bbbb"), "192.0.2.1:5001")
	check(t, s.PutDTLSSession(ctx, a))
	check(t, s.PutDTLSSession(ctx, b))
	sameSession(t, must(s.DTLSSessionByCID(ctx, []byte("cid-bbbb"))), b)
	sameSession(t, must(s.DTLSSessionByAddr(ctx, "192.0.2.1:5000")), a)
	for name, err := range map[string]error{
		"cid":      second(s.DTLSSessionByCID(ctx, []byte("cid-cccc"))),
		"no cid":   second(s.DTLSSessionByCID(ctx, nil)),
		"addr":     second(s.DTLSSessionByAddr(ctx, "192.0.2.1:5002")),
		"addr/cid": second(s.DTLSSessionByCID(ctx, []byte("192.0.2.1:5000"))),
	} {
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: %v, want ErrNotFound", name, err)
		}
	}
	// two sessions at one address (a NAT gave it to another device):
	// the one last active there
	c := session("dev-c", "acme", "sc", nil, "192.0.2.1:5000")
	c.LastActive = a.LastActive.Add(time.Second)
	check(t, s.PutDTLSSession(ctx, c))
	if got := must(s.DTLSSessionByAddr(ctx, "192.0.2.1:5000")); got.Identity != "dev-c" {
		t.Fatalf("by address: %s, want the last active dev-c", got.Identity)
	}
}

func second[T any](_ T, err error) error { return err }

// A new handshake replaces the identity's session: changes meant for
// the old one do nothing, and its Connection ID finds nothing.
func testSessionReplace(t *testing.T, s store.Engine) {
	old := session("dev-1", "acme", "s1", []byte("cid-0001"), "192.0.2.1:5000")
	check(t, s.PutDTLSSession(ctx, old))
	nu := session("dev-1", "acme", "s2", []byte("cid-0002"), "192.0.2.1:5000")
	nu.SeqBound = 2048
	check(t, s.PutDTLSSession(ctx, nu))
	sameSession(t, must(s.DTLSSessionByIdentity(ctx, "dev-1")), nu)
	if _, err := s.DTLSSessionByCID(ctx, []byte("cid-0001")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("old Connection ID: %v, want ErrNotFound", err)
	}
	if err := s.ReserveDTLSSequence(ctx, "dev-1", "s1", 1024, 4096, 0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("reserve on a replaced session: %v, want ErrNotFound", err)
	}
	if err := s.TouchDTLSSession(ctx, "dev-1", "s1", "192.0.2.9:1", time.Now()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("touch of a replaced session: %v, want ErrNotFound", err)
	}
	sameSession(t, must(s.DTLSSessionByIdentity(ctx, "dev-1")), nu)
}

func testSessionReserve(t *testing.T, s store.Engine) {
	d := session("dev-1", "acme", "s1", nil, "192.0.2.1:5000")
	check(t, s.PutDTLSSession(ctx, d))
	check(t, s.ReserveDTLSSequence(ctx, "dev-1", "s1", 1024, 2048, 100))
	// from a bound that moved: refused, nothing changes
	if err := s.ReserveDTLSSequence(ctx, "dev-1", "s1", 1024, 3072, 200); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("reserve from a stale bound: %v, want ErrConflict", err)
	}
	// the replay floor only rises
	check(t, s.ReserveDTLSSequence(ctx, "dev-1", "s1", 2048, 4096, 50))
	got := must(s.DTLSSessionByIdentity(ctx, "dev-1"))
	if got.SeqBound != 4096 || got.PeerSeq != 100 {
		t.Fatalf("bound %d peer %d, want 4096 and 100", got.SeqBound, got.PeerSeq)
	}
	if err := s.ReserveDTLSSequence(ctx, "nobody", "s1", 0, 1, 0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("reserve of no session: %v, want ErrNotFound", err)
	}
	if err := s.ReserveDTLSSequence(ctx, "dev-1", "s1", 4096, 4096, 0); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("reserve that does not rise: %v, want ErrInvalid", err)
	}
	if err := s.ReserveDTLSSequence(ctx, "dev-1", "s1", 4096, 1<<48, 0); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("reserve beyond 48 bits: %v, want ErrInvalid", err)
	}
}

// Of processes resuming one session from the same bound, one wins: the
// others must not send under the range it took.
func testSessionReserveConcurrent(t *testing.T, s store.Engine) {
	check(t, s.PutDTLSSession(ctx, session("dev-1", "acme", "s1", nil, "192.0.2.1:5000")))
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = s.ReserveDTLSSequence(ctx, "dev-1", "s1", 1024, 1024+uint64(i+1)*1024, 0) })
	}
	wg.Wait()
	won := -1
	for i, err := range errs {
		switch {
		case err == nil && won >= 0:
			t.Fatalf("reservations %d and %d both succeeded", won, i)
		case err == nil:
			won = i
		case !errors.Is(err, store.ErrConflict):
			t.Fatalf("reservation %d: %v, want ErrConflict", i, err)
		}
	}
	if won < 0 {
		t.Fatal("no reservation succeeded")
	}
	if got := must(s.DTLSSessionByIdentity(ctx, "dev-1")); got.SeqBound != 1024+uint64(won+1)*1024 {
		t.Fatalf("bound %d, want the winner's %d", got.SeqBound, 1024+uint64(won+1)*1024)
	}
}

func testSessionTouch(t *testing.T, s store.Engine) {
	d := session("dev-1", "acme", "s1", []byte("cid-0001"), "192.0.2.1:5000")
	check(t, s.PutDTLSSession(ctx, d))
	at := ms(time.Now().Add(time.Minute))
	check(t, s.TouchDTLSSession(ctx, "dev-1", "s1", "198.51.100.7:6000", at))
	d.Addr, d.LastActive = "198.51.100.7:6000", at
	sameSession(t, must(s.DTLSSessionByAddr(ctx, "198.51.100.7:6000")), d)
	if _, err := s.DTLSSessionByAddr(ctx, "192.0.2.1:5000"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("old address: %v, want ErrNotFound", err)
	}
}

// A tenant removes only its own devices' sessions.
func testSessionDeleteScoped(t *testing.T, s store.Engine) {
	check(t, s.PutDTLSSession(ctx, session("dev-1", "acme", "s1", []byte("cid-0001"), "192.0.2.1:5000")))
	if gone, err := s.DeleteDTLSSession(ctx, "other", "dev-1"); err != nil || gone {
		t.Fatalf("another tenant's delete: %v %v, want nothing deleted", gone, err)
	}
	must(s.DTLSSessionByIdentity(ctx, "dev-1"))
	if gone, err := s.DeleteDTLSSession(ctx, "acme", "dev-1"); err != nil || !gone {
		t.Fatalf("delete: %v %v", gone, err)
	}
	for name, err := range map[string]error{
		"identity": second(s.DTLSSessionByIdentity(ctx, "dev-1")),
		"cid":      second(s.DTLSSessionByCID(ctx, []byte("cid-0001"))),
		"addr":     second(s.DTLSSessionByAddr(ctx, "192.0.2.1:5000")),
	} {
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("after delete, by %s: %v, want ErrNotFound", name, err)
		}
	}
	if gone, err := s.DeleteDTLSSession(ctx, "acme", "dev-1"); err != nil || gone {
		t.Fatalf("second delete: %v %v", gone, err)
	}
}

func testSessionInvalid(t *testing.T, s store.Engine) {
	for i, d := range []store.DTLSSession{
		{Tenant: "acme", ID: "s", State: []byte{1}},
		{Identity: "d", ID: "s", State: []byte{1}},
		{Identity: "d", Tenant: "acme", State: []byte{1}},
		{Identity: "d", Tenant: "acme", ID: "s"},
		{Identity: "d", Tenant: "acme", ID: "s", State: []byte{1}, SeqBound: 1 << 48},
	} {
		if err := s.PutDTLSSession(ctx, d); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%d: %v, want ErrInvalid", i, fmt.Errorf("%w", err))
		}
	}
}
