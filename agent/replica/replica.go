// Package replica lets agents share one store (MongoDB) as replicas
// behind a UDP load balancer that keeps each device on one of them.
//
// A device's registration names the replica holding it (the lwm2m
// fragment's replica), and that replica sends the device its operations.
// An operation created through any replica must reach the one holding
// its device: each replica watches the store for operations stored
// PENDING, through a change stream where the deployment has them and
// else by polling an index of the PENDING operations by creation time,
// and hands those of its own devices to its operation runner. There is
// no broker: the store is the only thing the replicas share.
//
// Work done for all replicas (the watchdog of operations stuck in
// EXECUTING) is done by the one holding a lease in the store.
package replica

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// Kicker is told of a device that has a new pending operation; the
// operation runner is one.
type Kicker interface {
	Reachable(tenant, deviceID string)
}

// Defaults of Config.
const (
	DefaultPoll     = 500 * time.Millisecond
	DefaultLeaseTTL = 30 * time.Second
	// WatchdogLease names the lease of the EXECUTING watchdog.
	WatchdogLease = "watchdog"
)

// Config wires a Replica.
type Config struct {
	// ID names this replica (DefaultID when empty).
	ID    string
	Store store.Engine
	Kick  Kicker
	// Poll is the time between two reads of the new PENDING operations
	// where the store has no change streams (DefaultPoll).
	Poll time.Duration
	// LeaseTTL is how long a lease lasts unless renewed (renewed every
	// third of it; DefaultLeaseTTL).
	LeaseTTL time.Duration
	Logger   *slog.Logger
}

// Replica watches for the operations of its devices and holds the
// leases of the work done for all.
type Replica struct {
	cfg Config
	log *slog.Logger

	streamed, polled atomic.Int64
	mode             atomic.Value // "stream" or "poll", once known
	leaseUntil       atomic.Int64 // Unix nanoseconds the watchdog lease is held until; 0: not held
}

// DefaultID is the host name, which a StatefulSet or a compose service
// keeps across restarts, or else a random name for this run.
func DefaultID() string {
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "replica-" + hex.EncodeToString(b[:])
}

// New returns a replica; Run starts it.
func New(cfg Config) *Replica {
	if cfg.ID == "" {
		cfg.ID = DefaultID()
	}
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultPoll
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Replica{cfg: cfg, log: cfg.Logger.With("component", "replica", "replica", cfg.ID)}
}

// ID names the replica.
func (r *Replica) ID() string { return r.cfg.ID }

// Run watches for operations and keeps the lease until ctx ends, then
// gives the lease up.
func (r *Replica) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { r.watch(ctx) })
	wg.Go(func() { r.lease(ctx) })
	wg.Wait()
}

// Held says whether this replica holds the watchdog lease now, short of
// a margin for the clocks of the replicas.
func (r *Replica) Held() bool {
	until := r.leaseUntil.Load()
	return until != 0 && time.Now().Add(r.cfg.LeaseTTL/10).UnixNano() < until
}

// Stats are what the replica did since it started.
type Stats struct {
	Streamed, Polled int64  // operations of its devices picked up by the change stream, by the poll
	Mode             string // "stream" or "poll"; "" until known
	LeaseHeld        bool
}

// Stats returns the counters so far.
func (r *Replica) Stats() Stats {
	mode, _ := r.mode.Load().(string)
	return Stats{Streamed: r.streamed.Load(), Polled: r.polled.Load(), Mode: mode, LeaseHeld: r.Held()}
}

// watch follows the change stream where the store has one and polls
// otherwise, or after the stream failed.
func (r *Replica) watch(ctx context.Context) {
	start := time.Now()
	if w, ok := r.cfg.Store.(store.PendingWatcher); ok {
		r.mode.Store("stream")
		err := w.WatchPending(ctx, func(op store.PendingOperation) {
			if r.pick(op) {
				r.streamed.Add(1)
			}
		})
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, store.ErrUnsupported):
			r.log.Info("operations of other replicas found by polling: the store has no change streams", "poll", r.cfg.Poll, "err", err)
		default:
			r.log.Warn("change stream of operations ended; polling instead", "poll", r.cfg.Poll, "err", err)
		}
	}
	r.mode.Store("poll")
	r.poll(ctx, start)
}

// pollOverlap is how far back each poll reads from the start of the one
// before: an operation is stored with its creator's clock, a little
// before it is visible, and replicas' clocks differ a little.
const pollOverlap = 2 * time.Second

// pollBatch bounds the operations read by one query of a poll.
const pollBatch = 1000

// poll reads the PENDING operations created since the last poll (less
// the overlap) every cfg.Poll, until ctx ends. An operation is handed on
// once: those seen are remembered until they fall out of the overlap,
// so the memory is bounded by the operations created in it.
func (r *Replica) poll(ctx context.Context, start time.Time) {
	t := time.NewTicker(r.cfg.Poll)
	defer t.Stop()
	since := start.Add(-pollOverlap)
	seen := map[string]time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		from := since
		for {
			ops, err := r.cfg.Store.PendingSince(ctx, from, pollBatch)
			if err != nil {
				if ctx.Err() == nil {
					r.log.Error("poll for new operations", "err", err)
				}
				break
			}
			for _, op := range ops {
				k := op.Tenant + "/" + op.ID
				if _, ok := seen[k]; ok {
					continue
				}
				seen[k] = op.CreationTime
				if r.pick(op) {
					r.polled.Add(1)
				}
			}
			if len(ops) < pollBatch || !ops[len(ops)-1].CreationTime.After(from) {
				break
			}
			from = ops[len(ops)-1].CreationTime
		}
		since = now.Add(-pollOverlap)
		for k, ct := range seen {
			if ct.Before(since) {
				delete(seen, k)
			}
		}
	}
}

// pick hands an operation to the runner if this replica holds its
// device, and says whether it did.
func (r *Replica) pick(op store.PendingOperation) bool {
	if op.Replica != r.cfg.ID {
		return false
	}
	r.cfg.Kick.Reachable(op.Tenant, op.DeviceID)
	return true
}

// lease takes and renews the watchdog lease every third of its time,
// until ctx ends, and then gives it up.
func (r *Replica) lease(ctx context.Context) {
	ttl := r.cfg.LeaseTTL
	t := time.NewTicker(ttl / 3)
	defer t.Stop()
	for {
		now := time.Now()
		ok, err := r.cfg.Store.AcquireLease(ctx, WatchdogLease, r.cfg.ID, now, ttl)
		switch {
		case err != nil && ctx.Err() == nil:
			r.log.Error("watchdog lease not renewed", "err", err)
		case ok:
			if r.leaseUntil.Swap(now.Add(ttl).UnixNano()) == 0 {
				r.log.Info("watchdog lease taken")
			}
		default:
			if r.leaseUntil.Swap(0) != 0 {
				r.log.Info("watchdog lease lost to another replica")
			}
		}
		select {
		case <-ctx.Done():
			if r.leaseUntil.Swap(0) != 0 {
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				if err := r.cfg.Store.ReleaseLease(rctx, WatchdogLease, r.cfg.ID); err != nil {
					r.log.Warn("watchdog lease not released; it expires", "err", fmt.Errorf("release: %w", err))
				}
				cancel()
			}
			return
		case <-t.C:
		}
	}
}
