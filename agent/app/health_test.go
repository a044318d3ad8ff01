package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/config"
	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/apitest"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/ferrettest"
)

// probe answers the status code and reason of GET base+path.
func probe(t *testing.T, base, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(base + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	var body struct{ Status, Reason string }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, body.Reason
}

// waitProbe waits until GET base+path answers code with reason.
func waitProbe(t *testing.T, base, path string, code int, reason string) {
	t.Helper()
	apitest.Eventually(t, 30*time.Second, func() error {
		if got, why := probe(t, base, path); got != code || why != reason {
			return fmt.Errorf("GET %s: %d %q, want %d %q", path, got, why, code, reason)
		}
		return nil
	})
}

func healthConfig(t *testing.T) config.Config {
	cfg := config.Default()
	cfg.CoAPAddr, cfg.CoAPSAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.BootstrapAddr, cfg.BootstrapSAddr = "", ""
	cfg.DataDir = t.TempDir()
	cfg.AdminPassword = "Admin-pass-1234!"
	cfg.BundledPlugins = config.BundledInProcess // this test binary is not the agent
	return cfg
}

// A started agent is ready; draining makes it not ready while it goes on
// serving (alive, API answering).
func TestReadyUntilDrained(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	a, wait, err := Start(ctx, healthConfig(t), nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	defer func() { cancel(); _ = wait() }()
	base := "http://" + a.HTTPAddr.String()
	if code, why := probe(t, base, "/health/ready"); code != 200 {
		t.Fatalf("ready after start: %d %q", code, why)
	}
	a.Drain()
	if code, why := probe(t, base, "/health/ready"); code != 503 || why != "stopping" {
		t.Errorf("ready while draining: %d %q, want 503 stopping", code, why)
	}
	if code, _ := probe(t, base, "/health/live"); code != 200 {
		t.Errorf("live while draining: %d, want 200", code)
	}
	req, _ := http.NewRequest("GET", base+"/inventory/managedObjects?pageSize=1", nil)
	req.SetBasicAuth("management/admin", "Admin-pass-1234!")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("API while draining: %v %v", resp, err)
	}
	if resp != nil {
		resp.Body.Close()
	}
}

// An agent on MongoDB is ready only while the store answers: with its
// MongoDB-wire server gone, it stays alive but not ready.
func TestNotReadyWithoutStore(t *testing.T) {
	uri, stopStore, err := ferrettest.Run(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stopStore()
	cfg := healthConfig(t)
	cfg.MongoURI = uri
	ctx, cancel := context.WithCancel(context.Background())
	a, wait, err := Start(ctx, cfg, nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	base := "http://" + a.HTTPAddr.String()
	waitProbe(t, base, "/health/ready", 200, "")
	stopStore()
	waitProbe(t, base, "/health/ready", 503, "store")
	if code, _ := probe(t, base, "/health/live"); code != 200 {
		t.Errorf("live without the store: %d, want 200", code)
	}
	cancel()
	_ = wait()
}
