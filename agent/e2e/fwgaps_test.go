package e2e

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
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
