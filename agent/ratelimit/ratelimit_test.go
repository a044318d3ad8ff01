package ratelimit

import (
	"fmt"
	"testing"
	"time"
)

func TestPeerLimiter(t *testing.T) {
	t0 := time.Unix(1000, 0)
	l := New(10, 5, 3)
	allowed := 0
	for i := 0; i < 20; i++ {
		if l.Allow("a", t0) {
			allowed++
		}
	}
	if allowed != 5 {
		t.Errorf("a burst of 20 at once: %d allowed, want the burst of 5", allowed)
	}
	if !l.Allow("a", t0.Add(100*time.Millisecond)) {
		t.Error("a token refilled after 100 ms at 10/s was refused")
	}
	if l.Allow("a", t0.Add(100*time.Millisecond)) {
		t.Error("a second message in the same instant was allowed")
	}
	if !l.Allow("b", t0) {
		t.Error("another peer is limited by a's flood")
	}
	// The table is bounded, and a full one takes the bucket of the least
	// recently active peer (a) for a new one instead of refusing it.
	l.Allow("c", t0)
	if !l.Allow("d", t0) {
		t.Error("a new peer was refused by a full table")
	}
	if n := l.Len(); n > 3 {
		t.Errorf("table holds %d buckets, bound is 3", n)
	}
	if !l.Allow("a", t0.Add(100*time.Millisecond)) {
		t.Error("a, whose bucket made room for d, did not start afresh")
	}
	for i := 0; i < 100; i++ {
		l.Allow(fmt.Sprint("p", i), t0.Add(time.Hour+time.Duration(i)*time.Second))
	}
	if n := l.Len(); n > 3 {
		t.Errorf("table grew to %d", n)
	}
}

// Take says how long a refused key waits for its next token; an open
// table lets a key in that it has no room for.
func TestTakeWaitAndOpenTable(t *testing.T) {
	t0 := time.Unix(1000, 0)
	l := NewOpen(0.1, 2, 1)
	for i, want := range []bool{true, true, false} {
		if ok, _ := l.Take("ep", t0); ok != want {
			t.Fatalf("take %d: %v, want %v", i, ok, want)
		}
	}
	if ok, wait := l.Take("ep", t0.Add(4*time.Second)); ok || wait != 6*time.Second {
		t.Errorf("4 s later: %v, wait %v; want refused, 6s", ok, wait)
	}
	if ok, _ := l.Take("ep", t0.Add(10*time.Second)); !ok {
		t.Error("a token refilled after 10 s at 0.1/s was refused")
	}
	if ok, _ := l.Take("other", t0.Add(10*time.Second)); !ok {
		t.Error("an open table refused a key it has no room for")
	}
	if ok, _ := New(0.1, 2, 1).Take("x", t0); !ok {
		t.Error("first key refused")
	}
}

// Peers flooding a full table do not shut out a device: each new address
// takes the least recently active bucket, and the device, once in, keeps
// its own while it sends.
func TestFullTableAdmitsNewPeers(t *testing.T) {
	t0 := time.Unix(1000, 0)
	l := New(100, 200, 100)
	for i := 0; i < 150; i++ {
		l.Allow(fmt.Sprint("flood", i), t0)
	}
	for i := 0; i < 10; i++ {
		now := t0.Add(time.Duration(i) * time.Millisecond)
		if !l.Allow("device", now) {
			t.Fatalf("the device's message %d was refused beside 150 flooding peers", i)
		}
		for j := 0; j < 150; j++ {
			l.Allow(fmt.Sprint("flood", 150+i*150+j), now)
		}
	}
}

// Until says how long until a bucket holds n tokens, and takes none.
func TestUntil(t *testing.T) {
	t0 := time.Unix(1000, 0)
	l := New(10, 4, 8)
	for _, tc := range []struct {
		name  string
		setup func()
		at    time.Duration
		n     float64
		want  time.Duration
	}{
		{"unknown key: a full burst", func() {}, 0, 2, 0},
		{"after the burst", func() {
			for range 4 {
				l.Allow("k", t0)
			}
		}, 0, 2, 200 * time.Millisecond},
		{"half refilled", func() {}, 100 * time.Millisecond, 2, 100 * time.Millisecond},
		{"refilled", func() {}, 200 * time.Millisecond, 2, 0},
		{"more than the burst waits for the burst", func() {}, 200 * time.Millisecond, 10, 200 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.setup()
			if got := l.Until("k", t0.Add(tc.at), tc.n); got != tc.want {
				t.Errorf("Until: %v, want %v", got, tc.want)
			}
		})
	}
	if ok, _ := l.Take("k", t0.Add(200*time.Millisecond)); !ok {
		t.Error("Until took tokens")
	}
	var none *Peers
	if none.Until("k", t0, 1) != 0 {
		t.Error("a nil Peers makes a sender wait")
	}
}
