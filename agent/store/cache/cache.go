package cache

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// Config sizes a Cache.
type Config struct {
	// Size bounds each cache (endpoints, identities, records, queues) to
	// this many known answers, plus a quarter of it for ErrNotFound
	// answers; the least recently used go first. 0 turns caching off:
	// Wrap returns the engine itself.
	Size int
	// TTL is how long an answer is kept after the read that loaded it
	// began; 0 keeps it until a change made through the cache drops it
	// or it is pushed out. Use one above 0 whenever another process
	// writes the same database.
	TTL time.Duration
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// Cache holds the answers shared by every engine it wraps: a change made
// through one wrapper (the API's pool) is seen through the others (the
// LwM2M server's). It starts no goroutine.
type Cache struct {
	// mu guards everything below; a hit holds it for a map lookup and a
	// list move. One lock for the four caches keeps the device
	// generations consistent with every fill.
	mu   sync.Mutex
	ttl  int64 // nanoseconds; 0: none
	now  func() time.Time
	base time.Time

	// devGens is a generation per stripe of devices: an endpoint or
	// identity entry naming a device is valid while its stripe's
	// generation is the one it was filled under. devEpoch counts every
	// device invalidation, so that a load under way during one is not
	// kept.
	devSeed  maphash.Seed
	devGens  [stripes]uint64
	devEpoch uint64

	endpoints  *lru[string, owner]
	identities *lru[identKey, owner]
	records    *lru[devKey, record]
	queues     *lru[devKey, queue]
	// postOps are the tenants' post-registration commands, read on every
	// Register.
	postOps *lru[string, []string]
}

// refuseStale is the rule above; only a test turns it off, to show what
// it prevents.
var refuseStale = true

// stripes is how many generations each cache keeps per key space: a
// fill is refused when an invalidation of another key of its stripe
// came during its load, which costs a read later, never a stale answer.
const stripes = 1024

// New returns an empty cache; wrap engines with Wrap.
func New(cfg Config) *Cache {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	size := max(cfg.Size, 0)
	neg := max(size/4, 1)
	return &Cache{
		ttl: int64(max(cfg.TTL, 0)), now: cfg.Now, base: cfg.Now(), devSeed: maphash.MakeSeed(),
		endpoints:  newLRU[string, owner]("endpoints", size, neg),
		identities: newLRU[identKey, owner]("identities", size, neg),
		records:    newLRU[devKey, record]("registrations", size, neg),
		queues:     newLRU[devKey, queue]("queues", size, neg),
		postOps:    newLRU[string, []string]("post_operations", size, neg),
	}
}

// Wrap returns e behind the cache; without a size, e itself. Wrap every
// engine over the same database with the same Cache.
func (c *Cache) Wrap(e store.Engine) store.Engine {
	if c == nil || c.endpoints.posCap == 0 {
		return e
	}
	return &Engine{Telemetry: e, Binaries: e, ProtocolRecords: e, Tenants: e, Retention: e, DecodeBacklog: e, FirmwareGrants: e, References: e, DTLSSessions: e, e: e, c: c}
}

type devKey struct{ tenant, device string }

type identKey struct{ kind, identity string }

// owner is the answer of DeviceByEndpoint or DeviceByPSKIdentity.
type owner struct {
	tenant, device string
	err            error // ErrNotFound (as the engine wrapped it) or nil
}

// record is the answer of DeviceSettings; reg is never handed out, only
// copies of it.
type record struct {
	reg store.DeviceRegistration
	err error
}

// queue is an empty answer of Pending: nil, or an empty slice (handed
// out new each time, so that no two callers share one).
type queue struct{ slice bool }

// clock is the time since the cache's start, monotonic.
func (c *Cache) clock() int64 { return int64(c.now().Sub(c.base)) }

func (c *Cache) devStripe(k devKey) int {
	return int(maphash.Comparable(c.devSeed, k) % stripes)
}

// token is what a load notes before it asks the store, to tell at its
// fill whether an invalidation came meanwhile.
type token struct {
	gen, epoch, devEpoch uint64
	start                int64
}

// entry is one answer; prev and next link it in its list, newest first.
type entry[K comparable, V any] struct {
	prev, next *entry[K, V]
	key        K
	val        V
	neg        bool
	expires    int64  // on the cache's clock; 0: never
	epoch      uint64 // the lru's epoch at the fill
	dev        int    // stripe of the device the answer names; -1: none
	devGen     uint64
}

// ring is a list of entries around a sentinel, newest first.
type ring[K comparable, V any] struct {
	root entry[K, V]
	n    int
}

func (r *ring[K, V]) init() { r.root.prev, r.root.next = &r.root, &r.root }

func (r *ring[K, V]) pushFront(e *entry[K, V]) {
	e.prev, e.next = &r.root, r.root.next
	e.prev.next, e.next.prev = e, e
	r.n++
}

func (r *ring[K, V]) unlink(e *entry[K, V]) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
	r.n--
}

// oldest is the least recently used entry, nil when empty.
func (r *ring[K, V]) oldest() *entry[K, V] {
	if r.n == 0 {
		return nil
	}
	return r.root.prev
}

