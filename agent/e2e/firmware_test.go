package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/config"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/simulator"
)

// firmwareFiles serves firmware packages to the simulated devices:
// /fw/<file> a package, /slow/<file> one that comes after delay, /held/<file>
// one that comes when release is called, anything else 404.
type firmwareFiles struct {
	*httptest.Server
	delay   time.Duration
	release func()
	held    chan struct{}
	mu      sync.Mutex
	gets    map[string]int
}

func serveFirmware(t *testing.T, delay time.Duration) *firmwareFiles {
	t.Helper()
	f := &firmwareFiles{delay: delay, held: make(chan struct{}), gets: map[string]int{}}
	var once sync.Once
	f.release = func() { once.Do(func() { close(f.held) }) }
	package_ := []byte(strings.Repeat("firmware-image ", 512))
	mux := http.NewServeMux()
	count := func(r *http.Request) {
		f.mu.Lock()
		f.gets[r.URL.Path]++
		f.mu.Unlock()
	}
	mux.HandleFunc("/fw/", func(w http.ResponseWriter, r *http.Request) {
		count(r)
		_, _ = w.Write(package_)
	})
	mux.HandleFunc("/slow/", func(w http.ResponseWriter, r *http.Request) {
		count(r)
		select {
		case <-time.After(f.delay):
		case <-r.Context().Done():
			return
		}
		_, _ = w.Write(package_)
	})
	mux.HandleFunc("/held/", func(w http.ResponseWriter, r *http.Request) {
		count(r)
		select {
		case <-f.held:
		case <-r.Context().Done():
			return
		}
		_, _ = w.Write(package_)
	})
	f.Server = httptest.NewServer(mux)
	t.Cleanup(func() {
		f.release()
		f.Close()
	})
	return f
}

func (f *firmwareFiles) downloads(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gets[path]
}

// fwOperation is an operation as the API shows it, with the fragments a
// firmware update has.
type fwOperation struct {
	operation
	Firmware *struct {
		Name, Version, URL string
	} `json:"c8y_Firmware"`
	Progress map[string]any `json:"lwm2mFirmwareUpdate"`
}

func (h *harness) getOp(id string) fwOperation {
	h.t.Helper()
	var op fwOperation
	if code := h.call("GET", "/devicecontrol/operations/"+id, nil, &op); code != 200 {
		h.t.Fatalf("get operation %s: HTTP %d", id, code)
	}
	return op
}

// postOp creates an operation from body and returns its ID.
func (h *harness) postOp(body map[string]any) string {
	h.t.Helper()
	var op fwOperation
	if code := h.call("POST", "/devicecontrol/operations", body, &op); code != 201 {
		h.t.Fatalf("create operation %v: HTTP %d", body, code)
	}
	return op.ID
}

// waitOp waits until the operation has ended and returns it.
func (h *harness) waitOp(id string, d time.Duration) fwOperation {
	h.t.Helper()
	var op fwOperation
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		op = h.getOp(id)
		if op.Status == "SUCCESSFUL" || op.Status == "FAILED" {
			return op
		}
		time.Sleep(50 * time.Millisecond)
	}
	h.t.Fatalf("after %v: operation %s still %s (progress %v)", d, id, op.Status, op.Progress)
	return op
}

// checkInstalled checks what a successful update leaves: the device runs
// the version, and its managed object has c8y_Firmware.
func checkInstalled(t *testing.T, h *harness, dev *simulator.Device, deviceID, name, version, url string) {
	t.Helper()
	if v, _ := dev.Value(node.MustParsePath("/3/0/3")); v.Str != version {
		t.Errorf("the device runs firmware %q, want %q", v.Str, version)
	}
	var mo struct {
		Firmware map[string]any `json:"c8y_Firmware"`
	}
	// The fragment goes through the mapping writer's queue and batches,
	// after the version the device reported: the operation can end before
	// it is stored, and on a loaded machine that once took more than 5 s.
	h.eventually(30*time.Second, func() error {
		if code := h.call("GET", "/inventory/managedObjects/"+deviceID, nil, &mo); code != 200 {
			return fmt.Errorf("device: HTTP %d", code)
		}
		if mo.Firmware["name"] != name || mo.Firmware["version"] != version || mo.Firmware["url"] != url {
			return fmt.Errorf("c8y_Firmware %v, want name %s version %s url %s", mo.Firmware, name, version, url)
		}
		return nil
	})
}

