// Command loadbench measures the agent under simulated load: registrations
// per second, resident memory per idle registered device, the shell read
// round trip with notifications around it, and (-phases pipeline)
// notified values stored as measurements per second. It starts bin/lwm2m-agent
// with a fresh embedded store and `lwm2m-agent simulate` processes, all on
// loopback, and prints one line per figure.
package main

import (
	"github.com/lwm2m-agent/lwm2m-agent/agent/bench/machine"
	"github.com/lwm2m-agent/lwm2m-agent/agent/realtime/bayeux"

	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"time"
)

const password = "Load-bench-pass-1!"

// idleTimeout is the agent's CoAP idle timeout in load runs; memory is
// read once devices have been silent longer than this.
const idleTimeout = 15 * time.Second

func main() {
	var (
		bin       = flag.String("bin", "bin/lwm2m-agent", "agent binary")
		devices   = flag.String("devices", "10000,100000", "device counts at which memory is measured (ascending)")
		perProc   = flag.Int("per-process", 15000, "devices per simulator process (each device is one socket)")
		samples   = flag.Int("read-samples", 1000, "shell reads timed")
		notifiers = flag.Int("notifiers", 100, "devices notifying during the read test")
		notifyInt = flag.Duration("notify-interval", 20*time.Millisecond, "notification interval of those devices")
		dtlsCount = flag.String("dtls-devices", "10000,50000,100000", "PSK device counts registered over DTLS, each with a full handshake; memory is measured at each (ascending), sessions active and parked")
		dtlsCfg   = dtlsRun{}
		bsCount   = flag.Int("bootstrap-devices", 2000, "devices (half NO_SEC, half PSK) that bootstrap, then register")
		phases    = flag.String("phases", "plain,read,dtls,bootstrap,pipeline", "which runs to do")
		build     = flag.Bool("build", true, "build the agent binary at -bin from this repository first")
		pipe      = pipelineRun{}
	)
	flag.IntVar(&dtlsCfg.perProc, "dtls-per-process", 10000, "DTLS devices per simulator process (each its own socket and pion client)")
	flag.DurationVar(&dtlsCfg.parkAfter, "dtls-park-after", 5*time.Second, "the agent's --dtls-park-after in the dtls run")
	flag.Float64Var(&dtlsCfg.updateRate, "dtls-update-rate", 200, "Updates a second each simulator process sends once every session is parked")
	flag.StringVar(&pipe.ddf, "pipeline-ddf", "", "DDF of object 3303 uploaded in the pipeline run (default: OMA's 3303.xml kept beside this command)")
	flag.IntVar(&pipe.devices, "pipeline-devices", 1000, "devices notifying in the pipeline run")
	flag.IntVar(&pipe.perProc, "pipeline-per-process", 1000, "devices per simulator process in the pipeline run")
	flag.DurationVar(&pipe.interval, "pipeline-interval", 100*time.Millisecond, "notification interval of each device in the pipeline run")
	flag.DurationVar(&pipe.warmup, "pipeline-warmup", 10*time.Second, "time the pipeline run lets pass before counting")
	flag.DurationVar(&pipe.window, "pipeline-window", 30*time.Second, "time the pipeline run counts")
	bundledModes := flag.String("bundled-plugins", "process,inprocess", "modes of the bundled mapping plugins the pipeline run is made in, one run each (process, inprocess)")
	flag.Parse()
	counts, err := parseCounts(*devices)
	if err != nil {
		fail(err)
	}
	if dtlsCfg.counts, err = parseCounts(*dtlsCount); err != nil {
		fail(err)
	}
	run := map[string]bool{}
	for _, p := range strings.Split(*phases, ",") {
		run[strings.TrimSpace(p)] = true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Minute)
	defer cancel()
	cpuModel, cores := machine.CPU()
	fmt.Printf("machine: %s, %d cores; agent, embedded store and simulators on one machine, loopback\n", cpuModel, cores)

	if *build {
		if err := machine.Build(ctx, *bin); err != nil {
			fail(err)
		}
	}
	phase := func(name string, f func(a *agent) error, env ...string) {
		if !run[name] {
			return
		}
		a, err := startAgent(ctx, *bin, env...)
		if err != nil {
			fail(err)
		}
		err = f(a)
		a.stop()
		if err != nil {
			fail(fmt.Errorf("%s: %w", name, err))
		}
	}
	phase("plain", func(a *agent) error { return registrations(ctx, a, *bin, counts, *perProc) })
	phase("read", func(a *agent) error { return readRoundTrip(ctx, a, *bin, *samples, *notifiers, *notifyInt) })
	phase("dtls", func(a *agent) error { return dtlsRegistrations(ctx, a, *bin, dtlsCfg) }, "LWM2M_AGENT_DTLS_PARK_AFTER="+dtlsCfg.parkAfter.String())
	phase("bootstrap", func(a *agent) error { return bootstrapFlows(ctx, a, *bin, *bsCount) })
	for _, mode := range strings.Split(*bundledModes, ",") {
		mode = strings.TrimSpace(mode)
		fmt.Printf("pipeline: bundled plugins %s\n", mode)
		phase("pipeline", func(a *agent) error { return pipeline(ctx, a, *bin, pipe) }, "LWM2M_AGENT_BUNDLED_PLUGINS="+mode)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "loadbench:", err)
	os.Exit(1)
}

