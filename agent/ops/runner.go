// Package ops delivers operations to devices: it takes the shell commands
// stored as PENDING operations, sends them to the device while it listens,
// one at a time and in creation order, and records the outcome
// (SUCCESSFUL with a result a person can read, or FAILED with the reason).
//
// A device listens whenever it is registered, or, when it has an awake
// time (see AwakeTime), only for that long after each Register or Update:
// it is sent at most Config.MaxPerWakeup operations in such a window, and
// nothing while it sleeps. A request that times out goes back to PENDING
// and waits for the device's next Register or Update, up to
// Config.Attempts times.
//
// The store is the queue: an operation that could not be sent stays
// PENDING there, so nothing is kept only in memory. What the runner holds
// in memory is the set of devices that have work and the state of their
// current windows, bounded by the number of devices.
package ops

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/firmware"
	"github.com/lwm2m-agent/lwm2m-agent/agent/lwm2m"
	"github.com/lwm2m-agent/lwm2m-agent/agent/mapping"
	"github.com/lwm2m-agent/lwm2m-agent/agent/model"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/shell"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// ValueSink records values read from devices, like notifications.
type ValueSink interface {
	Add(ctx context.Context, tenant, device string, recs []node.Record)
}

// Defaults of Config.
const (
	DefaultMaxPerWakeup     = 10
	DefaultAttempts         = 3
	DefaultExecutingTimeout = 10 * time.Minute
)

// Config wires a Runner.
type Config struct {
	Server *lwm2m.Server
	Store  store.Engine
	// Models are the object definitions shell values are typed by, per
	// tenant (the tenants' device protocols; model.Core() fits too).
	Models Definitions
	Values ValueSink
	// Pipeline maps the values devices answer to reads, observes and
	// composite requests; nil turns mapping off.
	Pipeline *mapping.Pipeline
	Workers  int // devices served at once
	Logger   *slog.Logger

	// AwakeTime is the awake time of devices whose parameters and
	// registration name none; 0 means always online.
	AwakeTime time.Duration
	// MaxPerWakeup bounds the operations sent to a device with an awake
	// time after one Register or Update (DefaultMaxPerWakeup).
	MaxPerWakeup int
	// RequestTimeout is the timeout of a request to a device without an
	// lwm2mRequestTimeout of its own (0: the LwM2M server's);
	// MaxRequestTimeout caps the devices' own (0: no cap).
	RequestTimeout    time.Duration
	MaxRequestTimeout time.Duration
	// Attempts is how many requests of one operation may time out before
	// it is FAILED (DefaultAttempts).
	Attempts int
	// ExecutingTimeout fails an operation that has been EXECUTING this
	// long: its outcome was lost (DefaultExecutingTimeout). It must be
	// above the longest request timeout, or answers still on their way
	// are refused.
	ExecutingTimeout time.Duration
	// WatchdogEvery is how often the watchdog looks for such operations
	// (ExecutingTimeout/5, at most a minute, when 0).
	WatchdogEvery time.Duration
	// FirmwareTimeout bounds a firmware update from its start to the
	// device's final Update Result, across awake windows, registrations
	// and restarts (DefaultFirmwareTimeout); the EXECUTING watchdog
	// leaves firmware updates to it.
	FirmwareTimeout time.Duration
	// Firmware gives devices the packages of firmware updates: URIs for
	// pulls, the bytes for pushes. nil gives devices external URLs as
	// they are, and pushes nothing.
	Firmware *firmware.Service
	// FirmwareDefaults are what a firmware update assumes of a device
	// that neither its parameters nor its object describe.
	FirmwareDefaults FirmwareDefaults

	// Replica names this agent among the replicas sharing the store, as
	// its registrations record it; Shared says that others may share it
	// (see replicas.go).
	Replica string
	Shared  bool
	// Watchdog, when set, says whether this replica runs the EXECUTING
	// watchdog for all of them now (a lease in the store); nil: always.
	Watchdog interface{ Held() bool }
}

type deviceKey struct{ tenant, device string }

// window is what the runner knows of a device's current chance to be
// sent operations: the Register or Update that opened it, when it closes,
// and what was sent in it. Only the worker serving the device touches it.
type window struct {
	regID    string
	start    time.Time // the registration's UpdatedAt
	end      time.Time // zero: open until the next Register or Update
	endpoint string
	sent     int
	stalled  bool // a request timed out: nothing more until the next window
}

