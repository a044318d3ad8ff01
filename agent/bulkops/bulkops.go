// Package bulkops runs the bulk operations: it creates the operation of
// each device of a bulk operation's group, from its start date, one
// every creation ramp, and hands each to the operation runner. Its
// position is the store's, claimed one device at a time, so that a
// restart resumes where it was and agents sharing a store never create
// two operations for one device.
package bulkops

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// Runner delivers the operations created; *ops.Runner is one.
type Runner interface {
	Submit(ctx context.Context, tenant string, op store.Operation)
}

// Store is what the scheduler needs of the store.
type Store interface {
	DueBulkOperations(ctx context.Context, now time.Time, limit int) ([]store.TenantBulkOperation, error)
	CreateBulkStep(ctx context.Context, tenant string, b store.BulkOperation, next time.Time) (store.Operation, error)
}

// Config configures a Scheduler. Store is required.
type Config struct {
	Store Store
	// Runner gets each operation created; nil leaves them to the runner's
	// queue, which serves them at each device's next registration.
	Runner Runner
	// Poll is how often the store is asked for due bulk operations
	// (default 1 s): the latest a start date or a ramp step is served.
	Poll time.Duration
	// Batch bounds the operations created in one round (default 500),
	// so that a ramp of 0 over a large group does not hold the store.
	Batch  int
	Logger *slog.Logger
}

// Scheduler creates the operations of due bulk operations.
type Scheduler struct {
	cfg  Config
	log  *slog.Logger
	wake chan struct{}
}

// New returns a scheduler; Run runs it.
func New(cfg Config) *Scheduler {
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 500
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Scheduler{cfg: cfg, log: cfg.Logger.With("component", "bulkops"), wake: make(chan struct{}, 1)}
}

// Wake makes the scheduler look for due bulk operations now, as after
// one was created; it never blocks.
func (s *Scheduler) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run creates operations until ctx ends.
func (s *Scheduler) Run(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.wake:
			if !t.Stop() {
				select {
				case <-t.C:
				default:
				}
			}
		}
		t.Reset(s.round(ctx))
	}
}

// round creates the operations due now, at most Batch, and returns when
// to look again.
func (s *Scheduler) round(ctx context.Context) time.Duration {
	now := time.Now()
	due, err := s.cfg.Store.DueBulkOperations(ctx, now, s.cfg.Batch)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("read due bulk operations", "err", err)
		}
		return s.cfg.Poll
	}
	wait, created := s.cfg.Poll, 0
	for _, b := range due {
		for created < s.cfg.Batch && b.Running() && !b.NextAt.After(now) && ctx.Err() == nil {
			next := nextAt(b.BulkOperation, now)
			op, err := s.cfg.Store.CreateBulkStep(ctx, b.Tenant, b.BulkOperation, next)
			if errors.Is(err, store.ErrConflict) {
				// another agent took the step, or it was canceled: the
				// next round reads it again
				break
			}
			if err != nil {
				if ctx.Err() == nil {
					s.log.Error("create bulk operation step", "tenant", b.Tenant, "bulk_operation", b.ID, "position", b.Position, "err", err)
				}
				break
			}
			created++
			b.Position++
			b.NextAt = next
			if op.ID != "" && s.cfg.Runner != nil {
				s.cfg.Runner.Submit(ctx, b.Tenant, op)
			}
		}
		if b.Running() {
			wait = min(wait, max(time.Until(b.NextAt), 0))
		}
	}
	if created >= s.cfg.Batch {
		wait = 0
	}
	return wait
}

// nextAt is when the step after the one due now is: a ramp after this
// one's time, or after now when this one is more than a ramp late (an
// agent that was stopped), so that a late bulk operation keeps its pace
// rather than catching up at once.
func nextAt(b store.BulkOperation, now time.Time) time.Time {
	base := b.NextAt
	if now.Sub(base) > b.CreationRamp {
		base = now
	}
	return base.Add(b.CreationRamp)
}
