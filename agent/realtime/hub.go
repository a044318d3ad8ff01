package realtime

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/refusal"
	"github.com/lwm2m-agent/lwm2m-agent/agent/render"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// Path is where the agent serves the Bayeux protocol, as Cumulocity does.
const Path = "/notification/realtime"

// Limits bound what clients may make the hub hold; zero fields take
// DefaultLimits'.
type Limits struct {
	// Clients is how many clients the agent holds in all, and
	// ClientsPerUser how many of one tenant's user.
	Clients        int
	ClientsPerUser int
	// Subscriptions is how many channels one client may subscribe to.
	Subscriptions int
	// Queue is how many messages wait for one client; the client whose
	// queue is full is dropped.
	Queue int
	// ConnectTimeout is how long a /meta/connect is held when nothing
	// arrives (the advice's timeout); MaxInterval how long a client may
	// go without one before it is removed (the advice's maxInterval).
	ConnectTimeout time.Duration
	MaxInterval    time.Duration
}

// DefaultLimits are the limits of a zero Limits.
var DefaultLimits = Limits{
	Clients:        10_000,
	ClientsPerUser: 100,
	Subscriptions:  100,
	Queue:          1000,
	ConnectTimeout: 30 * time.Second,
	MaxInterval:    10 * time.Second,
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	for _, f := range []struct{ v, def *int }{{&l.Clients, &d.Clients}, {&l.ClientsPerUser, &d.ClientsPerUser},
		{&l.Subscriptions, &d.Subscriptions}, {&l.Queue, &d.Queue}} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	for _, f := range []struct{ v, def *time.Duration }{{&l.ConnectTimeout, &d.ConnectTimeout}, {&l.MaxInterval, &d.MaxInterval}} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	return l
}

// queueBytes bounds the bytes waiting for one client besides the count:
// a few large objects must not hold what a thousand small ones may.
// Messages are shared between clients, so that the memory they take is
// far less than the sum of the queues.
const queueBytes = 4 << 20

// handoff is how many batches of changes wait for the dispatcher.
const handoff = 4096

// fetchTimeout bounds the dispatcher's read of one changed object.
const fetchTimeout = 5 * time.Second

// The causes of refusal.Log for what the limits refuse.
const (
	CauseClientsFull       = "realtime_clients_full"
	CauseUserClientsFull   = "realtime_user_clients_full"
	CauseSubscriptionsFull = "realtime_subscriptions_full"
	CauseQueueFull         = "realtime_queue_full"
	CauseChangesLost       = "realtime_changes_lost"
)

// Config sets a hub up.
type Config struct {
	// Store is where the dispatcher reads the changed objects a write did
	// not answer with: the engine beneath the wrappers, so that reading
	// announces nothing.
	Store  store.Engine
	Limits Limits
	// Refused counts and logs what the limits refuse; nil counts nothing.
	Refused *refusal.Log
	Logger  *slog.Logger
}

// Hub holds the realtime clients and their subscriptions, and sends them
// the store's changes. Wrap, then Handler, then Run: Run's goroutines
// read what the others set up.
type Hub struct {
	cfg Config
	lim Limits
	log *slog.Logger

	changes chan []change
	// interest is, per tenant, how many subscriptions each kind has:
	// the writers' check of whether to announce at all, read without a
	// lock and replaced whole (copy on write) when a subscription
	// changes, which is rare beside the writes.
	interest atomic.Pointer[map[string][numKinds]int32]

	mu      sync.RWMutex
	clients map[string]*client
	perUser map[string]int
	tenants map[string]*tenantSubs
	counts  map[string][numKinds]int32 // subscriptions per tenant and kind, which interest copies
	nsubs   int
	stopped bool

	base    string // links in rendered objects; set by Handler
	auth    Authenticate
	msgID   atomic.Uint64
	conns   sync.WaitGroup // WebSocket connections being served
	stop    chan struct{}  // closed when Run ends
	metrics *metrics
}

// tenantSubs are one tenant's subscriptions: per kind, per id (a device
// ID or "*"), the clients.
type tenantSubs struct {
	byKind [numKinds]map[string]map[*client]struct{}
}

