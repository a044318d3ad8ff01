package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/ops"
	"github.com/lwm2m-agent/lwm2m-agent/agent/simulator"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// agentProcess is the built agent running as a process of its own, as in
// production, so that a test can kill it the way a crash does.
type agentProcess struct {
	t    *testing.T
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

// freeTCPAddr returns a loopback TCP address nobody listens on now.
func freeTCPAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// startAgentProcess runs `lwm2m-agent serve` over dir with the CoAP and
// HTTP ports given, and waits until its API answers. Its log goes to a
// file that is printed when the test fails. The test's end kills it.
func startAgentProcess(t *testing.T, dir, coap, httpAddr string, extra ...string) (*agentProcess, *harness) {
	t.Helper()
	bin := agentExecutable(t)
	logFile, err := os.OpenFile(filepath.Join(dir, "agent.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	args := append([]string{"serve",
		"--data-dir", dir,
		"--coap-addr", coap, "--coaps-addr", "", "--bootstrap-addr", "", "--bootstraps-addr", "",
		"--http-addr", httpAddr,
		"--admin-password", adminPassword,
		"--auto-register",
		"--log-level", "info",
	}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Env = cleanEnv()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("start agent process: %v", err)
	}
	p := &agentProcess{t: t, cmd: cmd, done: make(chan struct{}), log: logFile.Name()}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			if b, err := os.ReadFile(p.log); err == nil {
				t.Logf("agent log:\n%s", tail(string(b), 60))
			}
		}
	})
	h := &harness{t: t, base: "http://" + httpAddr, ctx: context.Background()}
	waitFor(t, 60*time.Second, func() error {
		select {
		case <-p.done:
			t.Fatalf("agent process exited at start: %v", cmd.ProcessState)
		default:
		}
		req, _ := http.NewRequest("GET", h.base+"/inventory/managedObjects?pageSize=1", nil)
		req.SetBasicAuth("management/admin", adminPassword)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("API: HTTP %d", resp.StatusCode)
		}
		return nil
	})
	return p, h
}

// kill ends the process with SIGKILL, as a crash or the OOM killer does:
// nothing of it runs after, and waits until it is gone.
func (p *agentProcess) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		p.t.Errorf("kill agent: %v", err)
	}
	<-p.done
}

// cleanEnv is the test's environment without the agent's own settings,
// so that the command line alone configures the process.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LWM2M_AGENT_") {
			env = append(env, kv)
		}
	}
	return env
}

func tail(s string, lines int) string {
	ls := strings.Split(s, "\n")
	return strings.Join(ls[max(len(ls)-lines, 0):], "\n")
}

// crashScript is what each device is sent: reads, writes, an execute, a
// create and a delete, each on a path of its own, so that the device's
// record tells which operation every request was.
var crashScript = []struct {
	text, request string // the shell line, and the request it makes (method and path)
}{
	{"read /3/0/0", "GET /3/0/0"},
	{"write /3/0/14 +02:00", "PUT /3/0/14"},
	{"read /3/0/1", "GET /3/0/1"},
	{"execute /3/0/12", "POST /3/0/12"},
	{"read /3/0/2", "GET /3/0/2"},
	{`create /3303 {"5750": "crash"}`, "POST /3303"},
	{"read /3/0/3", "GET /3/0/3"},
	{"write /3/0/15 Europe/Berlin", "PUT /3/0/15"},
	{"read /3/0/9", "GET /3/0/9"},
	{"delete /3303/0", "DELETE /3303/0"},
	{"read /3/0/10", "GET /3/0/10"},
	{"write /1/0/3 600", "PUT /1/0/3"},
	{"read /3/0/16", "GET /3/0/16"},
	{"read /3/0/17", "GET /3/0/17"},
	{"read /3/0/18", "GET /3/0/18"},
	{"read /3/0/19", "GET /3/0/19"},
	{"read /4/0/0", "GET /4/0/0"},
	{"read /4/0/2", "GET /4/0/2"},
	{"read /4/0/3", "GET /4/0/3"},
	{"read /4/0/8", "GET /4/0/8"},
}

