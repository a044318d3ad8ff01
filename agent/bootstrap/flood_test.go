package bootstrap

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/coalesce"
	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/rawcoap"
	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/testbound"
	"github.com/lwm2m-agent/lwm2m-agent/agent/refusal"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

func noSec(endpoint string) map[string]any {
	return map[string]any{"endpointId": endpoint, "lwm2mServerUri": "coap://lwm2m.example.com:5783", "securityMode": "NO_SEC"}
}

// ofType returns the events of the given type.
func ofType(evs []store.Event, typ string) []store.Event {
	var out []store.Event
	for _, e := range evs {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// bsRequest is a CON Bootstrap-Request for endpoint.
func bsRequest(mid uint16, token []byte, endpoint string) []byte {
	return rawcoap.Post(mid, token, "bs", []string{"ep=" + endpoint}, nil)
}

// assertTooMany checks that ans is an ACK 4.29 with a token of tkl bytes,
// a Max-Age of 1 to maxSecs seconds and no payload.
func assertTooMany(t *testing.T, ans []byte, tkl int, maxSecs byte) {
	t.Helper()
	// header, token, Max-Age (option 14: delta 13 + 1, one byte), its value
	if len(ans) != 4+tkl+3 || ans[0] != 0x60|byte(tkl) || ans[1] != byte(codes.TooManyRequests) ||
		ans[4+tkl] != 0xd1 || ans[5+tkl] != 0x01 || ans[6+tkl] == 0 || ans[6+tkl] > maxSecs {
		t.Errorf("answer % x, want an ACK 4.29 with a Max-Age of 1 to %d s and no payload", ans, maxSecs)
	}
}

// TestBootstrapRequestFlood: 3,000 Bootstrap-Requests for one NO_SEC
// endpoint from 100 addresses start a session or three, not 3,000: the
// burst's first is accepted, the others find its session running or
// come from its own address again, and the rest are answered 4.29 with
// Max-Age before the store is asked. The sessions' devices never answer
// (the addresses could be anybody's), so of their start and failure
// events one each is stored. Before the limit every request started a
// session that replaced the one before, with a start and a failure
// event each.
func TestBootstrapRequestFlood(t *testing.T) {
	refused := refusal.New(nil, 0)
	ts := startServer(t, func(c *Config) { c.Refused = refused; c.RequestTimeout = 500 * time.Millisecond })
	id := ts.device(t, tenant, noSec("flooded"), nil, nil)

	const senders, n = 100, 3000
	answers, last := rawcoap.Answers(t, ts.srv.Addr(), senders, n, func(s, i int, mid uint16) []byte {
		return bsRequest(mid, []byte{byte(s), byte(i)}, "flooded")
	})
	started, limited := answers[codes.Changed], answers[codes.TooManyRequests]
	t.Logf("%d Bootstrap-Requests: %d sessions started, %d answered 4.29 (%d over the rate, %d while a session ran)",
		n, started, limited, refused.Count(CauseRequestRate), refused.Count(CauseSessionRunning))
	if started+limited != n {
		t.Fatalf("answers %v, want 2.04 or 4.29 for all %d", answers, n)
	}
	if started < 1 || started > DefaultRequestBurst {
		t.Errorf("%d sessions started, want 1 to the burst of %d", started, DefaultRequestBurst)
	}
	assertTooMany(t, last[codes.TooManyRequests], 2, byte(DefaultRequestInterval/time.Second))
	if got := refused.Count(CauseRequestRate) + refused.Count(CauseSessionRunning); got != uint64(limited) {
		t.Errorf("refusals counted %d, answered %d", got, limited)
	}

	testbound.Until(t, 10*time.Second, "the sessions to end", func() bool {
		st := ts.srv.Stats()
		return st.Sessions == 0 && st.Failed == uint64(started)
	})
	evs := ts.events(t, tenant, id)
	if s, f := len(ofType(evs, TypeStart)), len(ofType(evs, TypeFailure)); s != 1 || f != 1 || len(evs) != 2 {
		t.Errorf("%d events (%d starts, %d failures) for %d sessions, want one start and one failure", len(evs), s, f, started)
	}
	if got, want := refused.Count(CauseEventCoalesced), uint64(2*(started-1)); got != want {
		t.Errorf("%d events counted as held back, want %d", got, want)
	}
	if st := ts.srv.Stats(); st.Requests != n || st.Refused != uint64(limited) {
		t.Errorf("stats %+v, want %d requests, %d refused", st, n, limited)
	}
}

// TestBootstrapRequestRateRefills: past the burst the endpoint is
// answered 4.29, another endpoint is not, and once a token has refilled
// the endpoint bootstraps again. Over DTLS the limit is the identity's
// own.
func TestBootstrapRequestRateRefills(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.RequestInterval = 2 * time.Second; c.RequestBurst = 1 })
	ts.device(t, tenant, noSec("again"), nil, nil)
	ts.device(t, tenant, noSec("calm"), nil, nil)
	ts.device(t, tenant, map[string]any{
		"endpointId": "psk-r", "lwm2mServerUri": "coaps://lwm2m.example.com:5784", "securityMode": "PSK",
		"lwm2mPskId": "psk-r-id", "bootstrapPskId": "psk-r-bs",
	}, []byte{1}, []byte{0x42})

	c := newClient(t, "1.1")
	c.dialPlain(ts.srv.Addr())
	if code, _, err := c.request("ep=again"); err != nil || code != codes.Changed {
		t.Fatalf("first request: %v %v", code, err)
	}
	c.waitFinished(t)
	assertTooMany(t, rawcoap.Exchange(t, ts.srv.Addr(), bsRequest(0x4242, []byte{0xbb}, "again")), 1, 2)
	if code, _, err := newPlainClient(t, ts).request("ep=calm"); err != nil || code != codes.Changed {
		t.Errorf("another endpoint: %v %v", code, err)
	}
	// the plain port's requests for psk-r use up no token of its identity
	if ans := rawcoap.Exchange(t, ts.srv.Addr(), bsRequest(1, []byte{1}, "psk-r")); len(ans) < 2 || ans[1] != byte(codes.BadRequest) {
		t.Errorf("psk-r on the plain port: % x, want 4.00", ans)
	}
	assertTooMany(t, rawcoap.Exchange(t, ts.srv.Addr(), bsRequest(2, []byte{1}, "psk-r")), 1, 2)
	s := newClient(t, "1.1")
	s.dialSecure(ts.srv.SecureAddr(), "psk-r-bs", []byte{0x42})
	if code, _, err := s.request("ep=psk-r"); err != nil || code != codes.Changed {
		t.Errorf("psk-r over DTLS after the plain port's request: %v %v", code, err)
	}

	again := newClient(t, "1.1")
	again.dialPlain(ts.srv.Addr())
	var asked time.Time
	testbound.Until(t, 10*time.Second, "a Bootstrap-Request after the interval", func() bool {
		// a few a second: the port's limit per address drops more
		if time.Since(asked) < 250*time.Millisecond {
			return false
		}
		asked = time.Now()
		code, _, err := again.request("ep=again")
		return err == nil && code == codes.Changed
	})
	again.waitFinished(t)
}

