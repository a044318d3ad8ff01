package api

import (
	"errors"
	"net/http"
)

// The reasons the words GET /health/ready answers with: fixed
// words, because the path needs no credentials and must not tell anyone
// the store's addresses or errors (the agent logs those).
const (
	NotReadyStarting = "starting" // listeners or parts not up yet
	NotReadyStopping = "stopping" // the agent is draining before it stops
	NotReadyStore    = "store"    // the store did not answer in time
)

// NotReady is the error a Readiness check returns: Reason is one of the
// NotReady* words.
type NotReady struct{ Reason string }

func (e NotReady) Error() string { return "not ready: " + e.Reason }

// healthRoutes serve the probes of load balancers and orchestrators,
// without credentials: /health and /health/live answer while the process
// serves HTTP (a restart would not help otherwise), /health/ready only
// while the agent should receive traffic.
func (a *API) healthRoutes(m *http.ServeMux) {
	up := func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "UP"})
	}
	m.HandleFunc("GET /health", up)
	m.HandleFunc("GET /health/live", up)
	m.HandleFunc("GET /health/ready", func(w http.ResponseWriter, r *http.Request) {
		if a.cfg.Readiness == nil {
			up(w, r)
			return
		}
		if err := a.cfg.Readiness(r.Context()); err != nil {
			reason := NotReadyStore
			var nr NotReady
			if errors.As(err, &nr) {
				reason = nr.Reason
			}
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "DOWN", "reason": reason})
			return
		}
		up(w, r)
	})
}