// Stats counts what the runner did since it started.
type Stats struct {
	Sent           int64 // requests sent (operations moved to EXECUTING)
	Successful     int64
	Failed         int64 // failed for any reason, timeouts and the watchdog included
	TimedOut       int64 // requests without an answer in time
	Requeued       int64 // operations returned to PENDING after a timeout
	WatchdogFailed int64 // operations failed because they stayed EXECUTING too long
	Recovered      int64 // left EXECUTING by the previous run, queued again at start
	Abandoned      int64 // left EXECUTING by the previous run, failed at start
	// Executed counts reads answered before their EXECUTING was written,
	// recorded with it in one store write.
	Executed int64
}

// Runner sends pending operations to registered devices.
type Runner struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	queued  map[deviceKey]bool // devices waiting for a worker or being served
	dirty   map[deviceKey]bool // devices that got new work while being served
	order   []deviceKey
	windows map[deviceKey]*window
	wake    chan struct{}

	// tenants whose protocols changed since the last pass of
	// observeChanged (protoAll: the management tenant's, so every tenant)
	protoMu      sync.Mutex
	protoTenants map[string]bool
	protoAll     bool
	protoWake    chan struct{}

	// firmware updates under way, one per device at most; bounded by the
	// devices
	fwMu   sync.Mutex
	fwJobs map[deviceKey]*fwJob

	// devices taken over from other replicas whose operations left
	// EXECUTING are not settled yet (guarded by mu; bounded by the
	// devices)
	takenOver map[deviceKey]bool
	takeovers atomic.Int64

	sent, successful, failed, timedOut, requeued, watchdogFailed, recovered, abandoned, oneWrite atomic.Int64
}

// New returns a runner; call Run to start its workers.
func New(cfg Config) *Runner {
	if cfg.Workers <= 0 {
		cfg.Workers = 64
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxPerWakeup <= 0 {
		cfg.MaxPerWakeup = DefaultMaxPerWakeup
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = DefaultAttempts
	}
	if cfg.ExecutingTimeout <= 0 {
		cfg.ExecutingTimeout = DefaultExecutingTimeout
	}
	if cfg.WatchdogEvery <= 0 {
		cfg.WatchdogEvery = min(cfg.ExecutingTimeout/5, time.Minute)
	}
	if cfg.FirmwareTimeout <= 0 {
		cfg.FirmwareTimeout = DefaultFirmwareTimeout
	}
	return &Runner{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "ops"),
		queued:  map[deviceKey]bool{},
		dirty:   map[deviceKey]bool{},
		windows: map[deviceKey]*window{},
		wake:    make(chan struct{}, 1),
		fwJobs:  map[deviceKey]*fwJob{},

		takenOver: map[deviceKey]bool{},

		protoTenants: map[string]bool{},
		protoWake:    make(chan struct{}, 1),
	}
}

// Stats returns the counters so far.
func (r *Runner) Stats() Stats {
	return Stats{
		Sent: r.sent.Load(), Successful: r.successful.Load(), Failed: r.failed.Load(),
		TimedOut: r.timedOut.Load(), Requeued: r.requeued.Load(), WatchdogFailed: r.watchdogFailed.Load(),
		Recovered: r.recovered.Load(), Abandoned: r.abandoned.Load(), Executed: r.oneWrite.Load(),
	}
}

// Submit is called after an operation was stored PENDING.
func (r *Runner) Submit(_ context.Context, tenant string, op store.Operation) {
	r.kick(deviceKey{tenant, op.DeviceID})
}

// Reachable is called when a device registered or updated: it opens the
// device's next window.
func (r *Runner) Reachable(tenant, deviceID string) {
	r.kick(deviceKey{tenant, deviceID})
}

func (r *Runner) kick(k deviceKey) {
	r.mu.Lock()
	if r.queued[k] {
		r.dirty[k] = true
	} else {
		r.queued[k] = true
		r.order = append(r.order, k)
	}
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *Runner) next() (deviceKey, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.order) == 0 {
		return deviceKey{}, false
	}
	k := r.order[0]
	r.order[0] = deviceKey{}
	r.order = r.order[1:]
	if len(r.order) == 0 {
		r.order = nil // let the backing array go
	}
	return k, true
}

