package simulator

import (
	"container/heap"
	"context"
	"sync"
	"time"
)

// timer is one entry of the scheduler. Devices and observations embed
// their timers, so re-arming one allocates nothing.
type timer struct {
	at  time.Time
	idx int // position in the heap; -1 when not armed
	fn  func(now time.Time)
}

func newTimer(fn func(now time.Time)) *timer { return &timer{idx: -1, fn: fn} }

// scheduler runs every timed action of every device from one goroutine,
// so ten thousand devices cost one goroutine and a heap rather than ten
// thousand sleeping goroutines. Timer functions run on that goroutine and
// must not block: anything that waits for the network goes to the workers.
type scheduler struct {
	mu   sync.Mutex
	h    timerHeap
	wake chan struct{}
}

func newScheduler() *scheduler {
	return &scheduler{wake: make(chan struct{}, 1)}
}

// at arms t to fire at the given time, moving it if it was armed.
func (s *scheduler) at(t *timer, when time.Time) {
	s.mu.Lock()
	t.at = when
	if t.idx >= 0 {
		heap.Fix(&s.h, t.idx)
	} else {
		heap.Push(&s.h, t)
	}
	first := t.idx == 0
	s.mu.Unlock()
	if first {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// after arms t to fire after d.
func (s *scheduler) after(t *timer, d time.Duration) { s.at(t, time.Now().Add(d)) }

// when returns the time t fires, false when it is not armed.
func (s *scheduler) when(t *timer) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return t.at, t.idx >= 0
}

// stop disarms t; it is a no-op for a timer that is not armed.
func (s *scheduler) stop(t *timer) {
	s.mu.Lock()
	if t.idx >= 0 {
		heap.Remove(&s.h, t.idx)
	}
	s.mu.Unlock()
}

// run fires timers until ctx is done.
func (s *scheduler) run(ctx context.Context) {
	tm := time.NewTimer(time.Hour)
	defer tm.Stop()
	for {
		now := time.Now()
		s.mu.Lock()
		var due *timer
		wait := time.Hour
		if len(s.h) > 0 {
			if d := s.h[0].at.Sub(now); d <= 0 {
				due = heap.Pop(&s.h).(*timer)
			} else {
				wait = d
			}
		}
		s.mu.Unlock()
		if due != nil {
			due.fn(now)
			if ctx.Err() != nil {
				return
			}
			continue
		}
		tm.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-tm.C:
		}
	}
}

type timerHeap []*timer

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx = i
	h[j].idx = j
}
func (h *timerHeap) Push(x any) {
	t := x.(*timer)
	t.idx = len(*h)
	*h = append(*h, t)
}
func (h *timerHeap) Pop() any {
	old := *h
	n := len(old)
	t := old[n-1]
	old[n-1] = nil
	t.idx = -1
	*h = old[:n-1]
	return t
}
