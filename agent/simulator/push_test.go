package simulator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/codec"
	"github.com/lwm2m-agent/lwm2m-agent/agent/lwm2m"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// agentHooks let every device register with the agent's LwM2M server.
type agentHooks struct{}

func (agentHooks) Authorize(_ context.Context, req lwm2m.AuthRequest) (lwm2m.Identity, error) {
	return lwm2m.Identity{Tenant: "t1", DeviceID: req.Endpoint}, nil
}
func (agentHooks) Persist(context.Context, lwm2m.Registration, lwm2m.Change) error { return nil }
func (agentHooks) Registered(context.Context, lwm2m.Registration)                  {}
func (agentHooks) Updated(context.Context, lwm2m.Registration)                     {}
func (agentHooks) Deregistered(context.Context, lwm2m.Registration)                {}
func (agentHooks) Expired(context.Context, lwm2m.Registration)                     {}
func (agentHooks) Values(context.Context, lwm2m.Registration, node.Path, []node.Record) {
}

// agentWithDevice starts the agent's LwM2M server on loopback and one
// simulated device registered to it, whose firmware object fw governs.
func agentWithDevice(t *testing.T, cfg lwm2m.Config, fw FirmwareConfig) (*lwm2m.Server, *Device) {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	s, err := lwm2m.NewServer(cfg, agentHooks{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Serve(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	sim, err := New(Config{
		Server: s.Addr().String(), Count: 1, Lifetime: time.Minute,
		Firmware: fw, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	sctx, scancel := context.WithCancel(context.Background())
	sdone := make(chan struct{})
	go func() { _ = sim.Run(sctx); close(sdone) }()
	t.Cleanup(func() { scancel(); <-sdone })
	waitFor(t, 5*time.Second, "registration", func() bool { _, ok := s.Registration("sim-0"); return ok })
	return s, sim.Device("sim-0")
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func fwValue(d *Device, r uint16) int64 {
	v, _ := d.Value(node.ResourcePath(objFirmware, 0, r))
	return v.Int
}

func push(t *testing.T, s *lwm2m.Server, pkg []byte, from int64, progress func(int64)) error {
	t.Helper()
	return s.WritePackage(context.Background(), "sim-0", pathFwPackage, bytes.NewReader(pkg), int64(len(pkg)), from, progress)
}

func TestFirmwarePush(t *testing.T) {
	s, d := agentWithDevice(t, lwm2m.Config{}, FirmwareConfig{BlockSize: 256})
	pkg := bytes.Repeat([]byte("firmware"), 1000) // 8000 bytes
	var offsets []int64
	if err := push(t, s, pkg, 0, func(o int64) { offsets = append(offsets, o) }); err != nil {
		t.Fatal(err)
	}
	if st, res := fwValue(d, resFwState), fwValue(d, resFwResult); st != fwDownloaded || res != fwResultInitial {
		t.Fatalf("after the push state %d result %d, want Downloaded (2) and 0", st, res)
	}
	// the first block at the agent's 1024, the rest at the device's 256
	if offsets[0] != 1024 || offsets[1] != 1280 || offsets[len(offsets)-1] != 8000 {
		t.Errorf("progress %v, want 1024, 1280, ... 8000", offsets)
	}
	if err := s.Execute(context.Background(), "sim-0", node.ResourcePath(objFirmware, 0, resFwUpdate), ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the update", func() bool { return fwValue(d, resFwResult) == fwResultSuccess })
	if v, _ := d.Value(pathDevFwVers); v.Str != "1.0.1" {
		t.Errorf("firmware version %q after the update, want 1.0.1", v.Str)
	}
	if v, _ := d.Value(pathFwPackage); len(v.Bytes) != 0 {
		t.Errorf("the device kept %d bytes of the package in its tree", len(v.Bytes))
	}
}

func TestFirmwarePushRebootLosesTransfer(t *testing.T) {
	s, d := agentWithDevice(t, lwm2m.Config{RequestTimeout: 400 * time.Millisecond}, FirmwareConfig{StallAfter: 3000})
	pkg := bytes.Repeat([]byte{0xa5}, 6000)
	var last int64
	err := push(t, s, pkg, 0, func(o int64) { last = o })
	if !errors.Is(err, lwm2m.ErrTimeout) || last != 2048 {
		t.Fatalf("push to a device out of reach: %v at %d, want a timeout at 2048", err, last)
	}
	if st := fwValue(d, resFwState); st != fwDownloading {
		t.Fatalf("state %d while the transfer waits, want Downloading (1)", st)
	}
	d.Reboot()
	if st, res := fwValue(d, resFwState), fwValue(d, resFwResult); st != fwIdle || res != fwResultInitial {
		t.Fatalf("after the reboot state %d result %d, want 0 0", st, res)
	}
	waitFor(t, 10*time.Second, "registration after the reboot", func() bool {
		r, ok := s.Registration("sim-0")
		return ok && time.Since(r.RegisteredAt) < 5*time.Second && d.Registered()
	})
	if err := push(t, s, pkg, last, nil); !errors.Is(err, lwm2m.ErrTransferRestart) {
		t.Fatalf("resume after the reboot: %v, want ErrTransferRestart", err)
	}
	if err := push(t, s, pkg, 0, nil); err != nil {
		t.Fatalf("push again from 0: %v", err)
	}
	if st := fwValue(d, resFwState); st != fwDownloaded {
		t.Fatalf("state %d, want Downloaded", st)
	}
}

func TestFirmwarePushResumesAfterStall(t *testing.T) {
	s, d := agentWithDevice(t, lwm2m.Config{RequestTimeout: 400 * time.Millisecond}, FirmwareConfig{StallAfter: 2500, KeepProgress: true})
	pkg := bytes.Repeat([]byte{1, 2, 3}, 2000)
	var last int64
	if err := push(t, s, pkg, 0, func(o int64) { last = o }); !errors.Is(err, lwm2m.ErrTimeout) {
		t.Fatalf("push: %v, want a timeout", err)
	}
	d.Reboot() // KeepProgress: the transfer survives
	waitFor(t, 10*time.Second, "registration after the reboot", func() bool {
		r, ok := s.Registration("sim-0")
		return ok && time.Since(r.RegisteredAt) < 5*time.Second && d.Registered()
	})
	if err := push(t, s, pkg, last, nil); err != nil {
		t.Fatalf("resume at %d: %v", last, err)
	}
	if st := fwValue(d, resFwState); st != fwDownloaded {
		t.Fatalf("state %d, want Downloaded", st)
	}
}

func TestFirmwarePushFailures(t *testing.T) {
	for _, tc := range []struct {
		name    string
		fw      FirmwareConfig
		size    int
		wantErr bool
		result  int64
		state   int64
	}{
		{"no flash", FirmwareConfig{MaxSize: 4096}, 5000, true, fwResultNoFlash, fwIdle},
		{"injected no flash", FirmwareConfig{Fail: fwResultNoFlash}, 2000, true, fwResultNoFlash, fwIdle},
		{"out of RAM", FirmwareConfig{Fail: fwResultNoRAM}, 5000, true, fwResultNoRAM, fwIdle},
		{"connection lost", FirmwareConfig{Fail: fwResultConnLost}, 5000, true, fwResultConnLost, fwIdle},
		{"integrity", FirmwareConfig{Fail: fwResultIntegrity}, 5000, false, fwResultIntegrity, fwIdle},
		{"package type", FirmwareConfig{Fail: fwResultPackageType}, 5000, false, fwResultPackageType, fwIdle},
		{"pull only", FirmwareConfig{Delivery: "pull"}, 5000, true, fwResultInitial, fwIdle},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, d := agentWithDevice(t, lwm2m.Config{}, tc.fw)
			err := push(t, s, make([]byte, tc.size), 0, nil)
			if (err != nil) != tc.wantErr {
				t.Fatalf("push: %v, want an error: %v", err, tc.wantErr)
			}
			if st, res := fwValue(d, resFwState), fwValue(d, resFwResult); st != tc.state || res != tc.result {
				t.Fatalf("state %d result %d, want %d %d", st, res, tc.state, tc.result)
			}
		})
	}
}

func TestFirmwareUpdateFailsAndCancel(t *testing.T) {
	s, d := agentWithDevice(t, lwm2m.Config{}, FirmwareConfig{Fail: fwResultFailed})
	if err := push(t, s, make([]byte, 3000), 0, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Execute(context.Background(), "sim-0", node.ResourcePath(objFirmware, 0, resFwUpdate), ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the failed update", func() bool { return fwValue(d, resFwResult) == fwResultFailed })
	if st := fwValue(d, resFwState); st != fwDownloaded {
		t.Errorf("state %d after a failed update, want Downloaded (2)", st)
	}
	// object 5 version 1.0: no Cancel
	err := s.Execute(context.Background(), "sim-0", node.ResourcePath(objFirmware, 0, resFwCancel), "")
	var re *lwm2m.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("cancel without the resource: %v, want a refusal", err)
	}
	// the reset by Package: one null byte
	if err := s.WriteFormat(context.Background(), "sim-0", codec.Opaque, pathFwPackage, []node.Record{{Path: pathFwPackage, Value: node.Opaque([]byte{0})}}, true); err != nil {
		t.Fatal(err)
	}
	if st, res := fwValue(d, resFwState), fwValue(d, resFwResult); st != fwIdle || res != fwResultInitial {
		t.Fatalf("after the reset state %d result %d, want 0 0", st, res)
	}
}

func TestFirmwareCancel(t *testing.T) {
	s, d := agentWithDevice(t, lwm2m.Config{}, FirmwareConfig{Cancel: true})
	if err := push(t, s, make([]byte, 3000), 0, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Execute(context.Background(), "sim-0", node.ResourcePath(objFirmware, 0, resFwCancel), ""); err != nil {
		t.Fatal(err)
	}
	if st, res := fwValue(d, resFwState), fwValue(d, resFwResult); st != fwIdle || res != fwResultCancelled {
		t.Fatalf("after Cancel state %d result %d, want 0 10", st, res)
	}
}

// A push resumed below the offset the device reached, as by a server
// whose answer to a block was lost (the device fell asleep, or the
// answer was dropped), goes on: the blocks the device has are
// acknowledged again and not written twice, a block that overlaps adds
// what is new in it, and the package is whole.
func TestFirmwarePushResumedBelowTheDevice(t *testing.T) {
	for _, tc := range []struct {
		name    string
		from    int64 // the device took 2304 bytes
		block   int   // the resumed push's block size; 0 for the server's 1024
		repeats int
	}{
		{"the last block again", 2048, 256, 1},
		{"several blocks again", 1024, 256, 5},
		{"a larger block across the end", 2048, 0, 0},
		{"a larger block, then the device's", 1024, 0, 2},
		{"where the device is", 2304, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, d := agentWithDevice(t, lwm2m.Config{RequestTimeout: 400 * time.Millisecond}, FirmwareConfig{BlockSize: 256, StallAfter: 2500})
			pkg := randomBytes(6000)
			var last int64
			if err := push(t, s, pkg, 0, func(o int64) { last = o }); !errors.Is(err, lwm2m.ErrTimeout) || last != 2304 {
				t.Fatalf("push: %v at %d, want a timeout at 2304", err, last)
			}
			ctx := context.Background()
			if tc.block > 0 {
				ctx = lwm2m.WithPushBlockSize(ctx, tc.block)
			}
			if err := s.WritePackage(ctx, "sim-0", pathFwPackage, bytes.NewReader(pkg), int64(len(pkg)), tc.from, nil); err != nil {
				t.Fatalf("resume at %d: %v", tc.from, err)
			}
			size, sum := d.Package()
			if size != int64(len(pkg)) || sum != sha256.Sum256(pkg) {
				t.Errorf("the device holds %d bytes, not the package of %d", size, len(pkg))
			}
			if got := d.PushTaken(); got.Starts != 1 || got.Repeats != tc.repeats {
				t.Errorf("taken %+v, want 1 start and %d repeats", got, tc.repeats)
			}
			if st := fwValue(d, resFwState); st != fwDownloaded {
				t.Errorf("state %d, want Downloaded", st)
			}
		})
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/13)
	}
	return b
}
