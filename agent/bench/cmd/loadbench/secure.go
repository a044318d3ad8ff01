package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// csvHeader is the registration file of the secure runs.
const csvHeader = "ID,IDTYPE,CREDENTIALS,NAME,TYPE,SHELL,endpoint id,lwm2m server uri,securityMode,lwm2m psk_id,lwm2m psk_key,bootstrap psk_id,bootstrap psk_key,registrationLifetime\n"

// deviceFile writes n lines of devices named prefix-i from first; every
// psk-th is a PSK device (psk 1: all), the others NO_SEC.
func (a *agent) deviceFile(prefix string, first, n, psk int) []byte {
	var b bytes.Buffer
	b.WriteString(csvHeader)
	for i := first; i < first+n; i++ {
		ep := fmt.Sprintf("%s-%d", prefix, i)
		if psk > 0 && i%psk == 0 {
			fmt.Fprintf(&b, "%s,c8y_Id,Secret-pass-1234!,%s,c8y_lwm2m,0,%s,coaps://%s,PSK,%s-id,%032x,%s-bs,%032x,3600\n",
				ep, ep, ep, a.coaps, ep, i+1, ep, i+2)
		} else {
			fmt.Fprintf(&b, "%s,c8y_Id,Secret-pass-1234!,%s,c8y_lwm2m,0,%s,coap://%s,NO_SEC,,,,,3600\n", ep, ep, ep, a.coap)
		}
	}
	return b.Bytes()
}

// importFile posts a registration file and checks every line was taken.
func (a *agent) importFile(file []byte, lines int) (time.Duration, error) {
	start := time.Now()
	req, err := http.NewRequest("POST", a.http+"/devicecontrol/bulkNewDeviceRequests", bytes.NewReader(file))
	if err != nil {
		return 0, err
	}
	req.SetBasicAuth("management/admin", password)
	req.Header.Set("Content-Type", "text/csv")
	resp, err := (&http.Client{Timeout: 30 * time.Minute}).Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var res struct {
		Successful int `json:"numberOfSuccessful"`
	}
	if err := json.Unmarshal(data, &res); err != nil || res.Successful != lines {
		return 0, fmt.Errorf("import: %s: %s", resp.Status, data)
	}
	return time.Since(start), nil
}

// simulateFile runs `simulate --csv` over a file, with extra flags.
func (a *agent) simulateFile(ctx context.Context, bin string, file []byte, name string, args ...string) error {
	path := filepath.Join(a.dir, name)
	if err := os.WriteFile(path, file, 0o600); err != nil {
		return err
	}
	return a.simulate(ctx, bin, append([]string{"--csv", path, "--notify-interval", "0"}, args...)...)
}

// dtlsRun is the setting of the dtls phase.
type dtlsRun struct {
	counts     []int         // devices held at each measurement, ascending
	perProc    int           // devices per simulator process
	parkAfter  time.Duration // the agent's --dtls-park-after
	updateRate float64       // Updates a second of each simulator process after parking
}

// dtlsMemory is what one reading of the agent's memory found.
type dtlsMemory struct {
	rssKiB, heap     int64 // resident set (KiB), live Go heap (bytes) after a collection
	sessions, parked float64
}

func (a *agent) dtlsMemory() (dtlsMemory, error) {
	a.collect()
	var m dtlsMemory
	kb, err := rssKiB(a.cmd.Process.Pid)
	if err != nil {
		return m, err
	}
	h, err := a.metric("go_memstats_heap_alloc_bytes")
	if err != nil {
		return m, err
	}
	m.rssKiB, m.heap = kb, int64(h)
	m.sessions, _ = a.metric("lwm2m_agent_dtls_sessions")
	m.parked, _ = a.metric("lwm2m_agent_dtls_parked_sessions")
	return m, nil
}

