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

	bin string
	env []string
}

// StartAgent runs `bin serve` with a fresh embedded store in dir, every
// port on loopback, the admin password and env added to its
// environment, and waits until it answers /health.
func StartAgent(ctx context.Context, bin, dir, password string, env ...string) (*Agent, error) {
	a := &Agent{Dir: dir, bin: bin}
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
	a.env = append(append(os.Environ(),
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
	if err := a.Exec(ctx); err != nil {
		return nil, err
	}
	if err := a.WaitHealthy(ctx, 60*time.Second); err != nil {
		_ = a.Cmd.Process.Kill()
		_ = a.Cmd.Wait()
		return nil, err
	}
	return a, nil
}

// Exec starts the agent's process, with the ports, data directory and
// environment it was first started with and env after them; its output
// goes on at the end of agent.log in Dir. It returns once the process
// runs.
func (a *Agent) Exec(ctx context.Context, env ...string) error {
	logf, err := os.OpenFile(filepath.Join(a.Dir, "agent.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close() // the process keeps its own descriptor
	cmd := exec.CommandContext(ctx, a.bin, "serve")
	cmd.Env = append(a.env[:len(a.env):len(a.env)], env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start agent: %w", err)
	}
	a.Cmd = cmd
	return nil
}

// WaitHealthy polls /health every 5 ms until it answers 200, at most for
// limit.
func (a *Agent) WaitHealthy(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	c := &http.Client{Timeout: time.Second}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.HTTP+"/health", nil)
		if err != nil {
			return err
		}
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("agent did not become healthy within %s; log in %s", limit, filepath.Join(a.Dir, "agent.log"))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Stop sends the agent sig and waits for it to exit, killing it after
// limit; it returns how long the agent took to exit.
func (a *Agent) Stop(sig os.Signal, limit time.Duration) (time.Duration, error) {
	if a.Cmd == nil || a.Cmd.Process == nil {
		return 0, nil
	}
	start := time.Now()
	if err := a.Cmd.Process.Signal(sig); err != nil {
		return 0, err
	}
	done := make(chan error, 1)
	go func() { done <- a.Cmd.Wait() }()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case err := <-done:
		a.Cmd = nil
		return time.Since(start), err
	case <-timer.C:
		_ = a.Cmd.Process.Kill()
		<-done
		a.Cmd = nil
		return time.Since(start), fmt.Errorf("agent did not stop within %s: killed", limit)
	}
}

// StopProcess sends c an interrupt and waits for it to exit, killing it
// after limit.
func StopProcess(c *exec.Cmd, limit time.Duration) {
	if c == nil || c.Process == nil {
		return
	}
	_ = c.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = c.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(limit):
		_ = c.Process.Kill()
		<-done
	}
}
