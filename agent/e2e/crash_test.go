package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/lwm2m-agent/lwm2m-agent/agent/config"
	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/testproc"
	"github.com/lwm2m-agent/lwm2m-agent/agent/ops"
	"github.com/lwm2m-agent/lwm2m-agent/agent/simulator"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/sqlite"
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
func freeTCPAddr(t *testing.T) string { return testproc.FreeTCPAddr(t) }

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
	return runSimulator(t, cfg, 30*time.Second)
}

// TestCrashMidDelivery kills the agent process with SIGKILL while it
// sends queued operations to always-online and sleeping devices, starts
// it again on the same data directory and ports, and checks, from what
// the devices received and what the API says, that nothing was lost or
// sent twice that must not be: every operation ends SUCCESSFUL or FAILED;
// executes, creates and deletes reached their device at most once;
// reads and writes at least once, and twice only when they were
// EXECUTING at the kill (reads: or PENDING, their request sent before
// EXECUTING was written); each device got its operations in creation
// order; and no device had to register again.
func TestCrashMidDelivery(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the built agent as a process")
	}
	dir, coap, httpAddr := t.TempDir(), freeUDPAddr(t), freeTCPAddr(t)
	flags := []string{"--request-timeout", "5s"}
	p1, h := startAgentProcess(t, dir, coap, httpAddr, flags...)

	// The always-online devices update every 20 s: a request that times
	// out on the loaded machine goes back to PENDING until the device's
	// next Update, which with the default period would come after the
	// test stopped waiting.
	online := crashDevices(t, coap, "crash-online", 20, 0, 20*time.Second)
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

	// Kill once a tenth of the always-online devices' operations have
	// been answered: the runner is in the middle of sending. Each device
	// gets its operations one after another, a few milliseconds each, so
	// the rest take a moment only: the check is made every millisecond
	// (the simulators are in this process) and nothing else comes between
	// it and the kill, or a loaded machine could finish the delivery first.
	total := len(crashScript) * len(online.Endpoints())
	answered := func() int {
		n := 0
		for _, ep := range online.Endpoints() {
			for _, r := range online.Device(ep).Requests() {
				if r.Answered {
					n++
				}
			}
		}
		return n
	}
	plugins := pluginPIDs(t, h)
	for deadline := time.Now().Add(30 * time.Second); answered() < total/10; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s: %d of %d requests answered", answered(), total)
		}
	}
	p1.kill()
	// the killed agent's plugin processes end with it, not orphaned
	waitFor(t, 10*time.Second, func() error {
		for name, pid := range plugins {
			if processAlive(pid) {
				return fmt.Errorf("plugin %s (pid %d) outlived its agent", name, pid)
			}
		}
		return nil
	})

	// What the kill left EXECUTING, read from the store while no agent runs.
	ctx := context.Background()
	st, err := sqlite.OpenEngine(ctx, sqlite.Config{Dir: dir})
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
			var list struct {
				Operations []struct {
					operation
					Attempts int `json:"attempts"`
				} `json:"operations"`
			}
			if code := h2.call("GET", "/devicecontrol/operations?pageSize=100&deviceId="+id, nil, &list); code != 200 {
				return fmt.Errorf("list operations: HTTP %d", code)
			}
			for _, op := range list.Operations {
				final[op.ID] = op.operation
				if s := op.Status; s != "SUCCESSFUL" && s != "FAILED" {
					dev := online.Device(ep)
					if dev == nil {
						dev = sleepy.Device(ep)
					}
					var got []string
					for _, r := range dev.Requests() {
						got = append(got, fmt.Sprintf("%s %s %v", r.Method, r.Path, r.Answered))
					}
					return fmt.Errorf("%s: operation %s %q is %s after %d attempts (executing at the kill: %v); the device received %v",
						ep, op.ID, op.Command.Text, s, op.Attempts, executing[op.ID], got)
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
			if dropped := sentAsleep(dev); len(dropped) != 0 {
				t.Errorf("%s dropped %d requests: it was sent some while asleep: %+v", ep, len(dropped), dropped)
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
				// a read goes out before its EXECUTING is written, so it
				// may also have been PENDING at the kill
				if !executing[id] && !ops.ReadOnly(s.text) {
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

// Devices always online whose registrations were restored get the
// operations left PENDING before the restart as soon as the agent
// serves, not at their next Update, minutes away; none of them fails for
// having been sent before the server could send.
func TestRestoredDevicesGetPendingOperationsAtStart(t *testing.T) {
	dir, coap := t.TempDir(), freeUDPAddr(t)
	opts := []option{withRequestTimeout(2 * time.Second)}
	h, stop := startAgentIn(t, dir, coap, opts...)
	sim := h.simulate(3, func(c *simulator.Config) {
		c.NotifyInterval = 0
		c.Lifetime = 10 * time.Minute // the next Update is five minutes away
		c.Record = 64
	})
	eps := sim.Endpoints()
	ids := h.deviceIDs(sim)
	// The devices stop answering for a moment: the first operation of
	// each times out and goes back to PENDING with the rest behind it.
	for _, ep := range eps {
		sim.Device(ep).SetSilent(true)
	}
	cmds := []string{"read /3/0/0", "write /3/0/14 +03:00", "execute /3/0/12", "read /3/0/14"}
	byEP := map[string]queued{}
	for _, ep := range eps {
		q, err := h.queue(ids[ep], cmds)
		if err != nil {
			t.Fatal(err)
		}
		byEP[ep] = q
	}
	waitFor(t, 10*time.Second, func() error {
		if got := h.metric("lwm2m_agent_operations_requeued_total"); got != float64(len(eps)) {
			return fmt.Errorf("%v operations back to pending after a timeout, want %d", got, len(eps))
		}
		return nil
	})
	stop()
	for _, ep := range eps {
		sim.Device(ep).SetSilent(false)
	}
	updates := sim.Stats().Updates

	start := time.Now()
	h2, _ := startAgentIn(t, dir, coap, opts...)
	waitFor(t, 10*time.Second, func() error {
		for _, ep := range eps {
			for _, op := range h2.listOps(ids[ep], "") {
				if op.Status != "SUCCESSFUL" {
					return fmt.Errorf("%s %q: %s %s", ep, op.Command.Text, op.Status, op.FailureReason)
				}
			}
		}
		return nil
	})
	t.Logf("operations of %d restored devices done %v after the start", len(eps), time.Since(start).Round(time.Millisecond))
	if n := sim.Stats().Updates; n != updates {
		t.Errorf("%d Updates since the restart: the operations were to go without one", n-updates)
	}
	for _, ep := range eps {
		var got []string
		for _, r := range sim.Device(ep).Requests() {
			if r.Answered {
				got = append(got, r.Method+" "+r.Path)
			}
		}
		want := []string{"GET /3/0/0", "PUT /3/0/14", "POST /3/0/12", "GET /3/0/14"}
		if !slices.Equal(got, want) {
			t.Errorf("%s answered %v, want %v", ep, got, want)
		}
	}
}

// withSecureAddr gives the agent a DTLS port, fixed so that a second
// agent can take it over.
func withSecureAddr(addr string) option { return func(c *config.Config) { c.CoAPSAddr = addr } }

// A PSK device registered over DTLS before a restart opens a new DTLS
// session with the new agent (the old one died with the process) and
// sends its Update to the old location: it is answered 2.04, with no new
// registration, and an operation queued before it came back (sent first
// over the kept session, which the device no longer has) reaches it.
func TestDTLSRegistrationSurvivesRestart(t *testing.T) {
	dir, coap, coaps := t.TempDir(), freeUDPAddr(t), freeUDPAddr(t)
	opts := []option{withSecureAddr(coaps), withRequestTimeout(2 * time.Second), withAutoRegister(false)}
	h, stop := startAgentIn(t, dir, coap, opts...)
	if code, res, raw := h.postCSV("management/admin", adminPassword, []byte(pskCSV), false); code != 201 || res.Created != 3 {
		t.Fatalf("import: HTTP %d %s", code, raw)
	}
	secure := h.agent.CoAPSAddr
	c, err := dialPSK(t, secure, "identity-a", keyA)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	code, location := registerAt(t, c, "psk-a")
	if code != codes.Created || location == "" {
		t.Fatalf("register over DTLS: %v at %q", code, location)
	}
	id := h.device("psk-a").str("id")
	regID := strings.TrimPrefix(location, "/rd/")
	if op := h.shell(id, "read /3/0/0", 10*time.Second); op.Status != "SUCCESSFUL" {
		t.Fatalf("read before the restart: %s %s", op.Status, op.FailureReason)
	}
	stop()
	_ = c.Close()

	h2, _ := startAgentIn(t, dir, coap, opts...)
	var op operation
	if code := h2.call("POST", "/devicecontrol/operations", map[string]any{"deviceId": id, "c8y_Command": map[string]string{"text": "read /3/0/0"}}, &op); code != 201 {
		t.Fatalf("create operation: HTTP %d", code)
	}

	again, err := dialPSK(t, h2.agent.CoAPSAddr, "identity-a", keyA)
	if err != nil {
		t.Fatalf("handshake after the restart: %v", err)
	}
	if code := update(t, again, location); code != codes.Changed {
		t.Fatalf("Update over the new session: %v, want 2.04", code)
	}
	h2.eventually(10*time.Second, func() error {
		h2.call("GET", "/devicecontrol/operations/"+op.ID, nil, &op)
		if op.Status != "SUCCESSFUL" || !strings.Contains(op.Command.Result, "Secure Meters Ltd") {
			return fmt.Errorf("operation %s %q %s", op.Status, op.Command.Result, op.FailureReason)
		}
		return nil
	})
	if got := h2.device("psk-a").str("lwm2m", "registrationId"); got != regID {
		t.Errorf("registration %s after the restart, was %s", got, regID)
	}
	if n := len(h2.events(id, "c8y_LWM2MDeviceRegistration")); n != 1 {
		t.Errorf("%d registration events, want the one before the restart", n)
	}
	if got := h2.metric("lwm2m_agent_registers_total"); got != 0 {
		t.Errorf("%v Registers after the restart, want 0", got)
	}
}

// registerAt registers ep over c and returns the answer's code and the
// registration's location ("/rd/ID").
func registerAt(t *testing.T, c *udpClient.Conn, ep string) (codes.Code, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := c.NewPostRequest(ctx, "/rd", message.AppLinkFormat, bytes.NewReader([]byte(`</1/0>,</3/0>`)))
	if err != nil {
		t.Fatal(err)
	}
	req.AddQuery("ep=" + ep)
	req.AddQuery("lwm2m=1.1")
	req.AddQuery("lt=300")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("register %s: %v", ep, err)
	}
	loc, _ := resp.Options().LocationPath()
	return resp.Code(), loc
}

// update sends an Update without parameters to location over c.
func update(t *testing.T, c *udpClient.Conn, location string) codes.Code {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := c.NewPostRequest(ctx, location, message.TextPlain, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("update %s: %v", location, err)
	}
	return resp.Code()
}

// pluginPIDs returns the process IDs of the agent's bundled plugins, from
// its /metrics.
func pluginPIDs(t *testing.T, h *harness) map[string]int {
	t.Helper()
	page, err := h.metrics()
	if err != nil {
		t.Fatal(err)
	}
	pids := map[string]int{}
	for _, name := range []string{"mapping", "customactions"} {
		pid, ok := metricValue(page, "lwm2m_agent_plugin_process_id", `plugin="`+name+`"`)
		if !ok || pid <= 0 {
			t.Fatalf("no process id of the bundled plugin %s on /metrics", name)
		}
		pids[name] = int(pid)
	}
	return pids
}

// processAlive says whether pid runs; a zombie (exited, not yet reaped
// by whoever adopted it) does not.
func processAlive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// the state follows the command name, which is in parentheses
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}

// A Register answered 2.01 is stored before the answer: the agent killed
// the moment the devices have their answers holds each registration, with
// its registration event, and once started again answers each device's
// Update to its location 2.04, without a new Register. That holds with
// either durability of the embedded store: --store-sync normal gives up
// only what a power loss takes, never what a killed process had answered.
func TestCrashRightAfterRegisterAnswer(t *testing.T) {
	for _, sync := range []string{"full", "normal"} {
		t.Run(sync, func(t *testing.T) { crashRightAfterRegisterAnswer(t, "--store-sync", sync) })
	}
}

func crashRightAfterRegisterAnswer(t *testing.T, args ...string) {
	dir, coap, httpAddr := t.TempDir(), freeUDPAddr(t), freeTCPAddr(t)
	p, _ := startAgentProcess(t, dir, coap, httpAddr, args...)
	const devices = 8
	conns := make([]*udpClient.Conn, devices)
	locations := make([]string, devices)
	for i := range conns {
		c, err := udp.Dial(coap)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	// the first Registers create the devices; the last ones are made
	// again and killed under at once
	for i, c := range conns {
		if code, _ := registerAt(t, c, fmt.Sprintf("crash-reg-%d", i)); code != codes.Created {
			t.Fatalf("register: %v", code)
		}
	}
	for i, c := range conns {
		code, location := registerAt(t, c, fmt.Sprintf("crash-reg-%d", i))
		if code != codes.Created {
			t.Fatalf("register: %v", code)
		}
		locations[i] = location
	}
	p.kill()

	ctx := context.Background()
	st, err := sqlite.OpenEngine(ctx, sqlite.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	for i, location := range locations {
		tenant, id, err := st.DeviceByEndpoint(ctx, fmt.Sprintf("crash-reg-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		mo, err := st.GetManagedObject(ctx, tenant, id)
		if err != nil {
			t.Fatal(err)
		}
		lw, _ := mo.Fragments["lwm2m"].(map[string]any)
		avail, _ := mo.Fragments["c8y_Availability"].(map[string]any)
		if "/rd/"+fmt.Sprint(lw["registrationId"]) != location || avail["status"] != "AVAILABLE" {
			t.Errorf("device %d after the kill: registration %v, %v; want %s, AVAILABLE", i, lw["registrationId"], avail["status"], location)
		}
		evs, _, err := st.ListEvents(ctx, tenant, store.EventFilter{Source: id, Type: "c8y_LWM2MDeviceRegistration", Page: store.Page{Size: 10, Current: 1}})
		if err != nil || len(evs) == 0 {
			t.Errorf("device %d: no registration event stored (%v)", i, err)
		}
	}
	if err := st.Close(ctx); err != nil {
		t.Fatal(err)
	}

	_, h := startAgentProcess(t, dir, coap, httpAddr, args...)
	if log, err := os.ReadFile(filepath.Join(dir, "agent.log")); err != nil || !bytes.Contains(log, []byte("sync="+args[len(args)-1])) {
		t.Fatalf("the agent's log does not say it ran with %v (%v):\n%s", args, err, tail(string(log), 20))
	}
	for i, location := range locations {
		// a socket of its own: the old ones may have heard that nobody
		// listened while the agent was down
		c, err := udp.Dial(coap)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if code := update(t, c, location); code != codes.Changed {
			t.Errorf("device %d: Update to %s after the restart answered %v, want 2.04", i, locations[i], code)
		}
	}
	if got := h.metric("lwm2m_agent_registers_total"); got != 0 {
		t.Errorf("%v Registers after the restart, want 0", got)
	}
}
