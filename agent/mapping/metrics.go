package mapping

import "github.com/prometheus/client_golang/prometheus"

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