// finish reports whether the device must be served again.
func (r *Runner) finish(k deviceKey) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.dirty[k] {
		delete(r.dirty, k)
		return true
	}
	delete(r.queued, k)
	return false
}

// Run waits until the LwM2M server serves (a request sent before would
// fail), settles the operations a previous run left EXECUTING, sends
// their operations to restored registrations that listen now, and serves
// devices with cfg.Workers workers and watches for operations stuck in
// EXECUTING, until ctx ends. It also starts the automatic observations of
// listening devices whose protocols changed (ProtocolsChanged).
func (r *Runner) Run(ctx context.Context) {
	select {
	case <-r.cfg.Server.Serving():
	case <-ctx.Done():
		return
	}
	r.recover(ctx)
	r.resume(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { r.watchdog(ctx) })
	wg.Go(func() { r.observeChanged(ctx) })
	for range r.cfg.Workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				k, ok := r.next()
				if !ok {
					select {
					case <-ctx.Done():
						return
					case <-r.wake:
						// pass the wake-up on so idle workers share a burst
						continue
					}
				}
				for {
					r.serve(ctx, k)
					if !r.finish(k) || ctx.Err() != nil {
						break
					}
				}
				select {
				case r.wake <- struct{}{}:
				default:
				}
			}
		})
	}
	wg.Wait()
}

// Definitions give the object definitions of a tenant's devices.
type Definitions interface {
	ObjectFor(tenant string, id uint16) (model.ObjectDef, bool)
}

// outcome is how one operation's exchange ended, for the device's window.
type outcome int

const (
	outDone    outcome = iota // an answer, recorded
	outTimeout                // no answer: the window is over for this device
	outWait                   // the device cannot be reached now (agent stopping, no DTLS session)
	outSkipped                // not sent: the operation is no longer pending
	outStarted                // a firmware update began: it goes on in later steps
)

// batch is how many pending operations are read from the store at once.
const batch = 10

// recordTimeout bounds the store writes that record an outcome, which
// must happen even while the agent stops.
const recordTimeout = 10 * time.Second

func (r *Runner) serve(ctx context.Context, k deviceKey) {
	log := r.log.With("device", k.device)
	r.settleTakenOver(ctx, k)
	var ops []store.Operation
	if r.fwJob(k) == nil {
		// Most registrations find nothing pending: one read by key, and
		// nothing more, on that path.
		var err error
		ops, err = r.cfg.Store.Pending(ctx, k.tenant, k.device, batch)
		if err != nil {
			if ctx.Err() == nil {
				log.Error("load pending operations", "err", err)
			}
			return
		}
		if len(ops) == 0 {
			return
		}
	}
	w, reg, timeout, err := r.window(ctx, k)
	if err != nil {
		if ctx.Err() == nil {
			log.Error("operations not sent", "err", err)
		}
		return
	}
	if w == nil {
		r.settleCancelled(ctx, k)
		return // not registered: stays PENDING until the device registers
	}
	defer r.release(k, w)
	log = log.With("endpoint", reg.Endpoint)
	for ctx.Err() == nil {
		left := r.room(w, time.Now())
		if left == 0 {
			r.settleCancelled(ctx, k)
			return
		}
		if job := r.fwJob(k); job != nil {
			// A firmware update under way: the device's other operations
			// wait behind it.
			out, err := r.advanceFirmware(ctx, reg, w, job, timeout)
			if err != nil {
				log.Error("firmware update", "operation", job.op.ID, "err", err)
				return
			}
			w.sent++
			switch out {
			case outTimeout:
				w.stalled = true
				return
			case outDone:
				ops = nil
				continue
			}
			return
		}
		if ops == nil {
			if ops, err = r.cfg.Store.Pending(ctx, k.tenant, k.device, min(batch, left)); err != nil {
				log.Error("load pending operations", "err", err)
				return
			}
			if len(ops) == 0 {
				return
			}
		}
		for _, op := range ops {
			if ctx.Err() != nil || r.room(w, time.Now()) == 0 {
				return
			}
			out, err := r.execute(ctx, reg, w, op, timeout)
			if err != nil {
				// the store could not record the outcome: stop here rather
				// than loop on an operation that stays PENDING
				log.Error("record operation", "operation", op.ID, "err", err)
				return
			}
			switch out {
			case outWait:
				return
			case outTimeout:
				w.sent++
				w.stalled = true
				return
			case outSkipped:
				continue
			}
			w.sent++
			if out == outStarted {
				break // the firmware update goes first; the rest are read again after it
			}
		}
		ops = nil
	}
}

