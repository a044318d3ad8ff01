package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"syscall"
	"testing"
	"time"
)

// SIGTERM, as Kubernetes sends it, first drains the agent: for
// --shutdown-delay it answers /health/ready 503 "stopping" while it stays
// alive and serves the API, so that load balancers move traffic away
// before its sockets close; then it stops cleanly (exit status 0).
func TestSIGTERMDrainsThenStops(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the agent as a process")
	}
	dir := t.TempDir()
	p, h := startAgentProcess(t, dir, freeUDPAddr(t), freeTCPAddr(t), "--shutdown-delay", "5s")
	probe := func(path string) (int, string, error) {
		resp, err := http.Get(h.base + path)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		var body struct{ Status, Reason string }
		err = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body.Reason, err
	}
	if code, why, err := probe("/health/ready"); code != 200 || err != nil {
		t.Fatalf("ready after start: %d %q %v", code, why, err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 4*time.Second, func() error {
		if code, why, err := probe("/health/ready"); code != 503 || why != "stopping" {
			return fmt.Errorf("ready after SIGTERM: %d %q %v, want 503 stopping", code, why, err)
		}
		return nil
	})
	if code, _, err := probe("/health/live"); code != 200 {
		t.Errorf("live while draining: %d %v, want 200", code, err)
	}
	if code := h.call("GET", "/inventory/managedObjects?pageSize=1", nil, nil); code != 200 {
		t.Errorf("API while draining: %d, want 200", code)
	}
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		t.Fatal("agent still running 60 s after SIGTERM")
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
}
