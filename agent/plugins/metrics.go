package plugins

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// LatencyBuckets are the upper bounds (seconds) of the call latency
// histogram: a batch round trip should take about a millisecond.
var LatencyBuckets = [...]float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// counters of one plugin; atomics, since every call updates them.
type counters struct {
	calls, errors, restarts atomic.Uint64
	restartsBy              [len(restartReasons)]atomic.Uint64
	buckets                 [len(LatencyBuckets) + 1]atomic.Uint64 // the last is +Inf
	sumNanos                atomic.Uint64
}

func (c *counters) observe(d time.Duration, failed bool) {
	c.calls.Add(1)
	if failed {
		c.errors.Add(1)
	}
	s := d.Seconds()
	i := 0
	for i < len(LatencyBuckets) && s > LatencyBuckets[i] {
		i++
	}
	c.buckets[i].Add(1)
	c.sumNanos.Add(uint64(d))
}

// Stats are the counters of one plugin.
type Stats struct {
	Name string
	Kind string
	// Via is "process", "grpc" or "http".
	Via string
	// Up is whether the plugin answers now: false while a process is not
	// running, and from a call that timed out (or a failed health check,
	// or for a service a connection that failed) until the next answer.
	Up bool
	// PID is the plugin process's ID (0 when not running or not a process).
	PID      int
	Calls    uint64
	Errors   uint64
	Restarts uint64
	// RestartsBy counts Restarts by reason: ReasonCrash, ReasonHang,
	// ReasonStart.
	RestartsBy map[string]uint64
	// LatencyCounts[i] counts calls that took at most LatencyBuckets[i]
	// (not cumulative); the last element counts the slower ones.
	LatencyCounts []uint64
	LatencySum    time.Duration
}

// restarted counts a restart of a plugin process for reason (one of
// restartReasons).
func (c *counters) restarted(reason string) {
	c.restarts.Add(1)
	for i, r := range restartReasons {
		if r == reason {
			c.restartsBy[i].Add(1)
		}
	}
}

func (c *counters) fill(s *Stats) {
	s.Calls, s.Errors, s.Restarts = c.calls.Load(), c.errors.Load(), c.restarts.Load()
	s.RestartsBy = make(map[string]uint64, len(restartReasons))
	for i, r := range restartReasons {
		s.RestartsBy[r] = c.restartsBy[i].Load()
	}
	s.LatencyCounts = make([]uint64, len(c.buckets))
	for i := range c.buckets {
		s.LatencyCounts[i] = c.buckets[i].Load()
	}
	s.LatencySum = time.Duration(c.sumNanos.Load())
}

var (
	descCalls = prometheus.NewDesc("lwm2m_agent_plugin_calls_total",
		"Calls to a plugin.", []string{"plugin", "kind"}, nil)
	descErrors = prometheus.NewDesc("lwm2m_agent_plugin_errors_total",
		"Calls to a plugin that failed (unavailable, timed out, error or bad answer).", []string{"plugin", "kind"}, nil)
	descRestarts = prometheus.NewDesc("lwm2m_agent_plugin_restarts_total",
		"Restarts of a plugin process, by reason: crash (it exited), hang (calls or health checks unanswered within the timeout), start (it did not start).", []string{"plugin", "kind", "reason"}, nil)
	descUp = prometheus.NewDesc("lwm2m_agent_plugin_up",
		"Whether the plugin answers now (0 while a process restarts, or since a call or health check went unanswered).", []string{"plugin", "kind"}, nil)
	descPID = prometheus.NewDesc("lwm2m_agent_plugin_process_id",
		"Process ID of a plugin process while it runs (0 when it does not).", []string{"plugin", "kind"}, nil)
	descLatency = prometheus.NewDesc("lwm2m_agent_plugin_call_duration_seconds",
		"Duration of calls to a plugin.", []string{"plugin", "kind"}, nil)
)

// collector exposes a Host's Stats to Prometheus.
type collector struct{ h *Host }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCalls, descErrors, descRestarts, descUp, descPID, descLatency} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.h.Stats() {
		ch <- prometheus.MustNewConstMetric(descCalls, prometheus.CounterValue, float64(s.Calls), s.Name, s.Kind)
		ch <- prometheus.MustNewConstMetric(descErrors, prometheus.CounterValue, float64(s.Errors), s.Name, s.Kind)
		for _, r := range restartReasons {
			ch <- prometheus.MustNewConstMetric(descRestarts, prometheus.CounterValue, float64(s.RestartsBy[r]), s.Name, s.Kind, r)
		}
		up := 0.0
		if s.Up {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, up, s.Name, s.Kind)
		if s.Via == "process" {
			ch <- prometheus.MustNewConstMetric(descPID, prometheus.GaugeValue, float64(s.PID), s.Name, s.Kind)
		}
		cum := make(map[float64]uint64, len(LatencyBuckets))
		var n uint64
		for i, b := range LatencyBuckets {
			n += s.LatencyCounts[i]
			cum[b] = n
		}
		n += s.LatencyCounts[len(LatencyBuckets)]
		ch <- prometheus.MustNewConstHistogram(descLatency, n, s.LatencySum.Seconds(), cum, s.Name, s.Kind)
	}
}