// room is how many operations the window still takes now: a window
// without an end takes any number, a batch at a time.
func (r *Runner) room(w *window, now time.Time) int {
	switch {
	case w.stalled:
		return 0
	case w.end.IsZero():
		return batch
	case !now.Add(sendGuard(w)).Before(w.end):
		return 0
	}
	return max(r.cfg.MaxPerWakeup-w.sent, 0)
}

// sendGuard is how long before its end a window takes no more requests:
// a request must reach the device before it sleeps, and the agent's
// clock starts the window as the Register or Update arrives, a little
// after the device's does. A twentieth of the awake time, at most half a
// second.
func sendGuard(w *window) time.Duration {
	return min(w.end.Sub(w.start)/20, 500*time.Millisecond)
}

// window returns the device's current window, opening a new one when the
// device registered or updated since the last; nil when the device is not
// registered. It also returns the registration and the device's request
// timeout.
func (r *Runner) window(ctx context.Context, k deviceKey) (*window, lwm2m.Registration, time.Duration, error) {
	r.mu.Lock()
	w := r.windows[k]
	r.mu.Unlock()
	ep := ""
	if w != nil {
		ep = w.endpoint
	}
	if ep == "" {
		var err error
		if ep, err = r.endpoint(ctx, k.tenant, k.device); err != nil {
			return nil, lwm2m.Registration{}, 0, fmt.Errorf("find endpoint: %w", err)
		}
	}
	reg, ok := r.cfg.Server.Registration(ep)
	if !ok || reg.Tenant != k.tenant || reg.DeviceID != k.device || (w == nil && r.heldElsewhere(ctx, reg)) {
		r.forget(k)
		return nil, reg, 0, nil
	}
	var params map[string]any
	settings, err := r.cfg.Store.DeviceSettings(ctx, k.tenant, k.device)
	switch {
	case err == nil:
		params = settings.Params
	case !errors.Is(err, store.ErrNotFound):
		return nil, reg, 0, fmt.Errorf("registration parameters: %w", err)
	}
	timeout := RequestTimeout(params, r.cfg.RequestTimeout, r.cfg.MaxRequestTimeout)
	if w != nil && w.regID == reg.ID && w.start.Equal(reg.UpdatedAt) {
		return w, reg, timeout, nil
	}
	w = &window{regID: reg.ID, start: reg.UpdatedAt, endpoint: ep}
	if awake := AwakeTime(params, reg, r.cfg.AwakeTime); awake > 0 {
		w.end = reg.UpdatedAt.Add(awake)
	}
	r.mu.Lock()
	r.windows[k] = w
	r.mu.Unlock()
	return w, reg, timeout, nil
}

// release forgets a window nothing depends on any more: one without an
// end that did not stall (the next serve opens it again at no cost). A
// window with an end is kept until it ends, so that its count holds; a
// stalled one until the device's next Register or Update replaces it.
func (r *Runner) release(k deviceKey, w *window) {
	if w.end.IsZero() && !w.stalled {
		r.forget(k)
	}
}

func (r *Runner) forget(k deviceKey) {
	r.mu.Lock()
	delete(r.windows, k)
	r.mu.Unlock()
}

// sweep drops the windows that have ended, and stalled ones whose device
// is gone or has registered anew, so the map holds only devices in a
// window.
func (r *Runner) sweep(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, w := range r.windows {
		if r.queued[k] {
			continue // its worker owns it
		}
		if !w.end.IsZero() {
			if !now.Before(w.end) {
				delete(r.windows, k)
			}
			continue
		}
		reg, ok := r.cfg.Server.Registration(w.endpoint)
		if !ok || reg.ID != w.regID || !reg.UpdatedAt.Equal(w.start) {
			delete(r.windows, k)
		}
	}
}

