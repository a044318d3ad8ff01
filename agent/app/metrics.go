package app

import (
	"github.com/lwm2m-agent/lwm2m-agent/agent/bootstrap"
	"github.com/lwm2m-agent/lwm2m-agent/agent/mapping"
	"github.com/prometheus/client_golang/prometheus"
)

// collector exposes the agent's counters to Prometheus at scrape time, so
// the hot paths only bump atomics.
type collector struct {
	a     *Agent
	descs map[string]*prometheus.Desc
}

type metric struct {
	name, help string
	gauge      bool
	value      func(a *Agent) float64
}

var metrics = []metric{
	{"lwm2m_agent_registrations", "Devices currently registered.", true, func(a *Agent) float64 { return float64(a.Server.Stats().Registrations) }},
	{"lwm2m_agent_observations", "Observations currently active.", true, func(a *Agent) float64 { return float64(a.Server.Stats().Observations) }},
	{"lwm2m_agent_registers_total", "Register requests accepted.", false, func(a *Agent) float64 { return float64(a.Server.Stats().Registers) }},
	{"lwm2m_agent_updates_total", "Registration updates accepted.", false, func(a *Agent) float64 { return float64(a.Server.Stats().Updates) }},
	{"lwm2m_agent_deregisters_total", "De-registrations.", false, func(a *Agent) float64 { return float64(a.Server.Stats().Deregisters) }},
	{"lwm2m_agent_expiries_total", "Registrations whose lifetime ran out.", false, func(a *Agent) float64 { return float64(a.Server.Stats().Expiries) }},
	{"lwm2m_agent_registrations_ended_total", "Registrations the agent ended because the device's security mode, PSK key or identity changed or the device was deleted, and those not restored at start because the device's registration parameters no longer allowed them.", false, func(a *Agent) float64 { return float64(a.Server.Stats().Ended + a.restoreEnded) }},
	{"lwm2m_agent_rejected_total", "Register or Update requests refused.", false, func(a *Agent) float64 { return float64(a.Server.Stats().Rejected) }},
	{"lwm2m_agent_requests_total", "Requests sent to devices.", false, func(a *Agent) float64 { return float64(a.Server.Stats().Requests) }},
	{"lwm2m_agent_request_timeouts_total", "Requests to devices that timed out.", false, func(a *Agent) float64 { return float64(a.Server.Stats().RequestTimeouts) }},
	{"lwm2m_agent_request_errors_total", "Requests answered with an error code or not sent.", false, func(a *Agent) float64 { return float64(a.Server.Stats().RequestErrors) }},
	{"lwm2m_agent_notifications_total", "Notifications received.", false, func(a *Agent) float64 { return float64(a.Server.Stats().Notifications) }},
	{"lwm2m_agent_notifications_rst_total", "Notifications of cancelled observations answered with RST.", false, func(a *Agent) float64 { return float64(a.Server.Stats().NotificationsRST) }},
	{"lwm2m_agent_sends_total", "LwM2M Send messages received.", false, func(a *Agent) float64 { return float64(a.Server.Stats().Sends) }},
	{"lwm2m_agent_decode_errors_total", "Payloads from devices that did not decode.", false, func(a *Agent) float64 { return float64(a.Server.Stats().DecodeErrors) }},
	{"lwm2m_agent_devices_taken_over_total", "Registrations taken over from other replicas sharing the store (MongoDB), by their device's first Update here after the load balancer moved it.", false, func(a *Agent) float64 { return float64(a.Server.Stats().TakenOver) }},
	{"lwm2m_agent_rate_limited_total", "Datagrams dropped because their peer sent too many.", false, func(a *Agent) float64 { return float64(a.Server.Stats().RateLimited) }},
	{"lwm2m_agent_dtls_sessions", "DTLS sessions open on the LwM2M server port.", true, func(a *Agent) float64 { n, _, _ := a.Server.Sessions(); return float64(n) }},
	{"lwm2m_agent_dtls_handshakes_in_progress", "DTLS handshakes under way on the LwM2M server port (bounded by --dtls-max-handshakes).", true, func(a *Agent) float64 { return float64(a.Server.HandshakesInProgress()) }},
	{"lwm2m_agent_dtls_refused_total", "DTLS handshakes dropped by the handshake or session limit.", false, func(a *Agent) float64 { _, n, _ := a.Server.Sessions(); return float64(n) }},
	{"lwm2m_agent_dtls_hello_verify_requests_total", "ClientHellos without a valid cookie answered with a HelloVerifyRequest, for which nothing was kept.", false, func(a *Agent) float64 { return float64(a.Server.HelloVerifyRequests()) }},
	{"lwm2m_agent_dtls_handshakes_total", "Full DTLS handshakes completed.", false, func(a *Agent) float64 { return float64(a.Server.SessionStats().Handshakes) }},
	{"lwm2m_agent_dtls_parked_sessions", "DTLS sessions parked in memory: only their state is kept.", true, func(a *Agent) float64 { return float64(a.Server.SessionStats().Parked) }},
	{"lwm2m_agent_dtls_parks_total", "DTLS sessions parked after being idle.", false, func(a *Agent) float64 { return float64(a.Server.SessionStats().Parks) }},
	{"lwm2m_agent_dtls_reservations_lost_total", "DTLS sessions closed because another process resumed them or a new handshake replaced them.", false, func(a *Agent) float64 { return float64(a.Server.SessionStats().ReservationsLost) }},
	{"lwm2m_agent_dtls_session_store_errors_total", "Store operations on DTLS session state that failed.", false, func(a *Agent) float64 { return float64(a.Server.SessionStats().StoreErrors) }},
	{"lwm2m_agent_dtls_handshake_failures_total", "DTLS handshakes that failed (unknown identity, wrong key, timeout).", false, func(a *Agent) float64 { _, _, n := a.Server.Sessions(); return float64(n) }},
	{"lwm2m_agent_bootstrap_sessions", "Bootstrap sessions running.", true, func(a *Agent) float64 { return float64(a.bootstrapStats().Sessions) }},
	{"lwm2m_agent_bootstrap_requests_total", "Bootstrap-Requests received.", false, func(a *Agent) float64 { return float64(a.bootstrapStats().Requests) }},
	{"lwm2m_agent_bootstrap_refused_total", "Bootstrap-Requests refused (malformed, unknown endpoint, forbidden, over the per-endpoint limit or while another address's session of the endpoint runs).", false, func(a *Agent) float64 { return float64(a.bootstrapStats().Refused) }},
	{"lwm2m_agent_bootstrap_finished_total", "Bootstrap sessions that ended with Bootstrap-Finish.", false, func(a *Agent) float64 { return float64(a.bootstrapStats().Finished) }},
	{"lwm2m_agent_bootstrap_failed_total", "Bootstrap sessions that failed.", false, func(a *Agent) float64 { return float64(a.bootstrapStats().Failed) }},
	{"lwm2m_agent_decoded_total", "Values decoded by decoder plugins.", false, func(a *Agent) float64 { return float64(a.decoderStats().Decoded) }},
	{"lwm2m_agent_decode_failed_total", "Values a decoder refused or failed on by themselves, or that named a plugin not configured, each with a mapping alarm.", false, func(a *Agent) float64 { return float64(a.decoderStats().Failed) }},
	{"lwm2m_agent_decode_retries_total", "Decoder calls that failed for a reason that may pass, their values kept in the decode backlog for a retry.", false, func(a *Agent) float64 { return float64(a.decoderStats().Retries) }},
	{"lwm2m_agent_post_operations_total", "Post-registration operations created at full registrations.", false, func(a *Agent) float64 { return float64(a.PostOps.Created()) }},
	{"lwm2m_agent_post_operations_skipped_total", "Registrations whose post-registration operations were skipped (queue full or store error).", false, func(a *Agent) float64 { return float64(a.PostOps.Skipped()) }},
	{"lwm2m_agent_operations_executed_at_once_total", "Reads answered before their EXECUTING was written, recorded with it in one store write.", false, func(a *Agent) float64 { return float64(a.Ops.Stats().Executed) }},
	{"lwm2m_agent_operations_sent_total", "Operations sent to devices (moved to EXECUTING).", false, func(a *Agent) float64 { return float64(a.Ops.Stats().Sent) }},
	{"lwm2m_agent_operations_successful_total", "Operations the devices answered with success.", false, func(a *Agent) float64 { return float64(a.Ops.Stats().Successful) }},
	{"lwm2m_agent_operations_failed_total", "Operations failed, for any reason.", false, func(a *Agent) float64 { return float64(a.Ops.Stats().Failed) }},
	{"lwm2m_agent_operations_timed_out_total", "Operation requests the device did not answer in time.", false, func(a *Agent) float64 { return float64(a.Ops.Stats().TimedOut) }},
	{"lwm2m_agent_operations_requeued_total", "Operations returned to PENDING after a timeout, for the device's next Register or Update.", false, func(a *Agent) float64 { return float64(a.Ops.Stats().Requeued) }},
	{"lwm2m_agent_operations_watchdog_failed_total", "Operations failed by the watchdog after staying EXECUTING too long.", false, func(a *Agent) float64 { return float64(a.Ops.Stats().WatchdogFailed) }},
	{"lwm2m_agent_operations_recovered_total", "Operations left EXECUTING by the previous run and queued again at start.", false, func(a *Agent) float64 { return float64(a.Ops.Stats().Recovered) }},
	{"lwm2m_agent_operations_abandoned_total", "Operations left EXECUTING by the previous run and failed at start (not repeatable).", false, func(a *Agent) float64 { return float64(a.Ops.Stats().Abandoned) }},
	{"lwm2m_agent_operation_windows", "Devices in an operation window the runner keeps track of.", true, func(a *Agent) float64 { return float64(a.Ops.Windows()) }},
	{"lwm2m_agent_values_written_total", "Last known values written to the store.", false, func(a *Agent) float64 { return float64(a.Values.Written()) }},
	{"lwm2m_agent_lifecycle_events_total", "Lifecycle events stored.", false, func(a *Agent) float64 { return float64(a.State.Events()) }},
	{"lwm2m_agent_state_failed_total", "Registration state changes that could not be stored.", false, func(a *Agent) float64 { return float64(a.State.Failed()) }},
	{"lwm2m_agent_pipeline_values_total", "Values mapped by the pipeline.", false, func(a *Agent) float64 { return float64(a.Pipeline.Stats().Values) }},
	{"lwm2m_agent_pipeline_measurements_total", "Measurements stored by the pipeline.", false, func(a *Agent) float64 { return float64(a.Pipeline.Stats().Writer.Measurements) }},
	{"lwm2m_agent_pipeline_events_total", "Events stored by the pipeline.", false, func(a *Agent) float64 { return float64(a.Pipeline.Stats().Writer.Events) }},
	{"lwm2m_agent_pipeline_alarm_changes_total", "Alarms raised or cleared by the pipeline.", false, func(a *Agent) float64 { return float64(a.Pipeline.Stats().Writer.Alarms) }},
	{"lwm2m_agent_pipeline_inventory_updates_total", "Device inventory updates stored by the pipeline.", false, func(a *Agent) float64 { return float64(a.Pipeline.Stats().Writer.Inventory) }},
	{"lwm2m_agent_pipeline_dropped_total", "Pipeline outputs refused by the store or not stored at stop.", false, func(a *Agent) float64 { return float64(a.Pipeline.Stats().Writer.Dropped) }},
	{"lwm2m_agent_pipeline_store_retries_total", "Pipeline flushes repeated after a store error.", false, func(a *Agent) float64 { return float64(a.Pipeline.Stats().Writer.Retries) }},
	{"lwm2m_agent_pipeline_bundled_calls_total", "Batches sent to the bundled mapping and custom action plugins.", false, func(a *Agent) float64 { return float64(a.Pipeline.Stats().BundledCalls) }},
	{"lwm2m_agent_pipeline_bundled_retries_total", "Calls to the bundled plugins repeated after a failure that may pass (a plugin process restarting).", false, func(a *Agent) float64 { return float64(a.Pipeline.Stats().BundledRetries) }},
	{"lwm2m_agent_pipeline_bundled_failed_total", "Values the bundled plugins did not map after every retry, each device with a mapping alarm.", false, func(a *Agent) float64 { return float64(a.Pipeline.Stats().BundledFailed) }},
	{"lwm2m_agent_auto_observations_total", "Observations started by autoObserve (at a Register, an Update, or a change of the device protocols).", false, func(a *Agent) float64 { return float64(a.Pipeline.Stats().AutoObserved) }},
	{"lwm2m_agent_values_failed_total", "Values that could not be stored.", false, func(a *Agent) float64 { return float64(a.Values.Failed()) }},
}

