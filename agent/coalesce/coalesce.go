// Package coalesce holds back repeats of one kind of lifecycle event of
// one device: within an interval of the last one stored, another is not
// stored but counted, and the next one stored says how many were held
// back. Anyone can send a Register naming a NO_SEC endpoint, or a
// Bootstrap-Request for one, from any address: without this, each
// datagram would leave an event in the store.
package coalesce

import (
	"fmt"
	"sync"
	"time"
)

// Fragment is the fragment of a lifecycle event stored after others of
// its kind were held back: {"count": N, "since": time of the first of
// them}.
const Fragment = "c8y_LWM2MCoalesced"

// Events decides which events of a kind are stored. Its keys name a
// device and a kind; the devices exist, so the table is bounded by them,
// and entries older than the interval are swept.
type Events struct {
	interval time.Duration // 0 or less: every event is stored

	mu    sync.Mutex
	held  map[string]*heldBack
	swept time.Time
}

type heldBack struct {
	stored  time.Time // when the last event was stored
	skipped int       // events held back since
	since   time.Time // when the first of them came
}

// New returns Events that store one event per key and interval; an
// interval of 0 or less stores every one.
func New(interval time.Duration) *Events {
	return &Events{interval: interval, held: map[string]*heldBack{}}
}

// Held is what the event stored after others were held back says of
// them; Count is 0 when none were.
type Held struct {
	Count int
	Since time.Time // when the first of them came
}

// Note is the end of the stored event's text that says how many were
// held back.
func (h Held) Note() string {
	return fmt.Sprintf(" (%d more since %s not recorded)", h.Count, h.Since.UTC().Format(time.RFC3339))
}

// Fragment is the value of the stored event's Fragment.
func (h Held) Fragment() map[string]any {
	return map[string]any{"count": h.Count, "since": h.Since.UTC()}
}

// Admit tells whether the event of key at now is stored; when it is,
// held says how many were held back since the one stored before.
func (c *Events) Admit(key string, now time.Time) (ok bool, held Held) {
	if c.interval <= 0 {
		return true, Held{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if now.Sub(c.swept) > c.interval {
		c.sweepLocked(now)
	}
	h := c.held[key]
	if h == nil {
		c.held[key] = &heldBack{stored: now}
		return true, Held{}
	}
	if now.Sub(h.stored) < c.interval {
		if h.skipped == 0 {
			h.since = now
		}
		h.skipped++
		return false, Held{}
	}
	held = Held{Count: h.skipped, Since: h.since}
	*h = heldBack{stored: now}
	return true, held
}

// Forget ends the repeats of key: its next event is stored whenever it
// comes.
func (c *Events) Forget(key string) {
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
func (c *Events) sweepLocked(now time.Time) {
	for k, h := range c.held {
		if age := now.Sub(h.stored); age >= c.interval && (h.skipped == 0 || age >= 24*time.Hour) {
			delete(c.held, k)
		}
	}
	c.swept = now
}

// Len returns the keys being tracked.
func (c *Events) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.held)
}
