package plugins

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-plugin"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/lwm2m-agent/lwm2m-agent/plugins/bundled"
	"github.com/lwm2m-agent/lwm2m-agent/sdk"
)

// Why a plugin process was restarted: the reason label of
// lwm2m_agent_plugin_restarts_total.
const (
	ReasonCrash = "crash" // the process exited
	ReasonHang  = "hang"  // calls or health checks went unanswered
	ReasonStart = "start" // the process did not start
)

// restartReasons are the reasons in the order of counters.restartsBy.
var restartReasons = [...]string{ReasonCrash, ReasonHang, ReasonStart}

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
	health   healthpb.HealthClient
	proc     *os.Process
	gen      uint64        // counts starts: which process a call reached
	ready    chan struct{} // closed when a process runs; replaced when it stops
	exited   chan struct{} // closed when the process of gen is gone
	timeouts int           // calls in a row that ran out of time
	badPings int           // health checks in a row that went unanswered
	silent   bool          // the last call or health check went unanswered
	hung     bool          // too many timeouts: restart
}

func newProcess(s Spec, log *slog.Logger, c *counters) *process {
	return &process{spec: s, log: log, c: c, kick: make(chan struct{}, 1), ready: make(chan struct{})}
}

// How often the supervisor looks whether the process is still alive; a
// crash is usually noticed sooner, by the failing call that kicks it.
const watchInterval = 250 * time.Millisecond

// HealthInterval is how often the supervisor asks a running plugin
// process's gRPC health service whether it answers; a call that times out
// asks at once. A check unanswered within the plugin's timeout counts
// toward hungAfter as a timed-out call does.
const HealthInterval = 2 * time.Second

// stableAfter is how long a process must run before a failure starts the
// backoff over from MinBackoff.
const stableAfter = 30 * time.Second

// stopGrace bounds go-plugin's own stop (a shutdown request, then a kill
// after two seconds); a process that has not gone by then is killed. It
// matters for a process that cannot answer the shutdown request, such as
// one stopped with SIGSTOP, on which go-plugin would wait forever.
const stopGrace = 5 * time.Second

func (p *process) supervise(ctx context.Context, first chan<- struct{}) {
	backoff := time.Duration(p.spec.MinBackoff)
	for attempt := 0; ; attempt++ {
		started := time.Now()
		pc, cmd, impl, health, err := p.start()
		var exited chan struct{}
		if err == nil {
			exited = p.set(impl, health, cmd.Process)
		}
		if attempt == 0 {
			close(first) // New returns: calls reach the plugin from now on
		}
		reason := ReasonStart
		if err != nil {
			p.log.Error("plugin did not start", "err", err, "retry_in", backoff)
		} else {
			p.log.Info("plugin started", "pid", cmd.Process.Pid, "restarts", p.c.restarts.Load())
			var why string
			reason, why = p.watch(ctx, pc)
			p.unset()
			p.stop(pc, cmd.Process, reason == ReasonHang)
			close(exited)
			if ctx.Err() != nil {
				return
			}
			p.log.Warn("plugin stopped; restarting", "reason", reason, "why", why, "pid", cmd.Process.Pid, "retry_in", backoff)
			if time.Since(started) >= stableAfter {
				backoff = time.Duration(p.spec.MinBackoff)
			}
		}
		p.c.restarted(reason)
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

// start runs the program and dispenses its client; health is the client
// of the health service go-plugin serves beside the plugin.
func (p *process) start() (pc *plugin.Client, cmd *exec.Cmd, impl any, health healthpb.HealthClient, err error) {
	set := sdk.ClientPlugins()
	if p.spec.Bundled {
		set = bundled.ClientPlugins()
	}
	cmd = exec.Command(p.spec.Path, p.spec.Args...)
	pc = plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		Plugins:          set,
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           newHCLogger(p.log, filepath.Base(p.spec.Path)),
		SyncStdout:       newOutputLines(p.log, "stdout"),
		SyncStderr:       newOutputLines(p.log, "stderr"),
		StartTimeout:     10 * time.Second,
	})
	rpc, err := pc.Client()
	if err != nil {
		p.stop(pc, cmd.Process, true)
		return nil, nil, nil, nil, fmt.Errorf("start %s: %w", p.spec.Path, err)
	}
	if impl, err = rpc.Dispense(p.spec.Kind); err != nil {
		p.stop(pc, cmd.Process, true)
		return nil, nil, nil, nil, fmt.Errorf("dispense %s from %s: %w", p.spec.Kind, p.spec.Path, err)
	}
	if g, ok := rpc.(*plugin.GRPCClient); ok {
		health = healthpb.NewHealthClient(g.Conn)
	}
	return pc, cmd, impl, health, nil
}

