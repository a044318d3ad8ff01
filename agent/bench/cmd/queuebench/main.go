// Command queuebench measures the operation queue of a real agent: how
// many operations per second go from the API's POST to SUCCESSFUL on
// always-online simulated devices, and what a large queue of pending
// operations (for devices that are not registered) costs in resident
// memory, store size and time to create. It starts bin/lwm2m-agent with a
// fresh embedded store and a `lwm2m-agent simulate` process, all on
// loopback, and prints one line per figure.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/bench/machine"
)

const password = "Queue-bench-pass-1!"

func main() {
	var (
		devices     = flag.Int("devices", 1000, "always-online simulated devices in the delivery run")
		perDevice   = flag.Int("ops-per-device", 10, "operations per device in the delivery run")
		clients     = flag.Int("clients", 16, "API clients posting operations at once")
		queueOps    = flag.Int("queue-ops", 100000, "pending operations created in the queue run")
		queueDevs   = flag.Int("queue-devices", 1000, "unregistered devices they are spread over")
		phases      = flag.String("phases", "deliver,queue,restart", "which runs to do")
		deliverText = flag.String("command", "read /3/0/9", "the shell command of every delivered operation")
		simProcs    = flag.Int("sim-processes", 1, "simulator processes the delivery run's devices are spread over")
		bin         = machine.BinaryFlags()
		rs          restartRun
	)
	flag.IntVar(&rs.registrations, "restart-registrations", 100_000, "devices registered (sleeping, auto-registered) before the restart")
	flag.IntVar(&rs.ops, "restart-ops", 100_000, "pending operations before the restart")
	flag.IntVar(&rs.perDevice, "restart-ops-per-device", 100, "pending operations of each device that has some (one POST each)")
	flag.IntVar(&rs.sockets, "restart-sockets", 16, "sockets registering the devices, closed loop")
	flag.Parse()
	rs.clients = *clients
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	if _, err := bin.Prepare(ctx, "agent, embedded store and simulator on one machine, loopback"); err != nil {
		fail(err)
	}
	phase := machine.Phases(*phases, func(env ...string) (*agent, error) { return startAgent(ctx, bin.Path, env...) }, (*agent).stop, fail)
	phase("deliver", func(a *agent) error {
		return deliver(ctx, a, bin.Path, *devices, *simProcs, *perDevice, *clients, *deliverText)
	})
	phase("queue", func(a *agent) error { return queue(ctx, a, *queueDevs, *queueOps, *clients) })
	// 16 sockets register the devices: the limit per address would
	// refuse them
	phase("restart", func(a *agent) error { return restart(ctx, a, rs) }, "LWM2M_AGENT_PEER_RATE=-1", "LWM2M_AGENT_ENDPOINT_REGISTER_INTERVAL=0")
}

func fail(err error) { machine.Fail("queuebench", err) }

type agent struct {
	*machine.Agent
	children []*exec.Cmd
}

func startAgent(ctx context.Context, bin string, env ...string) (*agent, error) {
	dir, err := os.MkdirTemp("", "queuebench-")
	if err != nil {
		return nil, err
	}
	m, err := machine.StartAgent(ctx, bin, dir, password, append([]string{"LWM2M_AGENT_AUTO_REGISTER=true", "LWM2M_AGENT_REQUEST_TIMEOUT=5s"}, env...)...)
	if err != nil {
		return nil, err
	}
	return &agent{Agent: m}, nil
}

func (a *agent) stop() {
	for _, c := range append(a.children, a.Cmd) {
		machine.StopProcess(c, 20*time.Second)
	}
	_ = os.RemoveAll(a.Dir)
}

// client is an HTTP client with enough connections for the posting
// clients.
var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1024}, Timeout: 60 * time.Second}

func (a *agent) call(ctx context.Context, method, path string, body, out any) error {
	return machine.Call(ctx, client, a.HTTP, password, method, path, body, out)
}

func (a *agent) metric(ctx context.Context, name string) (float64, error) {
	return machine.Metric(ctx, client, a.HTTP, name)
}