func (a *Agent) bootstrapStats() bootstrap.Stats {
	if a.Bootstrap == nil {
		return bootstrap.Stats{}
	}
	return a.Bootstrap.Stats()
}

func (a *Agent) decoderStats() mapping.DecoderStats {
	if a.Decoder == nil {
		return mapping.DecoderStats{}
	}
	return a.Decoder.Stats()
}

// labeledMetrics are counters with one label, each value by label value.
var labeledMetrics = []struct {
	name, help, label string
	values            func(a *Agent) map[string]float64
}{
	{"lwm2m_agent_dtls_sessions_resumed_total", "DTLS sessions resumed without a handshake, by where their state was: memory (parked here) or store (parked before a restart, or by another replica).", "from",
		func(a *Agent) map[string]float64 {
			st := a.Server.SessionStats()
			return map[string]float64{"memory": float64(st.ResumedMemory), "store": float64(st.ResumedStore)}
		}},
	{"lwm2m_agent_dtls_resume_failures_total", "Records of parked DTLS sessions that did not resume them, by reason.", "reason",
		func(a *Agent) map[string]float64 {
			out := map[string]float64{}
			for r, n := range a.Server.SessionStats().ResumeFailures {
				out[r] = float64(n)
			}
			return out
		}},
}

func newCollector(a *Agent) *collector {
	c := &collector{a: a, descs: map[string]*prometheus.Desc{}}
	for _, m := range metrics {
		c.descs[m.name] = prometheus.NewDesc(m.name, m.help, nil, nil)
	}
	for _, m := range labeledMetrics {
		c.descs[m.name] = prometheus.NewDesc(m.name, m.help, []string{m.label}, nil)
	}
	return c
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	for _, m := range metrics {
		t := prometheus.CounterValue
		if m.gauge {
			t = prometheus.GaugeValue
		}
		ch <- prometheus.MustNewConstMetric(c.descs[m.name], t, m.value(c.a))
	}
	for _, m := range labeledMetrics {
		for l, v := range m.values(c.a) {
			ch <- prometheus.MustNewConstMetric(c.descs[m.name], prometheus.CounterValue, v, l)
		}
	}
}
