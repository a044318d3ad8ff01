package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/config"
	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/apitest"
	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/testbound"
	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/testproc"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/ops"
	"github.com/lwm2m-agent/lwm2m-agent/agent/simulator"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/sqlite"
)

// withOperationAttempts sets how many timed-out requests fail an
// operation.
func withOperationAttempts(n int) option {
	return func(c *config.Config) { c.OperationAttempts = n }
}

// withQueue sets the awake-time queue's settings.
func withQueue(awake time.Duration, perWakeup int) option {
	return func(c *config.Config) { c.AwakeTime, c.MaxOperationsPerWakeup = awake, perWakeup }
}

// withTimeouts sets the request timeouts and the EXECUTING watchdog's.
func withTimeouts(request, maxRequest, executing time.Duration) option {
	return func(c *config.Config) {
		c.RequestTimeout, c.MaxRequestTimeout, c.ExecutingTimeout = request, maxRequest, executing
	}
}

// startAgentIn runs an agent over the data directory dir with its CoAP
// port at coapAddr, so that a second agent can take over both after the
// first stopped. stop stops it and waits; the test's end stops it too.
func startAgentIn(t *testing.T, dir, coapAddr string, opts ...option) (*harness, func()) {
	t.Helper()
	cfg := testConfig(t, dir)
	cfg.CoAPAddr = coapAddr
	return runAgent(t, cfg, opts...)
}

// freeUDPAddr returns a loopback UDP address nobody listens on now.
func freeUDPAddr(t *testing.T) string {
	t.Helper()
	return testproc.FreeUDPAddr(t)
}

