// Command campaignbench runs a firmware campaign against a real agent:
// it starts bin/lwm2m-agent (embedded store, or MongoDB with
// -mongo-uri), uploads a firmware package as an agent binary and enters
// it in the firmware repository, registers a fleet of devices through a
// bulk registration file (a share of them sleeping in queue mode), runs
// them in simulator processes, puts them all in a device group and
// creates one bulk operation with a c8y_Firmware prototype. It follows the
// bulk operation's progress until it is COMPLETED and prints the wall
// time, the outcomes, what the agent used (resident memory, CPU, store on
// disk, goroutines, firmware transfers) and whether every device reports
// the new version. Everything runs on loopback; docs/performance.md
// ("Firmware campaign") has the figures.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/bench/machine"
)

const password = "Campaign-bench-pass-1!"

func main() {
	var c config
	var (
		bin       = machine.BinaryFlags()
		mongoURI  = flag.String("mongo-uri", "", "run the agent on this MongoDB instead of its embedded store")
		hashCost  = flag.Int("hash-cost", 4, "bcrypt cost of the devices' credentials at import (the agent's default takes minutes for 10,000 lines)")
		regRate   = flag.Float64("reg-rate", 200, "registrations per second of each simulator process at start (0: as fast as the agent takes them)")
		deadline  = flag.Duration("deadline", 90*time.Minute, "give up following the campaign after this long")
		progEvery = flag.Duration("progress-every", 10*time.Second, "how often to print the campaign's progress")
	)
	flag.IntVar(&c.devices, "devices", 10_000, "simulated devices in the campaign")
	flag.Float64Var(&c.sleeping, "sleeping", 0.5, "share of the devices that sleep (queue mode, awake -awake after each Update every -update-every)")
	flag.DurationVar(&c.awake, "awake", 5*time.Second, "a sleeping device's awake time")
	flag.DurationVar(&c.every, "update-every", 60*time.Second, "a sleeping device's Update interval")
	flag.StringVar(&c.method, "method", "url", "firmware delivery: push, coap, coaps, http, https, both (from an agent binary), or url (HTTP pull of the bench's own URL)")
	flag.IntVar(&c.size, "size", 64<<10, "firmware package size in bytes")
	flag.Float64Var(&c.ramp, "ramp", 0.01, "creation ramp of the bulk operation: seconds between two devices' operations")
	flag.IntVar(&c.procs, "sim-processes", 4, "simulator processes the devices are spread over (sleeping and always-online devices apart)")
	flag.StringVar(&c.version, "version", "1.0.1", "the version installed (the simulator's devices run 1.0.0 and take the next one from a pushed or token-named package)")
	flag.StringVar(&c.name, "name", "campaign", "the firmware's name")
	flag.Parse()
	if err := c.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "campaignbench:", err)
		os.Exit(2)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	ctx, cancelRun := context.WithTimeout(ctx, *deadline+30*time.Minute)
	defer cancelRun()
	store := "embedded store"
	if *mongoURI != "" {
		store = "MongoDB"
	}
	if _, err := bin.Prepare(ctx, "agent, "+store+", simulators and bench on one machine, loopback"); err != nil {
		fail(err)
	}
	r := &run{cfg: c, bin: bin.Path, regRate: *regRate, deadline: *deadline, progEvery: *progEvery}
	err := r.start(ctx, *mongoURI, *hashCost)
	if err == nil {
		err = r.campaign(ctx)
	}
	r.stop()
	if err != nil {
		fail(err)
	}
}

func fail(err error) { machine.Fail("campaignbench", err) }

// client is the bench's HTTP client of the agent's API.
var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}, Timeout: 120 * time.Second}

// run is one campaign: the agent, the simulators and what was measured.
type run struct {
	cfg       config
	bin       string
	regRate   float64
	deadline  time.Duration
	progEvery time.Duration

	agent    *machine.Agent
	sims     []*exec.Cmd
	pkgSrv   *packageServer
	https    *tlsFiles
	binaryID string
	pkgURL   string
	ids      []string // the devices' managed objects
}

func (r *run) call(ctx context.Context, method, path string, body, out any) error {
	return machine.Call(ctx, client, r.agent.HTTP, password, method, path, body, out)
}

func (r *run) metric(ctx context.Context, name string) (float64, error) {
	return machine.Metric(ctx, client, r.agent.HTTP, name)
}

