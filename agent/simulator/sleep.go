package simulator

import (
	"slices"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"

	"github.com/lwm2m-agent/lwm2m-agent/agent/codec"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// A sleeping device (Config.AwakeTime) has its radio on only while it
// sends a Register or Update and for the awake time after the answer;
// whatever the server sends at other times is lost, as on a real
// constrained device, so the server's requests time out for real.

// Request is one request of the server as the device saw it.
type Request struct {
	Time   time.Time
	Method string // GET, PUT, POST, DELETE, FETCH, IPATCH
	Path   string // the URI path, "/3/0/0"
	// Wakeup is the number of Registers and Updates the device had sent
	// when the request came: the awake window it came in (Wakeup.Seq), 0
	// before the first.
	Wakeup int
	// Answered says the device answered; false means it dropped the
	// request: Asleep (radio off) or told to ignore it (Ignore).
	Answered bool
	Asleep   bool
	// Repeat marks a dropped copy of a request the device had answered:
	// a CoAP retransmission by a server that had not yet taken the
	// answer when the device fell asleep. The server sent the request
	// itself while the device listened.
	Repeat bool
	// Format is the request's Content-Format, 0 when it has none (or is
	// text/plain); recorded for answered requests.
	Format codec.Format
}

// Wakeup is one awake window of a sleeping device: from the moment it
// sent its Register or Update to the end of the awake time after the
// server's answer.
type Wakeup struct {
	Seq        int // 1 for the first Register, counting every Register and Update sent
	Start, End time.Time
	Update     bool // an Update, not a Register
}

// maxIgnored bounds the requests, ignored or answered, whose
// retransmissions are still recognised.
const maxIgnored = 16

// awakeLocked reports whether the device's radio is on at now.
func (d *Device) awakeLocked(now time.Time) bool {
	at := d.sim.cfg.AwakeTime
	return at <= 0 || d.exchanging > 0 || now.Before(d.awakeUntil)
}

// NextWakeup is when the device next registers or updates, and so wakes;
// false when nothing is scheduled (it is registering now, or stopped).
func (d *Device) NextWakeup() (time.Time, bool) {
	return d.sim.sched.when(d.regTimer)
}

// Awake reports whether the device listens now: always, without an awake
// time; else while it registers or updates and for the awake time after.
func (d *Device) Awake() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.awakeLocked(time.Now())
}

// wakeLocked turns the radio on for a Register or Update about to be
// sent; sleepLocked turns it off again once its answer came (ok: the
// server took it, and the device listens for the awake time).
func (d *Device) wakeLocked(now time.Time, update bool) {
	d.exchanging++
	d.wakeups++
	d.pendingWake = Wakeup{Seq: d.wakeups, Start: now, Update: update}
}

func (d *Device) sleepLocked(now time.Time, ok bool) {
	d.exchanging--
	at := d.sim.cfg.AwakeTime
	if !ok || at <= 0 {
		return
	}
	d.awakeUntil = now.Add(at)
	w := d.pendingWake
	w.End = d.awakeUntil
	if w.Start.IsZero() {
		w.Start = now
	}
	d.recordWakeLocked(w)
}

func (d *Device) recordWakeLocked(w Wakeup) {
	n := d.sim.cfg.Record
	if n <= 0 {
		return
	}
	if len(d.wakes) >= n {
		copy(d.wakes, d.wakes[1:])
		d.wakes = d.wakes[:n-1]
	}
	d.wakes = append(d.wakes, w)
}

func (d *Device) recordLocked(r Request) {
	if !r.Answered {
		d.dropped++
	}
	n := d.sim.cfg.Record
	if n <= 0 {
		return
	}
	if len(d.requests) >= n {
		copy(d.requests, d.requests[1:])
		d.requests = d.requests[:n-1]
	}
	d.requests = append(d.requests, r)
}

// Requests returns the last Config.Record requests of the server the
// device saw, oldest first, answered or dropped. A request the server
// repeated (a CoAP retransmission) is listed once if answered, and once
// per copy if dropped.
func (d *Device) Requests() []Request {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.requests)
}

// Wakeups returns the last Config.Record awake windows of a sleeping
// device, oldest first; the current one has an End in the future.
func (d *Device) Wakeups() []Wakeup {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.wakes)
}

// Dropped counts the server's request messages the device did not answer
// because it slept or ignored them (Ignore), retransmissions included.
func (d *Device) Dropped() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dropped
}

// Ignore makes the device, although awake, drop the next n requests of
// the server to path p (and their retransmissions) without a word, as if
// they were lost on the way: the server's request times out.
func (d *Device) Ignore(p node.Path, n int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ignore == nil {
		d.ignore = map[string]int{}
	}
	d.ignoring.Store(true)
	if n <= 0 {
		delete(d.ignore, p.String())
		return
	}
	d.ignore[p.String()] = n
}

// screen decides, before go-coap sees it, whether a request of the server
// reaches the device: not while it sleeps, nor one it was told to ignore.
// It records the requests dropped; handle records the ones answered.
func (d *Device) screen(m *pool.Message) (drop bool) {
	c := m.Code()
	if c < codes.GET || c > codes.IPATCH {
		return false
	}
	if d.sim.cfg.AwakeTime <= 0 && !d.ignoring.Load() {
		return false
	}
	now := time.Now()
	path, _ := m.Path()
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.awakeLocked(now) {
		repeat := slices.Contains(d.answeredTokens, string(m.Token()))
		d.recordLocked(Request{Time: now, Method: c.String(), Path: path, Wakeup: d.wakeups, Asleep: true, Repeat: repeat})
		return true
	}
	if len(d.ignore) == 0 && len(d.ignoredTokens) == 0 {
		return false
	}
	tok := string(m.Token())
	if slices.Contains(d.ignoredTokens, tok) {
		d.recordLocked(Request{Time: now, Method: c.String(), Path: path, Wakeup: d.wakeups})
		return true
	}
	p, err := node.ParsePath(path)
	if err != nil {
		return false
	}
	key := p.String()
	if d.ignore[key] <= 0 {
		return false
	}
	if d.ignore[key]--; d.ignore[key] == 0 {
		delete(d.ignore, key)
	}
	if len(d.ignoredTokens) >= maxIgnored {
		d.ignoredTokens = d.ignoredTokens[1:]
	}
	d.ignoredTokens = append(d.ignoredTokens, tok)
	d.recordLocked(Request{Time: now, Method: c.String(), Path: path, Wakeup: d.wakeups})
	return true
}

// answered records a request the device answers.
func (d *Device) answered(m *pool.Message, now time.Time) {
	if d.sim.cfg.Record <= 0 {
		return
	}
	path, _ := m.Path()
	var f codec.Format
	if cf, err := m.ContentFormat(); err == nil {
		f = codec.Format(cf)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.recordLocked(Request{Time: now, Method: m.Code().String(), Path: path, Wakeup: d.wakeups, Answered: true, Format: f})
	if d.sim.cfg.AwakeTime > 0 {
		if len(d.answeredTokens) >= maxIgnored {
			d.answeredTokens = d.answeredTokens[1:]
		}
		d.answeredTokens = append(d.answeredTokens, string(m.Token()))
	}
}