// Windows is the number of devices whose window the runner keeps now.
func (r *Runner) Windows() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.windows)
}

func (r *Runner) execute(ctx context.Context, reg lwm2m.Registration, w *window, op store.Operation, timeout time.Duration) (outcome, error) {
	if ReadOnly(op.Text) {
		return r.executeRead(ctx, reg, op, timeout)
	}
	if err := r.cfg.Store.Transition(ctx, reg.Tenant, op, store.OpExecuting, "", ""); err != nil {
		return executingFailed(op, err)
	}
	op.Status = store.OpExecuting
	if r.room(w, time.Now()) == 0 {
		// The window closed while the store wrote: the device no longer
		// listens, and the operation was not sent.
		if err := r.cfg.Store.Unsend(context.WithoutCancel(ctx), reg.Tenant, op); err != nil {
			return outDone, fmt.Errorf("operation %s: back to pending: %w", op.ID, err)
		}
		return outWait, nil
	}
	r.sent.Add(1)
	if fw, ok := FirmwareOf(op); ok {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
		defer cancel()
		if err := r.startFirmware(sctx, reg.Tenant, op, fw); err != nil {
			r.failed.Add(1)
			return outDone, errors.Join(err, r.setStatus(sctx, reg.Tenant, op, store.OpFailed, "", "firmware update not started: "+err.Error()))
		}
		return outStarted, nil
	}
	start := time.Now()
	var result string
	var err error
	mech, reset := resetOf(op)
	if reset {
		// no c8y_Command to hold a result: the status says it all
		err = r.writeReset(requestContext(ctx, timeout), reg, mech)
	} else {
		result, err = r.run(requestContext(ctx, timeout), reg, op.Text)
	}
	return r.settleExchange(ctx, reg, op, reset, start, result, err)
}

// executeRead executes a command that only reads from the device. Its
// request goes out at once, the operation still PENDING; an answer
// within executedWithin is recorded with EXECUTING in one store write
// (Executed), which takes a commit off the round trip; a slower exchange
// is marked EXECUTING at executedWithin, as any other. Should the agent
// stop before anything is written, the operation is still PENDING and
// is sent again, which a read allows; should it have changed meanwhile
// (cancelled, its device deleted), the answer is not recorded in it, as
// if it had not been sent. The room of the device's window was checked
// by serve just before.
func (r *Runner) executeRead(ctx context.Context, reg lwm2m.Registration, op store.Operation, timeout time.Duration) (outcome, error) {
	type answer struct {
		result string
		err    error
	}
	answered := make(chan answer, 1)
	start := time.Now()
	go func() {
		result, err := r.run(requestContext(ctx, timeout), reg, op.Text)
		answered <- answer{result, err}
	}()
	grace := time.NewTimer(executedWithin)
	defer grace.Stop()
	select {
	case a := <-answered:
		if final := ctx.Err() == nil && !errors.Is(a.err, lwm2m.ErrNoSession) &&
			!errors.Is(a.err, lwm2m.ErrTimeout) && !errors.Is(a.err, lwm2m.ErrNotRegistered); final {
			return r.executed(ctx, reg, op, a.result, a.err)
		}
		// no outcome of the device's: recorded as any other exchange's
		if err := r.cfg.Store.Transition(ctx, reg.Tenant, op, store.OpExecuting, "", ""); err != nil {
			return executingFailed(op, err)
		}
		op.Status = store.OpExecuting
		r.sent.Add(1)
		return r.settleExchange(ctx, reg, op, false, start, a.result, a.err)
	case <-grace.C:
	}
	werr := r.cfg.Store.Transition(ctx, reg.Tenant, op, store.OpExecuting, "", "")
	a := <-answered // the request ends with ctx at the latest
	if werr != nil {
		return executingFailed(op, werr)
	}
	op.Status = store.OpExecuting
	r.sent.Add(1)
	return r.settleExchange(ctx, reg, op, false, start, a.result, a.err)
}

// executedWithin is how long a read's request may go unanswered before
// its operation is marked EXECUTING: a device on the same network
// answers well within it, and its operation then takes one store write
// from PENDING to its outcome.
const executedWithin = 50 * time.Millisecond