func newPlainClient(t *testing.T, ts *testServer) *client {
	c := newClient(t, "1.1")
	c.dialPlain(ts.srv.Addr())
	return c
}

// TestBootstrapSessionRunningRefusesOtherAddresses: while a session of
// an endpoint runs with one address, a Bootstrap-Request for it from
// another address on the plain port is answered 4.29 with a Max-Age of
// the request timeout, and neither replaces the session nor records
// anything; once the session has ended, another address gets a session
// of its own. A session whose device never answered records its start
// with its failure; one whose device answers records it at once.
func TestBootstrapSessionRunningRefusesOtherAddresses(t *testing.T) {
	refused := refusal.New(nil, 0)
	ts := startServer(t, func(c *Config) { c.RequestInterval = -1; c.Refused = refused; c.RequestTimeout = time.Second })
	id := ts.device(t, tenant, noSec("moved"), nil, nil)

	a := newClient(t, "1.1")
	a.ignore = 1
	a.dialPlain(ts.srv.Addr())
	if code, _, err := a.request("ep=moved"); err != nil || code != codes.Changed {
		t.Fatalf("first request: %v %v", code, err)
	}
	testbound.Until(t, 5*time.Second, "the first session's Discover", func() bool { return len(a.seen()) > 0 })
	for i := range 3 {
		assertTooMany(t, rawcoap.Exchange(t, ts.srv.Addr(), bsRequest(uint16(i), []byte{0xbb}, "moved")), 1, 1)
	}
	if n := refused.Count(CauseSessionRunning); n != 3 {
		t.Errorf("%s counted %d times, want 3", CauseSessionRunning, n)
	}
	if st := ts.srv.Stats(); st.Sessions != 1 || st.Failed != 0 {
		t.Errorf("stats %+v: the session was replaced", st)
	}
	if evs := ts.events(t, tenant, id); len(evs) != 0 {
		t.Errorf("events while the device has not answered: %v", evs)
	}

	testbound.Until(t, 5*time.Second, "the first session to end", func() bool { return ts.srv.Stats().Sessions == 0 })
	b := newPlainClient(t, ts)
	if code, _, err := b.request("ep=moved"); err != nil || code != codes.Changed {
		t.Fatalf("second address after the session: %v %v", code, err)
	}
	b.waitFinished(t)
	types, _ := ts.waitEvents(t, tenant, id, TypeEnd)
	assertSlice(t, "events", types, []string{TypeStart, TypeFailure, TypeStart, TypeDelete, TypeDelete, TypeWrite, TypeWrite, TypeEnd})
}

