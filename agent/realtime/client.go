package realtime

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// Why a client's request is refused; each becomes a Bayeux error.
var (
	errUnknownClient = errors.New("unknown client: handshake again")
	// errDisconnected ends a client that asked to: its connection stays
	// open for the reply.
	errDisconnected = fmt.Errorf("%w: it disconnected", errUnknownClient)
	errDropped      = errors.New("client dropped")
	errStopping     = errors.New("the agent is stopping")
	errBusy         = errors.New("too many clients")
	errForbidden    = errors.New("forbidden")
)

// queued is a message waiting for a client, with when its change was
// stored.
type queued struct {
	msg []byte
	at  time.Time
}

// client is one Bayeux client (a handshake's clientId) of one user.
type client struct {
	id     string
	tenant string
	user   string             // tenant/user
	subs   map[string]channel // by name; the hub's mu guards it

	mu       sync.Mutex
	queue    []queued
	bytes    int
	held     int       // /meta/connect requests held now
	lastSeen time.Time // when the last connect ended (or began)
	why      error     // set once the client has ended
	// wake has a token when the queue got a message or the client
	// ended; gone is closed when it ends.
	wake chan struct{}
	gone chan struct{}
	// supersede ends the connect held now, when another one comes.
	supersede chan struct{}
	heldGauge prometheus.Gauge // the hub's count of connects held
}

func newClient(id string, u store.User, user string, now time.Time, held prometheus.Gauge) *client {
	return &client{id: id, tenant: u.Tenant, user: user, subs: map[string]channel{}, lastSeen: now,
		wake: make(chan struct{}, 1), gone: make(chan struct{}), heldGauge: held}
}

// enqueue adds a message unless the queue is full (false: the client
// must be dropped) or the client has ended.
func (c *client) enqueue(q queued, limit int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.why != nil {
		return true
	}
	if len(c.queue) >= limit || c.bytes+len(q.msg) > queueBytes && len(c.queue) > 0 {
		return false
	}
	c.queue = append(c.queue, q)
	c.bytes += len(q.msg)
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return true
}

// take empties the queue, and says why the client ended, if it has.
func (c *client) take() ([]queued, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	q := c.queue
	c.queue, c.bytes = nil, 0
	return q, c.why
}

// end ends the client: its queue is freed and whoever waits is woken.
func (c *client) end(why error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.why != nil {
		return
	}
	c.why = why
	c.queue, c.bytes = nil, 0
	close(c.gone)
}

// ended says why the client ended, nil while it lives.
func (c *client) ended() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.why
}

// hold notes a /meta/connect held from now, ending the one held before
// (a client has one at a time); the returned channel closes when a later
// one supersedes it.
func (c *client) hold(now time.Time) <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.supersede != nil {
		close(c.supersede)
	}
	c.supersede = make(chan struct{})
	c.held++
	c.heldGauge.Inc()
	c.lastSeen = now
	return c.supersede
}

// release notes the end of a connect held since hold gave superseded.
func (c *client) release(superseded <-chan struct{}, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.held--
	c.heldGauge.Dec()
	c.lastSeen = now
	if c.supersede == superseded {
		c.supersede = nil
	}
}

// seen notes that the client was heard of.
func (c *client) seen(now time.Time) {
	c.mu.Lock()
	c.lastSeen = now
	c.mu.Unlock()
}

// idleSince is how long the client has gone without a connect held;
// zero while one is.
func (c *client) idleSince(now time.Time) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held > 0 {
		return 0
	}
	return now.Sub(c.lastSeen)
}
