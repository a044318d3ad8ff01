package session

import (
	"context"
	"log/slog"
	"maps"
	"sync/atomic"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// stateChange is what one registration event changes in the store: the
// device's fragments and one lifecycle event.
type stateChange struct {
	tenant, device string
	fragments      bson.M
	event          store.Event
}

// StateWriter writes registration state (availability, connection, the
// lwm2m fragment) and lifecycle events in batches: per flush, one bulk
// update of the fragments of every device that changed (later changes of a
// device override earlier ones fragment by fragment) and one insert of all
// events, per tenant. A burst of thousands of registrations so costs a few
// round trips instead of two per device. The queue is bounded; when the
// store falls behind, Add blocks, which holds the device's exchange back.
type StateWriter struct {
	st       store.Engine
	in       chan stateChange
	interval time.Duration
	maxBatch int
	log      *slog.Logger
	done     chan struct{}
	events   atomic.Int64
	failed   atomic.Int64
	flushes  atomic.Int64
}

// NewStateWriter returns a writer with a queue of queue changes.
func NewStateWriter(st store.Engine, queue int, interval time.Duration, log *slog.Logger) *StateWriter {
	if queue <= 0 {
		queue = 8192
	}
	if interval <= 0 {
		interval = 10 * time.Millisecond
	}
	if log == nil {
		log = slog.Default()
	}
	return &StateWriter{st: st, in: make(chan stateChange, queue), interval: interval, maxBatch: 1000, log: log.With("component", "state"), done: make(chan struct{})}
}

// Add queues a change; it blocks while the queue is full.
func (w *StateWriter) Add(ctx context.Context, c stateChange) {
	select {
	case w.in <- c:
	case <-ctx.Done():
		w.failed.Add(1)
		w.log.Error("registration state not stored: queue full until the exchange ended", "device", c.device, "event", c.event.Type)
	}
}

// Events counts lifecycle events stored; Failed counts changes lost.
func (w *StateWriter) Events() int64 { return w.events.Load() }
func (w *StateWriter) Failed() int64 { return w.failed.Load() }

// Flushes counts the store rounds: the writes of one tenant's batch (one
// UpdateFragmentsMany and one CreateEvents, with their retries).
func (w *StateWriter) Flushes() int64 { return w.flushes.Load() }

// Done is closed when Run has returned.
func (w *StateWriter) Done() <-chan struct{} { return w.done }

type tenantBatch struct {
	fragments map[string]map[string]any
	events    []store.Event
}

// Run writes batches until ctx ends, then drains the queue.
func (w *StateWriter) Run(ctx context.Context) {
	defer close(w.done)
	batch := map[string]*tenantBatch{}
	add := func(c stateChange) int {
		b := batch[c.tenant]
		if b == nil {
			b = &tenantBatch{fragments: map[string]map[string]any{}}
			batch[c.tenant] = b
		}
		switch f := b.fragments[c.device]; {
		case len(c.fragments) == 0: // an event alone, such as a security event
		case f != nil:
			maps.Copy(f, c.fragments)
		default:
			b.fragments[c.device] = maps.Clone(c.fragments)
		}
		if c.event.Type != "" {
			b.events = append(b.events, c.event)
		}
		return 1
	}
	flush := func(ctx context.Context) {
		for tenant, b := range batch {
			w.flush(ctx, tenant, b)
		}
		clear(batch)
	}
	batchLoop(ctx, w.in, w.interval, w.maxBatch, 10*time.Second, add, flush)
}

func (w *StateWriter) flush(ctx context.Context, tenant string, b *tenantBatch) {
	w.flushes.Add(1)
	if len(b.fragments) > 0 {
		w.flushFragments(ctx, tenant, b)
	}
	if len(b.events) == 0 {
		return
	}
	err := retry(ctx, func() error {
		_, err := w.st.CreateEvents(ctx, tenant, b.events)
		return err
	})
	if err != nil {
		w.failed.Add(int64(len(b.events)))
		w.log.Error("store lifecycle events", "tenant", tenant, "events", len(b.events), "err", err)
		return
	}
	w.events.Add(int64(len(b.events)))
}

func (w *StateWriter) flushFragments(ctx context.Context, tenant string, b *tenantBatch) {
	err := retry(ctx, func() error {
		missing, err := w.st.UpdateFragmentsMany(ctx, tenant, b.fragments)
		for _, id := range missing {
			w.log.Warn("registration of a deleted device", "tenant", tenant, "device", id)
		}
		return err
	})
	if err != nil {
		w.failed.Add(int64(len(b.fragments)))
		w.log.Error("store registration state", "tenant", tenant, "devices", len(b.fragments), "err", err)
	}
}

// retry runs f up to three times with a short backoff, for a store that is
// briefly unavailable.
func retry(ctx context.Context, f func() error) error {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = f(); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(attempt+1) * 100 * time.Millisecond):
		}
	}
	return err
}