// TestBootstrapUnansweredEventsCoalesced: sessions with an address that
// never answers store their start and failure events once per
// EventInterval; the next failure stored says how many were held back.
func TestBootstrapUnansweredEventsCoalesced(t *testing.T) {
	refused := refusal.New(nil, 0)
	ts := startServer(t, func(c *Config) {
		c.RequestInterval = -1
		c.RequestTimeout = 100 * time.Millisecond
		c.EventInterval = 2 * time.Second
		c.Refused = refused
	})
	id := ts.device(t, tenant, noSec("silent"), nil, nil)
	sessions := 0
	silent := func() {
		ans := rawcoap.Exchange(t, ts.srv.Addr(), bsRequest(1, []byte{1}, "silent"))
		if len(ans) < 2 || ans[1] != byte(codes.Changed) {
			t.Fatalf("answer % x, want 2.04", ans)
		}
		sessions++
		// ended, its events written
		testbound.Until(t, 5*time.Second, "the session to fail", func() bool {
			st := ts.srv.Stats()
			return st.Failed == uint64(sessions) && st.Sessions == 0
		})
	}
	silent()
	testbound.Until(t, 10*time.Second, "a second failure stored", func() bool {
		silent()
		return len(ofType(ts.events(t, tenant, id), TypeFailure)) == 2
	})
	failures := ofType(ts.events(t, tenant, id), TypeFailure)
	held := sessions - 2
	t.Logf("%d sessions: %d failures stored, %d held back", sessions, len(failures), held)
	if held < 1 {
		t.Fatalf("no failure held back in %d sessions", sessions)
	}
	frag, _ := failures[1].Fragments[coalesce.Fragment].(map[string]any)
	if fmt.Sprint(frag["count"]) != fmt.Sprint(held) {
		t.Errorf("second failure's %s %v, want count %d", coalesce.Fragment, frag, held)
	}
	if !strings.Contains(failures[1].Text, "more since") {
		t.Errorf("second failure's text %q does not say how many were held back", failures[1].Text)
	}
	if _, ok := failures[0].Fragments[coalesce.Fragment]; ok {
		t.Errorf("first failure says events were held back: %v", failures[0].Fragments)
	}
	if n := refused.Count(CauseEventCoalesced); n < uint64(held) {
		t.Errorf("%s counted %d times, want at least the %d failures held back", CauseEventCoalesced, n, held)
	}
}

// TestBootstrapUnverifiedAddressOneRequest: the server sends an address
// that asked on the plain port one confirmable request, the Discover, and
// nothing else until it is answered: its retransmissions carry the same
// message ID, and the session ends when the request times out. Whoever
// forges a Bootstrap-Request gets the victim one small request (and its
// retransmissions) for it, as often as the per-endpoint limit lets.
func TestBootstrapUnverifiedAddressOneRequest(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.RequestTimeout = 4 * time.Second })
	ts.device(t, tenant, noSec("victim"), nil, nil)
	conn, err := net.DialUDP("udp4", rawcoap.FloodAddr(7), ts.srv.Addr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(bsRequest(0x0101, []byte{0xcc}, "victim")); err != nil {
		t.Fatal(err)
	}
	var got [][]byte
	buf := make([]byte, 1500)
	read := func(d time.Duration) bool {
		_ = conn.SetReadDeadline(time.Now().Add(d))
		n, err := conn.Read(buf)
		if err != nil {
			return false
		}
		got = append(got, append([]byte(nil), buf[:n]...))
		return true
	}
	// until the session has given up, then a moment for anything after
	deadline := time.Now().Add(10 * time.Second)
	for ts.srv.Stats().Failed == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the session has not ended; received %x", got)
		}
		read(100 * time.Millisecond)
	}
	for read(300 * time.Millisecond) {
	}
	if len(got) < 2 || got[0][0] != 0x61 || got[0][1] != byte(codes.Changed) {
		t.Fatalf("datagrams %x, want the 2.04 ACK first, then the Discover", got)
	}
	discover := got[1]
	tkl := int(discover[0] & 0x0f)
	if discover[0]>>4 != 0x4 || discover[1] != byte(codes.GET) {
		t.Fatalf("first request % x, want a CON GET", discover)
	}
	for _, d := range got[2:] {
		if len(d) < 4+tkl || d[0] != discover[0] || d[1] != discover[1] || d[2] != discover[2] || d[3] != discover[3] ||
			string(d[4:4+tkl]) != string(discover[4:4+tkl]) {
			t.Errorf("after the Discover % x the server sent % x, want only its retransmissions", discover, d)
		}
	}
	t.Logf("%d datagrams to an address that never answered: the 2.04 and the Discover sent %d times", len(got), len(got)-1)
}
