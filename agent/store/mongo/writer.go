package mongo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// ErrClosed is returned by Add after Close.
var ErrClosed = errors.New("measurement writer closed")

// WriterOptions configures a MeasurementWriter; zero fields take defaults.
type WriterOptions struct {
	MaxBatch      int           // measurements per write; default 2000
	FlushInterval time.Duration // longest wait before a partial batch is written; default 100 ms
	QueueSize     int           // measurements waiting beyond the batch being written; default 4 × MaxBatch
	Logger        *slog.Logger
}

// WriterStats counts what a writer did since it started.
type WriterStats struct {
	Written int64 // measurements stored
	Dropped int64 // measurements given up (rejected by the database, or still queued when Close ran out of time)
	Batches int64 // write rounds that succeeded
	Retries int64 // write rounds repeated after a transient error
}

// MeasurementWriter stores measurements in batches: one write round per
// batch, flushed by size or time. Its queue is bounded: when the database
// falls behind, Add blocks (back-pressure) instead of memory growing. A
// batch that fails with a transient error (network, timeout, no server)
// is retried with backoff, keeping its IDs, until it is stored or the
// writer is closed. One goroutine, owned by the writer, does the writing;
// Close stops it.
type MeasurementWriter struct {
	s    *Store
	o    WriterOptions
	log  *slog.Logger
	in   chan tenantMeasurement
	mu   sync.RWMutex // guards closed against sends on a closed channel
	done chan struct{}
	stop context.CancelFunc
	ctx  context.Context

	closed                             bool
	written, dropped, batches, retries atomic.Int64
}

// NewMeasurementWriter starts a writer into s.
func NewMeasurementWriter(s *Store, o WriterOptions) *MeasurementWriter {
	if o.MaxBatch <= 0 {
		o.MaxBatch = 2000
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = 100 * time.Millisecond
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 4 * o.MaxBatch
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &MeasurementWriter{
		s: s, o: o, log: log.With("component", "measurement-writer"),
		in: make(chan tenantMeasurement, o.QueueSize), done: make(chan struct{}),
		ctx: ctx, stop: cancel,
	}
	go w.run()
	return w
}

// Add queues a measurement of tenant. It blocks while the queue is full,
// until there is room or ctx ends (then it returns ctx's error and the
// measurement is not queued).
func (w *MeasurementWriter) Add(ctx context.Context, tenant string, m store.Measurement) error {
	if err := checkMeasurement(m); err != nil {
		return err
	}
	if m.Time.IsZero() {
		m.Time = now()
	}
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return ErrClosed
	}
	select {
	case w.in <- tenantMeasurement{tenant: tenant, m: m}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("queue measurement: %w", ctx.Err())
	}
}

// Stats returns the writer's counters.
func (w *MeasurementWriter) Stats() WriterStats {
	return WriterStats{Written: w.written.Load(), Dropped: w.dropped.Load(), Batches: w.batches.Load(), Retries: w.retries.Load()}
}

// Close stops accepting measurements and writes what is queued. If ctx
// ends first, writing stops, the rest is dropped (and counted), and Close
// returns ctx's error.
func (w *MeasurementWriter) Close(ctx context.Context) error {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.in)
	}
	w.mu.Unlock()
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		w.stop()
		<-w.done
		return fmt.Errorf("close measurement writer: %w", ctx.Err())
	}
}

func (w *MeasurementWriter) run() {
	defer close(w.done)
	defer w.stop()
	batch := make([]tenantMeasurement, 0, w.o.MaxBatch)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		var (
			it tenantMeasurement
			ok bool
		)
		if len(batch) == 0 {
			it, ok = <-w.in
		} else {
			select {
			case it, ok = <-w.in:
			case <-timer.C:
				w.flush(batch)
				batch = batch[:0]
				continue
			}
		}
		if !ok {
			w.flush(batch)
			return
		}
		if len(batch) == 0 {
			timer.Reset(w.o.FlushInterval)
		}
		it.pos = len(batch)
		batch = append(batch, it)
		if len(batch) >= w.o.MaxBatch {
			timer.Stop()
			w.flush(batch)
			batch = batch[:0]
		}
	}
}

// flush writes one batch, retrying transient errors until the writer is
// stopped.
func (w *MeasurementWriter) flush(batch []tenantMeasurement) {
	if len(batch) == 0 {
		return
	}
	n := int64(len(batch))
	var docs []any
	backoff := 50 * time.Millisecond
	for attempt := 0; ; attempt++ {
		var err error
		if docs == nil {
			docs, _, err = w.s.buildBuckets(w.ctx, batch)
		}
		if err == nil {
			err = w.s.insertBuckets(w.ctx, docs, attempt > 0)
		}
		if err == nil {
			w.written.Add(n)
			w.batches.Add(1)
			return
		}
		if w.ctx.Err() != nil || !transient(err) {
			w.dropped.Add(n)
			w.log.Error("measurements dropped", "count", n, "err", err)
			return
		}
		w.retries.Add(1)
		w.log.Warn("measurement write failed, retrying", "count", n, "attempt", attempt+1, "err", err)
		select {
		case <-time.After(backoff):
		case <-w.ctx.Done():
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// transient reports whether an error may go away by itself.
func transient(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || mongo.IsNetworkError(err) || mongo.IsTimeout(err) {
		return true
	}
	var se mongo.ServerError
	if errors.As(err, &se) && se.HasErrorLabel("RetryableWriteError") {
		return true
	}
	var sel topology.ServerSelectionError
	return errors.As(err, &sel)
}
