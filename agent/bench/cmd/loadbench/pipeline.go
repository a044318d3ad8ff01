package main

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/bench/machine"
)

// ddf3303 is OMA's definition of object 3303 (Temperature), from the
// LwM2M registry under its BSD-3-Clause licence.
//
//go:embed 3303.xml
var ddf3303 []byte

// pipelineRun is the setting of the pipeline phase.
type pipelineRun struct {
	ddf      string        // DDF file of object 3303 uploaded as the tenant's protocol
	devices  int           // devices notifying
	perProc  int           // devices per simulator process
	interval time.Duration // notification interval of each device
	warmup   time.Duration // after every observation started, before counting
	window   time.Duration // counted
}

// pipeline measures values through the whole pipeline: notifications
// decoded (SenML CBOR), mapped by a device protocol uploaded for the
// tenant (3303/5700 as measurement c8y_Temperature, observed
// automatically at registration) and stored as measurements. It prints
// measurements stored per second at steady state and the mean time from
// a value's arrival to its measurement being stored.
func pipeline(ctx context.Context, a *agent, bin string, r pipelineRun) error {
	doc := ddf3303
	if r.ddf != "" {
		var err error
		if doc, err = os.ReadFile(r.ddf); err != nil {
			return fmt.Errorf("device protocol: %w", err)
		}
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
		return fmt.Errorf("upload the DDF of 3303: %s: %s", resp.Status, body)
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
	// Under overload the observations start slowly (their requests wait
	// behind the notifications of the devices already observed): count
	// with those started within a minute.
	deadline := time.Now().Add(time.Minute)
	observed := 0.0
	for {
		v, err := a.metric("lwm2m_agent_auto_observations_total")
		if err == nil {
			observed = v
		}
		if int(observed) >= r.devices || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if observed == 0 {
		return fmt.Errorf("no automatic observation started")
	}
	time.Sleep(r.warmup)
	if v, err := a.metric("lwm2m_agent_auto_observations_total"); err == nil {
		observed = v
	}

	read := func() (notes, stored float64) {
		notes, _ = a.metric("lwm2m_agent_notifications_total")
		stored, _ = a.metric("lwm2m_agent_pipeline_measurements_total")
		return
	}
	// Values in flight (received, not yet stored) sampled through the
	// window give the mean time from arrival to stored by Little's law:
	// in flight / throughput. Each notification carries one value, and
	// each observation's first answer one more.
	n0, m0 := read()
	c0 := a.cpu()
	d0, err := machine.ReadHistogram(ctx, http.DefaultClient, a.http, delayMetric)
	if err != nil {
		return err
	}
	t0 := time.Now()
	var inflight []float64
	for time.Since(t0) < r.window {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
		n, m := read()
		inflight = append(inflight, n+observed-m)
	}
	n1, m1 := read()
	took := time.Since(t0).Seconds()
	c1 := a.cpu()
	d1, err := machine.ReadHistogram(ctx, http.DefaultClient, a.http, delayMetric)
	if err != nil {
		return err
	}
	// one read through the API while the load goes on
	q0 := time.Now()
	// under overload the read may fail: that is a figure too, not the end of the run
	queryErr := a.call("GET", "/measurement/measurements?pageSize=1&revert=true&type=c8y_Temperature", nil, nil)
	query := time.Since(q0)
	dropped, _ := a.metric("lwm2m_agent_pipeline_dropped_total")
	rateLimited, _ := a.metric("lwm2m_agent_rate_limited_total")
	offered := observed / r.interval.Seconds()
	rate := (m1 - m0) / took
	fmt.Printf("pipeline: %.0f of %d devices observed, notifying every %s (%.0f values/s offered), %.0fs at steady state: %.0f notifications/s received, %.0f measurements/s stored (dropped %v, rate limited %v)\n",
		observed, r.devices, r.interval, offered, took, (n1-n0)/took, rate, dropped, rateLimited)
	sort.Float64s(inflight)
	mean := 0.0
	for _, v := range inflight {
		mean += v
	}
	mean /= float64(len(inflight))
	readOutcome := "took"
	if queryErr != nil {
		readOutcome = fmt.Sprintf("failed (%v) after", queryErr)
	}
	fmt.Printf("pipeline: values received but not yet stored: mean %.0f, p99 %.0f of %d samples; mean arrival to stored %.0f ms (Little's law); one API read of the newest measurement %s %.0f ms\n",
		mean, inflight[min(len(inflight)-1, int(0.99*float64(len(inflight))))], len(inflight), 1000*mean/rate, readOutcome, ms(query))
	fmt.Printf("pipeline: mapped to stored (lwm2m_agent_pipeline_store_delay_seconds, outputs of the window): p50 %s, p90 %s, p99 %s, mean %.0f ms\n",
		d1.Between(d0, 0.5), d1.Between(d0, 0.9), d1.Between(d0, 0.99), 1000*(d1.Sum-d0.Sum)/(d1.Count-d0.Count))
	values := m1 - m0
	fmt.Printf("pipeline: CPU over the window: agent %.2f cores (%.1f µs a value stored), its plugin processes %.2f cores (%.1f µs), simulators %.2f cores (%.1f µs a notification received)\n",
		(c1.agent-c0.agent)/took, 1e6*(c1.agent-c0.agent)/values, (c1.plugins-c0.plugins)/took, 1e6*(c1.plugins-c0.plugins)/values,
		(c1.sims-c0.sims)/took, 1e6*(c1.sims-c0.sims)/(n1-n0))
	return nil
}

// cpuTimes are CPU seconds used so far by the agent, the processes it
// started (the bundled plugins) and the simulators.
type cpuTimes struct{ agent, plugins, sims float64 }

func (a *agent) cpu() cpuTimes {
	pid := a.cmd.Process.Pid
	t := cpuTimes{agent: machine.CPUSeconds(pid)}
	// its children: any of its threads may have started them, so they
	// are found by parent, not in one thread's list
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		c, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + p.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		if f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:]); len(f) > 1 && f[1] == strconv.Itoa(pid) {
			t.plugins += machine.CPUSeconds(c)
		}
	}
	for _, c := range a.children {
		if c.Process != nil {
			t.sims += machine.CPUSeconds(c.Process.Pid)
		}
	}
	return t
}

// delayMetric is the pipeline's time from a value's arrival to its
// measurement being stored.
const delayMetric = "lwm2m_agent_pipeline_store_delay_seconds"
