// Package ratelimit bounds what one peer address may send: a token bucket
// per address in a table of bounded size.
package ratelimit

import (
	"container/list"
	"errors"
	"sync"
	"time"
)

// Peers bounds how many messages one peer address may send per
// second (a token bucket per address), so that a flooding peer costs the
// server a map lookup per datagram and no more. Its table is bounded: a
// new peer takes the bucket of the least recently active one when it is
// full. A full table never refuses anybody: a peer whose bucket went
// only starts again with a full burst, which it would have had after
// a quiet second anyway, while refusing new peers let a few hundred
// flooding addresses shut every other device out.
type Peers struct {
	rate  float64 // tokens per second
	burst float64
	max   int
	open  bool // a full table lets a new key through untracked

	mu      sync.Mutex
	buckets map[string]*bucket
	lru     list.List // of *bucket, the least recently active at the back
}

type bucket struct {
	key    string
	tokens float64
	last   time.Time
	elem   *list.Element
}

// New returns a limit of rate messages per second with bursts of burst, for
// at most max peers at once.
func New(rate float64, burst, max int) *Peers {
	return &Peers{rate: rate, burst: float64(burst), max: max, buckets: make(map[string]*bucket)}
}

// NewOpen is New for keys that anyone can make up, such as endpoint
// names: when the table is full and no bucket is idle, a new key is let
// through untracked instead of taking a bucket, so that a flood of
// invented keys can neither lock out the keys in use nor start them
// afresh. The limit then lapses for new keys only, until buckets fall
// idle.
func NewOpen(rate float64, burst, max int) *Peers {
	l := New(rate, burst, max)
	l.open = true
	return l
}

// ErrLimited refuses a DTLS handshake from a peer over its rate.
var ErrLimited = errors.New("peer rate limit")

// Allow takes one token from addr's bucket. A nil Peers allows everything.
func (l *Peers) Allow(addr string, now time.Time) bool {
	ok, _ := l.Take(addr, now)
	return ok
}

// Take is Allow for a caller that answers a refusal: wait is how long
// until key's bucket holds a token again (0 when the table has no room for
// key).
func (l *Peers) Take(key string, now time.Time) (ok bool, wait time.Duration) {
	if l == nil {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if ok {
		l.lru.MoveToFront(b.elem)
	} else {
		l.sweepLocked(now)
		if len(l.buckets) >= l.max && l.open {
			return true, 0
		}
		for len(l.buckets) >= l.max && l.lru.Len() > 0 {
			l.removeLocked(l.lru.Back().Value.(*bucket))
		}
		b = &bucket{key: key, tokens: l.burst, last: now}
		b.elem = l.lru.PushFront(b)
		l.buckets[key] = b
	}
	b.tokens += now.Sub(b.last).Seconds() * l.rate
	if b.tokens > l.burst {
		b.tokens = l.burst
	}
	b.last = now
	if b.tokens < 1 {
		wait = time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
		return false, (wait + time.Millisecond - 1).Truncate(time.Millisecond)
	}
	b.tokens--
	return true, 0
}

// Until is how long until key's bucket holds n tokens, taking none: 0
// when it holds them now, when key has no bucket (it starts with a full
// burst) or for a nil Peers. A sender whose requests key answers paces
// itself by it, so that the answers are not dropped as a flood.
func (l *Peers) Until(key string, now time.Time, n float64) time.Duration {
	if l == nil {
		return 0
	}
	n = min(n, l.burst)
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		return 0
	}
	tokens := min(b.tokens+now.Sub(b.last).Seconds()*l.rate, l.burst)
	if tokens >= n {
		return 0
	}
	wait := time.Duration((n - tokens) / l.rate * float64(time.Second))
	return (wait + time.Millisecond - 1).Truncate(time.Millisecond)
}

// sweepLocked drops the buckets that have refilled completely, the least
// recently active first: their peers would start afresh with the same
// burst anyway. It stops at the first that has not, so it costs nothing
// per message beyond what it drops.
func (l *Peers) sweepLocked(now time.Time) {
	full := time.Duration(l.burst / l.rate * float64(time.Second))
	for e := l.lru.Back(); e != nil; e = l.lru.Back() {
		b := e.Value.(*bucket)
		if now.Sub(b.last) < full {
			return
		}
		l.removeLocked(b)
	}
}

func (l *Peers) removeLocked(b *bucket) {
	delete(l.buckets, b.key)
	l.lru.Remove(b.elem)
}

// Len returns the peers in the table.
func (l *Peers) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