// count returns how many of the tenant's operations have status.
func (a *agent) count(ctx context.Context, status string) (int64, error) {
	var res struct {
		Statistics struct {
			TotalElements int64 `json:"totalElements"`
		} `json:"statistics"`
	}
	err := a.call(ctx, "GET", "/devicecontrol/operations?pageSize=1&withTotalPages=true&status="+status, nil, &res)
	return res.Statistics.TotalElements, err
}

// deviceIDs lists the IDs of the first want managed objects that the
// inventory query (URL parameters) selects.
func (a *agent) deviceIDs(ctx context.Context, query string, want int) ([]string, error) {
	var ids []string
	for page := 1; len(ids) < want; page++ {
		var res struct {
			ManagedObjects []struct {
				ID string `json:"id"`
			} `json:"managedObjects"`
		}
		if err := a.call(ctx, "GET", fmt.Sprintf("/inventory/managedObjects?%s&pageSize=2000&currentPage=%d", query, page), nil, &res); err != nil {
			return nil, err
		}
		if len(res.ManagedObjects) == 0 {
			return nil, fmt.Errorf("%d devices found, want %d", len(ids), want)
		}
		for _, m := range res.ManagedObjects {
			ids = append(ids, m.ID)
		}
	}
	return ids[:want], nil
}

// post sends bodies with n clients at once and returns how long that took
// and each POST's latency.
func (a *agent) post(ctx context.Context, n int, bodies []map[string]any) (time.Duration, []time.Duration, error) {
	var next atomic.Int64
	lat := make([]time.Duration, len(bodies))
	errs := make(chan error, n)
	var wg sync.WaitGroup
	start := time.Now()
	for range n {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(bodies) {
					return
				}
				t := time.Now()
				if err := a.call(ctx, "POST", "/devicecontrol/operations", bodies[i], nil); err != nil {
					errs <- err
					return
				}
				lat[i] = time.Since(t)
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return 0, nil, err
	}
	return took, lat, nil
}

