package app

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/config"
)

// When one part of the agent cannot run, the whole agent stops and says
// why, instead of running on without it.
func TestFailingPartStopsAgent(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := config.Default()
	cfg.CoAPAddr, cfg.CoAPSAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.BootstrapAddr, cfg.BootstrapSAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.AdminPassword = "Admin-pass-1234!"
	cfg.PprofAddr = busy.Addr().String()         // taken: the profiler cannot listen
	cfg.BundledPlugins = config.BundledInProcess // this test binary is not the agent
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, wait, err := Start(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- wait() }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "pprof") {
			t.Errorf("agent stopped with %v, want the profiler's listen error", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("agent kept running without one of its parts")
	}
}