// crashDevices starts n simulated devices that record what they are
// sent; awake > 0 makes them sleep, with an Update every period.
func crashDevices(t *testing.T, server, prefix string, n int, awake, period time.Duration) *simulator.Simulator {
	t.Helper()
	cfg := simulator.Config{
		Server:      server,
		Count:       n,
		Prefix:      prefix,
		Version:     "1.1",
		Lifetime:    5 * time.Minute,
		AwakeTime:   awake,
		UpdateEvery: period,
		Record:      256,
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	sim, err := simulator.New(cfg)
	if err != nil {
		t.Fatalf("simulator: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sim.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	waitFor(t, 30*time.Second, func() error {
		if got := sim.Registered(); got != n {
			return fmt.Errorf("%d of %d %s devices registered", got, n, prefix)
		}
		return nil
	})
	return sim
}

// TestCrashMidDelivery kills the agent process with SIGKILL while it
// sends queued operations to always-online and sleeping devices, starts
// it again on the same data directory and ports, and checks, from what
// the devices received and what the API says, that nothing was lost or
// sent twice that must not be: every operation ends SUCCESSFUL or FAILED;
// executes, creates and deletes reached their device at most once;
// reads and writes at least once, and twice only when they were
// EXECUTING at the kill; each device got its operations in creation
// order; and no device had to register again.
func TestCrashMidDelivery(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the built agent as a process")
	}
	dir, coap, httpAddr := t.TempDir(), freeUDPAddr(t), freeTCPAddr(t)
	flags := []string{"--request-timeout", "5s"}
	p1, h := startAgentProcess(t, dir, coap, httpAddr, flags...)

	online := crashDevices(t, coap, "crash-online", 20, 0, 0)
	sleepy := crashDevices(t, coap, "crash-sleepy", 8, 3*time.Second, 6*time.Second)
	sims := []*simulator.Simulator{online, sleepy}
	regsBefore := map[string]string{} // endpoint -> registration ID
	var registersBefore uint64
	for _, sim := range sims {
		for _, ep := range sim.Endpoints() {
			regsBefore[ep] = sim.Device(ep).RegistrationID()
		}
		registersBefore += sim.Stats().Registrations
	}
	ids := map[string]string{}
	for ep := range regsBefore {
		ids[ep] = h.device(ep).str("id")
	}
	// the sleeping devices get theirs while asleep, so that they arrive
	// over several windows, across the crash
	waitAsleep(t, sleepy, 10*time.Second)
	lines := make([]string, len(crashScript))
	for i, s := range crashScript {
		lines[i] = s.text
	}
	byEP := map[string]queued{}
	for ep, id := range ids {
		q, err := h.queue(id, lines)
		if err != nil {
			t.Fatal(err)
		}
		byEP[ep] = q
	}

	// Kill once a third of the always-online devices' operations have
	// been answered: the runner is in the middle of sending.
	total := len(crashScript) * len(online.Endpoints())
	waitFor(t, 30*time.Second, func() error {
		answered := 0
		for _, ep := range online.Endpoints() {
			for _, r := range online.Device(ep).Requests() {
				if r.Answered {
					answered++
				}
			}
		}
		if answered < total/3 {
			return fmt.Errorf("%d of %d requests answered", answered, total)
		}
		return nil
	})
	p1.kill()

	// What the kill left EXECUTING, read from the store while no agent runs.
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	left, err := st.Executing(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(ctx); err != nil {
		t.Fatal(err)
	}
	executing := map[string]bool{}
	for _, op := range left {
		executing[op.ID] = true
	}
	if len(executing) == 0 {
		t.Fatal("no operation was EXECUTING at the kill: the crash did not come mid-delivery")
	}
	t.Logf("%d operations EXECUTING at the kill", len(executing))

	_, h2 := startAgentProcess(t, dir, coap, httpAddr, flags...)
	final := map[string]operation{}
	waitFor(t, 90*time.Second, func() error {
		for ep, id := range ids {
			for _, op := range h2.listOps(id, "") {
				final[op.ID] = op
			}
			for _, opID := range byEP[ep].ids {
				if s := final[opID].Status; s != "SUCCESSFUL" && s != "FAILED" {
					return fmt.Errorf("%s: operation %s is %q", ep, opID, s)
				}
			}
		}
		return nil
	})

	twice := 0
	for _, sim := range sims {
		for _, ep := range sim.Endpoints() {
			dev := sim.Device(ep)
			twice += checkCrashDelivery(t, dev, byEP[ep], final, executing)
			if got := dev.RegistrationID(); got != regsBefore[ep] {
				t.Errorf("%s registered again: registration %s, was %s", ep, got, regsBefore[ep])
			}
			if n := dev.Dropped(); n != 0 {
				t.Errorf("%s dropped %d requests: it was sent some while asleep", ep, n)
			}
		}
	}
	var registersAfter uint64
	for _, sim := range sims {
		registersAfter += sim.Stats().Registrations
	}
	if registersAfter != registersBefore {
		t.Errorf("%d Registers after the restart: devices had to register again", registersAfter-registersBefore)
	}
	t.Logf("%d operations executing at the kill, %d of them sent again after the restart", len(executing), twice)
}

// checkCrashDelivery checks one device's record against the operations
// queued for it (q.ids in crashScript's order) and returns how many
// reached it twice.
func checkCrashDelivery(t *testing.T, dev *simulator.Device, q queued, final map[string]operation, executing map[string]bool) int {
	t.Helper()
	ep := dev.Endpoint()
	index := map[string]int{}
	for i, s := range crashScript {
		index[s.request] = i
	}
	received := make([]int, len(crashScript))
	last, twice := -1, 0
	for _, r := range dev.Requests() {
		i, ok := index[r.Method+" "+r.Path]
		if !ok || !r.Answered {
			continue
		}
		received[i]++
		// One at a time and in creation order: each request is the next
		// operation, or the one before sent again after the restart.
		if i < last {
			t.Errorf("%s received %q after %q: out of creation order", ep, crashScript[i].text, crashScript[last].text)
		}
		last = i
	}
	for i, s := range crashScript {
		id := q.ids[i]
		op := final[id]
		n := received[i]
		switch {
		case ops.Repeatable(s.text):
			if op.Status != "SUCCESSFUL" {
				t.Errorf("%s %q: %s %q, want SUCCESSFUL", ep, s.text, op.Status, op.FailureReason)
			}
			if n < 1 || n > 2 {
				t.Errorf("%s %q reached the device %d times, want once or twice", ep, s.text, n)
			}
			if n == 2 {
				twice++
				if !executing[id] {
					t.Errorf("%s %q reached the device twice but was not EXECUTING at the kill", ep, s.text)
				}
			}
		default:
			if n > 1 {
				t.Errorf("%s %q reached the device %d times, want at most once", ep, s.text, n)
			}
			switch op.Status {
			case "SUCCESSFUL":
				if n != 1 {
					t.Errorf("%s %q is SUCCESSFUL but reached the device %d times", ep, s.text, n)
				}
			case "FAILED":
				if !executing[id] || op.FailureReason != ops.ReasonRestarted {
					t.Errorf("%s %q: FAILED %q (executing at the kill: %v)", ep, s.text, op.FailureReason, executing[id])
				}
			default:
				t.Errorf("%s %q: %s, want SUCCESSFUL or FAILED", ep, s.text, op.Status)
			}
		}
	}
	return twice
}
