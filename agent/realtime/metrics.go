package realtime

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	clients       prometheus.Gauge
	subscriptions prometheus.Gauge
	held          prometheus.Gauge
	delivered     prometheus.Counter
	dropped       *prometheus.CounterVec
	lost          prometheus.Counter
	latency       prometheus.Histogram
}

func newMetrics() *metrics {
	const ns, sub = "lwm2m_agent", "realtime"
	return &metrics{
		clients: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "clients",
			Help: "Realtime (Bayeux) clients held: handshook, not yet disconnected, dropped or idle."}),
		subscriptions: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "subscriptions",
			Help: "Channels subscribed to by the realtime clients, in all."}),
		held: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "connects_held",
			Help: "Realtime /meta/connect requests held now, waiting for notifications (long polls, and connects over WebSocket)."}),
		delivered: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "messages_delivered_total",
			Help: "Notifications written to realtime clients (one per client and message)."}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "clients_dropped_total",
			Help: "Realtime clients removed by the agent: queue_full (too slow: its queue of messages was full), idle (no connect within the advice's maxInterval)."},
			[]string{"reason"}),
		lost: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "changes_lost_total",
			Help: "Changes stored but not announced: the dispatcher's queue was full, or the changed object could not be read."}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "delivery_seconds",
			Help:    "Time from a change's store write to its notification written to a client's connection.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
	}
}

// Collector is the hub's metrics, for the agent's /metrics.
func (h *Hub) Collector() prometheus.Collector { return h.metrics }

func (m *metrics) all() []prometheus.Collector {
	return []prometheus.Collector{m.clients, m.subscriptions, m.held, m.delivered, m.dropped, m.lost, m.latency}
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.all() {
		c.Describe(ch)
	}
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.all() {
		c.Collect(ch)
	}
}
