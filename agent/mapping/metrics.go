package mapping

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

var descStoreDelay = prometheus.NewDesc("lwm2m_agent_pipeline_store_delay_seconds",
	"Time from a device's values being handed to the pipeline (before the bundled plugins map them) to their outputs being stored, waiting for room in the queues included.", nil, nil)

// Collector exposes the histogram of the writer's delay to Prometheus.
func (p *Pipeline) Collector() prometheus.Collector { return delayCollector{p.writer} }

type delayCollector struct{ w *Writer }

func (c delayCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descStoreDelay }

func (c delayCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.w.Stats()
	cum := make(map[float64]uint64, len(DelayBuckets))
	var n uint64
	for i, b := range DelayBuckets {
		n += uint64(s.Delay[i])
		cum[b] = n
	}
	n += uint64(s.Delay[len(DelayBuckets)])
	ch <- prometheus.MustNewConstHistogram(descStoreDelay, n, s.DelaySum.Seconds(), cum)
}

var (
	descBacklogValues = prometheus.NewDesc("lwm2m_agent_decode_backlog_values",
		"Values waiting in the decode backlog for a decoder or custom action plugin, those being decoded included, as last counted (every 5 s).",
		[]string{"plugin"}, nil)
	descBacklogOldest = prometheus.NewDesc("lwm2m_agent_decode_backlog_oldest_seconds",
		"Age of the oldest value waiting for a decoder or custom action plugin; 0 when none waits.",
		[]string{"plugin"}, nil)
	descDecodeDropped = prometheus.NewDesc("lwm2m_agent_decode_dropped_total",
		"Values dropped from decoding, each device told by a mapping alarm, by reason: full (the tenant's decode backlog was full), expired (not decoded within --decode-retry-for), store (the backlog could not store them).",
		[]string{"reason"}, nil)
)

// Collector exposes the decode backlog's gauges and the dropped values
// to Prometheus.
func (d *PluginDecoder) Collector() prometheus.Collector { return backlogCollector{d} }

type backlogCollector struct{ d *PluginDecoder }

func (c backlogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descBacklogValues
	ch <- descBacklogOldest
	ch <- descDecodeDropped
}

func (c backlogCollector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	for _, s := range c.d.BacklogStats() {
		ch <- prometheus.MustNewConstMetric(descBacklogValues, prometheus.GaugeValue, float64(s.Waiting), s.Decoder)
		age := 0.0
		if s.Waiting > 0 {
			age = max(now.Sub(s.Oldest).Seconds(), 0)
		}
		ch <- prometheus.MustNewConstMetric(descBacklogOldest, prometheus.GaugeValue, age, s.Decoder)
	}
	for reason, n := range c.d.Dropped() {
		ch <- prometheus.MustNewConstMetric(descDecodeDropped, prometheus.CounterValue, float64(n), reason)
	}
}