// collect makes the agent collect: a heap profile with gc=1 does, so
// that the heap figure is what sessions keep, not garbage of the burst.
func (a *agent) collect() {
	if resp, err := http.Get(a.pprof + "/debug/pprof/heap?gc=1"); err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// waitMetric polls a metric until ok holds for it, at most limit.
func (a *agent) waitMetric(ctx context.Context, name string, limit time.Duration, ok func(float64) bool) (float64, error) {
	deadline := time.Now().Add(limit)
	for {
		v, err := a.metric(name)
		if err == nil && ok(v) {
			return v, nil
		}
		if time.Now().After(deadline) {
			return v, fmt.Errorf("%s is %v after %s", name, v, limit)
		}
		select {
		case <-ctx.Done():
			return v, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// childrenRSS is the resident set of the simulator processes, in KiB.
func (a *agent) childrenRSS() int64 {
	var sum int64
	for _, c := range a.children {
		if kb, err := rssKiB(c.Process.Pid); err == nil {
			sum += kb
		}
	}
	return sum
}

// dtlsRegistrations registers PSK devices over DTLS, each with a full
// handshake, and measures at each count the agent's memory right after
// (the sessions of the devices just registered still active) and once
// every session is parked; at the last count every device then sends an
// Update, which must resume its parked session without a handshake.
func dtlsRegistrations(ctx context.Context, a *agent, bin string, r dtlsRun) error {
	started, proc := 0, 0
	var parkedAt []dtlsMemory
	for _, target := range r.counts {
		n := target - started
		file := a.deviceFile("dtls", started, n, 1)
		took, err := a.importFile(file, n)
		if err != nil {
			return err
		}
		fmt.Printf("dtls: imported %d PSK devices in %.1fs\n", n, took.Seconds())
		t0 := time.Now()
		for first := 0; first < n; first += r.perProc {
			m := min(r.perProc, n-first)
			// one source address per process: its ports, and its own
			// count of handshakes under way (--dtls-max-handshakes-per-addr)
			part := a.deviceFile("dtls", started+first, m, 1)
			if err := a.simulateFile(ctx, bin, part, fmt.Sprintf("dtls-%d.csv", proc), "--bind", fmt.Sprintf("127.0.3.%d", proc+1),
				"--lifetime", "3600s", "--update-rate", strconv.FormatFloat(r.updateRate, 'f', -1, 64)); err != nil {
				return err
			}
			proc++
		}
		if _, err := a.waitRegistered(ctx, target, 20*time.Minute); err != nil {
			return err
		}
		took = time.Since(t0)
		hs, _ := a.metric("lwm2m_agent_dtls_handshakes_total")
		fmt.Printf("dtls registrations: %d PSK devices, each a full DTLS-PSK handshake and a Register, stored in %.1fs: %.0f registrations/s (%.0f handshakes so far)\n",
			n, took.Seconds(), float64(n)/took.Seconds(), hs)
		started = target
		active, err := a.dtlsMemory()
		if err != nil {
			return err
		}
		if _, err := a.waitMetric(ctx, "lwm2m_agent_dtls_sessions", r.parkAfter+5*time.Minute, func(v float64) bool { return v == 0 }); err != nil {
			return fmt.Errorf("parking: %w", err)
		}
		parked, err := a.dtlsMemory()
		if err != nil {
			return err
		}
		parkedAt = append(parkedAt, parked)
		// What parking released, over the sessions it parked, plus what a
		// parked session keeps, is what an active one holds.
		freed := float64(active.heap-parked.heap) / (active.sessions)
		perParked := float64(parked.heap) / float64(target)
		fmt.Printf("dtls memory at %d devices: sessions active %.0f, parked %.0f: resident %d MiB, live heap %d MiB; all %.0f parked: resident %d MiB, live heap %d MiB; simulators resident %d MiB\n",
			target, active.sessions, active.parked, active.rssKiB>>10, active.heap>>20, parked.parked, parked.rssKiB>>10, parked.heap>>20, a.childrenRSS()>>10)
		fmt.Printf("dtls memory at %d devices: parking freed %.1f KiB of live heap a session; live heap per device with its session parked %.2f KiB (whole heap over devices), so an active session's device holds about %.1f KiB\n",
			target, freed/1024, perParked/1024, (freed+perParked)/1024)
	}
	if k := len(parkedAt); k >= 2 {
		dn := float64(r.counts[k-1] - r.counts[0])
		fmt.Printf("dtls memory: per device with its session parked, slope between %d and %d devices: %.2f KiB live heap, %.2f KiB resident\n",
			r.counts[0], r.counts[k-1], float64(parkedAt[k-1].heap-parkedAt[0].heap)/dn/1024, float64(parkedAt[k-1].rssKiB-parkedAt[0].rssKiB)/dn)
	}
	return a.updatesAfterParking(ctx, started)
}

// updatesAfterParking makes each of n devices, every one of its sessions
// parked, send an Update, and checks each was answered with its session
// resumed, not a new handshake.
func (a *agent) updatesAfterParking(ctx context.Context, n int) error {
	read := func() (hs, mem, st, upd float64) {
		hs, _ = a.metric("lwm2m_agent_dtls_handshakes_total")
		mem, _ = a.metric(`lwm2m_agent_dtls_sessions_resumed_total{from="memory"}`)
		st, _ = a.metric(`lwm2m_agent_dtls_sessions_resumed_total{from="store"}`)
		upd, _ = a.metric("lwm2m_agent_updates_total")
		return
	}
	hs0, mem0, st0, upd0 := read()
	t0 := time.Now()
	for _, c := range a.children {
		if err := c.Process.Signal(syscall.SIGUSR1); err != nil {
			return fmt.Errorf("ask for updates: %w", err)
		}
	}
	_, err := a.waitMetric(ctx, "lwm2m_agent_updates_total", 20*time.Minute, func(v float64) bool { return v-upd0 >= float64(n) })
	took := time.Since(t0)
	hs1, mem1, st1, upd1 := read()
	fails := map[string]float64{}
	for _, r := range []string{"unknown", "conflict", "store", "state", "limit"} {
		fails[r], _ = a.metric(fmt.Sprintf(`lwm2m_agent_dtls_resume_failures_total{reason=%q}`, r))
	}
	fmt.Printf("dtls updates after parking: %.0f of %d devices' Updates answered in %.1fs (%.0f/s); sessions resumed %.0f from memory, %.0f from the store; full handshakes meanwhile %.0f; resume failures so far %v\n",
		upd1-upd0, n, took.Seconds(), (upd1-upd0)/took.Seconds(), mem1-mem0, st1-st0, hs1-hs0, fails)
	if err != nil {
		return err
	}
	if hs1 != hs0 {
		return fmt.Errorf("%.0f full handshakes during the Updates of parked sessions", hs1-hs0)
	}
	return nil
}

// bootstrapFlows imports n devices, half PSK, and lets each bootstrap
// (PSK devices over DTLS with their bootstrap key) and then register with
// the account it was given: the whole first contact of a new device.
func bootstrapFlows(ctx context.Context, a *agent, bin string, n int) error {
	file := a.deviceFile("bs", 0, n, 2)
	if _, err := a.importFile(file, n); err != nil {
		return err
	}
	t0 := time.Now()
	if err := a.simulateFile(ctx, bin, file, "bootstrap.csv", "--bind", "127.0.4.1",
		"--bootstrap", "coap://"+a.bs, "--bootstrap-secure", "coaps://"+a.bss); err != nil {
		return err
	}
	if _, err := a.waitRegistered(ctx, n, 10*time.Minute); err != nil {
		return err
	}
	took := time.Since(t0)
	finished, _ := a.metric("lwm2m_agent_bootstrap_finished_total")
	failed, _ := a.metric("lwm2m_agent_bootstrap_failed_total")
	fmt.Printf("bootstrap then register: %d devices (%d NO_SEC, %d PSK over DTLS on both servers) in %.1fs: %.0f flows/s (%.0f bootstraps finished, %.0f failed)\n",
		n, n-n/2, n/2, took.Seconds(), float64(n)/took.Seconds(), finished, failed)
	if int(finished) < n {
		return fmt.Errorf("%.0f of %d bootstraps finished", finished, n)
	}
	return nil
}
