package plugins

import (
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"sync"
	"time"

	"github.com/hashicorp/go-plugin"

	"github.com/lwm2m-agent/lwm2m-agent/plugins/bundled"
	"github.com/lwm2m-agent/lwm2m-agent/sdk"
)

// process is a plugin program the agent starts and keeps running. One
// goroutine (supervise) owns the go-plugin client: it starts the program,
// watches it, and restarts it when it exits or hangs, waiting MinBackoff,
// then twice as long after each failure in a row, at most MaxBackoff.
type process struct {
	spec Spec
	log  *slog.Logger
	c    *counters

	kick chan struct{} // a call failed: check the process now

	mu       sync.Mutex
	client   any // the dispensed sdk client while the process runs
	pidNow   int
	timeouts int  // calls in a row that ran out of time
	hung     bool // too many timeouts: restart
}

func newProcess(s Spec, log *slog.Logger, c *counters) *process {
	return &process{spec: s, log: log, c: c, kick: make(chan struct{}, 1)}
}

// How often the supervisor looks whether the process is still alive; a
// crash is usually noticed sooner, by the failing call that kicks it.
const watchInterval = 250 * time.Millisecond

// stableAfter is how long a process must run before a failure starts the
// backoff over from MinBackoff.
const stableAfter = 30 * time.Second

func (p *process) supervise(ctx context.Context, first chan<- struct{}) {
	backoff := time.Duration(p.spec.MinBackoff)
	for attempt := 0; ; attempt++ {
		started := time.Now()
		pc, impl, err := p.start()
		if err == nil {
			p.set(impl, pc.ReattachConfig().Pid)
		}
		if attempt == 0 {
			close(first) // New returns: calls reach the plugin from now on
		}
		if err != nil {
			p.log.Error("plugin did not start", "err", err, "retry_in", backoff)
		} else {
			p.log.Info("plugin started", "pid", pc.ReattachConfig().Pid, "restarts", p.c.restarts.Load())
			why := p.watch(ctx, pc)
			p.set(nil, 0)
			pc.Kill()
			if ctx.Err() != nil {
				return
			}
			p.log.Warn("plugin stopped; restarting", "reason", why, "retry_in", backoff)
			if time.Since(started) >= stableAfter {
				backoff = time.Duration(p.spec.MinBackoff)
			}
		}
		p.c.restarts.Add(1)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, time.Duration(p.spec.MaxBackoff))
	}
}

// start runs the program and dispenses its client.
func (p *process) start() (*plugin.Client, any, error) {
	set := sdk.ClientPlugins()
	if p.spec.Bundled {
		set = bundled.ClientPlugins()
	}
	pc := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		Plugins:          set,
		Cmd:              exec.Command(p.spec.Path, p.spec.Args...),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           newHCLogger(p.log),
		StartTimeout:     10 * time.Second,
	})
	rpc, err := pc.Client()
	if err != nil {
		pc.Kill()
		return nil, nil, fmt.Errorf("start %s: %w", p.spec.Path, err)
	}
	raw, err := rpc.Dispense(p.spec.Kind)
	if err != nil {
		pc.Kill()
		return nil, nil, fmt.Errorf("dispense %s from %s: %w", p.spec.Kind, p.spec.Path, err)
	}
	return pc, raw, nil
}

// watch returns when the process must be restarted (with the reason) or
// ctx ends.
func (p *process) watch(ctx context.Context, pc *plugin.Client) string {
	tick := time.NewTicker(watchInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return "agent stopping"
		case <-tick.C:
		case <-p.kick:
		}
		if pc.Exited() {
			return "process exited"
		}
		p.mu.Lock()
		hung := p.hung
		p.mu.Unlock()
		if hung {
			return fmt.Sprintf("%d calls in a row timed out", p.spec.HungAfter)
		}
	}
}

func (p *process) set(impl any, pid int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.client, p.pidNow, p.timeouts, p.hung = impl, pid, 0, false
}

func (p *process) impl() (any, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.client == nil {
		return nil, fmt.Errorf("%w: process not running (restarting)", ErrUnavailable)
	}
	return p.client, nil
}

func (p *process) failed(timeout bool) {
	p.mu.Lock()
	if timeout {
		p.timeouts++
		if p.timeouts >= p.spec.HungAfter {
			p.hung = true
		}
	}
	p.mu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

func (p *process) succeeded() {
	p.mu.Lock()
	p.timeouts = 0
	p.mu.Unlock()
}

func (p *process) up() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.client != nil
}

func (p *process) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pidNow
}

func (p *process) via() string { return "process" }

// close: the supervisor kills the process when the host's context ends.
func (p *process) close() {}
