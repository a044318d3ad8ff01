package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/bench/regload"
)

// restartRun is the setting of the restart phase.
type restartRun struct {
	registrations int // devices registered before the restart
	ops           int // pending operations before the restart
	perDevice     int // pending operations of a device that has some
	sockets       int // sockets registering the devices
	clients       int // API clients creating the operations
}

// restartAwake is the awake time the devices register with: they sleep
// once it has passed, so that their operations stay PENDING (sent at
// their next Register or Update) before and after the restart.
const restartAwake = time.Second

// restart fills the agent with registrations of sleeping devices (new
// endpoints, auto-registered, from a closed loop of Registers) and with
// pending operations for them, stops it with SIGTERM, starts it again on
// the same store and ports, and measures from the exec to /health
// answering UP and to a Register of a known device answered 2.01.
func restart(ctx context.Context, a *agent, r restartRun) error {
	cfg := regload.Config{Server: a.CoAP, Sockets: r.sockets, Prefix: "restart-", Awake: restartAwake}
	fill, err := regload.Fill(ctx, cfg, 0, r.registrations)
	if err != nil {
		return err
	}
	if fill.Total != uint64(r.registrations) {
		return fmt.Errorf("%d of %d devices registered (lost %d, other answers %v)", fill.Total, r.registrations, fill.Lost, fill.Other)
	}
	for start := time.Now(); ; {
		// registered, and their state and registration events stored
		v, err := a.metric(ctx, "lwm2m_agent_registrations")
		ev, err2 := a.metric(ctx, "lwm2m_agent_lifecycle_events_total")
		if err == nil && err2 == nil && int(v) >= r.registrations && int(ev) >= r.registrations {
			break
		}
		if time.Since(start) > 10*time.Minute {
			return fmt.Errorf("%v of %d registrations stored after 10 minutes", ev, r.registrations)
		}
		time.Sleep(200 * time.Millisecond)
	}
	fmt.Printf("restart: %d sleeping devices (awake %s after each Register) registered and stored in %.1fs (%d sockets, closed loop, each Register a new endpoint)\n",
		r.registrations, restartAwake, fill.Window.Seconds(), r.sockets)

	devs := r.ops / r.perDevice
	if devs < 1 || devs > r.registrations {
		return fmt.Errorf("%d operations, %d a device: -restart-ops must be between -restart-ops-per-device and its product with -restart-registrations", r.ops, r.perDevice)
	}
	time.Sleep(2 * restartAwake) // every device asleep
	ids, err := a.deviceIDs(ctx, "type=c8y_lwm2m", devs)
	if err != nil {
		return err
	}
	took, _, err := a.post(ctx, r.clients, scripts(ids, r.perDevice))
	if err != nil {
		return err
	}
	created := devs * r.perDevice
	pending, err := a.count(ctx, "PENDING")
	if err != nil {
		return err
	}
	if pending != int64(created) {
		return fmt.Errorf("%d operations pending, want %d", pending, created)
	}
	_, disk, err := a.footprint(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("restart: %d pending operations created for %d of the sleeping devices in %.1fs; store on disk %d MiB\n",
		created, devs, took.Seconds(), disk>>20)

	stopped, err := a.Stop(syscall.SIGTERM, 2*time.Minute)
	if err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	// One of the devices without operations registers again: it is
	// known, its registration was restored. The probe sends a Register
	// every 20 ms from the exec on; the first answered 2.01 counts.
	probe := cfg
	probe.Sockets = 1
	probeCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	type result struct {
		at  time.Time
		err error
	}
	registered := make(chan result, 1)
	logPath := filepath.Join(a.Dir, "agent.log")
	logStart := int64(0)
	if fi, err := os.Stat(logPath); err == nil {
		logStart = fi.Size()
	}
	start := time.Now()
	// at info, the start says how long restoring the registrations took
	if err := a.Exec(ctx, "LWM2M_AGENT_LOG_LEVEL=info"); err != nil {
		return err
	}
	go func() {
		at, err := regload.Probe(probeCtx, probe, r.registrations-1, 20*time.Millisecond)
		registered <- result{at, err}
	}()
	healthErr := a.WaitHealthy(ctx, 5*time.Minute)
	health := time.Since(start)
	reg := <-registered
	if healthErr != nil {
		return healthErr
	}
	if reg.err != nil {
		return fmt.Errorf("a Register of a known device after the restart: %w", reg.err)
	}
	restored, err := a.metric(ctx, "lwm2m_agent_registrations")
	if err != nil {
		return err
	}
	pending, err = a.count(ctx, "PENDING")
	if err != nil {
		return err
	}
	if line := restoreLine(logPath, logStart); line != "" {
		fmt.Printf("restart: the agent's log: %s\n", line)
	}
	fmt.Printf("restart: stopped with SIGTERM in %.2fs; started again with %d registrations and %d pending operations: /health UP %.2fs after the exec, a Register of a known device answered 2.01 after %.2fs (target: serving within 5 s); %.0f registrations live and %d operations pending after it\n",
		stopped.Seconds(), r.registrations, created, health.Seconds(), reg.at.Sub(start).Seconds(), restored, pending)
	return nil
}

// restoreLine is the agent's log line that says how many registrations
// it restored and how long that took, of what it logged from offset on.
func restoreLine(path string, offset int64) string {
	b, err := os.ReadFile(path)
	if err != nil || int64(len(b)) < offset {
		return ""
	}
	for _, l := range strings.Split(string(b[offset:]), "\n") {
		if strings.Contains(l, "registrations restored") {
			return strings.TrimSpace(l)
		}
	}
	return ""
}
