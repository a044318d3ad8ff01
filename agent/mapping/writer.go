package mapping

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"reflect"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// WriterOptions tune a Writer; zero fields take defaults.
type WriterOptions struct {
	QueueSize     int           // outputs waiting to be batched; default 4096
	MaxBatch      int           // items per flush; default 2000
	FlushInterval time.Duration // longest wait of a partial batch; default 50 ms
	DrainTimeout  time.Duration // how long the last flush may try at stop; default 10 s
	Logger        *slog.Logger
}

// WriterStats counts what a Writer stored and what it gave up.
type WriterStats struct {
	Measurements, Events, Alarms, Inventory int64 // stored
	Dropped                                 int64 // refused by the store, of a deleted device, or left at stop
	Retries                                 int64 // flushes repeated after a store error
	// Delay counts outputs by the time from Add to leaving the writer
	// (stored, or dropped): Delay[i] those within DelayBuckets[i] and
	// above the bucket before, the last element the slower ones.
	Delay    []int64
	DelaySum time.Duration
}

// DelayBuckets are the upper bounds (seconds) of WriterStats.Delay,
// ascending. They are fine around the pipeline's target of 250 ms (25 ms
// apart) and no more than a third of a bound apart above 10 ms, so that
// a quantile read from them says how far it is from the target, not only
// on which side.
var DelayBuckets = [...]float64{0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04,
	0.05, 0.06, 0.075, 0.1, 0.125, 0.15, 0.175, 0.2, 0.225, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.75,
	1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 7.5, 10, 15, 20, 30}

// Writer stores mapped outputs in batches: per flush and tenant, one
// AddMeasurements (bucketed), one CreateEvents, the alarm changes in
// order, and one UpdateFragmentsMany of every device whose inventory
// changed (a device's changes of the batch merged into its stored
// fragments). Its queue is bounded: when the store falls behind, Add
// blocks, which holds the device's exchange back instead of growing
// memory. A flush that fails because the store is unavailable keeps its
// batch and is retried with backoff, and nothing new is taken meanwhile,
// so a short outage loses nothing. Delivery is at least once: a write the
// store applied but whose answer was lost with the connection is written
// again (a measurement twice, an alarm counted twice). Run's goroutine does all the writing;
// when its context ends it drains the queue.
type Writer struct {
	st   store.Engine
	o    WriterOptions
	log  *slog.Logger
	in   chan queued
	done chan struct{}

	measurements, events, alarms, inventory, dropped, retries atomic.Int64
	delay                                                     [len(DelayBuckets) + 1]atomic.Int64
	delaySum                                                  atomic.Int64
}

// queued is an output with the time it was handed over, the start of its
// delay (waiting for room in the queue included), and whom to tell when
// it has left the writer (AddAcked), nil for none.
type queued struct {
	out Output
	at  time.Time
	ack func(stored bool)
}