// executed records the device's answer to op, still PENDING, with its
// EXECUTING in one write.
func (r *Runner) executed(ctx context.Context, reg lwm2m.Registration, op store.Operation, result string, err error) (outcome, error) {
	r.sent.Add(1)
	status, reason := store.OpSuccessful, ""
	if err != nil {
		status, reason, result = store.OpFailed, FailureReason(err), ""
	}
	// The outcome is recorded even while the agent stops.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	if werr := r.cfg.Store.Executed(sctx, reg.Tenant, op, status, result, reason); werr != nil {
		return executingFailed(op, werr)
	}
	r.oneWrite.Add(1)
	if err != nil {
		r.failed.Add(1)
	} else {
		r.successful.Add(1)
	}
	return outDone, nil
}

// ReadOnly reports whether a command only reads from the device, so
// that sending it before its operation is durably EXECUTING risks
// nothing: a repeated read changes nothing on the device.
func ReadOnly(text string) bool {
	c, err := shell.Parse(text)
	if err != nil {
		return false
	}
	switch c.Kind {
	case shell.Read, shell.CompositeRead, shell.Discover:
		return true
	}
	return false
}

// executingFailed is the outcome of an operation whose move to
// EXECUTING the store refused or could not write.
func executingFailed(op store.Operation, err error) (outcome, error) {
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		return outSkipped, nil // it changed since it was read as pending
	}
	return outDone, fmt.Errorf("operation %s: executing: %w", op.ID, err)
}

// requestContext bounds a device request by the device's timeout, when
// it has one.
func requestContext(ctx context.Context, timeout time.Duration) context.Context {
	if timeout > 0 {
		return lwm2m.WithRequestTimeout(ctx, timeout)
	}
	return ctx
}

// settleExchange records how the exchange of op, EXECUTING, ended: err
// from the device request started at start, result its answer; reset
// says op is a device reset (no command text).
func (r *Runner) settleExchange(ctx context.Context, reg lwm2m.Registration, op store.Operation, reset bool, start time.Time, result string, err error) (outcome, error) {
	attempts := op.Attempts + 1
	// The outcome is recorded even while the agent stops.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	log := r.log.With("operation", op.ID, "endpoint", reg.Endpoint, "reg_id", reg.ID)
	switch {
	case err == nil:
	case ctx.Err() != nil:
		// The agent is stopping with the request under way: whether the
		// device acted on it is unknown. One that can be repeated waits
		// for the device's next window; any other is not risked twice.
		if reset || Repeatable(op.Text) {
			return outWait, r.setStatus(sctx, reg.Tenant, op, store.OpPending, "", "")
		}
		r.failed.Add(1)
		return outWait, r.setStatus(sctx, reg.Tenant, op, store.OpFailed, "", ReasonStopped)
	case errors.Is(err, lwm2m.ErrNoSession):
		// The device's DTLS session closed and only the device can open a
		// new one: the request never left, so the operation waits for the
		// device to connect.
		return outWait, r.setStatus(sctx, reg.Tenant, op, store.OpPending, "", "")
	case errors.Is(err, lwm2m.ErrTimeout), errors.Is(err, lwm2m.ErrNotRegistered):
		// No answer (or the registration ended first): the device was not
		// listening after all. The operation waits for its next window,
		// unless it has had its share of them.
		r.timedOut.Add(1)
		if attempts >= r.cfg.Attempts {
			r.failed.Add(1)
			log.Info("operation failed: no answer", "attempts", attempts)
			return outTimeout, r.setStatus(sctx, reg.Tenant, op, store.OpFailed, "", TimeoutReason(attempts))
		}
		r.requeued.Add(1)
		log.Debug("no answer; operation back to pending", "attempts", attempts, "err", err)
		return outTimeout, r.setStatus(sctx, reg.Tenant, op, store.OpPending, "", "")
	}
	status, reason := store.OpSuccessful, ""
	if err != nil {
		status, reason = store.OpFailed, FailureReason(err)
		r.failed.Add(1)
	} else {
		r.successful.Add(1)
	}
	log.Debug("operation done", "status", status, "took", time.Since(start))
	return outDone, r.setStatus(sctx, reg.Tenant, op, status, result, reason)
}

