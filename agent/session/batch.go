package session

import (
	"context"
	"time"
)

// batchLoop is the loop of a bounded batching writer: it adds what arrives
// on in to the current batch (add returns how many entries that was, and
// whether someone waits for it), flushes when maxBatch entries were added,
// every interval, or at once when someone waits, and when ctx ends drains
// what is queued and flushes once more within drainTimeout. A flush for
// someone waiting first takes everything queued meanwhile (up to
// maxBatch): what queued up while the previous flush ran shares its
// round.
func batchLoop[T any](ctx context.Context, in <-chan T, interval time.Duration, maxBatch int, drainTimeout time.Duration,
	add func(T) (n int, waited bool), flush func(context.Context)) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	n := 0
	takeQueued := func() {
		for n < maxBatch {
			select {
			case item := <-in:
				k, _ := add(item)
				n += k
			default:
				return
			}
		}
	}
	for {
		select {
		case item := <-in:
			k, waited := add(item)
			if n += k; waited {
				takeQueued()
			}
			if waited || n >= maxBatch {
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
