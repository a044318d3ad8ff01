package e2e

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/config"
	"github.com/lwm2m-agent/lwm2m-agent/agent/simulator"
)

// A sleeping device takes a pushed package too long for one awake
// window: each window goes on from the offset the device acknowledged
// last, no byte before it is sent again, and the update completes.
func TestFirmwarePushAcrossAwakeWindows(t *testing.T) {
	const block = 64
	pkg := pattern(48 << 10) // 768 blocks: several windows at the peer rate below
	h := startAgent(t, withTimeouts(time.Second, 2*time.Second, 3*time.Second), func(c *config.Config) {
		// the device's answers are bounded per second: a window takes a
		// few hundred blocks
		c.PeerRate, c.PeerBurst = 200, 100
	})
	cfg := simulator.Config{Server: h.agent.CoAPAddr.String(), Count: 1, Prefix: "fw-sleeper", Version: "1.1",
		Lifetime: time.Minute, AwakeTime: 1500 * time.Millisecond, UpdateEvery: 3 * time.Second, Record: 4096,
		Firmware: simulator.FirmwareConfig{Delivery: "push", BlockSize: block, Version: "2.0"},
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil))}
	sim := runSimulator(t, cfg, 10*time.Second)
	ep := sim.Endpoints()[0]
	dev := sim.Device(ep)
	id := h.deviceIDs(sim)[ep]
	src := h.storeFirmware("sensor_2.0.bin", pkg)
	opID := h.postOp(map[string]any{"deviceId": id, "c8y_Firmware": map[string]string{"name": "sensor", "version": "2.0", "url": src}})
	op := h.waitOp(opID, 120*time.Second)
	if op.Status != "SUCCESSFUL" || !strings.Contains(op.Command.Result+fmt.Sprint(op.Progress["message"]), "delivered by push") {
		t.Fatalf("update: %s %q (progress %v)", op.Status, op.FailureReason, op.Progress)
	}
	windows := map[int]bool{}
	for _, r := range dev.Requests() {
		if r.Method == "PUT" && r.Path == "/5/0/0" && r.Answered {
			windows[r.Wakeup] = true
		}
	}
	if len(windows) < 2 {
		t.Errorf("the package went in %d awake window(s); the test wants several", len(windows))
	}
	taken := dev.PushTaken()
	t.Logf("%d windows, %d blocks taken (%d repeats), %d bytes", len(windows), taken.Blocks, taken.Repeats, taken.Bytes)
	if taken.Starts != 1 || op.Progress["restarts"].(float64) != 0 {
		t.Errorf("the push started %d times (restarts %v); want once, resumed by offset", taken.Starts, op.Progress["restarts"])
	}
	// a block whose answer was lost as the device fell asleep comes
	// again at the resumed offset, at most once a window, and is not
	// written twice
	if taken.Bytes != int64(len(pkg)) || taken.Repeats >= len(windows) {
		t.Errorf("the device took %d bytes in %d blocks (%d repeats) for a package of %d over %d windows", taken.Bytes, taken.Blocks, taken.Repeats, len(pkg), len(windows))
	}
	checkInstalled(t, h, dev, id, "sensor", "2.0", src)
}

// The agent process stops in the middle of a device's pull over CoAP,
// by SIGTERM or SIGKILL: the device asks for the block it lacks again
// until the new process on the same ports answers (the package's URI is
// in the store), its download goes on from there, and the update ends
// SUCCESSFUL without a second Package URI.
func TestFirmwarePullAcrossAgentRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the built agent as a process")
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			dir, coap, httpAddr := t.TempDir(), freeUDPAddr(t), freeTCPAddr(t)
			// no GET of the pull dropped by the peer rate limit: each would
			// wait for its retransmission
			flags := []string{"--request-timeout", "2s", "--peer-rate", "2000", "--peer-burst", "2000"}
			p1, h1 := startAgentProcess(t, dir, coap, httpAddr, flags...)
			pkg := pattern(64 << 10)
			cfg := simulator.Config{Server: coap, Count: 1, Prefix: "fw-pull-" + strings.ToLower(sig.String()), Version: "1.1",
				Lifetime: time.Minute, UpdateEvery: 5 * time.Second, Record: 256,
				Firmware: simulator.FirmwareConfig{Delivery: "pull", Protocols: []string{"coap"}, BlockSize: 16, Version: "2.0", Timeout: 2 * time.Minute},
				Logger:   slog.New(slog.NewTextHandler(io.Discard, nil))}
			sim := runSimulator(t, cfg, 20*time.Second)
			ep := sim.Endpoints()[0]
			dev := sim.Device(ep)
			id := h1.device(ep).str("id")
			src := h1.storeFirmware("sensor_2.0.bin", pkg)
			opID := h1.postOp(map[string]any{"deviceId": id, "c8y_Firmware": map[string]string{"name": "sensor", "version": "2.0", "url": src}})
			waitFor(t, 30*time.Second, func() error {
				if n := dev.Pulled(); n < 2<<10 {
					return fmt.Errorf("device pulled %d bytes", n)
				}
				return nil
			})
			if err := p1.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			<-p1.done
			at := dev.Pulled()
			if at >= int64(len(pkg)) {
				t.Fatalf("the pull ended before the agent stopped")
			}
			_, h2 := startAgentProcess(t, dir, coap, httpAddr, flags...)
			op := h2.waitOp(opID, 60*time.Second)
			if op.Status != "SUCCESSFUL" {
				t.Fatalf("after the restart at %d bytes: %s %q (progress %v)", at, op.Status, op.FailureReason, op.Progress)
			}
			t.Logf("stopped at %d bytes; progress %v", at, op.Progress)
			// the download the device had begun is the one that ended: the
			// URI written once, no restart
			if n, _ := op.Progress["restarts"].(float64); n != 0 || requested(dev, "PUT", "/5/0/1") != 1 {
				t.Errorf("the pull was started again (%v restarts, %d Package URI writes); want it taken up where it stopped",
					op.Progress["restarts"], requested(dev, "PUT", "/5/0/1"))
			}
			checkInstalled(t, h2, dev, id, "sensor", "2.0", src)
		})
	}
}