// setStatus records an outcome of an operation the runner moved to
// EXECUTING. One the watchdog failed meanwhile keeps its failure.
func (r *Runner) setStatus(ctx context.Context, tenant string, op store.Operation, status, result, reason string) error {
	id := op.ID
	err := r.cfg.Store.Transition(ctx, tenant, op, status, result, reason)
	if errors.Is(err, store.ErrConflict) {
		r.log.Warn("operation outcome not recorded: it left EXECUTING meanwhile", "operation", id, "status", status, "err", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("operation %s: %s: %w", id, status, err)
	}
	return nil
}

// TimeoutReason is the failure reason of an operation whose requests all
// timed out.
func TimeoutReason(attempts int) string {
	if attempts == 1 {
		return "timeout: no answer after 1 attempt"
	}
	return fmt.Sprintf("timeout: no answer after %d attempts", attempts)
}

// Failure reasons of operations whose outcome is unknown.
const (
	ReasonStopped   = "agent stopped while executing; outcome unknown, not repeated"
	ReasonRestarted = "agent restarted while executing; outcome unknown, not repeated"
)

// recoverLimit bounds the operations settled at start in one pass; an
// agent holds far fewer EXECUTING at once (one per worker).
const recoverLimit = 100000

// recover settles the operations a previous run left EXECUTING: nobody
// knows whether their device acted on them. Those that can be repeated go
// back to the queue; the others are failed rather than risked twice.
func (r *Runner) recover(ctx context.Context) {
	ops, err := r.cfg.Store.Executing(ctx, recoverLimit)
	if err != nil {
		r.log.Error("operations left executing not settled", "err", err)
		return
	}
	held := r.heldHere()
	resumed := 0
	for _, op := range ops {
		if held != nil && !held[deviceKey{op.Tenant, op.DeviceID}] {
			continue // another replica's, or its watchdog's
		}
		if r.settle(ctx, op, ReasonRestarted) {
			resumed++
		}
	}
	if len(ops) > 0 {
		r.log.Info("operations left executing by the previous run settled",
			"queued_again", r.recovered.Load(), "failed", r.abandoned.Load(), "firmware_resumed", resumed)
	}
}

// resume queues, at start, the devices that are registered (restored
// from before the start) and have PENDING operations, so that those that
// listen get them now rather than at their next Update, which may be
// hours away. Devices whose registration announces an awake time are
// left to their next Update: the window their last one opened is as good
// as over. The set of registered devices it builds is dropped when it
// returns.
func (r *Runner) resume(ctx context.Context) {
	start := time.Now()
	live := map[deviceKey]bool{}
	for _, reg := range r.cfg.Server.Registrations() {
		if reg.HasAwakeTime && reg.AwakeTime > 0 {
			continue
		}
		live[deviceKey{reg.Tenant, reg.DeviceID}] = true
	}
	if len(live) == 0 {
		return
	}
	n := 0
	err := r.cfg.Store.QueuedDevices(ctx, func(tenant, device string) error {
		if k := (deviceKey{tenant, device}); live[k] {
			r.kick(k)
			n++
		}
		return nil
	})
	if err != nil {
		r.log.Error("registered devices with pending operations not found at start; they get them at their next Update", "err", err)
		return
	}
	if n > 0 {
		r.log.Info("pending operations of registered devices resumed", "devices", n, "took", time.Since(start).Round(time.Millisecond))
	}
}

// watchdogBatch bounds the stuck operations failed per round.
const watchdogBatch = 1000

// watchdog fails operations that have been EXECUTING longer than
// cfg.ExecutingTimeout (their outcome was lost: a store write that
// failed, a request that never ended), and drops windows that are over.
func (r *Runner) watchdog(ctx context.Context) {
	t := time.NewTicker(r.cfg.WatchdogEvery)
	defer t.Stop()
	reason := fmt.Sprintf("stuck in EXECUTING for more than %v; outcome unknown", r.cfg.ExecutingTimeout)
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			r.sweep(now)
			r.firmwareTick(ctx, now)
			if r.cfg.Watchdog != nil && !r.cfg.Watchdog.Held() {
				continue // another replica's watchdog looks after them
			}
			ops, err := r.cfg.Store.ExecutingBefore(ctx, now.Add(-r.cfg.ExecutingTimeout), watchdogBatch)
			if err != nil {
				if ctx.Err() == nil {
					r.log.Error("watchdog: find stuck operations", "err", err)
				}
				continue
			}
			for _, op := range ops {
				if r.firmwareOwned(op, now) {
					continue
				}
				err := r.cfg.Store.SetStatusFrom(ctx, op.Tenant, op.ID, store.OpExecuting, store.OpFailed, "", reason)
				if errors.Is(err, store.ErrConflict) {
					continue // it moved on meanwhile
				}
				if err != nil {
					r.log.Error("watchdog: fail stuck operation", "operation", op.ID, "err", err)
					continue
				}
				r.watchdogFailed.Add(1)
				r.failed.Add(1)
				r.log.Warn("operation failed: stuck in EXECUTING", "tenant", op.Tenant, "device", op.DeviceID,
					"operation", op.ID, "since", op.LastUpdated, "limit", r.cfg.ExecutingTimeout)
			}
		}
	}
}

