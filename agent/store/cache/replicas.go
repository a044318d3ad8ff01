package cache

import (
	"context"
	"fmt"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// Replicas. An operation another replica created is news to this one's
// cache: the queue of its device may be cached empty. Every operation
// the watch for new operations sees drops its device's cached queue,
// before the caller looks at the queue.

func (e *Engine) PendingSince(ctx context.Context, since time.Time, limit int) ([]store.PendingOperation, error) {
	ops, err := e.e.PendingSince(ctx, since, limit)
	if len(ops) > 0 {
		ch := change{queues: make([]devKey, len(ops))}
		for i, op := range ops {
			ch.queues[i] = devKey{op.Tenant, op.DeviceID}
		}
		e.c.apply(ch)
	}
	return ops, err
}

// WatchPending passes the engine's watch on, if it has one.
func (e *Engine) WatchPending(ctx context.Context, fn func(store.PendingOperation)) error {
	w, ok := e.e.(store.PendingWatcher)
	if !ok {
		return fmt.Errorf("watch operations: %w", store.ErrUnsupported)
	}
	return w.WatchPending(ctx, func(op store.PendingOperation) {
		e.c.apply(change{queues: one(op.Tenant, op.DeviceID)})
		fn(op)
	})
}

// RegistrationByID reads a registration another replica wrote: nothing
// here holds it.
func (e *Engine) RegistrationByID(ctx context.Context, id string) (store.LiveRegistration, error) {
	return e.e.RegistrationByID(ctx, id)
}

func (e *Engine) AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (bool, error) {
	return e.e.AcquireLease(ctx, name, holder, now, ttl)
}

func (e *Engine) ReleaseLease(ctx context.Context, name, holder string) error {
	return e.e.ReleaseLease(ctx, name, holder)
}

var _ store.PendingWatcher = (*Engine)(nil)
