package session

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

type valueBatch struct {
	tenant, device string
	recs           []node.Record
}

// ValueWriter stores the last known value of every resource a device
// reports. Writes are batched and coalesced: of many values for one path in
// a batch only the newest is written. Its queue is bounded; when the store
// falls behind, Add blocks (back-pressure reaches the device's exchange)
// rather than growing without limit.
type ValueWriter struct {
	st       store.Engine
	in       chan valueBatch
	interval time.Duration
	maxBatch int
	log      *slog.Logger
	written  atomic.Int64
	failed   atomic.Int64
	done     chan struct{}
}

// NewValueWriter returns a writer with a queue of queue batches.
func NewValueWriter(st store.Engine, queue int, interval time.Duration, log *slog.Logger) *ValueWriter {
	if queue <= 0 {
		queue = 4096
	}
	if interval <= 0 {
		interval = 50 * time.Millisecond
	}
	if log == nil {
		log = slog.Default()
	}
	return &ValueWriter{st: st, in: make(chan valueBatch, queue), interval: interval, maxBatch: 20000, log: log.With("component", "values"), done: make(chan struct{})}
}

// Add queues values of one device; it blocks while the queue is full.
func (w *ValueWriter) Add(ctx context.Context, tenant, device string, recs []node.Record) {
	// A value without the device's time is as of now: stamp it here, so
	// that coalescing compares times of arrival, not the batch's order.
	now := time.Now().UTC()
	copied := false
	for i, r := range recs {
		if r.Time.IsZero() {
			if !copied { // the caller's slice stays untouched
				recs, copied = append([]node.Record(nil), recs...), true
			}
			recs[i].Time = now
		}
	}
	select {
	case w.in <- valueBatch{tenant, device, recs}:
	case <-ctx.Done():
		w.failed.Add(int64(len(recs)))
		w.log.Warn("values dropped: queue full until the exchange ended", "device", device, "count", len(recs))
	}
}

// Written and Failed count values stored and values that could not be.
func (w *ValueWriter) Written() int64 { return w.written.Load() }
func (w *ValueWriter) Failed() int64  { return w.failed.Load() }

// Run writes batches until ctx ends, then drains what is queued.
func (w *ValueWriter) Run(ctx context.Context) {
	defer close(w.done)
	type key struct{ tenant, device string }
	pending := map[key]map[node.Path]node.Record{}
	add := func(b valueBatch) (int, bool) {
		k := key{b.tenant, b.device}
		m := pending[k]
		if m == nil {
			m = map[node.Path]node.Record{}
			pending[k] = m
		}
		n := 0
		for _, r := range b.recs {
			if old, ok := m[r.Path]; ok && r.Time.Before(old.Time) {
				continue
			}
			m[r.Path] = r
			n++
		}
		return n, false
	}
	flush := func(fctx context.Context) {
		for k, recs := range pending {
			vals := make([]store.ResourceValue, 0, len(recs))
			for _, r := range recs {
				vals = append(vals, store.ResourceValue{Path: r.Path.String(), Value: r.Value.Interface(), Type: r.Value.Type.String(), Time: r.Time})
			}
			if err := retry(fctx, func() error { return w.st.SaveValues(fctx, k.tenant, k.device, vals) }); err != nil {
				w.failed.Add(int64(len(vals)))
				w.log.Error("store values", "device", k.device, "count", len(vals), "err", err)
			} else {
				w.written.Add(int64(len(vals)))
			}
		}
		clear(pending)
	}
	batchLoop(ctx, w.in, w.interval, w.maxBatch, 5*time.Second, add, flush)
}

// Done is closed when Run has returned.
func (w *ValueWriter) Done() <-chan struct{} { return w.done }
