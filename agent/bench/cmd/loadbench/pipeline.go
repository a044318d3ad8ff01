package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"time"
)

// pipelineRun is the setting of the pipeline phase.
type pipelineRun struct {
	ddf      string        // DDF file of object 3303 uploaded as the tenant's protocol
	devices  int           // devices notifying
	perProc  int           // devices per simulator process
	interval time.Duration // notification interval of each device
	warmup   time.Duration // after every observation started, before counting
	window   time.Duration // counted
	probes   int           // devices whose measurements are polled for the latency
}

// pipeline measures values through the whole pipeline: notifications
// decoded (SenML CBOR), mapped by a device protocol uploaded for the
// tenant (3303/5700 as measurement c8y_Temperature, observed
// automatically at registration) and stored as measurements. It prints
// measurements stored per second at steady state and the time from a
// value's arrival (the measurement's time: the notifications carry none
// of their own) to its measurement being readable through the API.
func pipeline(ctx context.Context, a *agent, bin string, r pipelineRun) error {
	doc, err := os.ReadFile(r.ddf)
	if err != nil {
		return fmt.Errorf("device protocol: %w", err)
	}
	req, err := http.NewRequest("POST", a.http+"/lwm2m/deviceprotocols", bytes.NewReader(doc))
	if err != nil {
		return err
	}
	req.SetBasicAuth("management/admin", password)
	req.Header.Set("Content-Type", "application/xml")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("upload %s: %s: %s", r.ddf, resp.Status, body)
	}
	// before any device registers: the automatic observations follow the
	// functionalities known at registration
	fn := map[string]any{"measurement": map[string]string{"type": "c8y_Temperature", "series": "T", "unit": "C"}, "autoObserve": true}
	if err := a.call("PUT", "/lwm2m/deviceprotocols/3303/resources/5700/functionalities", fn, nil); err != nil {
		return err
	}

	for started, proc := 0, 0; started < r.devices; proc++ {
		n := min(r.perProc, r.devices-started)
		if err := a.simulate(ctx, bin, "--count", strconv.Itoa(n), "--start", strconv.Itoa(started), "--prefix", "pipe",
			"--bind", fmt.Sprintf("127.0.3.%d", proc+1), "--notify-interval", r.interval.String(), "--lifetime", "3600s"); err != nil {
			return err
		}
		started += n
	}
	if _, err := a.waitRegistered(ctx, r.devices, 5*time.Minute); err != nil {
		return err
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		v, err := a.metric("lwm2m_agent_auto_observations_total")
		if err == nil && int(v) >= r.devices {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%v of %d automatic observations started", v, r.devices)
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(r.warmup)

	probes := make([]string, r.probes)
	for i := range probes {
		id, err := a.deviceID(fmt.Sprintf("pipe-%d", i*r.devices/r.probes))
		if err != nil {
			return err
		}
		probes[i] = id
	}
	read := func() (notes, stored float64) {
		notes, _ = a.metric("lwm2m_agent_notifications_total")
		stored, _ = a.metric("lwm2m_agent_pipeline_measurements_total")
		return
	}
	n0, m0 := read()
	t0 := time.Now()
	lat, err := probeLatency(ctx, a, probes, r.window)
	if err != nil {
		return err
	}
	n1, m1 := read()
	took := time.Since(t0).Seconds()
	dropped, _ := a.metric("lwm2m_agent_pipeline_dropped_total")
	rateLimited, _ := a.metric("lwm2m_agent_rate_limited_total")
	offered := float64(r.devices) / r.interval.Seconds()
	fmt.Printf("pipeline: %d devices notifying every %s (%.0f values/s offered), %.0fs at steady state: %.0f notifications/s received, %.0f measurements/s stored (dropped %v, rate limited %v)\n",
		r.devices, r.interval, offered, took, (n1-n0)/took, (m1-m0)/took, dropped, rateLimited)
	if len(lat) == 0 {
		return fmt.Errorf("no measurement of the probed devices appeared")
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	p := func(q float64) time.Duration { return lat[min(len(lat)-1, int(q*float64(len(lat))))] }
	fmt.Printf("pipeline: value arrival to measurement readable through the API (%d samples of %d devices, polled): p50 %.1f ms, p99 %.1f ms\n",
		len(lat), len(probes), ms(p(0.50)), ms(p(0.99)))
	return nil
}

// probeLatency polls the newest measurement of each probe device in turn
// for the window; each new one gives a sample: when it was first seen
// minus its time. A sample is late by at most one round of polls.
func probeLatency(ctx context.Context, a *agent, probes []string, window time.Duration) ([]time.Duration, error) {
	type latest struct {
		Measurements []struct {
			ID   string    `json:"id"`
			Time time.Time `json:"time"`
		} `json:"measurements"`
	}
	last := make([]string, len(probes))
	var lat []time.Duration
	end := time.Now().Add(window)
	for i := 0; time.Now().Before(end); i = (i + 1) % len(probes) {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var res latest
		if err := a.call("GET", "/measurement/measurements?pageSize=1&revert=true&type=c8y_Temperature&source="+probes[i], nil, &res); err != nil {
			return nil, err
		}
		seen := time.Now()
		if len(res.Measurements) == 0 {
			continue
		}
		m := res.Measurements[0]
		if last[i] != "" && m.ID != last[i] {
			lat = append(lat, seen.Sub(m.Time))
		}
		last[i] = m.ID
	}
	return lat, nil
}