// NewWriter returns a writer into st; call Run.
func NewWriter(st store.Engine, o WriterOptions) *Writer {
	if o.QueueSize <= 0 {
		o.QueueSize = 4096
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 2000
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = 50 * time.Millisecond
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 10 * time.Second
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Writer{st: st, o: o, log: log.With("component", "pipeline-writer"), in: make(chan queued, o.QueueSize), done: make(chan struct{})}
}

// Add queues an output; it blocks while the queue is full, until ctx ends
// (then the output is not queued, and ctx's error is returned).
func (w *Writer) Add(ctx context.Context, out Output) error {
	return w.addAt(ctx, out, time.Now(), nil)
}

// AddAcked is Add for a caller that must know when the output is durable
// (the decoders, which remove a raw value from the backlog only once what
// it became is stored): ack is called once, from the writer's goroutine,
// when the output has left the writer: true when it is stored or refused
// for good (by the store, or because its device is gone), false when it
// was not stored at stop. It must not block. A writer that holds an
// output with an ack does not wait for its batch to fill: it writes as
// soon as nothing more is queued. If AddAcked returns an error, ack is
// never called.
func (w *Writer) AddAcked(ctx context.Context, out Output, ack func(stored bool)) error {
	if out.Len() == 0 {
		ack(true)
		return nil
	}
	return w.addAt(ctx, out, time.Now(), ack)
}

// addAt is Add of an output whose delay started at: when its values were
// handed to the pipeline, before they were mapped.
func (w *Writer) addAt(ctx context.Context, out Output, at time.Time, ack func(bool)) error {
	if out.Len() == 0 {
		return nil
	}
	select {
	case w.in <- queued{out, at, ack}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stats returns the writer's counters.
func (w *Writer) Stats() WriterStats {
	return WriterStats{
		Measurements: w.measurements.Load(), Events: w.events.Load(), Alarms: w.alarms.Load(),
		Inventory: w.inventory.Load(), Dropped: w.dropped.Load(), Retries: w.retries.Load(),
		Delay: w.delayCounts(), DelaySum: time.Duration(w.delaySum.Load()),
	}
}

func (w *Writer) delayCounts() []int64 {
	out := make([]int64, len(w.delay))
	for i := range w.delay {
		out[i] = w.delay[i].Load()
	}
	return out
}

// left counts outputs that left the writer at now.
func (w *Writer) left(added []time.Time, now time.Time) {
	for _, at := range added {
		d := now.Sub(at)
		// the first bound at or above d, as Prometheus's le
		i := sort.SearchFloat64s(DelayBuckets[:], d.Seconds())
		w.delay[i].Add(1)
		w.delaySum.Add(int64(d))
	}
}

// Done is closed when Run has returned.
func (w *Writer) Done() <-chan struct{} { return w.done }

// tenantBatch is what waits to be written for one tenant.
type tenantBatch struct {
	measurements []store.Measurement
	events       []store.Event
	alarms       []AlarmChange
	inventory    map[string]*InventoryUpdate // by device
	added        []time.Time                 // of each output in it
	acks         []func(stored bool)         // of the outputs added with one
}

// ack tells the outputs' callers that they left the writer.
func (t *tenantBatch) ack(stored bool) {
	for _, a := range t.acks {
		a(stored)
	}
	t.acks = nil
}

type batch struct {
	tenants map[string]*tenantBatch
	n       int
}

func (b *batch) add(q queued) {
	o := q.out
	t := b.tenants[o.Tenant]
	if t == nil {
		t = &tenantBatch{}
		b.tenants[o.Tenant] = t
	}
	t.added = append(t.added, q.at)
	if q.ack != nil {
		t.acks = append(t.acks, q.ack)
	}
	t.measurements = append(t.measurements, o.Measurements...)
	t.events = append(t.events, o.Events...)
	t.alarms = append(t.alarms, o.Alarms...)
	if o.Inventory != nil {
		if t.inventory == nil {
			t.inventory = map[string]*InventoryUpdate{}
		}
		if u := t.inventory[o.ID]; u != nil {
			u.merge(o.Inventory)
		} else {
			u = &InventoryUpdate{}
			u.merge(o.Inventory)
			t.inventory[o.ID] = u
		}
	}
	b.n += o.Len() - len(o.Decodes)
}

// Run writes batches until ctx ends, then drains the queue within
// DrainTimeout.
func (w *Writer) Run(ctx context.Context) {
	defer close(w.done)
	b := &batch{tenants: map[string]*tenantBatch{}}
	tick := time.NewTicker(w.o.FlushInterval)
	defer tick.Stop()
	backoff := 50 * time.Millisecond
	// stalled: the last flush left something behind. A batch still
	// filling is not stalled: it waits for MaxBatch or the tick, unless
	// it is urgent: it holds an output whose caller waits for its ack.
	stalled, urgent := false, false
	for {
		if stalled {
			// The store is down: take nothing new (the queue fills and
			// Add blocks) and try the same batch again.
			select {
			case <-ctx.Done():
				w.drain(ctx, b)
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			w.retries.Add(1)
			w.flushLive(ctx, b)
			stalled = b.n > 0 && b.failed()
			continue
		}
		backoff = 50 * time.Millisecond
		select {
		case o := <-w.in:
			b.add(o)
			urgent = urgent || o.ack != nil
			if b.n >= w.o.MaxBatch || urgent && len(w.in) == 0 {
				w.flushLive(ctx, b)
				stalled = b.n > 0 && b.failed()
				urgent = false
			}
		case <-tick.C:
			if b.n > 0 {
				w.flushLive(ctx, b)
				stalled = b.n > 0 && b.failed()
			}
			urgent = false
		case <-ctx.Done():
			w.drain(ctx, b)
			return
		}
	}
}

// failed reports whether a flush left anything behind.
func (b *batch) failed() bool { return len(b.tenants) > 0 }

func (w *Writer) drain(ctx context.Context, b *batch) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.o.DrainTimeout)
	defer cancel()
	for more := true; more; {
		select {
		case o := <-w.in:
			b.add(o)
		default:
			more = false
		}
	}
	backoff := 50 * time.Millisecond
	for b.n > 0 {
		w.flush(dctx, b)
		if !b.failed() {
			return
		}
		select {
		case <-dctx.Done():
			w.dropped.Add(int64(b.n))
			w.log.Error("pipeline outputs not stored at stop", "count", b.n, "err", dctx.Err())
			for _, t := range b.tenants {
				t.ack(false)
			}
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// flushLive flushes while the writer runs. The stop does not cut a write
// under way: cut, it may have been applied all the same, and the drain
// would write it a second time.
func (w *Writer) flushLive(ctx context.Context, b *batch) {
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.o.DrainTimeout)
	defer cancel()
	w.flush(fctx, b)
}

// flush writes what b holds; what the store could not take for a
// transient reason stays in b, the rest leaves it.
func (w *Writer) flush(ctx context.Context, b *batch) {
	n := 0
	for tenant, t := range b.tenants {
		w.flushTenant(ctx, tenant, t)
		left := len(t.measurements) + len(t.events) + len(t.alarms) + len(t.inventory)
		if left == 0 {
			w.left(t.added, time.Now())
			t.ack(true)
			delete(b.tenants, tenant)
		}
		n += left
	}
	b.n = n
}

// permanent reports whether retrying cannot help: the store refused the
// data, or the device is gone.
func permanent(err error) bool {
	return errors.Is(err, store.ErrInvalid) || errors.Is(err, store.ErrNotFound)
}

// settle counts a part's outcome and reports whether it leaves the batch.
func (w *Writer) settle(err error, n int, stored *atomic.Int64, what, tenant string) bool {
	switch {
	case err == nil:
		stored.Add(int64(n))
		return true
	case permanent(err):
		w.dropped.Add(int64(n))
		w.log.Error("pipeline outputs refused", "what", what, "tenant", tenant, "count", n, "err", err)
		return true
	}
	w.log.Warn("store unavailable, will retry", "what", what, "tenant", tenant, "count", n, "err", err)
	return false
}

func (w *Writer) flushTenant(ctx context.Context, tenant string, t *tenantBatch) {
	if len(t.measurements) > 0 {
		_, err := w.st.AddMeasurements(ctx, tenant, t.measurements)
		if w.settle(err, len(t.measurements), &w.measurements, "measurements", tenant) {
			t.measurements = nil
		}
	}
	if len(t.events) > 0 {
		_, err := w.st.CreateEvents(ctx, tenant, t.events)
		if w.settle(err, len(t.events), &w.events, "events", tenant) {
			t.events = nil
		}
	}
	// Alarm changes go one by one and in order; a transient error keeps
	// the rest for the next attempt.
	for len(t.alarms) > 0 {
		if !w.settle(w.alarm(ctx, tenant, t.alarms[0]), 1, &w.alarms, "alarm", tenant) {
			break
		}
		t.alarms = t.alarms[1:]
	}
	if len(t.alarms) == 0 {
		t.alarms = nil
	}
	if len(t.inventory) > 0 {
		w.flushInventory(ctx, tenant, t)
	}
}

func (w *Writer) alarm(ctx context.Context, tenant string, c AlarmChange) error {
	if c.Clear {
		_, err := w.st.ClearAlarm(ctx, tenant, c.Alarm.Source, c.Alarm.Type)
		return err
	}
	a, err := w.st.RaiseAlarm(ctx, tenant, c.Alarm)
	if err != nil {
		return err
	}
	if c.Alarm.Status == store.AlarmAcknowledged && a.Status == store.AlarmActive && a.Count == 1 {
		// a functionality whose alarms start acknowledged
		_, err = w.st.UpdateAlarm(ctx, tenant, a.ID, store.AlarmUpdate{Status: store.AlarmAcknowledged})
	}
	return err
}

// flushInventory merges each device's field updates into its stored
// fragments and writes those that changed in one bulk.
func (w *Writer) flushInventory(ctx context.Context, tenant string, t *tenantBatch) {
	updates := make(map[string]map[string]any, len(t.inventory))
	for id, u := range t.inventory {
		mo, err := w.st.GetManagedObject(ctx, tenant, id)
		if err != nil {
			if !w.settle(err, 1, &w.inventory, "inventory", tenant) {
				return // all of it stays for the retry
			}
			delete(t.inventory, id) // a deleted device
			continue
		}
		if m := mergeInventory(mo, u); len(m) > 0 {
			updates[id] = m
		} else {
			w.inventory.Add(1) // nothing new: stored as it is
			delete(t.inventory, id)
		}
	}
	if len(updates) == 0 {
		return
	}
	missing, err := w.st.UpdateFieldsMany(ctx, tenant, updates)
	if !w.settle(err, len(updates)-len(missing), &w.inventory, "inventory", tenant) {
		return
	}
	w.dropped.Add(int64(len(missing)))
	for id := range updates {
		delete(t.inventory, id)
	}
}

// mergeInventory returns what u changes in mo: the fields it sets, as
// "fragment.field" so that a field set meanwhile by someone else (the
// API, a firmware update) is not undone, or a fragment whole where mo has
// none that holds fields; and the name. nil when u changes nothing.
func mergeInventory(mo store.ManagedObject, u *InventoryUpdate) map[string]any {
	set := map[string]any{}
	merged := map[string]map[string]any{}
	for frag, fields := range u.Fields {
		old, isMap := mo.Fragments[frag].(map[string]any)
		f := maps.Clone(old)
		if f == nil {
			f = map[string]any{}
		}
		changed := map[string]any{}
		for k, v := range fields {
			if cur, ok := f[k]; !ok || !reflect.DeepEqual(cur, v) {
				f[k] = v
				changed[k] = v
			}
		}
		merged[frag] = f
		if len(changed) == 0 {
			continue
		}
		if !isMap {
			set[frag] = f
			continue
		}
		for k, v := range changed {
			set[frag+"."+k] = v
		}
	}
	if u.Rename {
		hw := merged[FragmentHardware]
		if hw == nil {
			hw, _ = mo.Fragments[FragmentHardware].(map[string]any)
		}
		var parts []string
		for _, k := range []string{"manufacturer", "model", "serialNumber"} {
			if s, _ := hw[k].(string); s != "" {
				parts = append(parts, s)
			}
		}
		if name := strings.Join(parts, " "); name != "" && name != mo.Name {
			set["name"] = name
		}
	}
	if len(set) == 0 {
		return nil
	}
	return set
}