func parseCounts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("-devices: %q is not a positive count", f)
		}
		if len(out) > 0 && n <= out[len(out)-1] {
			return nil, errors.New("-devices: counts must ascend")
		}
		out = append(out, n)
	}
	return out, nil
}

type agent struct {
	pprof    string
	cmd      *exec.Cmd
	dir      string
	coap     string
	coaps    string
	bs, bss  string // bootstrap ports
	http     string
	children []*exec.Cmd
}

func startAgent(ctx context.Context, bin string, env ...string) (*agent, error) {
	dir, err := os.MkdirTemp("", "loadbench-")
	if err != nil {
		return nil, err
	}
	m, err := machine.StartAgent(ctx, bin, dir, password, append([]string{
		"LWM2M_AGENT_AUTO_REGISTER=true",
		// idle devices: their CoAP exchange state goes after idleTimeout,
		// as it does after two minutes by default
		"LWM2M_AGENT_REQUEST_TIMEOUT=5s",
		"LWM2M_AGENT_COAP_IDLE_TIMEOUT=" + idleTimeout.String(),
	}, env...)...)
	if err != nil {
		return nil, err
	}
	return &agent{cmd: m.Cmd, dir: dir, coap: m.CoAP, coaps: m.CoAPS, bs: m.Bootstrap, bss: m.BootsS, http: m.HTTP, pprof: m.Pprof}, nil
}

func (a *agent) stop() {
	for _, c := range a.children {
		if c.Process != nil {
			_ = c.Process.Signal(os.Interrupt)
		}
	}
	for _, c := range a.children {
		done := make(chan struct{})
		go func() { _ = c.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = c.Process.Kill()
		}
	}
	a.children = nil
	if a.cmd != nil && a.cmd.Process != nil {
		_ = a.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = a.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = a.cmd.Process.Kill()
		}
		a.cmd = nil
		_ = os.RemoveAll(a.dir)
	}
}

// simulate starts a simulator process; bind spreads devices over loopback
// addresses so that no address runs out of ports.
func (a *agent) simulate(ctx context.Context, bin string, args ...string) error {
	cmd := exec.CommandContext(ctx, bin, append([]string{"simulate", "--server", a.coap, "--stats-every", "1h", "--log-level", "error"}, args...)...)
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start simulator: %w", err)
	}
	a.children = append(a.children, cmd)
	return nil
}

func (a *agent) metric(name string) (float64, error) {
	return machine.Metric(context.Background(), http.DefaultClient, a.http, name)
}

// settledRSS waits until idle devices are past the idle timeout and the
// store settled, makes the agent collect, and returns its resident set.
func (a *agent) settledRSS() (int64, error) {
	time.Sleep(idleTimeout + 10*time.Second)
	// a heap profile with gc=1 makes the agent collect, so the heap
	// figure is what idle devices keep, not garbage of the burst
	if resp, err := http.Get(a.pprof + "/debug/pprof/heap?gc=1"); err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	time.Sleep(5 * time.Second)
	return rssKiB(a.cmd.Process.Pid)
}

func rssKiB(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			return strconv.ParseInt(f[1], 10, 64)
		}
	}
	return 0, errors.New("no VmRSS")
}

