package simulator

import (
	"context"
	"sync"
	"time"
)

// workQueue hands devices that have a network exchange to make (register,
// update, de-register) to the workers. A device is in the queue at most
// once, so the queue never holds more than the number of devices.
type workQueue struct {
	mu     sync.Mutex
	cond   *sync.Cond
	items  []*Device
	head   int
	closed bool
}

func newWorkQueue() *workQueue {
	q := &workQueue{}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// push queues d unless it is queued already (d.queued is guarded by q.mu).
func (q *workQueue) push(d *Device) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || d.queued {
		return
	}
	d.queued = true
	q.items = append(q.items, d)
	q.cond.Signal()
}

// pop waits for a device; it returns nil once the queue is closed.
func (q *workQueue) pop() *Device {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.head == len(q.items) && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		return nil
	}
	d := q.items[q.head]
	q.items[q.head] = nil
	q.head++
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	} else if q.head > 1024 && q.head*2 > len(q.items) {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	d.queued = false
	return d
}

func (q *workQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
}

// worker runs devices' pending exchanges until the queue closes. ctx is
// the Run context: exchanges in flight stop when it is done.
func (s *Simulator) worker(ctx context.Context) {
	for {
		d := s.work.pop()
		if d == nil {
			return
		}
		d.doWork(ctx)
	}
}

// pacer spaces registrations to a rate shared by all workers.
type pacer struct {
	mu    sync.Mutex
	every time.Duration
	next  time.Time
}

func newPacer(rate float64) *pacer {
	p := &pacer{}
	if rate > 0 {
		p.every = time.Duration(float64(time.Second) / rate)
	}
	return p
}

// wait blocks until the caller may register.
func (p *pacer) wait(ctx context.Context) error {
	if p.every == 0 {
		return nil
	}
	p.mu.Lock()
	now := time.Now()
	if p.next.Before(now) {
		p.next = now
	}
	at := p.next
	p.next = p.next.Add(p.every)
	p.mu.Unlock()
	d := time.Until(at)
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
