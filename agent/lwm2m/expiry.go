package lwm2m

import (
	"container/heap"
	"context"
	"time"
)

// expiryHeap orders registrations by expireAt, earliest first. One
// goroutine (expiryLoop) sleeps until the earliest deadline, so the cost
// of a registration's lifetime is a heap slot, not a timer or goroutine.
type expiryHeap []*regState

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].expireAt.Before(h[j].expireAt) }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx = i
	h[j].heapIdx = j
}
func (h *expiryHeap) Push(x any) {
	rs := x.(*regState)
	rs.heapIdx = len(*h)
	*h = append(*h, rs)
}
func (h *expiryHeap) Pop() any {
	old := *h
	n := len(old)
	rs := old[n-1]
	old[n-1] = nil
	rs.heapIdx = -1
	*h = old[:n-1]
	return rs
}

// scheduleLocked sets rs to expire at now + lifetime + grace and wakes the
// expiry loop if that is the new earliest deadline.
func (s *Server) scheduleLocked(rs *regState, now time.Time) {
	rs.expireAt = now.Add(rs.reg.Lifetime + s.cfg.ExpiryGrace)
	if rs.heapIdx >= 0 && rs.heapIdx < len(s.expiry) && s.expiry[rs.heapIdx] == rs {
		heap.Fix(&s.expiry, rs.heapIdx)
	} else {
		heap.Push(&s.expiry, rs)
	}
	if s.expiry[0] == rs {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

func (s *Server) unscheduleLocked(rs *regState) {
	if rs.heapIdx >= 0 && rs.heapIdx < len(s.expiry) && s.expiry[rs.heapIdx] == rs {
		heap.Remove(&s.expiry, rs.heapIdx)
	}
	rs.heapIdx = -1
}

// expiryPostpone is how much later an expired registration is looked at
// again when a change of its endpoint was under way: that change renews
// or replaces it, or leaves it to expire then.
const expiryPostpone = 100 * time.Millisecond

// expiryLoop removes registrations whose lifetime (plus grace) ran out and
// reports them to Hooks.Persist and Hooks.Expired.
func (s *Server) expiryLoop(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		var due []*regState
		s.mu.Lock()
		for len(s.expiry) > 0 && !s.expiry[0].expireAt.After(now) {
			due = append(due, heap.Pop(&s.expiry).(*regState))
		}
		s.mu.Unlock()

		for _, rs := range due {
			s.expire(ctx, rs, now)
		}

		s.mu.Lock()
		next := time.Hour
		if len(s.expiry) > 0 {
			next = time.Until(s.expiry[0].expireAt)
		}
		s.mu.Unlock()
		timer.Reset(next)
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-s.kick:
		}
	}
}

// expire ends rs, taken off the expiry heap as due at now, unless it was
// renewed or ended meanwhile. While a change of its endpoint is under way
// (an Update or Register waiting for Persist) it is put back to be looked
// at again shortly, rather than holding every other expiry back.
func (s *Server) expire(ctx context.Context, rs *regState, now time.Time) {
	s.mu.RLock()
	endpoint := rs.reg.Endpoint
	s.mu.RUnlock()
	unlock, ok := s.endpoints.tryLock(endpoint)
	s.mu.Lock()
	switch {
	case s.byID[rs.reg.ID] != rs || rs.heapIdx >= 0:
		// ended, or renewed by an Update and scheduled again
		s.mu.Unlock()
		if ok {
			unlock()
		}
		return
	case !ok:
		rs.expireAt = now.Add(expiryPostpone)
		heap.Push(&s.expiry, rs)
		s.mu.Unlock()
		return
	}
	s.removeLocked(rs)
	reg := copyReg(rs.reg)
	s.mu.Unlock()
	s.persistGone(ctx, reg, ChangeExpire)
	s.forgetSession(reg)
	unlock()
	s.stats.expiries.Add(1)
	s.log.Info("registration expired", "endpoint", reg.Endpoint, "reg_id", reg.ID)
	s.hooks.Expired(ctx, reg)
}
