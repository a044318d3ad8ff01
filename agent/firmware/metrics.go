package firmware

import "github.com/prometheus/client_golang/prometheus"

// metrics are the service's Prometheus metrics (docs/firmware.md).
type metrics struct {
	active  prometheus.GaugeFunc
	served  *prometheus.CounterVec
	refused *prometheus.CounterVec
}

func newMetrics(s *Service) *metrics {
	m := &metrics{
		active: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "lwm2m_agent_firmware_transfers",
			Help: "Firmware package transfers under way (a block or request within the stall timeout)."},
			func() float64 { return float64(s.transfers.active()) }),
		served: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lwm2m_agent_firmware_served_bytes_total",
			Help: "Bytes of firmware packages served to devices, by scheme."}, []string{"scheme"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lwm2m_agent_firmware_refused_total",
			Help: "Firmware package requests refused, by reason (unknown, identity, scheme, busy, device_busy, block, store)."}, []string{"reason"}),
	}
	for _, sch := range []string{"coap", "coaps", "http", "https"} {
		m.served.WithLabelValues(sch)
	}
	for _, r := range []string{refusedUnknown, refusedIdentity, refusedScheme, refusedBusy, refusedDeviceBusy, refusedBlock, refusedStore} {
		m.refused.WithLabelValues(r)
	}
	return m
}

// Collectors are the service's metrics, to register.
func (s *Service) Collectors() []prometheus.Collector {
	return []prometheus.Collector{s.metrics.active, s.metrics.served, s.metrics.refused}
}