func TestFirmwareUpdate(t *testing.T) {
	files := serveFirmware(t, 0)
	h := startAgent(t)
	sim := h.simulate(1, func(c *simulator.Config) { c.Record = 64 })
	ep := sim.Endpoints()[0]
	dev := sim.Device(ep)
	id := h.device(ep)["id"].(string)

	url := files.URL + "/fw/sensor_2.1.0.bin"
	// the read is queued behind the update and must see its outcome
	q, err := h.queue(id, []string{"fwupdate sensor;2.1.0;" + url, "read /3/0/3"})
	if err != nil {
		t.Fatal(err)
	}
	op := h.waitOp(q.ids[0], 30*time.Second)
	if op.Status != "SUCCESSFUL" {
		t.Fatalf("firmware update %s: %s (progress %v)", op.Status, op.FailureReason, op.Progress)
	}
	if r := op.Command.Result; !strings.Contains(r, "Firmware sensor 2.1.0 installed from "+url) || !strings.Contains(r, "Update Result 1") {
		t.Errorf("result %q", r)
	}
	checkInstalled(t, h, dev, id, "sensor", "2.1.0", url)
	if n := files.downloads("/fw/sensor_2.1.0.bin"); n != 1 {
		t.Errorf("the package was downloaded %d times, want once", n)
	}
	read := h.waitOp(q.ids[1], 10*time.Second)
	if read.Status != "SUCCESSFUL" || !strings.Contains(read.Command.Result, "2.1.0") {
		t.Errorf("read after the update: %s %q %s; want the new version", read.Status, read.Command.Result, read.FailureReason)
	}
	// the device was asked in the spec's order, Update executed once, and
	// the observations ended
	var asked []string
	for _, r := range dev.Requests() {
		if r.Path == "/5/0/1" || r.Path == "/5/0/2" {
			asked = append(asked, r.Method+" "+r.Path)
		}
	}
	if strings.Join(asked, ",") != "PUT /5/0/1,POST /5/0/2" {
		t.Errorf("firmware requests %v, want one Package URI write, then one Update", asked)
	}
	h.eventually(5*time.Second, func() error {
		for _, p := range h.agent.Server.Observations(ep) {
			if p.Object == 5 {
				return fmt.Errorf("still observing %s", p)
			}
		}
		return nil
	})
}

func TestFirmwareOperationFragment(t *testing.T) {
	files := serveFirmware(t, 0)
	h := startAgent(t)
	sim := h.simulate(1, nil)
	ep := sim.Endpoints()[0]
	id := h.device(ep)["id"].(string)

	url := files.URL + "/fw/gateway_3.0.bin"
	opID := h.postOp(map[string]any{"deviceId": id, "c8y_Firmware": map[string]any{"name": "gateway", "version": "3.0", "url": url}})
	op := h.waitOp(opID, 30*time.Second)
	if op.Status != "SUCCESSFUL" {
		t.Fatalf("firmware update %s: %s (progress %v)", op.Status, op.FailureReason, op.Progress)
	}
	var raw map[string]any
	h.call("GET", "/devicecontrol/operations/"+opID, nil, &raw)
	if c, ok := raw["c8y_Command"]; ok {
		t.Errorf("a c8y_Firmware operation shows c8y_Command %v", c)
	}
	if op.Firmware == nil || op.Firmware.Version != "3.0" {
		t.Errorf("the operation's c8y_Firmware %+v", op.Firmware)
	}
	if msg, _ := op.Progress["message"].(string); !strings.Contains(msg, "installed from "+url) {
		t.Errorf("progress message %q", msg)
	}
	checkInstalled(t, h, sim.Device(ep), id, "gateway", "3.0", url)
}

