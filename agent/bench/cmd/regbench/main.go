// Command regbench measures LwM2M Registers per second, closed loop: 16
// UDP sockets (-sockets), each sending a Register as soon as its previous
// one is answered, counting 2.01 Created answers over a window after a
// warm-up, with their latency. It runs two modes: new (every Register
// names an endpoint never seen, so the agent, started with
// auto-registration, creates a device for each) and known (-known
// endpoints registered once beforehand, then registered again round
// robin, each always from the same socket). It runs the same load
// against Debian's libcoap resource directory, coap-rd-notls, an
// in-memory server that stores nothing, in the same run: the ceiling of
// this machine with this generator. Everything runs on loopback, on the
// same cores, and the CPU time of each process is printed beside its
// figures, so that one can tell whether the generator held the server
// back.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/bench/machine"
	"github.com/lwm2m-agent/lwm2m-agent/agent/bench/regload"
)

const password = "Reg-bench-pass-1!"

type options struct {
	sockets        int
	warmup, window time.Duration
	known          int
	lifetime       time.Duration
}

func main() {
	var (
		bin      = flag.String("bin", "bin/lwm2m-agent", "agent binary")
		build    = flag.Bool("build", true, "build the agent binary at -bin from this repository first")
		modes    = flag.String("modes", "new,known", "which modes to run: new (each Register a new endpoint, auto-registered), known (registered again)")
		servers  = flag.String("servers", "coap-rd,agent", "which servers to measure: coap-rd (libcoap's coap-rd-notls), agent")
		rdBin    = flag.String("coap-rd", "coap-rd-notls", "libcoap's resource directory server (Debian: apt-get install libcoap3-bin)")
		evInt    = flag.Duration("event-interval", 0, "the agent's --registration-event-interval: 0 stores a registration event for every Register, which is what this run counts as stored")
		maxRegs  = flag.Int("max-registrations", 1_000_000, "the agent's --max-registrations: above what the run makes")
		settle   = flag.Duration("store-limit", 5*time.Minute, "how long to wait after a window for the agent to store what it answered")
		keep     = flag.Bool("keep", false, "keep the agent's data directory and log")
		runLimit = flag.Duration("limit", 40*time.Minute, "the whole run's time limit")
		o        options
	)
	flag.IntVar(&o.sockets, "sockets", 16, "device sockets, each with one Register outstanding")
	flag.DurationVar(&o.warmup, "warmup", 3*time.Second, "time each mode runs before counting")
	flag.DurationVar(&o.window, "window", 10*time.Second, "time each mode counts")
	flag.IntVar(&o.known, "known", 10_000, "endpoints of the known mode, registered once beforehand (best a multiple of -sockets)")
	flag.DurationVar(&o.lifetime, "lifetime", 24*time.Hour, "the lifetime every Register asks for")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), *runLimit)
	defer cancel()

	cpuModel, cores := machine.CPU()
	fmt.Printf("machine: %s, %d cores; server and this generator on the same cores, loopback; %d sockets, closed loop, %s warm-up, %s window\n",
		cpuModel, cores, o.sockets, o.warmup, o.window)
	run := map[string]bool{}
	for _, m := range strings.Split(*modes, ",") {
		run[strings.TrimSpace(m)] = true
	}
	var rows []row
	for _, s := range strings.Split(*servers, ",") {
		var (
			got []row
			err error
		)
		switch strings.TrimSpace(s) {
		case "coap-rd":
			path, lerr := exec.LookPath(*rdBin)
			if lerr != nil {
				fmt.Printf("coap-rd: %s is not installed (Debian: apt-get install -y libcoap3-bin); its column is skipped\n", *rdBin)
				continue
			}
			got, err = coapRD(ctx, path, run, o)
		case "agent":
			if *build {
				if err := machine.Build(ctx, *bin); err != nil {
					fail(err)
				}
			}
			env := []string{
				"LWM2M_AGENT_AUTO_REGISTER=true",
				// 16 sockets carry the load of thousands of devices: the
				// limits per address and per endpoint would refuse it
				"LWM2M_AGENT_PEER_RATE=-1",
				"LWM2M_AGENT_ENDPOINT_REGISTER_INTERVAL=0",
				"LWM2M_AGENT_REGISTRATION_EVENT_INTERVAL=" + evInt.String(),
				fmt.Sprintf("LWM2M_AGENT_MAX_REGISTRATIONS=%d", *maxRegs),
			}
			got, err = agent(ctx, *bin, env, run, o, *settle, *keep)
		default:
			fail(fmt.Errorf("-servers: unknown server %q", s))
		}
		if err != nil {
			fail(err)
		}
		rows = append(rows, got...)
	}
	table(rows)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "regbench:", err)
	os.Exit(1)
}

