package api_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/api"
)

// The probes need no credentials; /health and /health/live answer UP
// whatever the readiness, /health/ready answers 503 with a fixed reason
// word and never the store's error.
func TestHealthProbes(t *testing.T) {
	storeErr := errors.New("server selection error: mongo-0.mongo:27017 refused")
	for _, tc := range []struct {
		name       string
		readiness  func(context.Context) error
		readyCode  int
		readyState string
		reason     string
	}{
		{name: "no readiness check", readiness: nil, readyCode: 200, readyState: "UP"},
		{name: "ready", readiness: func(context.Context) error { return nil }, readyCode: 200, readyState: "UP"},
		{name: "starting", readiness: func(context.Context) error { return api.NotReady{Reason: api.NotReadyStarting} },
			readyCode: 503, readyState: "DOWN", reason: "starting"},
		{name: "stopping", readiness: func(context.Context) error { return api.NotReady{Reason: api.NotReadyStopping} },
			readyCode: 503, readyState: "DOWN", reason: "stopping"},
		{name: "store wrapped", readiness: func(context.Context) error {
			return fmt.Errorf("%w: %w", api.NotReady{Reason: api.NotReadyStore}, storeErr)
		}, readyCode: 503, readyState: "DOWN", reason: "store"},
		{name: "any other error", readiness: func(context.Context) error { return storeErr },
			readyCode: 503, readyState: "DOWN", reason: "store"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *api.Config) { c.Readiness = tc.readiness })
			for _, path := range []string{"/health", "/health/live"} {
				if a := e.want(e.do("GET", path, "", nil), 200); a.body["status"] != "UP" {
					t.Errorf("%s: %v", path, a.body)
				}
			}
			a := e.want(e.do("GET", "/health/ready", "", nil), tc.readyCode)
			if a.body["status"] != tc.readyState {
				t.Errorf("/health/ready status %v, want %s", a.body["status"], tc.readyState)
			}
			if got, _ := a.body["reason"].(string); got != tc.reason {
				t.Errorf("/health/ready reason %q, want %q", got, tc.reason)
			}
			if len(a.body) > 2 {
				t.Errorf("/health/ready says more than status and reason: %v", a.body)
			}
		})
	}
}
