package app

import "github.com/prometheus/client_golang/prometheus"

// collector exposes the agent's counters to Prometheus at scrape time, so
// the hot paths only bump atomics.
type collector struct {
	a             *Agent
	registrations *prometheus.Desc
	valuesWritten *prometheus.Desc
	valuesFailed  *prometheus.Desc
}

func newCollector(a *Agent) *collector {
	return &collector{
		a:             a,
		registrations: prometheus.NewDesc("lwm2m_agent_registrations", "Devices currently registered.", nil, nil),
		valuesWritten: prometheus.NewDesc("lwm2m_agent_values_written_total", "Last known values written to the store.", nil, nil),
		valuesFailed:  prometheus.NewDesc("lwm2m_agent_values_failed_total", "Values that could not be stored.", nil, nil),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.registrations
	ch <- c.valuesWritten
	ch <- c.valuesFailed
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.registrations, prometheus.GaugeValue, float64(c.a.Server.Count()))
	ch <- prometheus.MustNewConstMetric(c.valuesWritten, prometheus.CounterValue, float64(c.a.Values.Written()))
	ch <- prometheus.MustNewConstMetric(c.valuesFailed, prometheus.CounterValue, float64(c.a.Values.Failed()))
}