// lru is one cache: a map bounded by its two lists, one for known
// answers and one for ErrNotFound ones. The Cache's mu guards it but for
// the counters, which metrics read without it.
type lru[K comparable, V any] struct {
	name           string
	items          map[K]*entry[K, V]
	pos, neg       ring[K, V]
	posCap, negCap int
	seed           maphash.Seed
	gens           [stripes]uint64
	// epoch is bumped to drop every entry at once (a change the cache
	// cannot tie to a key); entries of an older epoch are stale.
	epoch                   uint64
	hits, misses, evictions atomic.Uint64
}

func newLRU[K comparable, V any](name string, posCap, negCap int) *lru[K, V] {
	l := &lru[K, V]{name: name, items: map[K]*entry[K, V]{}, posCap: posCap, negCap: negCap, seed: maphash.MakeSeed()}
	l.pos.init()
	l.neg.init()
	return l
}

func (l *lru[K, V]) stripe(k K) int { return int(maphash.Comparable(l.seed, k) % stripes) }

func (l *lru[K, V]) list(neg bool) *ring[K, V] {
	if neg {
		return &l.neg
	}
	return &l.pos
}

func (l *lru[K, V]) remove(e *entry[K, V]) {
	l.list(e.neg).unlink(e)
	delete(l.items, e.key)
}

// get returns k's answer if it is cached and still valid, and otherwise
// the token its load must note.
func (l *lru[K, V]) get(c *Cache, k K) (v V, ok bool, t token) {
	now := c.clock()
	if e := l.items[k]; e != nil {
		if (e.expires == 0 || now < e.expires) && e.epoch == l.epoch && (e.dev < 0 || c.devGens[e.dev] == e.devGen) {
			l.hits.Add(1)
			if e.prev != &l.list(e.neg).root {
				l.list(e.neg).unlink(e)
				l.list(e.neg).pushFront(e)
			}
			return e.val, true, t
		}
		l.remove(e)
	}
	l.misses.Add(1)
	return v, false, token{gen: l.gens[l.stripe(k)], epoch: l.epoch, devEpoch: c.devEpoch, start: now}
}

// put keeps v, loaded under t, as k's answer unless an invalidation that
// could cover k came since t was taken. dev, when set, is the device the
// answer names, whose invalidation makes it stale.
func (l *lru[K, V]) put(c *Cache, k K, v V, neg bool, dev *devKey, t token) {
	if refuseStale && (l.gens[l.stripe(k)] != t.gen || l.epoch != t.epoch || c.devEpoch != t.devEpoch) {
		return
	}
	if e := l.items[k]; e != nil {
		l.remove(e) // a concurrent load filled it: the newer load wins
	}
	e := &entry[K, V]{key: k, val: v, neg: neg, epoch: l.epoch, dev: -1}
	if c.ttl > 0 {
		e.expires = t.start + c.ttl
	}
	if dev != nil {
		e.dev = c.devStripe(*dev)
		e.devGen = c.devGens[e.dev]
	}
	list, room := l.list(neg), l.posCap
	if neg {
		room = l.negCap
	}
	for list.n >= room {
		l.remove(list.oldest())
		l.evictions.Add(1)
	}
	list.pushFront(e)
	l.items[k] = e
}

// drop invalidates k: its entry goes, and a load of it under way will
// not be kept.
func (l *lru[K, V]) drop(k K) {
	l.gens[l.stripe(k)]++
	if e := l.items[k]; e != nil {
		l.remove(e)
	}
}

// dropAll invalidates every key at once, in O(1): entries of the old
// epoch go as they are met or pushed out.
func (l *lru[K, V]) dropAll() { l.epoch++ }

func (l *lru[K, V]) len() int { return l.pos.n + l.neg.n }

// lookup answers k from l, or loads it with load and keeps the answer
// when load says it may be kept (keep), as a negative entry when neg,
// naming the device dev when not nil. The value returned on a hit is
// the cached one: callers hand out copies of what is not immutable.
func lookup[K comparable, V any](c *Cache, l *lru[K, V], k K, load func() (v V, keep, neg bool, dev *devKey)) V {
	c.mu.Lock()
	v, ok, t := l.get(c, k)
	c.mu.Unlock()
	if ok {
		return v
	}
	v, keep, neg, dev := load()
	if keep {
		c.mu.Lock()
		l.put(c, k, v, neg, dev, t)
		c.mu.Unlock()
	}
	return v
}

// change is what a write may have changed, dropped after the write.
type change struct {
	endpoints  []string
	identities []identKey
	// records and queues are dropped by key; devices also make stale
	// every endpoint and identity entry that names them.
	records, queues, devices []devKey
	allRecords, allQueues    bool
	postOps                  string // a tenant whose post-registration commands changed
}

// apply invalidates what ch names. It is called after the write, even a
// failed one (which may have been applied before the error).
func (c *Cache) apply(ch change) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ep := range ch.endpoints {
		c.endpoints.drop(ep)
	}
	for _, k := range ch.identities {
		c.identities.drop(k)
	}
	for _, k := range ch.records {
		c.records.drop(k)
	}
	for _, k := range ch.queues {
		c.queues.drop(k)
	}
	for _, k := range ch.devices {
		c.devEpoch++
		c.devGens[c.devStripe(k)]++
	}
	if ch.postOps != "" {
		c.postOps.drop(ch.postOps)
	}
	if ch.allRecords {
		c.records.dropAll()
	}
	if ch.allQueues {
		c.queues.dropAll()
	}
}