// New returns a hub; nothing runs until Run.
func New(cfg Config) *Hub {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Hub{
		cfg: cfg, lim: cfg.Limits.withDefaults(), log: cfg.Logger.With("component", "realtime"),
		changes: make(chan []change, handoff),
		clients: map[string]*client{}, perUser: map[string]int{}, tenants: map[string]*tenantSubs{}, counts: map[string][numKinds]int32{},
		stop: make(chan struct{}),
	}
	h.metrics = newMetrics()
	empty := map[string][numKinds]int32{}
	h.interest.Store(&empty)
	return h
}

// wants reports whether a change of kind in tenant has anyone to go to.
func (h *Hub) wants(tenant string, k kind) bool {
	return (*h.interest.Load())[tenant][k] > 0
}

// publish hands changes over to the dispatcher without waiting: when its
// queue is full they are lost for realtime, and counted.
func (h *Hub) publish(cs []change) {
	if len(cs) == 0 {
		return
	}
	select {
	case h.changes <- cs:
	default:
		h.metrics.lost.Add(float64(len(cs)))
		h.cfg.Refused.Refuse(CauseChangesLost, "", "changes", len(cs), "reason", "the dispatcher's queue is full")
	}
}

// Run dispatches the changes and removes idle clients until ctx ends;
// then it removes every client, ends their connections and returns once
// the WebSocket connections have closed.
func (h *Hub) Run(ctx context.Context) {
	sweep := time.NewTicker(min(max(h.lim.MaxInterval/4, 100*time.Millisecond), 5*time.Second))
	defer sweep.Stop()
	for {
		select {
		case cs := <-h.changes:
			h.dispatch(ctx, cs)
		case now := <-sweep.C:
			h.sweep(now)
		case <-ctx.Done():
			h.shutdown()
			return
		}
	}
}

func (h *Hub) shutdown() {
	h.mu.Lock()
	h.stopped = true
	all := make([]*client, 0, len(h.clients))
	for _, c := range h.clients {
		all = append(all, c)
	}
	h.mu.Unlock()
	for _, c := range all {
		h.remove(c, errStopping, "")
	}
	close(h.stop)
	h.conns.Wait()
}

// sweep removes the clients that have not been heard of for longer than
// MaxInterval: neither a /meta/connect held nor one ended since.
func (h *Hub) sweep(now time.Time) {
	h.mu.RLock()
	var idle []*client
	for _, c := range h.clients {
		if c.idleSince(now) > h.lim.MaxInterval {
			idle = append(idle, c)
		}
	}
	h.mu.RUnlock()
	for _, c := range idle {
		h.remove(c, errUnknownClient, "idle")
	}
}

// newClient registers a client of u, within the limits.
func (h *Hub) newClient(u store.User, now time.Time) (*client, error) {
	id, err := newClientID()
	if err != nil {
		return nil, err
	}
	user := u.Tenant + "/" + u.UserName
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.stopped:
		return nil, errStopping
	case len(h.clients) >= h.lim.Clients:
		h.cfg.Refused.Refuse(CauseClientsFull, "--realtime-max-clients", "user", user)
		return nil, fmt.Errorf("%w: the agent holds %d realtime clients, its most (--realtime-max-clients)", errBusy, h.lim.Clients)
	case h.perUser[user] >= h.lim.ClientsPerUser:
		h.cfg.Refused.Refuse(CauseUserClientsFull, "--realtime-max-clients-per-user", "user", user)
		return nil, fmt.Errorf("%w: user %s has %d realtime clients, the most one user may have (--realtime-max-clients-per-user); disconnect one first", errBusy, user, h.lim.ClientsPerUser)
	}
	c := newClient(id, u, user, now, h.metrics.held)
	h.clients[id] = c
	h.perUser[user]++
	h.metrics.clients.Set(float64(len(h.clients)))
	return c, nil
}

// client returns the live client of id.
func (h *Hub) client(id string) (*client, bool) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	c, ok := h.clients[id]
	return c, ok
}

