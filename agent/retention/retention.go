// Package retention expires a fleet's history, as Cumulocity's retention
// rules do: measurements, events, cleared alarms and finished operations
// older than each kind's maximum age are deleted, a pass at a time.
package retention

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// Rule keeps a kind of data for MaxAge; 0 keeps it forever.
type Rule struct {
	Kind   store.DataKind
	MaxAge time.Duration
}

// Config of a Runner; zero fields mean the defaults.
type Config struct {
	Store store.Retention
	Rules []Rule
	// Interval between passes (1 h). First is the wait before the first
	// pass (10 min): an agent that restarts often still expires, and one
	// just started serves its devices first.
	Interval, First time.Duration
	// Batch bounds the records one store call deletes (1,000): the
	// embedded engine's writer is shared with the devices' changes,
	// which wait behind a long delete.
	Batch  int
	Logger *slog.Logger
}

// Runner runs the passes.
type Runner struct {
	cfg     Config
	log     *slog.Logger
	deleted *prometheus.CounterVec
	failed  prometheus.Counter
}

// New returns a runner of cfg's rules; run it with Run.
func New(cfg Config) *Runner {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Hour
	}
	if cfg.First <= 0 {
		cfg.First = 10 * time.Minute
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 1000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	r := &Runner{cfg: cfg, log: cfg.Logger.With("component", "retention"),
		deleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lwm2m_agent_retention_deleted_total",
			Help: "Records deleted for their age, by kind (MEASUREMENT, EVENT, ALARM, OPERATION).",
		}, []string{"kind"}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lwm2m_agent_retention_failures_total",
			Help: "Retention passes that failed (the store's error is logged); the next pass goes on.",
		}),
	}
	for _, rule := range cfg.Rules {
		r.deleted.WithLabelValues(string(rule.Kind))
	}
	return r
}

// Collector is the runner's metrics.
func (r *Runner) Collector() prometheus.Collector { return collectors{r.deleted, r.failed} }

type collectors []prometheus.Collector

func (c collectors) Describe(ch chan<- *prometheus.Desc) {
	for _, x := range c {
		x.Describe(ch)
	}
}

func (c collectors) Collect(ch chan<- prometheus.Metric) {
	for _, x := range c {
		x.Collect(ch)
	}
}

// Active says whether any rule expires anything.
func (r *Runner) Active() bool {
	for _, rule := range r.cfg.Rules {
		if rule.MaxAge > 0 {
			return true
		}
	}
	return false
}

// Run runs a pass after First, then every Interval, until ctx ends. A
// failed pass is logged and counted; the next one tries again.
func (r *Runner) Run(ctx context.Context) {
	if !r.Active() {
		return
	}
	t := time.NewTimer(r.cfg.First)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := r.Pass(ctx, time.Now()); err != nil && ctx.Err() == nil {
			r.failed.Inc()
			r.log.Error("retention pass failed", "err", err)
		}
		t.Reset(r.cfg.Interval)
	}
}

// Pass expires, for each rule, what is older than its maximum age at
// now, and returns how many records of each kind it deleted.
func (r *Runner) Pass(ctx context.Context, now time.Time) (map[store.DataKind]int, error) {
	done := map[store.DataKind]int{}
	for _, rule := range r.cfg.Rules {
		if rule.MaxAge <= 0 {
			continue
		}
		before := now.Add(-rule.MaxAge)
		for {
			n, err := r.cfg.Store.Expire(ctx, rule.Kind, before, r.cfg.Batch)
			done[rule.Kind] += n
			r.deleted.WithLabelValues(string(rule.Kind)).Add(float64(n))
			if err != nil {
				return done, fmt.Errorf("retention: %w", err)
			}
			if n == 0 {
				break
			}
		}
		if done[rule.Kind] > 0 {
			r.log.Info("expired", "kind", rule.Kind, "deleted", done[rule.Kind], "before", before.UTC())
		}
	}
	return done, nil
}
