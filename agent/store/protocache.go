package store

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Bounds of the protocol cache. An entry is one (tenant, object) pair;
// a few thousand cover every object of every active tenant of a large
// deployment, and a miss costs only one or two reads by _id.
const (
	protocolCacheSize = 8192
	protocolCacheTTL  = 30 * time.Second
	// protocolErrorTTL keeps a failed lookup's fallback briefly, so that
	// a database outage costs one read per object and interval instead of
	// one per value.
	protocolErrorTTL = time.Second
)

type cacheKey struct {
	tenant string
	global bool
	object uint16
}

type cacheEntry[F Functionality] struct {
	p       *Protocol[F] // nil: no definition anywhere
	err     error
	expires time.Time
}

// flight is a lookup under way; others asking for the same key wait for it.
type flight[F Functionality] struct {
	done chan struct{}
	p    *Protocol[F]
	err  error
}

// protocolCache holds effective protocols by tenant and object. clear
// empties it and bumps gen, so that a lookup that started before a write
// does not store what it read before the write.
type protocolCache[F Functionality] struct {
	mu  sync.Mutex
	gen uint64
	// generation is gen for readers that take no lock: the mapper asks
	// for it with every batch of values.
	generation atomic.Uint64
	m          map[cacheKey]cacheEntry[F]
	flights    map[cacheKey]*flight[F]
	size       int
	ttl        time.Duration
	now        func() time.Time
}

func newProtocolCache[F Functionality](size int, ttl time.Duration) *protocolCache[F] {
	return &protocolCache[F]{m: make(map[cacheKey]cacheEntry[F]), flights: make(map[cacheKey]*flight[F]), size: size, ttl: ttl, now: time.Now}
}

// currentGeneration counts the writes that cleared the cache.
func (c *protocolCache[F]) currentGeneration() uint64 { return c.generation.Load() }

func (c *protocolCache[F]) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.generation.Store(c.gen)
	clear(c.m)
}

// get answers k from the cache or load; concurrent misses of one key share
// one load.
func (c *protocolCache[F]) get(ctx context.Context, k cacheKey, load func(context.Context) (*Protocol[F], error)) (*Protocol[F], error) {
	c.mu.Lock()
	if e, ok := c.m[k]; ok && c.now().Before(e.expires) {
		c.mu.Unlock()
		return e.p, e.err
	}
	if f, ok := c.flights[k]; ok {
		c.mu.Unlock()
		select {
		case <-f.done:
			return f.p, f.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f := &flight[F]{done: make(chan struct{})}
	c.flights[k] = f
	gen := c.gen
	c.mu.Unlock()

	// The load is shared, so it must not end with the first caller's
	// context; it has its own bound.
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), resolveTimeout)
	f.p, f.err = load(lctx)
	cancel()

	c.mu.Lock()
	delete(c.flights, k)
	if gen == c.gen {
		ttl := c.ttl
		if f.err != nil {
			ttl = min(ttl, protocolErrorTTL)
		}
		if len(c.m) >= c.size {
			// Drop an arbitrary eighth: cheap, and a dropped entry costs
			// one read.
			n := c.size / 8
			for k := range c.m {
				if n--; n < 0 {
					break
				}
				delete(c.m, k)
			}
		}
		c.m[k] = cacheEntry[F]{p: f.p, err: f.err, expires: c.now().Add(ttl)}
	}
	c.mu.Unlock()
	close(f.done)
	return f.p, f.err
}
