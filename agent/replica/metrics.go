package replica

import "github.com/prometheus/client_golang/prometheus"

var (
	descPicked = prometheus.NewDesc("lwm2m_agent_replica_operations_picked_total",
		"Operations created through any replica for devices this replica holds, picked up from the store by source (stream: change stream, poll: indexed poll).",
		[]string{"source"}, nil)
	descLease = prometheus.NewDesc("lwm2m_agent_replica_watchdog_lease",
		"1 while this replica holds the lease of the EXECUTING watchdog, which one replica runs for all.", nil, nil)
	descInfo = prometheus.NewDesc("lwm2m_agent_replica_info",
		"This replica's name (--replica-id) and how it finds the operations of other replicas (mode: stream or poll).",
		[]string{"replica", "mode"}, nil)
)

// Collector exposes the replica's counters to Prometheus.
func (r *Replica) Collector() prometheus.Collector { return collector{r} }

type collector struct{ r *Replica }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descPicked
	ch <- descLease
	ch <- descInfo
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	s := c.r.Stats()
	ch <- prometheus.MustNewConstMetric(descPicked, prometheus.CounterValue, float64(s.Streamed), "stream")
	ch <- prometheus.MustNewConstMetric(descPicked, prometheus.CounterValue, float64(s.Polled), "poll")
	lease := 0.0
	if s.LeaseHeld {
		lease = 1
	}
	ch <- prometheus.MustNewConstMetric(descLease, prometheus.GaugeValue, lease)
	ch <- prometheus.MustNewConstMetric(descInfo, prometheus.GaugeValue, 1, c.r.ID(), s.Mode)
}
