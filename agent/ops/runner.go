// Package ops delivers operations to devices: it takes the shell commands
// stored as PENDING operations, sends them to the device while it is
// registered, one at a time and in creation order, and records the outcome
// (SUCCESSFUL with a result a person can read, or FAILED with the reason).
//
// The store is the queue: an operation that could not be sent stays
// PENDING there, so nothing is kept only in memory. What the runner holds
// in memory is the set of devices that have work, bounded by the number of
// devices.
package ops

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/lwm2m"
	"github.com/lwm2m-agent/lwm2m-agent/agent/mapping"
	"github.com/lwm2m-agent/lwm2m-agent/agent/model"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// ValueSink records values read from devices, like notifications.
type ValueSink interface {
	Add(ctx context.Context, tenant, device string, recs []node.Record)
}

// Config wires a Runner.
type Config struct {
	Server *lwm2m.Server
	Store  *store.Store
	// Models are the object definitions shell values are typed by, per
	// tenant (the tenants' device protocols; model.Core() fits too).
	Models Definitions
	Values ValueSink
	// Pipeline maps the values devices answer to reads, observes and
	// composite requests; nil turns mapping off.
	Pipeline *mapping.Pipeline
	Workers  int // devices served at once
	Logger   *slog.Logger
}

type deviceKey struct{ tenant, device string }

// Runner sends pending operations to registered devices.
type Runner struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	queued map[deviceKey]bool // devices waiting for a worker or being served
	dirty  map[deviceKey]bool // devices that got new work while being served
	order  []deviceKey
	wake   chan struct{}

	executed, failed int64
}

// New returns a runner; call Run to start its workers.
func New(cfg Config) *Runner {
	if cfg.Workers <= 0 {
		cfg.Workers = 64
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Runner{
		cfg:    cfg,
		log:    cfg.Logger.With("component", "ops"),
		queued: map[deviceKey]bool{},
		dirty:  map[deviceKey]bool{},
		wake:   make(chan struct{}, 1),
	}
}

// Submit is called after an operation was stored PENDING.
func (r *Runner) Submit(_ context.Context, tenant string, op store.Operation) {
	r.kick(deviceKey{tenant, op.DeviceID})
}

// Reachable is called when a device registered or updated.
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

// Run serves devices with cfg.Workers workers until ctx ends.
func (r *Runner) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for i := 0; i < r.cfg.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
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
		}()
	}
	wg.Wait()
}

// Definitions give the object definitions of a tenant's devices.
type Definitions interface {
	ObjectFor(tenant string, id uint16) (model.ObjectDef, bool)
}

// errWaitForDevice stops serving a device until it connects again.
var errWaitForDevice = errors.New("waiting for the device to connect")

// batch is how many pending operations are read from the store at once.
const batch = 10

func (r *Runner) serve(ctx context.Context, k deviceKey) {
	log := r.log.With("device", k.device)
	ep := ""
	for ctx.Err() == nil {
		// Most registrations find nothing pending: one read by key, and
		// nothing more, on that path.
		ops, err := r.cfg.Store.Pending(ctx, k.tenant, k.device, batch)
		if err != nil {
			log.Error("load pending operations", "err", err)
			return
		}
		if len(ops) == 0 {
			return
		}
		if ep == "" {
			if ep, err = r.endpoint(ctx, k.tenant, k.device); err != nil {
				log.Error("find endpoint", "err", err)
				return
			}
		}
		reg, ok := r.cfg.Server.Registration(ep)
		if !ok || reg.Tenant != k.tenant || reg.DeviceID != k.device {
			return // stays PENDING until the device registers
		}
		for _, op := range ops {
			if ctx.Err() != nil {
				return
			}
			err := r.execute(ctx, reg, op)
			if errors.Is(err, errWaitForDevice) {
				return
			}
			if err != nil {
				// the store could not record the outcome: stop here rather
				// than loop on an operation that stays PENDING
				log.Error("record operation", "operation", op.ID, "err", err)
				return
			}
		}
	}
}

func (r *Runner) execute(ctx context.Context, reg lwm2m.Registration, op store.Operation) error {
	if err := r.cfg.Store.SetStatus(ctx, reg.Tenant, op.ID, store.OpExecuting, "", ""); err != nil {
		return fmt.Errorf("operation %s: executing: %w", op.ID, err)
	}
	start := time.Now()
	result, err := r.run(ctx, reg, op.Text)
	if ctx.Err() != nil || errors.Is(err, lwm2m.ErrNoSession) {
		// The agent is stopping, or the device's DTLS session closed and
		// only the device can open a new one: it did not have its say, so
		// the operation goes back to the queue instead of failing, to be
		// sent when the device next connects.
		if err := r.cfg.Store.SetStatus(context.WithoutCancel(ctx), reg.Tenant, op.ID, store.OpPending, "", ""); err != nil {
			return fmt.Errorf("operation %s: back to pending: %w", op.ID, err)
		}
		return errWaitForDevice
	}
	status, reason := store.OpSuccessful, ""
	if err != nil {
		status, reason = store.OpFailed, FailureReason(err)
		r.failed++
	}
	r.executed++
	r.log.Debug("operation done", "operation", op.ID, "endpoint", reg.Endpoint, "status", status, "took", time.Since(start))
	if err := r.cfg.Store.SetStatus(context.WithoutCancel(ctx), reg.Tenant, op.ID, status, result, reason); err != nil {
		return fmt.Errorf("operation %s: %s: %w", op.ID, status, err)
	}
	return nil
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