func percentile(d []time.Duration, q float64) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// deliver posts ops-per-device operations to each of n registered,
// always-online devices and times them from the first POST to the last
// SUCCESSFUL.
func deliver(ctx context.Context, a *agent, bin string, n, procs, perDevice, clients int, text string) error {
	procs = max(1, min(procs, n))
	for p, started := 0, 0; p < procs; p++ {
		count := n/procs + min(1, max(0, n%procs-p))
		// 127.0.1.x: one source address per process
		sim := exec.CommandContext(ctx, bin, "simulate", "--server", a.CoAP, "--count", strconv.Itoa(count), "--start", strconv.Itoa(started),
			"--prefix", "queue", "--bind", fmt.Sprintf("127.0.1.%d", p+1), "--notify-interval", "0", "--lifetime", "3600s", "--stats-every", "1h", "--log-level", "error")
		sim.Stdout, sim.Stderr = io.Discard, os.Stderr
		if err := sim.Start(); err != nil {
			return fmt.Errorf("start simulator: %w", err)
		}
		a.children = append(a.children, sim)
		started += count
	}
	for start := time.Now(); ; {
		v, err := a.metric(ctx, "lwm2m_agent_registrations")
		ev, err2 := a.metric(ctx, "lwm2m_agent_lifecycle_events_total")
		if err == nil && err2 == nil && int(v) >= n && int(ev) >= n {
			break
		}
		if time.Since(start) > 5*time.Minute {
			return fmt.Errorf("%v of %d devices registered", v, n)
		}
		time.Sleep(200 * time.Millisecond)
	}
	ids, err := a.deviceIDs(ctx, "type=c8y_lwm2m", n)
	if err != nil {
		return err
	}
	total := n * perDevice
	bodies := make([]map[string]any, 0, total)
	for i := range total {
		bodies = append(bodies, map[string]any{"deviceId": ids[i%n], "c8y_Command": map[string]string{"text": text}})
	}
	// CPU of each process from the first POST to the last SUCCESSFUL:
	// the API clients (this process) and the simulators must not be what
	// holds the agent back
	pids := map[string]int{"agent": a.Cmd.Process.Pid, "simulators": -1, "API clients (this process)": os.Getpid()}
	cpu := func() map[string]float64 {
		out := map[string]float64{}
		for name, pid := range pids {
			if pid > 0 {
				out[name] = machine.CPUSeconds(pid)
			}
		}
		for _, c := range a.children {
			out["simulators"] += machine.CPUSeconds(c.Process.Pid)
		}
		return out
	}
	ended0, err := a.ended(ctx)
	if err != nil {
		return err
	}
	cpu0 := cpu()
	start := time.Now()
	posted, lat, err := a.post(ctx, clients, bodies)
	if err != nil {
		return err
	}
	// progress from the agent's counters, which cost it nothing to read
	var ended int64
	took := time.Duration(0)
	cpu1 := cpu0
	for lastProgress := time.Now(); ; {
		e, err := a.ended(ctx)
		if err != nil {
			return err
		}
		if e-ended0 > ended {
			ended, lastProgress, took, cpu1 = e-ended0, time.Now(), time.Since(start), cpu()
		}
		if ended >= int64(total) {
			break
		}
		if time.Since(lastProgress) > 30*time.Second {
			// what is left waits for the device's next Update: report it
			pending, _ := a.count(ctx, "PENDING")
			executing, _ := a.count(ctx, "EXECUTING")
			timeouts, _ := a.metric(ctx, "lwm2m_agent_request_timeouts_total")
			fmt.Printf("operations delivered: %d of %d ended; no progress for 30 s with %d PENDING and %d EXECUTING (%.0f requests timed out; a timed-out operation waits for the device's next Update)\n",
				ended, total, pending, executing, timeouts)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	// the counters move just before the outcome is written: the end is
	// when the store holds every outcome
	var done, failed int64
	for {
		if done, err = a.count(ctx, "SUCCESSFUL"); err != nil {
			return err
		}
		if failed, err = a.count(ctx, "FAILED"); err != nil {
			return err
		}
		if done+failed >= ended || time.Since(start)-took > 30*time.Second {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ended >= int64(total) {
		took, cpu1 = time.Since(start), cpu()
	}
	total = int(ended)
	fmt.Printf("operations delivered: %d operations (%q, %d per device) to %d always-online devices, API POST to SUCCESSFUL in %.1fs: %.0f operations/s (%d SUCCESSFUL, %d FAILED; %d API clients; the POSTs alone took %.1fs, %.0f/s, p50 %.1f ms, p99 %.1f ms)\n",
		total, text, perDevice, n, took.Seconds(), float64(total)/took.Seconds(), done, failed, clients,
		posted.Seconds(), float64(total)/posted.Seconds(), ms(percentile(lat, 0.5)), ms(percentile(lat, 0.99)))
	var names []string
	for name := range pids {
		names = append(names, name)
	}
	sort.Strings(names)
	line := "operations delivered: CPU from the first POST to the last outcome:"
	for _, name := range names {
		c := cpu1[name] - cpu0[name]
		line += fmt.Sprintf(" %s %.2f cores (%.2f ms an operation);", name, c/took.Seconds(), 1000*c/float64(max(total, 1)))
	}
	fmt.Println(strings.TrimSuffix(line, ";"))
	return nil
}

// ended is how many operations the agent has seen to SUCCESSFUL or
// FAILED since it started.
func (a *agent) ended(ctx context.Context) (int64, error) {
	ok, err := a.metric(ctx, "lwm2m_agent_operations_successful_total")
	if err != nil {
		return 0, err
	}
	failed, err := a.metric(ctx, "lwm2m_agent_operations_failed_total")
	return int64(ok + failed), err
}

// scripts are the bodies of one POST per device with per lines, as the
// shell sends a script: each line is an operation of its own.
func scripts(ids []string, per int) []map[string]any {
	lines := make([]string, per)
	for i := range lines {
		lines[i] = fmt.Sprintf("read /3/0/%d", i%22)
	}
	text := strings.Join(lines, "\n")
	bodies := make([]map[string]any, len(ids))
	for i := range bodies {
		bodies[i] = map[string]any{"deviceId": ids[i], "c8y_Command": map[string]string{"text": text}}
	}
	return bodies
}

// queue creates ops pending operations, spread over devs devices that
// never register, and reports what holding them costs.
func queue(ctx context.Context, a *agent, devs, ops, clients int) error {
	for i := range devs {
		body := map[string]any{"name": fmt.Sprintf("offline-%d", i), "type": "c8y_lwm2m", "c8y_IsDevice": map[string]any{}}
		if err := a.call(ctx, "POST", "/inventory/managedObjects", body, nil); err != nil {
			return err
		}
	}
	ids, err := a.deviceIDs(ctx, "type=c8y_lwm2m", devs)
	if err != nil {
		return err
	}
	rss0, disk0, err := a.footprint(ctx)
	if err != nil {
		return err
	}
	heap0, err := a.metric(ctx, "go_memstats_heap_alloc_bytes")
	if err != nil {
		return err
	}
	per := ops / devs
	if per < 1 {
		return fmt.Errorf("queue: %d operations cannot be spread over %d devices: -queue-ops must be at least the number of devices", ops, devs)
	}
	took, lat, err := a.post(ctx, clients, scripts(ids, per))
	if err != nil {
		return err
	}
	created := per * devs
	pending, err := a.count(ctx, "PENDING")
	if err != nil {
		return err
	}
	if pending != int64(created) {
		return fmt.Errorf("%d operations pending, want %d", pending, created)
	}
	fmt.Printf("queue: %d pending operations created for %d unregistered devices in %.1fs: %.0f operations/s (%d POSTs of %d lines, %d API clients, p50 %.0f ms, p99 %.0f ms a POST)\n",
		created, devs, took.Seconds(), float64(created)/took.Seconds(), devs, per, clients, ms(percentile(lat, 0.5)), ms(percentile(lat, 0.99)))
	rss1, disk1, err := a.footprint(ctx)
	if err != nil {
		return err
	}
	heap1, err := a.metric(ctx, "go_memstats_heap_alloc_bytes")
	if err != nil {
		return err
	}
	fmt.Printf("queue: %d pending operations held: agent resident set %d -> %d MiB (%.2f KiB per operation; the embedded store's caches live in the same process), live Go heap %.0f -> %.0f MiB (%.3f KiB per operation), store on disk %d -> %d MiB (%.2f KiB per operation)\n",
		created, rss0>>10, rss1>>10, float64(rss1-rss0)/float64(created), heap0/(1<<20), heap1/(1<<20), (heap1-heap0)/1024/float64(created),
		disk0>>20, disk1>>20, float64(disk1-disk0)/1024/float64(created))

	// what reading the queue costs with it full: one device's objects
	// view (its pending and ended operations) and its pending list
	for _, r := range []struct{ name, path string }{
		{"objects view of a device with " + strconv.Itoa(per) + " pending", "/lwm2m/devices/" + ids[devs/2] + "/objects"},
		{"pending operations of a device, one page of 100", "/devicecontrol/operations?pageSize=100&status=PENDING&deviceId=" + ids[devs/2]},
	} {
		var lat []time.Duration
		for range 20 {
			t := time.Now()
			if err := a.call(ctx, "GET", r.path, nil, nil); err != nil {
				return err
			}
			lat = append(lat, time.Since(t))
		}
		fmt.Printf("queue: %s, with %d pending in the store: p50 %.1f ms, p99 %.1f ms (20 requests)\n", r.name, created, ms(percentile(lat, 0.5)), ms(percentile(lat, 0.99)))
	}
	return nil
}

// footprint lets the agent settle and collect, then returns its resident
// set in KiB and the size of its data directory in bytes.
func (a *agent) footprint(ctx context.Context) (rssKiB, diskBytes int64, err error) {
	time.Sleep(3 * time.Second)
	// a heap profile with gc=1 makes the agent collect
	if req, err := http.NewRequestWithContext(ctx, "GET", a.Pprof+"/debug/pprof/heap?gc=1", nil); err == nil {
		if resp, err := client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	time.Sleep(2 * time.Second)
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", a.Cmd.Process.Pid))
	if err != nil {
		return 0, 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			if f := strings.Fields(l); len(f) >= 2 {
				rssKiB, _ = strconv.ParseInt(f[1], 10, 64)
			}
		}
	}
	if rssKiB == 0 {
		return 0, 0, errors.New("no VmRSS")
	}
	diskBytes, err = machine.DirSize(filepath.Join(a.Dir, "data"))
	return rssKiB, diskBytes, err
}