// stop ends the process: through go-plugin (which asks it to exit, then
// kills it), and with SIGKILL at once when force is set (a hung process
// cannot answer the request) or when go-plugin has not finished within
// stopGrace.
func (p *process) stop(pc *plugin.Client, proc *os.Process, force bool) {
	if force && proc != nil {
		_ = proc.Kill()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		pc.Kill()
	}()
	t := time.NewTimer(stopGrace)
	defer t.Stop()
	select {
	case <-done:
		return
	case <-t.C:
	}
	if proc != nil {
		p.log.Warn("plugin did not stop; killing it", "pid", proc.Pid)
		_ = proc.Kill()
	}
	<-done
}

// watch returns when the process must be restarted (with the reason and
// its detail) or ctx ends.
func (p *process) watch(ctx context.Context, pc *plugin.Client) (reason, why string) {
	tick := time.NewTicker(watchInterval)
	defer tick.Stop()
	nextCheck := time.Now().Add(HealthInterval)
	for {
		kicked := false
		select {
		case <-ctx.Done():
			return "", "agent stopping"
		case <-tick.C:
		case <-p.kick:
			kicked = true
		}
		if pc.Exited() {
			return ReasonCrash, "process exited"
		}
		p.mu.Lock()
		hung, suspect := p.hung, p.timeouts > 0
		p.mu.Unlock()
		if hung {
			return ReasonHang, fmt.Sprintf("%d calls in a row timed out", p.spec.HungAfter)
		}
		if !time.Now().After(nextCheck) && !(kicked && suspect) {
			continue
		}
		nextCheck = time.Now().Add(HealthInterval)
		err := p.check(ctx)
		if ctx.Err() != nil {
			return "", "agent stopping"
		}
		if pc.Exited() {
			return ReasonCrash, "process exited"
		}
		if n := p.checked(err); n >= p.spec.HungAfter {
			return ReasonHang, fmt.Sprintf("%d health checks in a row failed: %v", n, err)
		}
	}
}

// check asks the running process's gRPC health service (go-plugin serves
// it) whether the plugin serves, within the plugin's timeout.
func (p *process) check(ctx context.Context) error {
	p.mu.Lock()
	health := p.health
	p.mu.Unlock()
	if health == nil {
		return fmt.Errorf("%w: process not running", ErrUnavailable)
	}
	return checkHealth(ctx, health, plugin.GRPCServiceName, time.Duration(p.spec.Timeout))
}

// checked records a health check's outcome and returns how many checks in
// a row have failed.
func (p *process) checked(err error) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.badPings++
		p.silent = true
		return p.badPings
	}
	p.badPings = 0
	p.silent = p.timeouts > 0
	return 0
}

func (p *process) set(impl any, health healthpb.HealthClient, proc *os.Process) chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.client, p.health, p.proc = impl, health, proc
	p.gen++
	p.timeouts, p.badPings, p.silent, p.hung = 0, 0, false, false
	p.exited = make(chan struct{})
	close(p.ready)
	return p.exited
}

func (p *process) unset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.client, p.health, p.proc = nil, nil, nil
	p.ready = make(chan struct{})
}

func (p *process) impl() (any, error) {
	c, _, err := p.current()
	return c, err
}

// current returns the client with the generation of its process.
func (p *process) current() (any, uint64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.client == nil {
		return nil, 0, fmt.Errorf("%w: process not running (restarting)", ErrUnavailable)
	}
	return p.client, p.gen, nil
}

// crashedDuring reports whether the process of generation gen is gone,
// waiting for its supervisor to notice (it is kicked by the failed call)
// at most wait: a call that failed because its process died returns a
// moment before the process is reaped.
func (p *process) crashedDuring(ctx context.Context, gen uint64, wait time.Duration) bool {
	p.mu.Lock()
	cur, exited := p.gen, p.exited
	p.mu.Unlock()
	if cur != gen {
		return true
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-exited:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

// waitReady returns when a process runs (after a restart) or ctx ends.
func (p *process) waitReady(ctx context.Context) error {
	p.mu.Lock()
	ready := p.ready
	p.mu.Unlock()
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: waiting for the process to restart: %w", ErrUnavailable, ctx.Err())
	}
}

// answers reports whether the running process answers its health check
// now (within the plugin's timeout).
func (p *process) answers(ctx context.Context) bool { return p.check(ctx) == nil }

func (p *process) failed(timeout bool) {
	p.mu.Lock()
	if timeout {
		p.timeouts++
		p.silent = true
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
	p.silent = p.badPings > 0
	p.mu.Unlock()
}

func (p *process) up() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.client != nil && !p.silent
}

func (p *process) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc == nil {
		return 0
	}
	return p.proc.Pid
}

func (p *process) via() string { return "process" }

// close: the supervisor kills the process when the host's context ends.
func (p *process) close() {}