func TestFirmwareDownloadFailure(t *testing.T) {
	files := serveFirmware(t, 0)
	h := startAgent(t)
	sim := h.simulate(1, nil)
	ep := sim.Endpoints()[0]
	id := h.device(ep)["id"].(string)

	op := h.shell(id, "fwupdate sensor;2.0;"+files.URL+"/missing/sensor_2.0.bin", 30*time.Second)
	if op.Status != "FAILED" {
		t.Fatalf("update from a missing file: %s", op.Status)
	}
	// the device pulls (BOTH, pull first) and finds nothing there; the
	// push after it has no package either
	if want := "pull over http failed: Update Result 7: invalid URI"; !strings.Contains(op.FailureReason, want) ||
		!strings.HasPrefix(op.FailureReason, "firmware update failed at step download: push: ") {
		t.Errorf("failure reason %q, want a failed push after %q", op.FailureReason, want)
	}
	if v, _ := sim.Device(ep).Value(node.MustParsePath("/3/0/3")); v.Str != "1.0.0" {
		t.Errorf("the device runs %q after a failed update", v.Str)
	}
	// the device is idle again: the next update goes through
	op = h.shell(id, "fwupdate sensor;2.0;"+files.URL+"/fw/sensor_2.0.bin", 30*time.Second)
	if op.Status != "SUCCESSFUL" {
		t.Errorf("update after a failed one: %s %s", op.Status, op.FailureReason)
	}
}

func TestFirmwareDeviceBusy(t *testing.T) {
	files := serveFirmware(t, 0)
	h := startAgent(t)
	sim := h.simulate(1, nil)
	ep := sim.Endpoints()[0]
	id := h.device(ep)["id"].(string)

	// someone else's download, held by the file server
	if op := h.shell(id, "write /5/0/1 "+files.URL+"/held/other_9.bin", 10*time.Second); op.Status != "SUCCESSFUL" {
		t.Fatalf("write package URI: %s %s", op.Status, op.FailureReason)
	}
	op := h.shell(id, "fwupdate sensor;2.0;"+files.URL+"/fw/sensor_2.0.bin", 20*time.Second)
	if op.Status != "FAILED" || op.FailureReason != "firmware update already in progress: state 1 (downloading)" {
		t.Fatalf("update of a busy device: %s %q", op.Status, op.FailureReason)
	}
	if n := files.downloads("/fw/sensor_2.0.bin"); n != 0 {
		t.Errorf("a busy device was sent the package URI: %d downloads", n)
	}
}

func TestFirmwareSleepingDevice(t *testing.T) {
	// the download takes longer than the device stays awake: the update
	// goes on in the device's next window
	const awake, period = time.Second, 2500 * time.Millisecond
	files := serveFirmware(t, 1500*time.Millisecond)
	h := startAgent(t)
	sim := sleepers(t, h.agent.CoAPAddr.String(), 1, awake, period)
	ep := sim.Endpoints()[0]
	dev := sim.Device(ep)
	id := h.deviceIDs(sim)[ep]

	url := files.URL + "/slow/sensor_4.2.bin"
	q, err := h.queue(id, []string{"fwupdate sensor;4.2;" + url, "read /3/0/3"})
	if err != nil {
		t.Fatal(err)
	}
	op := h.waitOp(q.ids[0], 60*time.Second)
	if op.Status != "SUCCESSFUL" {
		t.Fatalf("firmware update %s: %s (progress %v)", op.Status, op.FailureReason, op.Progress)
	}
	checkInstalled(t, h, dev, id, "sensor", "4.2", url)
	read := h.waitOp(q.ids[1], 30*time.Second)
	if read.Status != "SUCCESSFUL" || !strings.Contains(read.Command.Result, "4.2") {
		t.Errorf("read after the update: %s %q %s", read.Status, read.Command.Result, read.FailureReason)
	}
	write, update := -1, -1
	for _, r := range dev.Requests() {
		if r.Asleep {
			t.Errorf("a request reached the device asleep: %+v", r)
		}
		switch {
		case r.Method == "PUT" && r.Path == "/5/0/1":
			write = r.Wakeup
		case r.Method == "POST" && r.Path == "/5/0/2":
			update = r.Wakeup
		}
	}
	if write < 0 || update <= write {
		t.Errorf("package URI written in window %d, Update executed in window %d: want a later window", write, update)
	}
}