// One bulk operation updates a group of devices that take firmware each
// its own way (push, pull over CoAP and HTTP, BOTH, one sleeping) from
// an agent binary; the one whose package fails its integrity check
// fails with that reason, and the progress counts it.
func TestFirmwareBulkOperationMixedFleet(t *testing.T) {
	h := startAgent(t)
	fw := func(delivery string, protocols ...string) *simulator.FirmwareConfig {
		return &simulator.FirmwareConfig{Delivery: delivery, Protocols: protocols, BlockSize: 256, Version: "2.0"}
	}
	bad := fw("pull", "coap")
	bad.Fail = 5
	online := []simulator.DeviceConfig{
		{Endpoint: "bulk-push", Firmware: fw("push")},
		{Endpoint: "bulk-coap", Firmware: fw("pull", "coap")},
		{Endpoint: "bulk-http", Firmware: fw("pull", "http")},
		{Endpoint: "bulk-both", Firmware: fw("both", "coap")},
		{Endpoint: "bulk-bad", Firmware: bad},
	}
	sim := h.simulate(len(online), func(c *simulator.Config) { c.Devices, c.Record = online, 512 })
	sleeper := runSimulator(t, simulator.Config{Server: h.agent.CoAPAddr.String(), Count: 1, Prefix: "bulk-sleeper", Version: "1.1",
		Lifetime: time.Minute, AwakeTime: 2 * time.Second, UpdateEvery: 4 * time.Second, Record: 512,
		Firmware: *fw("push"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, 10*time.Second)
	devs := map[string]*simulator.Device{}
	var eps []string
	for _, s := range []*simulator.Simulator{sim, sleeper} {
		for _, ep := range s.Endpoints() {
			devs[ep] = s.Device(ep)
			eps = append(eps, ep)
		}
	}
	group, ids := h.fleetGroup(eps)
	src := h.storeFirmware("sensor_2.0.bin", fwPackage)
	var b bulkOperation
	if code := h.call("POST", "/devicecontrol/bulkoperations", map[string]any{
		"groupId": group, "startDate": time.Now().UTC().Format(time.RFC3339Nano), "creationRamp": 0.1,
		"operationPrototype": map[string]any{"c8y_Firmware": map[string]any{"name": "sensor", "version": "2.0", "url": src},
			"description": "firmware sensor 2.0"},
	}, &b); code != 201 {
		t.Fatalf("create bulk operation: HTTP %d", code)
	}
	h.eventually(120*time.Second, func() error {
		if b = h.bulk(b.ID); b.Status != "COMPLETED" {
			return fmt.Errorf("bulk operation %+v", b)
		}
		return nil
	})
	if p := b.Progress; p.All != 6 || p.Successful != 5 || p.Failed != 1 || p.Pending+p.Executing != 0 {
		t.Errorf("progress %+v; want 6: 5 successful, 1 failed", p)
	}
	ops := h.bulkDevices(b.ID, ids)
	for i, ep := range eps {
		id := ids[i]
		if len(ops[id]) != 1 {
			t.Errorf("%s: %d operations of the bulk operation, want 1", ep, len(ops[id]))
			continue
		}
		op := ops[id][0]
		if ep == "bulk-bad" {
			if reason, _ := op["failureReason"].(string); op["status"] != "FAILED" || !strings.Contains(reason, "Update Result 5: integrity check failure") {
				t.Errorf("%s: %v %q; want FAILED for its integrity check", ep, op["status"], reason)
			}
			continue
		}
		if op["status"] != "SUCCESSFUL" {
			t.Errorf("%s: %v %v", ep, op["status"], op["failureReason"])
			continue
		}
		checkInstalled(t, h, devs[ep], id, "sensor", "2.0", src)
	}
}
