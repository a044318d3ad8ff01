package regload

import (
	"math/bits"
	"time"
)

// Histogram counts durations in log-linear buckets: 32 per power of two,
// so a percentile read from it is within about 3 % of the true one. It
// takes no allocation and no lock: each socket has its own, merged once
// the run is over.
type Histogram struct {
	counts [histBuckets]uint64
	n      uint64
}

const (
	histSub     = 32 // buckets per power of two
	histBuckets = 41 * histSub
)

func bucketOf(ns uint64) int {
	if ns < 2*histSub {
		return int(ns)
	}
	shift := bits.Len64(ns) - 6 // keep the top six bits: 32..63
	i := shift*histSub + int(ns>>shift)
	return min(i, histBuckets-1)
}

// lowerBound is the smallest duration, in nanoseconds, of bucket i.
func lowerBound(i int) uint64 {
	if i < 2*histSub {
		return uint64(i)
	}
	shift := i/histSub - 1
	return uint64(i%histSub+histSub) << shift
}

// Add counts d.
func (h *Histogram) Add(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(uint64(d))]++
	h.n++
}

// Merge adds o's counts to h.
func (h *Histogram) Merge(o *Histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
}

// Count is how many durations were added.
func (h *Histogram) Count() uint64 { return h.n }

// Quantile returns the duration below which a fraction q of those added
// lie: the middle of its bucket, 0 when none were added.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q * float64(h.n))
	if rank >= h.n {
		rank = h.n - 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen > rank {
			lo, hi := lowerBound(i), lowerBound(i+1)
			return time.Duration(lo + (hi-lo)/2)
		}
	}
	return 0
}