// sleepers starts n simulated devices that sleep: awake for awake after
// each Register and Update, which come every period. They record what
// they receive. It waits until all registered.
func sleepers(t *testing.T, server string, n int, awake, period time.Duration) *simulator.Simulator {
	t.Helper()
	cfg := simulator.Config{
		Server:      server,
		Count:       n,
		Prefix:      strings.ReplaceAll(strings.ToLower(t.Name()), "/", "-"),
		Version:     "1.1",
		Lifetime:    10 * period,
		AwakeTime:   awake,
		UpdateEvery: period,
		Record:      64,
		Concurrency: 32,
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	return runSimulator(t, cfg, 30*time.Second+time.Duration(n)*20*time.Millisecond)
}

// runSimulator runs cfg's devices until the test ends and waits up to
// wait until all registered.
func runSimulator(t *testing.T, cfg simulator.Config, wait time.Duration) *simulator.Simulator {
	t.Helper()
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
	waitFor(t, wait, func() error {
		if got := sim.Registered(); got != cfg.Count {
			return fmt.Errorf("%d of %d %s devices registered", got, cfg.Count, cfg.Prefix)
		}
		return nil
	})
	return sim
}

// waitAsleep waits until every device of sim sleeps.
func waitAsleep(t *testing.T, sim *simulator.Simulator, d time.Duration) {
	t.Helper()
	waitFor(t, d, func() error {
		for _, ep := range sim.Endpoints() {
			if sim.Device(ep).Awake() {
				return fmt.Errorf("%s is awake", ep)
			}
		}
		return nil
	})
}

func waitFor(t *testing.T, d time.Duration, f func() error) {
	t.Helper()
	apitest.Eventually(t, d, f)
}

// readable are resources every simulated device can read, one operation
// each, so that what a device received tells which operation it was.
var readable = []string{
	"/3/0/0", "/3/0/1", "/3/0/2", "/3/0/3", "/3/0/9", "/3/0/10", "/3/0/14", "/3/0/15", "/3/0/16",
	"/3/0/17", "/3/0/18", "/3/0/19", "/4/0/0", "/4/0/2", "/4/0/3", "/4/0/8", "/4/0/9",
}

// queued is what POST /devicecontrol/operations answered for one device.
type queued struct {
	device  string
	ids     []string // in line order
	created time.Time
}

// queue posts the lines as one operation text and returns the IDs. It is
// safe for concurrent use: it reports failures as errors.
func (h *harness) queue(deviceID string, lines []string) (queued, error) {
	body, _ := json.Marshal(map[string]any{"deviceId": deviceID, "c8y_Command": map[string]string{"text": strings.Join(lines, "\n")}})
	req, err := http.NewRequest("POST", h.base+"/devicecontrol/operations", bytes.NewReader(body))
	if err != nil {
		return queued{}, err
	}
	req.SetBasicAuth("management/admin", adminPassword)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return queued{}, err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return queued{}, fmt.Errorf("queue for %s: HTTP %d %s", deviceID, resp.StatusCode, data)
	}
	var out struct {
		ID           string   `json:"id"`
		Status       string   `json:"status"`
		CreationTime string   `json:"creationTime"`
		More         []string `json:"additionalOperationIds"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return queued{}, err
	}
	if out.Status != "PENDING" {
		return queued{}, fmt.Errorf("new operation is %s", out.Status)
	}
	ct, err := time.Parse(time.RFC3339Nano, out.CreationTime)
	if err != nil {
		return queued{}, err
	}
	return queued{device: deviceID, ids: append([]string{out.ID}, out.More...), created: ct}, nil
}

// deviceIDs maps each endpoint of sim to its device's ID.
func (h *harness) deviceIDs(sim *simulator.Simulator) map[string]string {
	h.t.Helper()
	out := map[string]string{}
	for _, ep := range sim.Endpoints() {
		_, id, err := h.agent.Store.DeviceByEndpoint(context.Background(), ep)
		if err != nil {
			h.t.Fatalf("device of %s: %v", ep, err)
		}
		out[ep] = id
	}
	return out
}

// listOps lists a device's operations through the API, with a status
// filter when status is not empty.
func (h *harness) listOps(deviceID, status string) []operation {
	h.t.Helper()
	var res struct {
		Operations []operation `json:"operations"`
	}
	q := "/devicecontrol/operations?pageSize=100&deviceId=" + deviceID
	if status != "" {
		q += "&status=" + status
	}
	if code := h.call("GET", q, nil, &res); code != 200 {
		h.t.Fatalf("list operations: HTTP %d", code)
	}
	return res.Operations
}

// unfinished counts the operations of the tenant not yet final.
func (h *harness) unfinished() (int64, error) {
	var n int64
	for _, st := range []string{store.OpPending, store.OpExecuting} {
		_, total, err := h.agent.Store.ListOperations(context.Background(), "management",
			store.OperationFilter{Status: st, Page: store.Page{Size: 1, WithTotal: true}})
		if err != nil {
			return 0, err
		}
		n += total
	}
	return n, nil
}

// metric reads one counter from /metrics.
func (h *harness) metric(name string) float64 {
	h.t.Helper()
	text, err := h.metrics()
	if err != nil {
		h.t.Fatal(err)
	}
	for line := range strings.SplitSeq(text, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				h.t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	h.t.Fatalf("no %s on /metrics", name)
	return 0
}

// inWindow reports whether the request came inside the awake window it
// names.
func inWindow(r simulator.Request, wakes []simulator.Wakeup) bool {
	for _, w := range wakes {
		if w.Seq == r.Wakeup {
			return !r.Time.Before(w.Start) && !r.Time.After(w.End)
		}
	}
	return false
}

// checkDelivered checks one device's record against the operations
// queued for it: each path received once, answered, in creation order,
// inside an awake window that began after the operations were queued,
// and nothing sent to it asleep.
func checkDelivered(t *testing.T, dev *simulator.Device, q queued, paths []string) {
	t.Helper()
	failedBefore := t.Failed()
	wakes := dev.Wakeups()
	var got []string
	for _, r := range dev.Requests() {
		if !r.Answered {
			continue
		}
		got = append(got, r.Path)
		if !inWindow(r, wakes) {
			t.Errorf("%s received %s at %v outside its awake window %d (%+v)", dev.Endpoint(), r.Path, r.Time, r.Wakeup, wakes)
		}
		for _, w := range wakes {
			if w.Seq == r.Wakeup && w.Start.Before(q.created) {
				t.Errorf("%s received %s in a window that began at %v, before the operation was queued at %v", dev.Endpoint(), r.Path, w.Start, q.created)
			}
		}
	}
	if !slices.Equal(got, paths) {
		t.Errorf("%s received %v, want each once in creation order %v", dev.Endpoint(), got, paths)
	}
	if dropped := sentAsleep(dev); len(dropped) != 0 {
		t.Errorf("%s dropped %d requests: the agent sent to it while it slept: %+v", dev.Endpoint(), len(dropped), dropped)
	}
	if t.Failed() && !failedBefore {
		t.Logf("%s saw %+v in the windows %+v", dev.Endpoint(), dev.Requests(), wakes)
	}
}

// sentAsleep returns the requests the device dropped that the agent sent
// while it slept (or that it was told to ignore). A Repeat is not one:
// the agent sent the request while the device listened, and its CoAP
// layer sent it again before taking the answer, which a loaded machine
// can delay past the window.
func sentAsleep(dev *simulator.Device) []simulator.Request {
	var out []simulator.Request
	for _, r := range dev.Requests() {
		if !r.Answered && !r.Repeat {
			out = append(out, r)
		}
	}
	return out
}

func readLines(paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = "read " + p
	}
	return out
}

// TestQueueSleepingDevices queues ten operations for each of many
// sleeping devices while they sleep, and checks that every operation is
// delivered once, in creation order, inside the devices' next awake
// windows, and that nothing reaches a device asleep. `go test` runs 200
// devices (`-short` 50); QUEUE_DEVICES=1000 (`make test-queue`, part of
// `make test`) runs the full thousand.
func TestQueueSleepingDevices(t *testing.T) {
	n := 200
	if testing.Short() {
		n = 50
	}
	if v := os.Getenv("QUEUE_DEVICES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			t.Fatalf("QUEUE_DEVICES=%q: not a number of devices", v)
		}
	}
	// The full thousand runs for minutes (make test-queue gives it 10).
	testbound.Bound(t, max(4*time.Minute, time.Duration(n)*500*time.Millisecond))
	const perDevice = 10
	// Awake about half the time, so that the runner always has devices
	// to serve and the devices' windows spread over the period.
	awake, period := 4*time.Second, 8*time.Second
	h := startAgent(t, withQueue(0, perDevice), withRequestTimeout(2*time.Second))
	start := time.Now()
	sim := sleepers(t, h.agent.CoAPAddr.String(), n, awake, period)
	ids := h.deviceIDs(sim)
	registered := time.Now()

	paths := readable[:perDevice]
	lines := readLines(paths)
	eps := sim.Endpoints()
	byEP := make(map[string]queued, n)
	// Each device is given its operations while it sleeps, with a second
	// to spare before it wakes; a device awake now waits for its turn.
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, n)
	todo := make(chan string, n)
	for _, ep := range eps {
		todo <- ep
	}
	left := n
	var leftMu sync.Mutex
	deadline := time.Now().Add(2*time.Minute + time.Duration(n)*20*time.Millisecond)
	for range 8 {
		wg.Go(func() {
			for ep := range todo {
				dev := sim.Device(ep)
				next, ok := dev.NextWakeup()
				if dev.Awake() || !ok || time.Until(next) < time.Second {
					if time.Now().After(deadline) {
						errs <- fmt.Errorf("%s never asleep long enough to be given its operations", ep)
					} else {
						time.Sleep(50 * time.Millisecond)
						todo <- ep
						continue
					}
				} else {
					q, err := h.queue(ids[ep], lines)
					if err != nil {
						errs <- err
					} else {
						mu.Lock()
						byEP[ep] = q
						mu.Unlock()
					}
				}
				leftMu.Lock()
				if left--; left == 0 {
					close(todo)
				}
				leftMu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	queuedAt := time.Now()

	// The runner's counters, not the store: listing by status reads
	// every operation.
	waitFor(t, 2*time.Minute+time.Duration(n)*100*time.Millisecond, func() error {
		final := h.metric("lwm2m_agent_operations_successful_total") + h.metric("lwm2m_agent_operations_failed_total")
		if final < float64(n*perDevice) {
			return fmt.Errorf("%v of %d operations final", final, n*perDevice)
		}
		return nil
	})
	done := time.Now()
	t.Logf("%d devices: registered in %v, %d operations queued in %v, all final %v later",
		n, registered.Sub(start).Round(time.Millisecond), n*perDevice, queuedAt.Sub(registered).Round(time.Millisecond), done.Sub(queuedAt).Round(time.Millisecond))

	// Every operation's outcome, through the API, a page at a time
	// (listing by device reads every operation, once per device).
	byID := map[string]operation{}
	for page := 1; len(byID) < n*perDevice; page++ {
		var res struct {
			Operations []operation `json:"operations"`
		}
		if code := h.call("GET", fmt.Sprintf("/devicecontrol/operations?pageSize=2000&currentPage=%d", page), nil, &res); code != 200 {
			t.Fatalf("list operations: HTTP %d", code)
		}
		if len(res.Operations) == 0 {
			t.Fatalf("%d operations listed, want %d", len(byID), n*perDevice)
		}
		for _, op := range res.Operations {
			byID[op.ID] = op
		}
	}
	windows := map[int]int{} // how many wakeups it took per device
	for i, ep := range eps {
		dev := sim.Device(ep)
		q := byEP[ep]
		checkDelivered(t, dev, q, paths)
		for j, id := range q.ids {
			op := byID[id]
			if op.DeviceID != ids[ep] || op.Command.Text != lines[j] || op.Status != "SUCCESSFUL" || !strings.Contains(op.Command.Result, paths[j]) {
				t.Errorf("%s: operation %s: %+v, want %q SUCCESSFUL", ep, id, op, lines[j])
			}
		}
		if i%50 == 0 {
			// One device in fifty is listed on its own, with the status
			// filter: in creation order.
			list := h.listOps(ids[ep], "SUCCESSFUL")
			var got []string
			for _, op := range list {
				got = append(got, op.ID)
			}
			if !slices.Equal(got, q.ids) {
				t.Errorf("%s: listed %v, want creation order %v", ep, got, q.ids)
			}
		}
		seen := map[int]bool{}
		for _, r := range dev.Requests() {
			seen[r.Wakeup] = true
		}
		windows[len(seen)]++
		if t.Failed() {
			t.FailNow()
		}
	}
	t.Logf("devices by the awake windows their operations took: %v", windows)
	if got := h.metric("lwm2m_agent_operations_sent_total"); got != float64(n*perDevice) {
		t.Errorf("operations sent = %v, want %d", got, n*perDevice)
	}
	if got := h.metric("lwm2m_agent_operations_timed_out_total"); got != 0 {
		t.Errorf("operations timed out = %v, want 0", got)
	}
}

// TestQueuePerWakeup checks the bound of operations per awake window:
// of 15 queued while the device sleeps, its next window gets 10 and the
// one after the other 5, in creation order.
func TestQueuePerWakeup(t *testing.T) {
	h := startAgent(t, withQueue(0, 10))
	sim := sleepers(t, h.agent.CoAPAddr.String(), 1, 2*time.Second, 5*time.Second)
	waitAsleep(t, sim, 10*time.Second)
	ep := sim.Endpoints()[0]
	id := h.deviceIDs(sim)[ep]
	paths := readable[:15]
	q, err := h.queue(id, readLines(paths))
	if err != nil {
		t.Fatal(err)
	}
	dev := sim.Device(ep)
	waitFor(t, 20*time.Second, func() error {
		if left, err := h.unfinished(); err != nil || left > 0 {
			return fmt.Errorf("%d operations not final (%v)", left, err)
		}
		return nil
	})
	checkDelivered(t, dev, q, paths)
	perWindow := map[int]int{}
	var order []int
	for _, r := range dev.Requests() {
		if perWindow[r.Wakeup] == 0 {
			order = append(order, r.Wakeup)
		}
		perWindow[r.Wakeup]++
	}
	if len(order) != 2 || perWindow[order[0]] != 10 || perWindow[order[1]] != 5 || order[1] != order[0]+1 {
		t.Fatalf("operations per awake window %v (windows %v), want 10 then 5 in consecutive windows", perWindow, order)
	}
}

// TestQueueTimeout checks what a request the device does not answer, even
// though it is awake, does to its operation: back to PENDING with the
// attempt counted, nothing more sent to the device in that window, and
// sent again in the next, where it succeeds; and FAILED once every
// attempt timed out.
func TestQueueTimeout(t *testing.T) {
	h := startAgent(t, withQueue(0, 10), withRequestTimeout(700*time.Millisecond), withOperationAttempts(3))
	awake, period := 2*time.Second, 4*time.Second
	sim := sleepers(t, h.agent.CoAPAddr.String(), 2, awake, period)
	waitAsleep(t, sim, 10*time.Second)
	eps := sim.Endpoints()
	ids := h.deviceIDs(sim)
	once, never := sim.Device(eps[0]), sim.Device(eps[1])
	once.Ignore(node.ResourcePath(3, 0, 0), 1)
	never.Ignore(node.ResourcePath(3, 0, 0), 1000)
	qOnce, err := h.queue(ids[eps[0]], []string{"read /3/0/0", "read /3/0/1"})
	if err != nil {
		t.Fatal(err)
	}
	qNever, err := h.queue(ids[eps[1]], []string{"read /3/0/0"})
	if err != nil {
		t.Fatal(err)
	}
	get := func(id string) operation {
		var op operation
		if code := h.call("GET", "/devicecontrol/operations/"+id, nil, &op); code != 200 {
			t.Fatalf("get operation %s: HTTP %d", id, code)
		}
		return op
	}
	var attempts struct {
		Attempts int    `json:"attempts"`
		Status   string `json:"status"`
	}
	// After the first window: the first operation timed out and waits
	// again, the second was not sent.
	waitFor(t, 2*period, func() error {
		h.call("GET", "/devicecontrol/operations/"+qOnce.ids[0], nil, &attempts)
		if attempts.Attempts != 1 || attempts.Status != "PENDING" {
			return fmt.Errorf("first operation %s after %d attempts", attempts.Status, attempts.Attempts)
		}
		return nil
	})
	if op := get(qOnce.ids[1]); op.Status != "PENDING" {
		t.Fatalf("second operation %s, want PENDING: nothing more is sent in a window after a timeout", op.Status)
	}
	waitFor(t, 3*period, func() error {
		for _, id := range qOnce.ids {
			if op := get(id); op.Status != "SUCCESSFUL" {
				return fmt.Errorf("operation %s %q: %s %q", id, op.Command.Text, op.Status, op.FailureReason)
			}
		}
		return nil
	})
	h.call("GET", "/devicecontrol/operations/"+qOnce.ids[0], nil, &attempts)
	if attempts.Attempts != 2 {
		t.Errorf("operation answered at the second attempt counts %d", attempts.Attempts)
	}
	var got []string
	wakeOf := map[string][]int{}
	for _, r := range once.Requests() {
		got = append(got, fmt.Sprintf("%s answered=%v", r.Path, r.Answered))
		wakeOf[r.Path] = append(wakeOf[r.Path], r.Wakeup)
		if r.Asleep {
			t.Errorf("request to a sleeping device: %+v", r)
		}
	}
	want := []string{"/3/0/0 answered=false", "/3/0/0 answered=true", "/3/0/1 answered=true"}
	if !slices.Equal(got, want) {
		t.Fatalf("device received %v, want %v", got, want)
	}
	if w := wakeOf["/3/0/0"]; w[1] <= w[0] || wakeOf["/3/0/1"][0] != w[1] {
		t.Errorf("windows of the requests: %v, want the retry and the next operation in a later window", wakeOf)
	}

	// Every attempt times out: FAILED after three, one per window.
	waitFor(t, 5*period, func() error {
		if op := get(qNever.ids[0]); op.Status != "FAILED" {
			return fmt.Errorf("operation %s", op.Status)
		}
		return nil
	})
	op := get(qNever.ids[0])
	if op.FailureReason != ops.TimeoutReason(3) {
		t.Errorf("failure reason %q, want %q", op.FailureReason, ops.TimeoutReason(3))
	}
	windows := map[int]bool{}
	for _, r := range never.Requests() {
		if r.Answered || r.Asleep {
			t.Errorf("unexpected request record %+v", r)
		}
		windows[r.Wakeup] = true
	}
	if len(windows) != 3 {
		t.Errorf("the timed-out requests came in windows %v, want three windows", windows)
	}
	if got := h.metric("lwm2m_agent_operations_timed_out_total"); got != 4 {
		t.Errorf("timed out = %v, want 4", got)
	}
	if got := h.metric("lwm2m_agent_operations_requeued_total"); got != 3 {
		t.Errorf("returned to pending = %v, want 3", got)
	}
}

// TestQueueWatchdog checks that an operation left EXECUTING (its outcome
// lost, as when the store failed the write that records it) is failed by
// the watchdog once the executing timeout passed.
func TestQueueWatchdog(t *testing.T) {
	h := startAgent(t, withTimeouts(500*time.Millisecond, time.Second, 2*time.Second))
	ctx := context.Background()
	id, err := h.agent.Store.CreateDevice(ctx, "management", "watchdog-ep")
	if err != nil {
		t.Fatal(err)
	}
	q, err := h.queue(id, []string{"read /3/0/0"})
	if err != nil {
		t.Fatal(err)
	}
	// The device is not registered, so the runner leaves the operation
	// alone; the store write stands for a run that sent it and lost what
	// came back.
	if err := h.agent.Store.SetStatus(ctx, "management", q.ids[0], store.OpExecuting, "", ""); err != nil {
		t.Fatal(err)
	}
	stuck := time.Now()
	var op operation
	waitFor(t, 10*time.Second, func() error {
		if code := h.call("GET", "/devicecontrol/operations/"+q.ids[0], nil, &op); code != 200 {
			return fmt.Errorf("HTTP %d", code)
		}
		if op.Status != "FAILED" {
			return fmt.Errorf("operation %s", op.Status)
		}
		return nil
	})
	if took := time.Since(stuck); took < 2*time.Second {
		t.Errorf("failed after %v, before the executing timeout", took)
	}
	if !strings.Contains(op.FailureReason, "stuck in EXECUTING") {
		t.Errorf("failure reason %q", op.FailureReason)
	}
	if got := h.metric("lwm2m_agent_operations_watchdog_failed_total"); got != 1 {
		t.Errorf("watchdog failed = %v, want 1", got)
	}
}

// TestQueueRestart stops the agent while sleeping devices still have
// operations queued, with two of them left EXECUTING as a crash leaves
// them, and starts a new agent over the same data: the devices keep
// their registrations (restored at start, their next Update is answered),
// every repeatable operation is delivered exactly once in their next
// windows, and the operation that must not run twice is failed, not sent.
func TestQueueRestart(t *testing.T) {
	dir, coap := t.TempDir(), freeUDPAddr(t)
	opts := []option{withQueue(0, 10), withRequestTimeout(2 * time.Second)}
	h, stop := startAgentIn(t, dir, coap, opts...)
	const n = 3
	awake, period := 2*time.Second, 6*time.Second
	sim := sleepers(t, coap, n, awake, period)
	waitAsleep(t, sim, 10*time.Second)
	ids := h.deviceIDs(sim)
	eps := sim.Endpoints()
	paths := readable[:15]
	byEP := map[string]queued{}
	for _, ep := range eps {
		lines := readLines(paths)
		if ep == eps[0] {
			lines = append(lines, "execute /3/0/12")
		}
		q, err := h.queue(ids[ep], lines)
		if err != nil {
			t.Fatal(err)
		}
		byEP[ep] = q
	}
	// The first window delivers ten of each device's operations.
	waitFor(t, 2*period, func() error {
		for _, ep := range eps {
			if got := len(h.listOps(ids[ep], "SUCCESSFUL")); got != 10 {
				return fmt.Errorf("%s: %d operations successful", ep, got)
			}
		}
		return nil
	})
	waitAsleep(t, sim, 2*awake)
	stop()

	// A crash in the middle of sending: the next read and the execute
	// are left EXECUTING without having reached the device.
	ctx := context.Background()
	st, err := sqlite.OpenEngine(ctx, sqlite.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	first := byEP[eps[0]]
	readID, execID := first.ids[10], first.ids[15]
	for _, id := range []string{readID, execID} {
		if err := st.SetStatus(ctx, "management", id, store.OpExecuting, "", ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(ctx); err != nil {
		t.Fatal(err)
	}

	h2, _ := startAgentIn(t, dir, coap, opts...)
	waitFor(t, 3*period, func() error {
		if left, err := h2.unfinished(); err != nil || left > 0 {
			return fmt.Errorf("%d operations not final (%v)", left, err)
		}
		return nil
	})
	for _, ep := range eps {
		checkDelivered(t, sim.Device(ep), byEP[ep], paths)
		for _, op := range h2.listOps(ids[ep], "") {
			want := "SUCCESSFUL"
			if op.ID == execID {
				want = "FAILED"
				if op.FailureReason != ops.ReasonRestarted {
					t.Errorf("execute left executing: reason %q, want %q", op.FailureReason, ops.ReasonRestarted)
				}
			}
			if op.Status != want {
				t.Errorf("%s %q: %s %q, want %s", op.ID, op.Command.Text, op.Status, op.FailureReason, want)
			}
		}
	}
	if got := h2.metric("lwm2m_agent_operations_recovered_total"); got != 1 {
		t.Errorf("recovered = %v, want 1", got)
	}
	if got := h2.metric("lwm2m_agent_operations_abandoned_total"); got != 1 {
		t.Errorf("abandoned = %v, want 1", got)
	}
	if got := h2.metric("lwm2m_agent_registers_total"); got != 0 {
		t.Errorf("registers after the restart = %v, want 0 (registrations restored)", got)
	}
}