// remove ends a client: out of the hub and its subscriptions at once,
// its queue freed, and whoever waits for it woken with why.
func (h *Hub) remove(c *client, why error, dropped string) {
	h.mu.Lock()
	if h.clients[c.id] != c {
		h.mu.Unlock()
		return
	}
	delete(h.clients, c.id)
	if h.perUser[c.user]--; h.perUser[c.user] <= 0 {
		delete(h.perUser, c.user)
	}
	changed := len(c.subs) > 0
	for ch := range c.subs {
		h.unsubscribeLocked(c, ch)
	}
	if changed {
		h.refreshInterest()
	}
	h.metrics.clients.Set(float64(len(h.clients)))
	h.mu.Unlock()
	if dropped != "" {
		h.metrics.dropped.WithLabelValues(dropped).Inc()
	}
	c.end(why)
}

// subscribe adds channels (already checked) to the client's
// subscriptions, all of them or none when they would pass the limit.
func (h *Hub) subscribe(c *client, chans []channel) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.clients[c.id] != c {
		return errUnknownClient
	}
	n := len(c.subs)
	for _, ch := range chans {
		if _, ok := c.subs[ch.name]; !ok {
			n++
		}
	}
	if n > h.lim.Subscriptions {
		h.cfg.Refused.Refuse(CauseSubscriptionsFull, "--realtime-max-subscriptions", "user", c.user)
		return fmt.Errorf("%w: a client may subscribe to %d channels at most (--realtime-max-subscriptions)", errForbidden, h.lim.Subscriptions)
	}
	t := h.tenants[c.tenant]
	if t == nil {
		t = &tenantSubs{}
		h.tenants[c.tenant] = t
	}
	for _, ch := range chans {
		if _, ok := c.subs[ch.name]; ok {
			continue
		}
		c.subs[ch.name] = ch
		m := t.byKind[ch.kind]
		if m == nil {
			m = map[string]map[*client]struct{}{}
			t.byKind[ch.kind] = m
		}
		set := m[ch.id]
		if set == nil {
			set = map[*client]struct{}{}
			m[ch.id] = set
		}
		set[c] = struct{}{}
		h.count(c.tenant, ch.kind, 1)
	}
	h.refreshInterest()
	return nil
}

func (h *Hub) unsubscribe(c *client, chans []channel) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ch := range chans {
		h.unsubscribeLocked(c, ch.name)
	}
	h.refreshInterest()
}

func (h *Hub) unsubscribeLocked(c *client, name string) {
	ch, ok := c.subs[name]
	if !ok {
		return
	}
	delete(c.subs, name)
	h.count(c.tenant, ch.kind, -1)
	t := h.tenants[c.tenant]
	set := t.byKind[ch.kind][ch.id]
	delete(set, c)
	if len(set) == 0 {
		delete(t.byKind[ch.kind], ch.id)
	}
	for _, m := range t.byKind {
		if len(m) > 0 {
			return
		}
	}
	delete(h.tenants, c.tenant)
}

// count adds n to the subscriptions of a tenant's kind; h.mu is held.
func (h *Hub) count(tenant string, k kind, n int32) {
	c := h.counts[tenant]
	c[k] += n
	if c == ([numKinds]int32{}) {
		delete(h.counts, tenant)
	} else {
		h.counts[tenant] = c
	}
	h.nsubs += int(n)
}

// refreshInterest publishes the writers' view of the counts, a copy
// (tenants, not subscriptions, make its cost); h.mu is held.
func (h *Hub) refreshInterest() {
	m := make(map[string][numKinds]int32, len(h.counts))
	for tenant, n := range h.counts {
		m[tenant] = n
	}
	h.interest.Store(&m)
	h.metrics.subscriptions.Set(float64(h.nsubs))
}

// recipients appends to buf the clients subscribed to device's channel
// of kind in tenant, or to all of kind, each once.
func (h *Hub) recipients(buf []*client, tenant string, k kind, device string) []*client {
	h.mu.RLock()
	defer h.mu.RUnlock()
	t := h.tenants[tenant]
	if t == nil {
		return buf
	}
	all := t.byKind[k][wildcard]
	for c := range all {
		buf = append(buf, c)
	}
	if device == wildcard {
		return buf
	}
	for c := range t.byKind[k][device] {
		if _, dup := all[c]; !dup {
			buf = append(buf, c)
		}
	}
	return buf
}

