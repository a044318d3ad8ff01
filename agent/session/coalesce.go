package session

import (
	"sync"
	"time"
)

// coalescer holds back repeats of one kind of lifecycle event of one
// device: within an interval of the last one stored, another is not
// stored but counted, and the next one stored says how many were held
// back. Anyone can send a Register naming a NO_SEC endpoint, or a PSK
// device's endpoint on the plain port, from any address: without this,
// each datagram would leave an event in the store. The keys are devices
// that exist, so the table is bounded by the devices, and entries older
// than the interval are swept.
type coalescer struct {
	interval time.Duration // 0: every event is stored

	mu    sync.Mutex
	held  map[string]*heldBack
	swept time.Time
}

type heldBack struct {
	stored  time.Time // when the last event was stored
	skipped int       // events held back since
	since   time.Time // when the first of them came
}

func newCoalescer(interval time.Duration) *coalescer {
	return &coalescer{interval: interval, held: map[string]*heldBack{}}
}

// admit tells whether the event of key at now is stored; when it is,
// skipped is how many were held back since the one stored before, the
// first of them at since.
func (c *coalescer) admit(key string, now time.Time) (ok bool, skipped int, since time.Time) {
	if c.interval <= 0 {
		return true, 0, time.Time{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if now.Sub(c.swept) > c.interval {
		c.sweepLocked(now)
	}
	h := c.held[key]
	if h == nil {
		c.held[key] = &heldBack{stored: now}
		return true, 0, time.Time{}
	}
	if now.Sub(h.stored) < c.interval {
		if h.skipped == 0 {
			h.since = now
		}
		h.skipped++
		return false, 0, time.Time{}
	}
	skipped, since = h.skipped, h.since
	*h = heldBack{stored: now}
	return true, skipped, since
}

// forget ends the repeats of key: its next event is stored whenever it
// comes.
func (c *coalescer) forget(key string) {
	if c.interval <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.held, key)
}

// sweepLocked drops the entries whose next event would be stored anyway
// and that hold nothing back. An entry that holds events back stays a day
// at most, so that the next event can still count them.
func (c *coalescer) sweepLocked(now time.Time) {
	for k, h := range c.held {
		if age := now.Sub(h.stored); age >= c.interval && (h.skipped == 0 || age >= 24*time.Hour) {
			delete(c.held, k)
		}
	}
	c.swept = now
}