// row is one mode against one server.
type row struct {
	mode, server string
	res          *regload.Result
	serverCPU    float64 // seconds, during the window
	stored       float64 // per second in the window; negative when the server stores nothing
	storedAfter  time.Duration
}

// target is a server under load.
type target struct {
	name string
	addr string // host:port
	pid  int
	// stored, when set, counts the registrations the server has stored
	// so far (durably, for the agent: its lifecycle events)
	stored func(ctx context.Context) (float64, error)
}

// measure runs one mode against t: for known, the endpoints are
// registered first (and, with t.stored, stored).
func measure(ctx context.Context, t target, mode string, o options, settle time.Duration) (row, error) {
	cfg := regload.Config{Server: t.addr, Sockets: o.sockets, Lifetime: o.lifetime, Prefix: mode + "-"}
	plan := regload.Plan{}
	if mode == "known" {
		fill, err := regload.Fill(ctx, cfg, 0, o.known)
		if err != nil {
			return row{}, fmt.Errorf("%s: register the known endpoints: %w", t.name, err)
		}
		if fill.Total != uint64(o.known) {
			return row{}, fmt.Errorf("%s: %d of %d known endpoints registered (%d lost, other answers %v)", t.name, fill.Total, o.known, fill.Lost, fill.Other)
		}
		if err := waitStored(ctx, t, settle); err != nil {
			return row{}, err
		}
		fmt.Printf("%s: %d known endpoints registered in %.1fs\n", t.name, o.known, fill.Window.Seconds())
		plan.Cycle = o.known
	}
	var base, s0, s1, cpu0, cpu1 float64
	var err error
	if t.stored != nil {
		if base, err = t.stored(ctx); err != nil {
			return row{}, err
		}
	}
	mark := func(start bool) {
		cpu := machine.CPUSeconds(t.pid)
		var s float64
		if t.stored != nil {
			s, _ = t.stored(ctx)
		}
		if start {
			cpu0, s0 = cpu, s
		} else {
			cpu1, s1 = cpu, s
		}
	}
	res, err := regload.Run(ctx, cfg, plan, o.warmup, o.window, mark)
	if err != nil {
		return row{}, fmt.Errorf("%s %s: %w", t.name, mode, err)
	}
	r := row{mode: mode, server: t.name, res: res, serverCPU: cpu1 - cpu0, stored: -1}
	if t.stored != nil {
		r.stored = (s1 - s0) / res.Window.Seconds()
		// everything answered, warm-up included, must end up stored
		start := time.Now()
		for {
			s, err := t.stored(ctx)
			if err != nil {
				return row{}, err
			}
			if s >= base+float64(res.Total) {
				break
			}
			if time.Since(start) > settle {
				return row{}, fmt.Errorf("%s %s: %.0f of %d registrations answered stored %s after the window", t.name, mode, s-base, res.Total, settle)
			}
			time.Sleep(20 * time.Millisecond)
		}
		r.storedAfter = time.Since(start)
	}
	report(r)
	return r, nil
}

// waitStored waits until the server's stored count stops moving.
func waitStored(ctx context.Context, t target, limit time.Duration) error {
	if t.stored == nil {
		return nil
	}
	last, err := t.stored(ctx)
	if err != nil {
		return err
	}
	for start := time.Now(); time.Since(start) < limit; {
		time.Sleep(500 * time.Millisecond)
		s, err := t.stored(ctx)
		if err != nil {
			return err
		}
		if s == last {
			return nil
		}
		last = s
	}
	return fmt.Errorf("%s: still storing after %s", t.name, limit)
}

func report(r row) {
	res := r.res
	line := fmt.Sprintf("%s %s: %.0f answered 2.01/s (%d in %.1fs), p50 %.2f ms, p99 %.2f ms", r.mode, r.server, res.Rate(), res.Created, res.Window.Seconds(),
		ms(res.Latency.Quantile(0.5)), ms(res.Latency.Quantile(0.99)))
	if r.stored >= 0 {
		line += fmt.Sprintf("; %.0f stored/s in the window, everything answered stored %.1fs after it", r.stored, r.storedAfter.Seconds())
	}
	line += fmt.Sprintf("; CPU: server %.2f cores (%.0f µs a Register), generator %.2f cores (%.0f µs a Register)",
		r.serverCPU/res.Window.Seconds(), perRegister(r.serverCPU, res.Created), res.CPU.Seconds()/res.Window.Seconds(), perRegister(res.CPU.Seconds(), res.Created))
	if len(res.Other) > 0 || res.Lost > 0 || res.Stale > 0 || res.ServerRequests > 0 {
		line += fmt.Sprintf("; other answers %v, lost %d, retransmissions %d, stale %d, server requests %d", res.Other, res.Lost, res.Retransmissions, res.Stale, res.ServerRequests)
	}
	fmt.Println(line)
}

