package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync/atomic"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// stateChange is what one registration event changes in the store: the
// device's fragments and one lifecycle event.
type stateChange struct {
	tenant, device string
	fragments      map[string]any
	event          store.Event
	// create, when set, is the endpoint of a device that does not exist
	// yet: it is created, as auto-registration creates it, with these
	// fragments and event.
	create string
	wait   *stateWait // nil: nobody waits for it (Add)
}

// A waited-for change's state: the writer takes a queued change and a
// caller whose context ended withdraws it, whichever comes first, so that
// a change is either written and answered or never written.
const (
	changeQueued int32 = iota
	changeTaken
	changeWithdrawn
)

// stateWait is how the writer answers a caller of AddDurable.
type stateWait struct {
	state    atomic.Int32
	deadline time.Time  // the caller's; zero: none
	done     chan error // buffered: the writer never waits for the caller
}

// errWriterStopped is the error of a change added after Run returned.
var errWriterStopped = errors.New("the state writer has stopped")

// StateWriter writes registration state (availability, connection, the
// lwm2m fragment) and lifecycle events in batches: per flush and tenant,
// one SaveStates of the fragments of every device that changed (later
// changes of a device override earlier ones fragment by fragment) with
// all the events, which the embedded engine commits as one change. A
// burst of thousands of registrations so costs a few store calls instead
// of two per device. The queue is bounded; when the
// store falls behind, Add blocks, which holds the device's exchange back.
//
// Changes are written in the order they were added, whichever way: a
// change merged into an earlier one of its device overrides it, and a
// flush writes only after the one before it returned. A change nobody
// waits for is written within the interval; one added by AddDurable
// makes the writer flush at once, with everything queued meanwhile, so
// that the Registers of many devices at once share each store round.
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
	durable  atomic.Int64
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
	c.wait = nil
	select {
	case w.in <- c:
	case <-ctx.Done():
		w.failed.Add(1)
		w.log.Error("registration state not stored: queue full until the exchange ended", "device", c.device, "event", c.event.Type)
	}
}

// AddDurable queues a change and returns once it is durable in the store
// (nil), or why it is not. When ctx ends before the writer took the
// change, the change is withdrawn: it is never written, and AddDurable
// returns ctx's error. Once taken, AddDurable waits for the outcome of
// its flush, whose store calls end by the latest deadline of the callers
// waiting on it, so that an error other than ctx's means the change was
// not written (unless the store failed in the middle of applying it,
// which it cannot tell).
func (w *StateWriter) AddDurable(ctx context.Context, c stateChange) error {
	wait := &stateWait{done: make(chan error, 1)}
	wait.deadline, _ = ctx.Deadline()
	c.wait = wait
	select {
	case w.in <- c:
	case <-ctx.Done():
		return fmt.Errorf("queue the state of device %s: %w", c.device, ctx.Err())
	case <-w.done:
		return errWriterStopped
	}
	var why error
	select {
	case err := <-wait.done:
		return err
	case <-ctx.Done():
		why = ctx.Err()
	case <-w.done:
		// Run has answered every change it took
		why = errWriterStopped
	}
	if wait.state.CompareAndSwap(changeQueued, changeWithdrawn) {
		return fmt.Errorf("store the state of device %s: %w", c.device, why)
	}
	return <-wait.done
}

// Events counts lifecycle events stored; Failed counts changes lost.
func (w *StateWriter) Events() int64 { return w.events.Load() }
func (w *StateWriter) Failed() int64 { return w.failed.Load() }

// Flushes counts the store rounds: the writes of one tenant's batch (one
// SaveStates, with its retries; CreateEvents for events alone, or for
// the events of the changes nobody waited for when SaveStates failed).
func (w *StateWriter) Flushes() int64 { return w.flushes.Load() }

// Durable counts the changes added by AddDurable and answered stored.
func (w *StateWriter) Durable() int64 { return w.durable.Load() }

// Done is closed when Run has returned.
func (w *StateWriter) Done() <-chan struct{} { return w.done }

type tenantBatch struct {
	fragments map[string]map[string]any
	events    []store.Event
	waited    []bool // events[i] is of a change someone waits for
	waits     []*stateWait
	waitsFor  []string            // the device of waits[i]
	created   []store.NewEndpoint // devices created with their state
}

