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

// expiryLoop removes registrations whose lifetime (plus grace) ran out and
// reports them to Hooks.Expired.
func (s *Server) expiryLoop(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		var expired []Registration
		s.mu.Lock()
		for len(s.expiry) > 0 && !s.expiry[0].expireAt.After(now) {
			rs := s.expiry[0]
			s.removeLocked(rs)
			expired = append(expired, copyReg(rs.reg))
		}
		next := time.Hour
		if len(s.expiry) > 0 {
			next = s.expiry[0].expireAt.Sub(now)
		}
		s.mu.Unlock()

		for _, reg := range expired {
			s.stats.expiries.Add(1)
			s.log.Info("registration expired", "endpoint", reg.Endpoint, "reg_id", reg.ID)
			s.hooks.Expired(ctx, reg)
		}

		timer.Reset(next)
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-s.kick:
		}
	}
}
