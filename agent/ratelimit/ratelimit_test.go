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
	// the table is bounded: a fourth peer gets in only once a bucket is idle
	l.Allow("c", t0)
	if l.Allow("d", t0) {
		t.Error("a peer beyond the table's bound was let in")
	}
	if !l.Allow("d", t0.Add(time.Second)) {
		t.Error("no idle bucket was dropped for a new peer")
	}
	if n := l.Len(); n > 3 {
		t.Errorf("table holds %d buckets, bound is 3", n)
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