// start starts the agent with a fresh data directory.
func (r *run) start(ctx context.Context, mongoURI string, hashCost int) error {
	dir, err := os.MkdirTemp("", "campaignbench-")
	if err != nil {
		return err
	}
	env := []string{
		fmt.Sprintf("LWM2M_AGENT_CREDENTIALS_HASH_COST=%d", hashCost),
		// the sleeping devices take several awake windows
		"LWM2M_AGENT_FIRMWARE_TIMEOUT=" + max(30*time.Minute, 10*r.cfg.every).String(),
	}
	if mongoURI != "" {
		env = append(env, "LWM2M_AGENT_MONGO_URI="+mongoURI)
	}
	if r.cfg.method == "https" {
		if r.https, err = writeTLSFiles(dir); err != nil {
			return err
		}
		addr, err := machine.FreePort("tcp")
		if err != nil {
			return err
		}
		env = append(env, "LWM2M_AGENT_HTTPS_ADDR="+addr, "LWM2M_AGENT_TLS_CERT_FILE="+r.https.cert, "LWM2M_AGENT_TLS_KEY_FILE="+r.https.key)
	}
	r.agent, err = machine.StartAgent(ctx, r.bin, dir, password, env...)
	if err != nil {
		_ = os.RemoveAll(dir)
		return err
	}
	return nil
}

// stop ends the simulators, then the agent, and removes its data.
func (r *run) stop() {
	for _, s := range r.sims {
		machine.StopProcess(s, 20*time.Second)
	}
	if r.pkgSrv != nil {
		r.pkgSrv.close()
	}
	if r.agent != nil {
		if _, err := r.agent.Stop(os.Interrupt, 30*time.Second); err != nil {
			fmt.Fprintln(os.Stderr, "campaignbench: stop agent:", err)
		}
		_ = os.RemoveAll(r.agent.Dir)
	}
}