func perRegister(cpuSeconds float64, n uint64) float64 {
	if n == 0 {
		return 0
	}
	return cpuSeconds * 1e6 / float64(n)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// table prints the modes side by side, one line per server.
func table(rows []row) {
	if len(rows) == 0 {
		return
	}
	fmt.Println()
	fmt.Println("| mode | server | answered 2.01/s | p50 ms | p99 ms | stored/s | server CPU µs/Register | generator CPU µs/Register |")
	fmt.Println("| --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, mode := range []string{"new", "known"} {
		for _, r := range rows {
			if r.mode != mode {
				continue
			}
			stored := "in memory"
			if r.stored >= 0 {
				stored = fmt.Sprintf("%.0f", r.stored)
			}
			fmt.Printf("| %s | %s | %.0f | %.2f | %.2f | %s | %.0f | %.0f |\n", r.mode, r.server, r.res.Rate(),
				ms(r.res.Latency.Quantile(0.5)), ms(r.res.Latency.Quantile(0.99)), stored,
				perRegister(r.serverCPU, r.res.Created), perRegister(r.res.CPU.Seconds(), r.res.Created))
		}
	}
}

// coapRD runs the modes against a coap-rd-notls process of its own.
func coapRD(ctx context.Context, path string, run map[string]bool, o options) ([]row, error) {
	addr, err := machine.FreePort("udp")
	if err != nil {
		return nil, err
	}
	host, port, _ := strings.Cut(addr, ":")
	cmd := exec.CommandContext(ctx, path, "-A", host, "-p", port, "-v", "0")
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("coap-rd: %w", err)
	}
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	}()
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := regload.Probe(pctx, regload.Config{Server: addr, Prefix: "probe-"}, 0, 50*time.Millisecond); err != nil {
		return nil, fmt.Errorf("coap-rd does not answer a Register: %w", err)
	}
	fmt.Printf("coap-rd: %s on %s (libcoap's resource directory: keeps each registration in memory, stores nothing)\n", path, addr)
	t := target{name: "coap-rd", addr: addr, pid: cmd.Process.Pid}
	var rows []row
	for _, mode := range []string{"new", "known"} {
		if !run[mode] {
			continue
		}
		r, err := measure(ctx, t, mode, o, 0)
		if err != nil {
			return nil, err
		}
		rows = append(rows, r)
	}
	return rows, nil
}

// agent runs the modes against one agent with a fresh embedded store.
func agent(ctx context.Context, bin string, env []string, run map[string]bool, o options, settle time.Duration, keep bool) ([]row, error) {
	dir, err := os.MkdirTemp("", "regbench-")
	if err != nil {
		return nil, err
	}
	a, err := machine.StartAgent(ctx, bin, dir, password, env...)
	if err != nil {
		return nil, err
	}
	defer func() {
		if _, err := a.Stop(os.Interrupt, time.Minute); err != nil {
			fmt.Fprintln(os.Stderr, "regbench: stop agent:", err)
		}
		if keep {
			fmt.Println("agent data and log kept in", dir)
			return
		}
		_ = os.RemoveAll(dir)
	}()
	fmt.Printf("agent: %s on %s, embedded store in %s; it answers a Register once the registration's state and lifecycle event are durable (a new endpoint's device is created in the same store change), written in batches: stored counts lifecycle events in the store\n",
		bin, a.CoAP, filepath.Join(dir, "data"))
	client := &http.Client{Timeout: 30 * time.Second}
	t := target{name: "agent", addr: a.CoAP, pid: a.Cmd.Process.Pid, stored: func(ctx context.Context) (float64, error) {
		return machine.Metric(ctx, client, a.HTTP, "lwm2m_agent_lifecycle_events_total")
	}}
	var rows []row
	for _, mode := range []string{"new", "known"} {
		if !run[mode] {
			continue
		}
		r, err := measure(ctx, t, mode, o, settle)
		if err != nil {
			return nil, err
		}
		rows = append(rows, r)
	}
	if len(rows) == 0 {
		return nil, errors.New("no mode to run: -modes new,known")
	}
	return rows, nil
}