// settle settles an operation left EXECUTING by a run that ended (this
// agent's before a restart, or another replica's): a firmware update is
// resumed (reported true), one that can be repeated goes back to the
// queue, any other is failed with reason rather than risked twice.
func (r *Runner) settle(ctx context.Context, op store.TenantOperation, reason string) (resumed bool) {
	log := r.log.With("tenant", op.Tenant, "device", op.DeviceID, "operation", op.ID)
	k := deviceKey{op.Tenant, op.DeviceID}
	if fw, ok := FirmwareOf(op.Operation); ok {
		// A firmware update outlives the agent: it resumes from the
		// device's state when the device is next reachable.
		if j := r.fwJob(k); j != nil {
			if j.op.ID == op.ID {
				return false
			}
			log.Warn("second firmware update executing for the device; failed", "other", j.op.ID)
			if err := r.cfg.Store.SetStatusFrom(ctx, op.Tenant, op.ID, store.OpExecuting, store.OpFailed, "", "firmware update not resumed: another one is under way on the device"); err != nil {
				log.Error("operation left executing not failed", "err", err)
			}
			return false
		}
		r.adoptFirmware(op.Tenant, op.Operation, fw)
		r.kick(k)
		return true
	}
	if _, reset := resetOf(op.Operation); reset || Repeatable(op.Text) {
		if err := r.cfg.Store.SetStatusFrom(ctx, op.Tenant, op.ID, store.OpExecuting, store.OpPending, "", ""); err != nil {
			log.Error("operation left executing not queued again", "err", err)
			return false
		}
		r.recovered.Add(1)
		r.kick(k)
		return false
	}
	if err := r.cfg.Store.SetStatusFrom(ctx, op.Tenant, op.ID, store.OpExecuting, store.OpFailed, "", reason); err != nil {
		log.Error("operation left executing not failed", "err", err)
		return false
	}
	r.abandoned.Add(1)
	r.failed.Add(1)
	return false
}

// FailureReason is the text an operator sees for a failed exchange.
func FailureReason(err error) string {
	var re *lwm2m.ResponseError
	switch {
	case errors.As(err, &re):
		return err.Error()
	case errors.Is(err, lwm2m.ErrTimeout):
		return "timeout: " + err.Error()
	case errors.Is(err, lwm2m.ErrNotRegistered):
		return "device not registered: " + err.Error()
	}
	return err.Error()
}

// endpoint finds a device's LwM2M endpoint: from its registration
// fragment, else its c8y_Id external ID.
func (r *Runner) endpoint(ctx context.Context, tenant, device string) (string, error) {
	mo, err := r.cfg.Store.GetManagedObject(ctx, tenant, device)
	if err != nil {
		return "", fmt.Errorf("device %s: %w", device, err)
	}
	if lw, ok := mo.Fragments["lwm2m"].(map[string]any); ok {
		if ep, ok := lw["endpoint"].(string); ok && ep != "" {
			return ep, nil
		}
	}
	ids, err := r.cfg.Store.ExternalIDsOf(ctx, tenant, device)
	if err != nil {
		return "", fmt.Errorf("external ids of %s: %w", device, err)
	}
	for _, x := range ids {
		if x.Type == store.ExternalIDDevice {
			return x.ExternalID, nil
		}
	}
	return "", fmt.Errorf("device %s has no %s: %w", device, store.ExternalIDDevice, store.ErrNotFound)
}
