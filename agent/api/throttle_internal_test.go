package api

import (
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The backoff starts after the allowed failures, doubles with each one
// more up to its maximum, covers the address and the user alike, and a
// valid login ends it.
func TestThrottleBackoff(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	th := newThrottle(LoginThrottle{Failures: 3, MaxBackoff: 4 * time.Second, MaxEntries: 4}, slog.New(slog.DiscardHandler), prometheus.NewCounter(prometheus.CounterOpts{Name: "x"}))
	th.now = func() time.Time { return now }
	steps := []struct {
		addr, user string
		fail       bool
		wantWait   time.Duration // before the attempt
	}{
		{"a", "t/u", true, 0},
		{"a", "t/u", true, 0},
		{"a", "t/u", true, 0}, // the third failure starts a 1 s backoff
		{"a", "t/u", false, time.Second},
		{"b", "t/u", false, time.Second},     // the user is held from any address
		{"a", "t/other", false, time.Second}, // the address is held for any user
		{"c", "t/other", false, 0},           // neither
	}
	for i, s := range steps {
		if got := th.wait(s.addr, s.user); got != s.wantWait {
			t.Fatalf("step %d (%s %s): wait %v, want %v", i, s.addr, s.user, got, s.wantWait)
		}
		if s.fail {
			th.failed(s.addr, s.user)
		}
	}
	for _, want := range []time.Duration{2 * time.Second, 4 * time.Second, 4 * time.Second} {
		now = now.Add(10 * time.Second)
		th.failed("a", "t/u")
		if got := th.wait("a", "t/u"); got != want {
			t.Fatalf("after another failure: wait %v, want %v", got, want)
		}
	}
	th.succeeded("a", "t/u")
	if got := th.wait("a", "t/u"); got != 0 {
		t.Fatalf("after a valid login: wait %v", got)
	}
	// bounded: a flood of addresses keeps at most MaxEntries of them
	for _, a := range []string{"1", "2", "3", "4", "5", "6"} {
		th.failed(a, "t/flood")
	}
	if len(th.addrs) > 4 || len(th.users) > 4 {
		t.Fatalf("%d addresses, %d users kept, want at most 4", len(th.addrs), len(th.users))
	}
	if _, ok := th.addrs["6"]; !ok {
		t.Fatal("the newest address was not kept")
	}
}