func (a *agent) waitRegistered(ctx context.Context, n int, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	for {
		// registered, and their state and registration events stored
		v, err := a.metric("lwm2m_agent_registrations")
		ev, err2 := a.metric("lwm2m_agent_lifecycle_events_total")
		if err == nil && err2 == nil && int(v) >= n && int(ev) >= n {
			return time.Since(start), nil
		}
		if time.Since(start) > limit {
			return 0, fmt.Errorf("%v of %d devices registered after %s", v, n, limit)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func registrations(ctx context.Context, a *agent, bin string, counts []int, perProc int) error {
	started := 0
	proc := 0
	var rss, heap []int64
	for _, target := range counts {
		before := started
		t0 := time.Now()
		for started < target {
			n := min(perProc, target-started)
			// 127.0.1.x: one source address per process, each with its own ports
			if err := a.simulate(ctx, bin, "--count", strconv.Itoa(n), "--start", strconv.Itoa(started),
				"--prefix", "load", "--bind", fmt.Sprintf("127.0.1.%d", proc+1),
				"--notify-interval", "0", "--lifetime", "3600s"); err != nil {
				return err
			}
			started += n
			proc++
		}
		if _, err := a.waitRegistered(ctx, target, 10*time.Minute); err != nil {
			return err
		}
		took := time.Since(t0)
		fmt.Printf("registrations: %d new devices registered and stored in %.1fs: %.0f registrations/s (auto-registration creates each device on first contact)\n",
			target-before, took.Seconds(), float64(target-before)/took.Seconds())
		kb, err := a.settledRSS()
		if err != nil {
			return err
		}
		rss = append(rss, kb)
		h, err := a.metric("go_memstats_heap_alloc_bytes")
		if err != nil {
			return err
		}
		heap = append(heap, int64(h)/1024)
		fmt.Printf("memory: agent resident set %d MiB, live Go heap %d MiB, with %d idle registered devices (silent for longer than the CoAP idle timeout; embedded store in-process)\n", kb/1024, int64(h)>>20, target)
	}
	if len(rss) >= 2 {
		dk := rss[len(rss)-1] - rss[0]
		dn := counts[len(counts)-1] - counts[0]
		dh := heap[len(heap)-1] - heap[0]
		fmt.Printf("memory: %.1f KiB resident, %.1f KiB live Go heap per idle registered device (slope between %d and %d devices)\n", float64(dk)/float64(dn), float64(dh)/float64(dn), counts[0], counts[len(counts)-1])
	}
	return nil
}

type op struct {
	ID            string `json:"id"`
	Status        string `json:"status"`
	FailureReason string `json:"failureReason"`
}

func (a *agent) call(method, path string, body any, out any) error {
	return machine.Call(context.Background(), http.DefaultClient, a.http, password, method, path, body, out)
}

func (a *agent) deviceID(ep string) (string, error) {
	var ext struct {
		ManagedObject struct{ ID string } `json:"managedObject"`
	}
	if err := a.call("GET", "/identity/externalIds/c8y_Id/"+ep, nil, &ext); err != nil {
		return "", err
	}
	return ext.ManagedObject.ID, nil
}

// shell runs one command and waits, polling, for its stored outcome.
func (a *agent) shell(id, text string) error {
	start := time.Now()
	var o op
	if err := a.call("POST", "/devicecontrol/operations", map[string]any{"deviceId": id, "c8y_Command": map[string]string{"text": text}}, &o); err != nil {
		return err
	}
	for o.Status != "SUCCESSFUL" && o.Status != "FAILED" {
		if time.Since(start) > 30*time.Second {
			return fmt.Errorf("%q: still %s", text, o.Status)
		}
		time.Sleep(time.Millisecond)
		if err := a.call("GET", "/devicecontrol/operations/"+o.ID, nil, &o); err != nil {
			return err
		}
	}
	if o.Status == "FAILED" {
		return fmt.Errorf("%q failed: %s", text, o.FailureReason)
	}
	return nil
}

// timedShell runs one command and returns how long it took from the POST
// to the realtime notification of its stored outcome. The agent
// announces a change once the store has written it, so the figure ends
// when the outcome is stored, plus the notification's own way to the
// client; it does not poll the API, which would load the agent and round
// the figure up to the poll's period.
func (a *agent) timedShell(rt *bayeux.Client, id, text string) (shellTimes, error) {
	start := time.Now()
	var o op
	if err := a.call("POST", "/devicecontrol/operations", map[string]any{"deviceId": id, "c8y_Command": map[string]string{"text": text}}, &o); err != nil {
		return shellTimes{}, err
	}
	t := shellTimes{posted: time.Since(start)}
	timeout := time.After(30 * time.Second)
	for {
		select {
		case m, ok := <-rt.Messages():
			if !ok {
				return t, fmt.Errorf("realtime client ended: %v", rt.Err())
			}
			var got op
			if err := json.Unmarshal(m.Data.Data, &got); err != nil || got.ID != o.ID {
				continue
			}
			switch got.Status {
			case "EXECUTING":
				t.executing = m.Received.Sub(start)
			case "SUCCESSFUL":
				t.done = m.Received.Sub(start)
				return t, nil
			case "FAILED":
				return t, fmt.Errorf("%q failed: %s", text, got.FailureReason)
			}
		case <-timeout:
			return t, fmt.Errorf("%q: no outcome announced within 30 s", text)
		}
	}
}

// shellTimes are the times from a shell command's POST to its answer,
// and to the notifications of EXECUTING and of the outcome.
type shellTimes struct{ posted, executing, done time.Duration }

func readRoundTrip(ctx context.Context, a *agent, bin string, samples, notifiers int, interval time.Duration) error {
	if err := a.simulate(ctx, bin, "--count", strconv.Itoa(notifiers), "--prefix", "notify", "--bind", "127.0.2.1",
		"--notify-interval", interval.String(), "--lifetime", "3600s"); err != nil {
		return err
	}
	if _, err := a.waitRegistered(ctx, notifiers, 2*time.Minute); err != nil {
		return err
	}
	ids := make([]string, notifiers)
	for i := range ids {
		id, err := a.deviceID(fmt.Sprintf("notify-%d", i))
		if err != nil {
			return err
		}
		ids[i] = id
		if err := a.shell(id, "observe /3303/0/5700"); err != nil {
			return err
		}
	}
	rt, err := bayeux.Dial(ctx, bayeux.Config{URL: a.http, Login: "management/admin", Password: password, Transport: bayeux.WebSocket})
	if err != nil {
		return fmt.Errorf("realtime: %w", err)
	}
	defer rt.Close()
	if err := rt.Subscribe(ctx, "/operations/*"); err != nil {
		return fmt.Errorf("realtime: %w", err)
	}
	cpu0 := machine.CPUSeconds(a.cmd.Process.Pid)
	n0, _ := a.metric("lwm2m_agent_notifications_total")
	t0 := time.Now()
	var lat, posted, executing []time.Duration
	for i := 0; i < samples; i++ {
		t, err := a.timedShell(rt, ids[i%len(ids)], "read /3/0/9")
		if err != nil {
			return err
		}
		lat, posted, executing = append(lat, t.done), append(posted, t.posted), append(executing, t.executing)
	}
	took := time.Since(t0).Seconds()
	n1, _ := a.metric("lwm2m_agent_notifications_total")
	cpu := machine.CPUSeconds(a.cmd.Process.Pid) - cpu0
	rate := (n1 - n0) / took
	p := func(q float64) time.Duration { return quantile(lat, q) }
	fmt.Printf("shell read round trip (API POST to the realtime notification of the stored result, %d samples, %.0f notifications/s around it): p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms; agent CPU %.2f cores (%.1f µs a notification)\n",
		samples, rate, ms(p(0.50)), ms(p(0.90)), ms(p(0.99)), ms(p(1)), cpu/took, 1e6*cpu/(n1-n0))
	fmt.Printf("shell read round trip, its steps from the POST: answered p50 %.2f ms, p99 %.2f ms; EXECUTING announced p50 %.2f ms, p99 %.2f ms\n",
		ms(quantile(posted, 0.5)), ms(quantile(posted, 0.99)), ms(quantile(executing, 0.5)), ms(quantile(executing, 0.99)))
	return nil
}

// quantile sorts d and returns its quantile q.
func quantile(d []time.Duration, q float64) time.Duration {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[min(len(d)-1, int(q*float64(len(d))))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
