package store

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testFn stands for the functionality type, which the cache never looks
// into.
type testFn struct{}

func (testFn) Validate() error { return nil }

func TestProtocolCache(t *testing.T) {
	ctx := context.Background()
	c := newProtocolCache[testFn](16, time.Minute)
	clock := time.Unix(0, 0)
	c.now = func() time.Time { return clock }
	var loads atomic.Int32
	release := make(chan struct{})
	load := func(context.Context) (*Protocol[testFn], error) {
		loads.Add(1)
		<-release
		return &Protocol[testFn]{Source: "x"}, nil
	}
	k := cacheKey{tenant: "t", object: 1}

	// Concurrent misses share one load.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if p, err := c.get(ctx, k, load); err != nil || p.Source != "x" {
				t.Errorf("get: %v %v", p, err)
			}
		})
	}
	time.Sleep(20 * time.Millisecond)
	close(release)
	wg.Wait()
	if n := loads.Load(); n != 1 {
		t.Fatalf("%d loads for concurrent misses, want 1", n)
	}
	// A hit does not load; an expired entry does; clear forgets.
	c.get(ctx, k, load)
	if loads.Load() != 1 {
		t.Fatal("hit loaded")
	}
	clock = clock.Add(2 * time.Minute)
	c.get(ctx, k, load)
	if loads.Load() != 2 {
		t.Fatal("expired entry not loaded again")
	}
	c.clear()
	c.get(ctx, k, load)
	if loads.Load() != 3 {
		t.Fatal("cleared entry not loaded again")
	}
	// Errors are kept only briefly.
	boom := errors.New("boom")
	ek := cacheKey{tenant: "t", object: 2}
	c.get(ctx, ek, func(context.Context) (*Protocol[testFn], error) { return nil, boom })
	if _, err := c.get(ctx, ek, load); !errors.Is(err, boom) {
		t.Fatalf("error not cached: %v", err)
	}
	clock = clock.Add(2 * protocolErrorTTL)
	if p, err := c.get(ctx, ek, load); err != nil || p == nil {
		t.Fatalf("error cached too long: %v", err)
	}
	// The cache stays within its size.
	for i := range 100 {
		c.get(ctx, cacheKey{tenant: "t", object: uint16(100 + i)}, load)
		if len(c.m) > c.size {
			t.Fatalf("%d entries, bound %d", len(c.m), c.size)
		}
	}
}

// A load that began before a write does not store what it read.
func TestProtocolCacheWriteDuringLoad(t *testing.T) {
	ctx := context.Background()
	c := newProtocolCache[testFn](16, time.Minute)
	k := cacheKey{tenant: "t", object: 1}
	c.get(ctx, k, func(context.Context) (*Protocol[testFn], error) {
		c.clear() // a write lands while the read is under way
		return &Protocol[testFn]{Source: "stale"}, nil
	})
	p, _ := c.get(ctx, k, func(context.Context) (*Protocol[testFn], error) { return &Protocol[testFn]{Source: "fresh"}, nil })
	if p.Source != "fresh" {
		t.Fatalf("got %q, want the value read after the write", p.Source)
	}
}

func BenchmarkFunctionalitiesCached(b *testing.B) {
	c := newProtocolCache[testFn](16, time.Minute)
	ctx := context.Background()
	k := cacheKey{tenant: "t", object: 3303}
	load := func(context.Context) (*Protocol[testFn], error) { return &Protocol[testFn]{}, nil }
	c.get(ctx, k, load)
	b.ReportAllocs()
	for b.Loop() {
		c.get(ctx, k, load)
	}
}
