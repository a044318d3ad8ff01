package app

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/api"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// Readiness is checked against the store at most once per readyCacheFor:
// the path needs no credentials, so a flood of probes must not become a
// flood of store reads. readyStoreTimeout is well under the probes'
// usual timeout (1 s in Kubernetes, 5 s in `lwm2m-agent health`).
const (
	readyCacheFor     = time.Second
	readyStoreTimeout = 800 * time.Millisecond
)

// readiness says whether the agent should receive traffic: every listener
// bound and every part started, not stopping, and the store answering.
type readiness struct {
	store    store.Tenants // the engine beneath the caches: a cached answer proves nothing
	log      *slog.Logger
	started  atomic.Bool
	draining atomic.Bool
	ctx      context.Context // the agent's: once it ends, parts are stopping

	mu   sync.Mutex
	at   time.Time
	err  error
	down bool // what was logged last, so that a probe every few seconds logs a change once
}

func (r *readiness) check(ctx context.Context) error {
	switch {
	case r.draining.Load() || r.ctx.Err() != nil:
		return api.NotReady{Reason: api.NotReadyStopping}
	case !r.started.Load():
		return api.NotReady{Reason: api.NotReadyStarting}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := time.Now(); now.Sub(r.at) >= readyCacheFor {
		sctx, cancel := context.WithTimeout(ctx, readyStoreTimeout)
		_, err := r.store.GetTenant(sctx, store.ManagementTenant)
		cancel()
		if err != nil {
			err = fmt.Errorf("%w: read management tenant: %w", api.NotReady{Reason: api.NotReadyStore}, err)
		}
		r.at, r.err = time.Now(), err
		r.logChange(err)
	}
	return r.err
}

func (r *readiness) logChange(err error) {
	if down := err != nil; down == r.down {
		return
	}
	r.down = err != nil
	if err != nil {
		r.log.Warn("not ready: the store does not answer", "err", err)
	} else {
		r.log.Info("ready: the store answers")
	}
}

// Ready is nil while the agent should receive traffic (GET /health/ready).
func (a *Agent) Ready(ctx context.Context) error { return a.ready.check(ctx) }

// Drain makes the agent not ready while it goes on serving, so that load
// balancers and Kubernetes stop sending it new devices and requests
// before it stops: the serve command calls it at SIGTERM, and cancels
// the agent's context after --shutdown-delay.
func (a *Agent) Drain() {
	if !a.ready.draining.Swap(true) {
		a.log.Info("draining: not ready, still serving until stopped")
	}
}
