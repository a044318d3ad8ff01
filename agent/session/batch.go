package session

import (
	"context"
	"time"
)

// batchLoop is the loop of a bounded batching writer: it adds what arrives
// on in to the current batch (add returns how many entries that was),
// flushes when maxBatch entries were added or every interval, and when ctx
// ends drains what is queued and flushes once more within drainTimeout.
func batchLoop[T any](ctx context.Context, in <-chan T, interval time.Duration, maxBatch int, drainTimeout time.Duration,
	add func(T) int, flush func(context.Context)) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	n := 0
	for {
		select {
		case item := <-in:
			if n += add(item); n >= maxBatch {
				flush(ctx)
				n = 0
			}
		case <-tick.C:
			if n > 0 {
				flush(ctx)
				n = 0
			}
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), drainTimeout)
			defer cancel()
			for {
				select {
				case item := <-in:
					add(item)
				default:
					flush(dctx)
					return
				}
			}
		}
	}
}