func (r *run) campaign(ctx context.Context) error {
	c := r.cfg
	empty, err := machine.DirSize(filepath.Join(r.agent.Dir, "data"))
	if err != nil {
		return err
	}
	if err := r.repository(ctx); err != nil {
		return err
	}
	devs := c.fleet()
	t := time.Now()
	if err := r.importFleet(ctx, devs); err != nil {
		return err
	}
	fmt.Printf("fleet: %d devices imported by one bulk registration file in %.1fs (%d sleeping: awake %v every %v; method %s)\n",
		len(devs), time.Since(t).Seconds(), c.sleepers(), c.awake, c.every, c.method)
	t = time.Now()
	if err := r.startSimulators(ctx, devs); err != nil {
		return err
	}
	if err := r.waitRegistered(ctx, len(devs), 10*time.Minute); err != nil {
		return err
	}
	fmt.Printf("fleet: %d devices registered in %.1fs from %d simulator processes\n", len(devs), time.Since(t).Seconds(), len(r.sims))
	group, err := r.group(ctx, len(devs))
	if err != nil {
		return err
	}
	before, err := r.footprint(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("before the campaign: agent resident set %d MiB, live heap %d MiB, store on disk %s (%s when empty)\n", before.rss>>20, before.heap>>20, mib(before.disk), mib(empty))

	s := newSampler(r.agent.Cmd.Process.Pid, r.sims, r.metric)
	sctx, stopSampling := context.WithCancel(ctx)
	sampled := make(chan struct{})
	go func() { defer close(sampled); s.run(sctx, time.Second) }()
	res, err := r.follow(ctx, group)
	stopSampling()
	<-sampled
	if err != nil {
		return err
	}
	after, err := r.footprint(ctx)
	if err != nil {
		return err
	}
	return r.report(ctx, res, s, before, after)
}

// waitRegistered waits until the agent counts n registrations.
func (r *run) waitRegistered(ctx context.Context, n int, limit time.Duration) error {
	start := time.Now()
	for {
		v, err := r.metric(ctx, "lwm2m_agent_registrations")
		if err == nil && int(v) >= n {
			return nil
		}
		if time.Since(start) > limit || ctx.Err() != nil {
			return fmt.Errorf("%v of %d devices registered after %v (simulators' errors on stderr; agent log %s/agent.log)", v, n, limit, r.agent.Dir)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// outcome is what following the bulk operation saw.
type outcome struct {
	id              string
	created         time.Time
	allSuccessful   time.Duration // 0: never
	completed       time.Duration // 0: not COMPLETED before the deadline
	status, general string
	progress        progress
}

type progress struct {
	All        int `json:"all"`
	Pending    int `json:"pending"`
	Executing  int `json:"executing"`
	Successful int `json:"successful"`
	Failed     int `json:"failed"`
}

type bulkOperation struct {
	ID            string   `json:"id"`
	Status        string   `json:"status"`
	GeneralStatus string   `json:"generalStatus"`
	Progress      progress `json:"progress"`
}

// follow creates the bulk operation and polls it until COMPLETED or the
// deadline, printing its progress.
func (r *run) follow(ctx context.Context, group string) (outcome, error) {
	proto := map[string]any{
		"description":  fmt.Sprintf("firmware campaign: %s %s", r.cfg.name, r.cfg.version),
		"c8y_Firmware": map[string]string{"name": r.cfg.name, "version": r.cfg.version, "url": r.pkgURL},
	}
	var b bulkOperation
	start := time.Now()
	err := r.call(ctx, "POST", "/devicecontrol/bulkoperations", map[string]any{
		"groupId": group, "startDate": start.UTC().Format(time.RFC3339Nano), "creationRamp": r.cfg.ramp, "operationPrototype": proto,
	}, &b)
	if err != nil {
		return outcome{}, err
	}
	o := outcome{id: b.ID, created: start}
	fmt.Printf("campaign: bulk operation %s over %d devices, ramp %gs, package %s (%d bytes)\n", b.ID, b.Progress.All, r.cfg.ramp, r.pkgURL, r.cfg.size)
	lastPrint := time.Time{}
	for {
		if err := r.call(ctx, "GET", "/devicecontrol/bulkoperations/"+b.ID, nil, &b); err != nil {
			return o, err
		}
		o.status, o.general, o.progress = b.Status, b.GeneralStatus, b.Progress
		took := time.Since(start)
		if o.allSuccessful == 0 && b.Progress.Successful >= b.Progress.All {
			o.allSuccessful = took
		}
		done := b.Status == "COMPLETED"
		if done {
			o.completed = took
		}
		if done || time.Since(lastPrint) >= r.progEvery {
			lastPrint = time.Now()
			tr, _ := r.metric(ctx, "lwm2m_agent_firmware_transfers")
			fmt.Printf("campaign: %6.0fs %s/%s: all %d, pending %d, executing %d, successful %d, failed %d; firmware transfers %g\n",
				took.Seconds(), b.Status, b.GeneralStatus, b.Progress.All, b.Progress.Pending, b.Progress.Executing, b.Progress.Successful, b.Progress.Failed, tr)
		}
		if done {
			return o, nil
		}
		if took > r.deadline {
			fmt.Printf("campaign: not COMPLETED after %v: stopped following it\n", r.deadline)
			return o, nil
		}
		select {
		case <-ctx.Done():
			return o, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// report prints the figures of the campaign.
func (r *run) report(ctx context.Context, o outcome, s *sampler, before, after footprint) error {
	c := r.cfg
	end := o.completed
	if end == 0 {
		end = time.Since(o.created)
	}
	wall := "not reached"
	if o.allSuccessful > 0 {
		wall = fmt.Sprintf("%.1fs", o.allSuccessful.Seconds())
	}
	fmt.Printf("result: %d devices (%d sleeping), method %s, %d-byte package, ramp %gs: %s/%s after %.1fs; all SUCCESSFUL: %s\n",
		o.progress.All, c.sleepers(), c.method, c.size, c.ramp, o.status, o.general, end.Seconds(), wall)
	fmt.Printf("result: %d SUCCESSFUL, %d FAILED, %d pending, %d executing; %.1f operations/s ended (%s)\n",
		o.progress.Successful, o.progress.Failed, o.progress.Pending, o.progress.Executing,
		float64(o.progress.Successful+o.progress.Failed)/end.Seconds(), rampRate(c.ramp))
	if o.progress.Failed > 0 {
		reasons, err := r.failureReasons(ctx)
		if err != nil {
			return err
		}
		for _, fr := range reasons[:min(5, len(reasons))] {
			fmt.Printf("result: failed %d× %q\n", fr.count, fr.reason)
		}
	}
	reported, onlineOK, sleepingOK, err := r.verify(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("result: %d of %d devices report c8y_Firmware version %s on their managed object (all read, paged); SUCCESSFUL: %d of %d always-online, %d of %d sleeping\n",
		reported, len(r.ids), c.version, onlineOK, c.devices-c.sleepers(), sleepingOK, c.sleepers())
	cpu := s.cpu()
	fmt.Printf("agent: peak resident set %d MiB (sampled every second; %d MiB before the campaign, %d MiB after it; high-water mark %d MiB)\n",
		s.peakRSS>>20, before.rss>>20, after.rss>>20, s.hwm>>20)
	fmt.Printf("agent: live Go heap %d MiB before the campaign (collected), peak %.0f MiB (sampled), %d MiB after it (collected)\n",
		before.heap>>20, s.peakHeap/(1<<20), after.heap>>20)
	fmt.Printf("agent: CPU %.1f s over %.1fs (%.2f cores; %.1f ms an operation); simulators %.1f s (%.2f cores)\n",
		cpu.agent, cpu.wall, cpu.agent/cpu.wall, 1000*cpu.agent/float64(max(1, o.progress.All)), cpu.sims, cpu.sims/cpu.wall)
	fmt.Printf("agent: goroutines %0.f before, peak %0.f, %0.f after; firmware transfers peak %0.f (lwm2m_agent_firmware_transfers)\n",
		s.goroutines0, s.peakGoroutines, s.goroutines, s.peakTransfers)
	fmt.Printf("store: on disk %s before the campaign, %s after (%.2f KiB per device)\n",
		mib(before.disk), mib(after.disk), float64(after.disk-before.disk)/1024/float64(max(1, len(r.ids))))
	if r.pkgSrv != nil {
		fmt.Printf("package server: %d requests, %s served\n", r.pkgSrv.requests.Load(), mib(r.pkgSrv.bytes.Load()))
	}
	return nil
}

func rampRate(ramp float64) string {
	if ramp == 0 {
		return "no creation ramp"
	}
	return fmt.Sprintf("%.1f/s the creation ramp allows", 1/ramp)
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

type reasonCount struct {
	reason string
	count  int
}

// failureReasons counts the failure reasons of the FAILED operations,
// most frequent first.
func (r *run) failureReasons(ctx context.Context) ([]reasonCount, error) {
	counts := map[string]int{}
	err := collect(ctx, r, "/devicecontrol/operations?status=FAILED", "operations", func(op struct {
		FailureReason string `json:"failureReason"`
	}) {
		counts[op.FailureReason]++
	})
	if err != nil {
		return nil, err
	}
	var out []reasonCount
	for reason, n := range counts {
		out = append(out, reasonCount{reason, n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].count != out[j].count {
			return out[i].count > out[j].count
		}
		return out[i].reason < out[j].reason
	})
	return out, nil
}

// verify reads every device's managed object and counts those whose
// c8y_Firmware is the campaign's, and the SUCCESSFUL operations of
// always-online and of sleeping devices.
func (r *run) verify(ctx context.Context) (reported, onlineOK, sleepingOK int, err error) {
	sleeping := map[string]bool{}
	err = collect(ctx, r, "/inventory/managedObjects?type=c8y_lwm2m", "managedObjects", func(m struct {
		ID       string `json:"id"`
		Name     string `json:"name"`
		Firmware struct {
			Version string `json:"version"`
		} `json:"c8y_Firmware"`
	}) {
		if m.Firmware.Version == r.cfg.version {
			reported++
		}
		if i, ok := endpointIndex(m.Name); ok {
			sleeping[m.ID] = r.cfg.sleepingAt(i)
		}
	})
	if err != nil {
		return 0, 0, 0, err
	}
	err = collect(ctx, r, "/devicecontrol/operations?status=SUCCESSFUL", "operations", func(op struct {
		DeviceID string `json:"deviceId"`
	}) {
		if sleeping[op.DeviceID] {
			sleepingOK++
		} else {
			onlineOK++
		}
	})
	return reported, onlineOK, sleepingOK, err
}

// collect reads every page of the collection at path (a query, to which
// the paging is added) and hands each item of its member to use.
func collect[T any](ctx context.Context, r *run, path, member string, use func(T)) error {
	const size = 2000
	for page := 1; ; page++ {
		var res map[string]json.RawMessage
		if err := r.call(ctx, "GET", fmt.Sprintf("%s&pageSize=%d&currentPage=%d", path, size, page), nil, &res); err != nil {
			return err
		}
		var items []T
		if err := json.Unmarshal(res[member], &items); err != nil {
			return fmt.Errorf("GET %s: %s: %w", path, member, err)
		}
		for _, it := range items {
			use(it)
		}
		if len(items) < size {
			return nil
		}
	}
}