func TestFirmwareUpdateResumesAfterRestart(t *testing.T) {
	files := serveFirmware(t, 0)
	dir, addr := t.TempDir(), freeUDPAddr(t)
	h1, stop1 := startAgentIn(t, dir, addr)
	cfg := simulator.Config{Server: addr, Count: 1, Prefix: "fw-restart", Version: "1.1", Lifetime: 30 * time.Second,
		UpdateEvery: 2 * time.Second, Record: 64}
	sim := runSimulator(t, cfg, 10*time.Second)
	ep := sim.Endpoints()[0]
	dev := sim.Device(ep)
	id := h1.deviceIDs(sim)[ep]

	url := files.URL + "/held/sensor_5.0.bin"
	opID := h1.postOp(map[string]any{"deviceId": id, "c8y_Command": map[string]string{"text": "fwupdate sensor;5.0;" + url}})
	h1.eventually(10*time.Second, func() error {
		if files.downloads("/held/sensor_5.0.bin") == 0 {
			return fmt.Errorf("no download yet")
		}
		return nil
	})
	stop1()
	// the download ends while no agent runs: the device's notification
	// finds nobody
	files.release()
	waitFor(t, 5*time.Second, func() error {
		if v, _ := dev.Value(node.MustParsePath("/5/0/3")); v.Int != 2 {
			return fmt.Errorf("state %d, want 2 (downloaded)", v.Int)
		}
		return nil
	})
	h2, _ := startAgentIn(t, dir, addr)
	op := h2.waitOp(opID, 30*time.Second)
	if op.Status != "SUCCESSFUL" {
		t.Fatalf("firmware update after a restart: %s %s (progress %v)", op.Status, op.FailureReason, op.Progress)
	}
	checkInstalled(t, h2, dev, id, "sensor", "5.0", url)
	writes := 0
	for _, r := range dev.Requests() {
		if r.Method == "PUT" && r.Path == "/5/0/1" {
			writes++
		}
	}
	if writes != 1 || files.downloads("/held/sensor_5.0.bin") != 1 {
		t.Errorf("package URI written %d times, downloaded %d times; want once each", writes, files.downloads("/held/sensor_5.0.bin"))
	}
}

// A firmware update outlasts the EXECUTING watchdog's limit, and ends by
// --firmware-timeout when the device never finishes its download.
func TestFirmwareTimeout(t *testing.T) {
	files := serveFirmware(t, 0)
	h := startAgent(t, withTimeouts(time.Second, time.Second, 1500*time.Millisecond), func(c *config.Config) {
		c.FirmwareTimeout = 5 * time.Second
	})
	sim := h.simulate(1, nil)
	ep := sim.Endpoints()[0]
	id := h.device(ep)["id"].(string)

	start := time.Now()
	op := h.shell(id, "fwupdate sensor;2.0;"+files.URL+"/held/sensor_2.0.bin", 20*time.Second)
	took := time.Since(start)
	if op.Status != "FAILED" || !strings.HasPrefix(op.FailureReason, "firmware update timed out after 5s at step download (last state 1") {
		t.Fatalf("update that never downloads: %s %q", op.Status, op.FailureReason)
	}
	if took < 5*time.Second {
		t.Errorf("failed after %v, before the firmware timeout", took)
	}
	// the device's other operations go on after it
	if op := h.shell(id, "read /3/0/3", 10*time.Second); op.Status != "SUCCESSFUL" {
		t.Errorf("read after the timed-out update: %s %s", op.Status, op.FailureReason)
	}
}