// Run writes batches until ctx ends, then drains the queue.
func (w *StateWriter) Run(ctx context.Context) {
	defer close(w.done)
	batch := map[string]*tenantBatch{}
	add := func(c stateChange) (int, bool) {
		if c.wait != nil && !c.wait.state.CompareAndSwap(changeQueued, changeTaken) {
			return 0, false // withdrawn: its caller has gone
		}
		b := batch[c.tenant]
		if b == nil {
			b = &tenantBatch{fragments: map[string]map[string]any{}}
			batch[c.tenant] = b
		}
		// Later over earlier: a device's changes are merged in the order
		// they were added, so a Register's state is never overwritten by
		// that of the De-register before it.
		switch f := b.fragments[c.device]; {
		case len(c.fragments) == 0: // an event alone, such as a security event
		case f != nil:
			maps.Copy(f, c.fragments)
		default:
			b.fragments[c.device] = maps.Clone(c.fragments)
		}
		if c.event.Type != "" {
			b.events = append(b.events, c.event)
			b.waited = append(b.waited, c.wait != nil)
		}
		if c.create != "" {
			b.created = append(b.created, store.NewEndpoint{ID: c.device, Endpoint: c.create})
		}
		if c.wait != nil {
			b.waits = append(b.waits, c.wait)
			b.waitsFor = append(b.waitsFor, c.device)
		}
		return 1, c.wait != nil
	}
	flush := func(ctx context.Context) {
		for tenant, b := range batch {
			w.flush(ctx, tenant, b)
		}
		clear(batch)
	}
	batchLoop(ctx, w.in, w.interval, w.maxBatch, 10*time.Second, add, flush)
}

// flush writes a tenant's batch and answers those waiting for it. With
// anyone waiting, the store calls end by the latest of their deadlines:
// each of them is answered within its own bound or a little after.
func (w *StateWriter) flush(ctx context.Context, tenant string, b *tenantBatch) {
	w.flushes.Add(1)
	var latest time.Time
	for _, wait := range b.waits {
		if wait.deadline.IsZero() {
			latest = time.Time{}
			break
		}
		if wait.deadline.After(latest) {
			latest = wait.deadline
		}
	}
	if !latest.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, latest)
		defer cancel()
	}
	var err error
	var conflicts []string
	if len(b.fragments) == 0 {
		err = w.flushEvents(ctx, tenant, b.events) // events alone
	} else if conflicts, err = w.flushStates(ctx, tenant, b); err != nil {
		// The registrations waited for are refused: no event of them.
		// The others' events are stored all the same, as they would be
		// had nobody waited.
		var others []store.Event
		for i, ev := range b.events {
			if !b.waited[i] {
				others = append(others, ev)
			}
		}
		if len(others) > 0 {
			err = errors.Join(err, w.flushEvents(ctx, tenant, others))
		}
	}
	for i, wait := range b.waits {
		if err == nil && slices.Contains(conflicts, b.waitsFor[i]) {
			wait.done <- fmt.Errorf("create device %s: %w", b.waitsFor[i], store.ErrConflict)
			continue
		}
		if err == nil {
			w.durable.Add(1)
		}
		wait.done <- err
	}
}

// flushStates writes a tenant's fragments and events, and creates the
// devices of b.created, in one store call. conflicts names the devices
// not created because their endpoint had a device already (a concurrent
// Register of it, here or on another replica): nothing of theirs is
// written.
func (w *StateWriter) flushStates(ctx context.Context, tenant string, b *tenantBatch) (conflicts []string, err error) {
	stored := 0
	err = retry(ctx, func() error {
		var missing []string
		var saved []store.Event
		var err error
		if len(b.created) > 0 {
			missing, conflicts, saved, err = w.st.SaveNewStates(ctx, tenant, b.created, b.fragments, b.events)
		} else {
			missing, saved, err = w.st.SaveStates(ctx, tenant, b.fragments, b.events)
		}
		for _, id := range missing {
			w.log.Warn("registration of a deleted device", "tenant", tenant, "device", id)
		}
		stored = len(saved)
		return err
	})
	if err != nil {
		w.failed.Add(int64(len(b.fragments)))
		w.log.Error("store registration state", "tenant", tenant, "devices", len(b.fragments), "events", len(b.events), "err", err)
		return nil, fmt.Errorf("store the registration state of %d devices: %w", len(b.fragments), err)
	}
	w.events.Add(int64(stored))
	return conflicts, nil
}

func (w *StateWriter) flushEvents(ctx context.Context, tenant string, events []store.Event) error {
	if len(events) == 0 {
		return nil
	}
	err := retry(ctx, func() error {
		_, err := w.st.CreateEvents(ctx, tenant, events)
		return err
	})
	if err != nil {
		w.failed.Add(int64(len(events)))
		w.log.Error("store lifecycle events", "tenant", tenant, "events", len(events), "err", err)
		return fmt.Errorf("store %d lifecycle events: %w", len(events), err)
	}
	w.events.Add(int64(len(events)))
	return nil
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
