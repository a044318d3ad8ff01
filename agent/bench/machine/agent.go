package machine

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// Agent is an agent process a load run started, on free loopback ports.
type Agent struct {
	Cmd                            *exec.Cmd
	Dir                            string // data directory and log
	CoAP, CoAPS, Bootstrap, BootsS string // host:port
	HTTP, Pprof                    string // http://host:port
}

// StartAgent runs `bin serve` with a fresh embedded store in dir, every
// port on loopback, the admin password and env added to its
// environment, and waits until it answers /health.
func StartAgent(ctx context.Context, bin, dir, password string, env ...string) (*Agent, error) {
	a := &Agent{Dir: dir}
	for _, p := range []struct {
		dst     *string
		network string
	}{{&a.CoAP, "udp"}, {&a.CoAPS, "udp"}, {&a.Bootstrap, "udp"}, {&a.BootsS, "udp"}, {&a.HTTP, "tcp"}, {&a.Pprof, "tcp"}} {
		addr, err := FreePort(p.network)
		if err != nil {
			return nil, err
		}
		*p.dst = addr
	}
	cmd := exec.CommandContext(ctx, bin, "serve")
	cmd.Env = append(append(os.Environ(),
		"LWM2M_AGENT_DATA_DIR="+filepath.Join(dir, "data"),
		"LWM2M_AGENT_COAP_ADDR="+a.CoAP,
		"LWM2M_AGENT_COAPS_ADDR="+a.CoAPS,
		"LWM2M_AGENT_BOOTSTRAP_ADDR="+a.Bootstrap,
		"LWM2M_AGENT_BOOTSTRAPS_ADDR="+a.BootsS,
		"LWM2M_AGENT_HTTP_ADDR="+a.HTTP,
		"LWM2M_AGENT_ADMIN_PASSWORD="+password,
		"LWM2M_AGENT_LOG_LEVEL=warn",
		"LWM2M_AGENT_PPROF_ADDR="+a.Pprof,
	), env...)
	a.HTTP, a.Pprof = "http://"+a.HTTP, "http://"+a.Pprof
	logf, err := os.Create(filepath.Join(dir, "agent.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the process keeps its own descriptor
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start agent: %w", err)
	}
	a.Cmd = cmd
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(a.HTTP + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return a, nil
			}
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return nil, fmt.Errorf("agent did not become healthy; log in %s", logf.Name())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