// dispatch sends each change to the clients subscribed to it.
func (h *Hub) dispatch(ctx context.Context, cs []change) {
	var buf []*client
	for _, c := range cs {
		if c.obj == nil && c.action != actionDelete {
			if c.device != "" {
				if buf = h.recipients(buf[:0], c.tenant, c.kind, c.device); len(buf) == 0 {
					continue
				}
			} else if !h.wants(c.tenant, c.kind) {
				continue
			}
			var err error
			if c, err = h.fetch(ctx, c); err != nil {
				if !errors.Is(err, store.ErrNotFound) && ctx.Err() == nil {
					h.metrics.lost.Inc()
					h.cfg.Refused.Refuse(CauseChangesLost, "", "reason", "read failed", "err", err)
				}
				continue
			}
		}
		if buf = h.recipients(buf[:0], c.tenant, c.kind, c.device); len(buf) == 0 {
			continue
		}
		msg, err := h.encode(ctx, c)
		if err != nil {
			h.log.Error("encode notification", "channel", c.channel(), "err", err)
			continue
		}
		q := queued{msg: msg, at: c.at}
		for _, cl := range buf {
			if !cl.enqueue(q, h.lim.Queue) {
				h.cfg.Refused.Refuse(CauseQueueFull, "--realtime-queue-size", "user", cl.user)
				h.remove(cl, fmt.Errorf("%w: its queue of %d messages was full; messages were lost", errDropped, h.lim.Queue), "queue_full")
			}
		}
	}
}

// fetch reads the object a change names, for a change whose write did
// not answer it.
func (h *Hub) fetch(ctx context.Context, c change) (change, error) {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	var err error
	switch c.kind {
	case kindOperation:
		var op store.Operation
		if op, err = h.cfg.Store.GetOperation(ctx, c.tenant, c.id); err == nil {
			c.obj, c.device = op, op.DeviceID
		}
	case kindManagedObject:
		var mo store.ManagedObject
		if mo, err = h.cfg.Store.GetManagedObject(ctx, c.tenant, c.id); err == nil {
			c.obj, c.device = mo, mo.ID
		}
	default:
		err = fmt.Errorf("no read for %s", prefixes[c.kind])
	}
	if err != nil {
		return c, fmt.Errorf("read %s%s: %w", prefixes[c.kind], c.id, err)
	}
	return c, nil
}

// message is a notification as Cumulocity sends it.
type message struct {
	Channel string  `json:"channel"`
	Data    payload `json:"data"`
	ID      string  `json:"id"`
}

type payload struct {
	RealtimeAction string `json:"realtimeAction"`
	Data           any    `json:"data"`
}

// encode renders the change's object as the REST API shows it and
// encodes its message once, for every recipient.
func (h *Hub) encode(ctx context.Context, c change) ([]byte, error) {
	var data any
	switch o := c.obj.(type) {
	case nil:
		data = c.id // a deletion carries the id
	case store.Measurement:
		data = render.Measurement(h.base, o)
	case store.Event:
		data = render.Event(h.base, o)
	case store.Alarm:
		data = render.Alarm(h.base, o)
	case store.Operation:
		data = render.Operation(h.base, o)
	case store.ManagedObject:
		// with its references, as GET /inventory/managedObjects/{id}
		// shows it
		mo := render.ManagedObject(h.base, o)
		rctx, cancel := context.WithTimeout(ctx, fetchTimeout)
		err := render.WithReferences(rctx, h.base, h.cfg.Store, c.tenant, mo)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("references of %s: %w", o.ID, err)
		}
		data = mo
	case deviceValues:
		data = render.Values(h.base, c.device, o)
	default:
		return nil, fmt.Errorf("no rendering of %T", o)
	}
	m := message{Channel: c.channel(), Data: payload{RealtimeAction: c.action, Data: render.Scrubbed(data)},
		ID: strconv.FormatUint(h.msgID.Add(1), 10)}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// newClientID is a client's id, which is all a request needs to act as
// the client after the handshake: unguessable.
func newClientID() (string, error) {
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("client id: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
