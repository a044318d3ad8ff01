// Command realtimebench measures the realtime notifications of a real
// agent: how long after a measurement is written its notification
// reaches each of many subscribers. It starts bin/lwm2m-agent with a
// fresh embedded store on loopback, creates devices, connects the
// subscribers (Bayeux over WebSocket and long-polling, each subscribed
// to one device's measurements or to every device's), writes
// measurements through the API at a fixed rate, and prints the latency
// from the write to the receipt at each subscriber (p50 to max), the
// agent's own figure from its store write to the write on the
// connection, and what was lost. docs/performance.md has the figures.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/bench/machine"
	"github.com/lwm2m-agent/lwm2m-agent/agent/bench/regload"
	"github.com/lwm2m-agent/lwm2m-agent/agent/realtime/bayeux"
)

const password = "Realtime-bench-pass-1!"

// sentFragment carries the publisher's clock in each measurement, in
// nanoseconds as a string (a JSON number would lose them); receive reads
// it by this name.
const sentFragment = "bench_Sent"

func main() {
	var (
		bin        = machine.BinaryFlags()
		subs       = flag.Int("subscribers", 1000, "realtime clients")
		transport  = flag.String("transport", "mixed", "websocket, long-polling, or mixed (every other one)")
		devices    = flag.Int("devices", 100, "devices the measurements are spread over")
		wildcard   = flag.Int("wildcard", 100, "subscribers of /measurements/* (every device); the others subscribe to one device each, round robin")
		rate       = flag.Float64("rate", 100, "measurements written per second, in all")
		publishers = flag.Int("publishers", 8, "API clients writing the measurements")
		warmup     = flag.Duration("warmup", 5*time.Second, "writing before the counted window")
		window     = flag.Duration("duration", 30*time.Second, "the counted window")
	)
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	if _, err := bin.Prepare(ctx, "agent, embedded store, subscribers and writers on one machine, loopback"); err != nil {
		fail(err)
	}
	dir, err := os.MkdirTemp("", "realtimebench-")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(dir)
	// one user holds every client here: the per-user bound must let them
	a, err := machine.StartAgent(ctx, bin.Path, dir, password,
		"LWM2M_AGENT_REALTIME_MAX_CLIENTS_PER_USER="+strconv.Itoa(*subs),
		"LWM2M_AGENT_REALTIME_MAX_CLIENTS="+strconv.Itoa(max(*subs, 10_000)))
	if err != nil {
		fail(err)
	}
	defer func() { _, _ = a.Stop(os.Interrupt, 20*time.Second) }()
	r := &run{base: a.HTTP, rate: *rate, warmup: *warmup, window: *window, publishers: *publishers}
	if err := r.setUp(ctx, *devices, *subs, *wildcard, *transport); err != nil {
		fail(err)
	}
	if err := r.measure(ctx, a); err != nil {
		fail(err)
	}
}

func fail(err error) { machine.Fail("realtimebench", err) }

// client has connections enough for every long-polling subscriber's held
// connect beside its other requests, and for the writers.
var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4096}, Timeout: 120 * time.Second}

type run struct {
	base       string
	rate       float64
	warmup     time.Duration
	window     time.Duration
	publishers int

	devices []string
	// recipients per device: its own subscribers plus the wildcard ones
	recipients map[string]int
	subs       []*subscriber
	byKind     map[string]int

	start, end atomic.Int64 // the counted window, ns
}

// subscriber is one realtime client and what it received in the window.
type subscriber struct {
	c        *bayeux.Client
	hist     regload.Histogram
	received int64
	outside  int64 // received, but written outside the window
	// pairs are (sent, received) in ns, for the latency from the
	// write's answer, known only once the run is over
	mu    sync.Mutex
	pairs [][2]int64
}

func (r *run) setUp(ctx context.Context, devices, subs, wildcard int, transport string) error {
	r.recipients = map[string]int{}
	r.byKind = map[string]int{}
	for i := range devices {
		var mo struct {
			ID string `json:"id"`
		}
		if err := machine.Call(ctx, client, r.base, password, "POST", "/inventory/managedObjects",
			map[string]any{"name": fmt.Sprintf("rt-%d", i), "c8y_IsDevice": map[string]any{}}, &mo); err != nil {
			return err
		}
		r.devices = append(r.devices, mo.ID)
	}
	t0 := time.Now()
	r.subs = make([]*subscriber, subs)
	var wg sync.WaitGroup
	errs := make(chan error, subs)
	sem := make(chan struct{}, 32)
	for i := range subs {
		tr := transport
		if transport == "mixed" {
			tr = []string{bayeux.WebSocket, bayeux.LongPolling}[i%2]
		}
		channel := "/measurements/*"
		if i >= wildcard {
			dev := r.devices[(i-wildcard)%len(r.devices)]
			channel = "/measurements/" + dev
			r.recipients[dev]++
		}
		r.byKind[tr]++
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			c, err := bayeux.Dial(ctx, bayeux.Config{URL: r.base, Login: "management/admin", Password: password, Transport: tr, HTTP: client})
			if err == nil {
				err = c.Subscribe(ctx, channel)
			}
			if err != nil {
				errs <- fmt.Errorf("subscriber %d (%s): %w", i, tr, err)
				return
			}
			s := &subscriber{c: c}
			r.subs[i] = s
			go r.receive(s)
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	for _, dev := range r.devices {
		r.recipients[dev] += wildcard
	}
	n, err := machine.Metric(ctx, client, r.base, "lwm2m_agent_realtime_subscriptions")
	if err != nil || int(n) != subs {
		return fmt.Errorf("%v subscriptions at the agent, want %d (%v)", n, subs, err)
	}
	fmt.Printf("realtime: %d subscribers (%d WebSocket, %d long-polling) connected and subscribed in %.1f s: %d to /measurements/* and %d to one of %d devices' /measurements/{id}\n",
		subs, r.byKind[bayeux.WebSocket], r.byKind[bayeux.LongPolling], time.Since(t0).Seconds(), min(wildcard, subs), max(subs-wildcard, 0), len(r.devices))
	return nil
}

// receive reads a subscriber's notifications until it ends, counting the
// latency of those written in the window.
func (r *run) receive(s *subscriber) {
	for m := range s.c.Messages() {
		var data struct {
			Sent string `json:"bench_Sent"`
		}
		if json.Unmarshal(m.Data.Data, &data) != nil {
			continue
		}
		sent, err := strconv.ParseInt(data.Sent, 10, 64)
		if err != nil {
			continue
		}
		if sent < r.start.Load() || sent >= r.end.Load() {
			atomic.AddInt64(&s.outside, 1)
			continue
		}
		s.hist.Add(m.Received.Sub(time.Unix(0, sent)))
		s.mu.Lock()
		s.pairs = append(s.pairs, [2]int64{sent, m.Received.UnixNano()})
		s.mu.Unlock()
		atomic.AddInt64(&s.received, 1)
	}
}

// measure writes measurements at the rate through warmup and the window,
// then waits for what is due and prints the figures.
func (r *run) measure(ctx context.Context, a *machine.Agent) error {
	r.start.Store(time.Now().Add(r.warmup).UnixNano())
	r.end.Store(time.Now().Add(r.warmup + r.window).UnixNano())
	type write struct {
		dev  string
		sent int64
	}
	writes := make(chan write, 1024)
	var expected, written, behind, failed atomic.Int64
	var wg sync.WaitGroup
	// the time of each write through the API: its request, the store's
	// commit and the answer
	posts := make([]regload.Histogram, r.publishers)
	var answeredMu sync.Mutex
	answered := map[int64]int64{} // sent → when the write was answered, ns
	for p := range r.publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for w := range writes {
				t := time.Now()
				err := machine.Call(ctx, client, r.base, password, "POST", "/measurement/measurements", map[string]any{
					"source": map[string]any{"id": w.dev}, "type": "c8y_Bench",
					"c8y_Bench":  map[string]any{"V": map[string]any{"value": 1}},
					sentFragment: strconv.FormatInt(w.sent, 10),
				}, nil)
				if err != nil {
					failed.Add(1)
					continue
				}
				posts[p].Add(time.Since(t))
				answeredMu.Lock()
				answered[w.sent] = time.Now().UnixNano()
				answeredMu.Unlock()
				written.Add(1)
				if w.sent >= r.start.Load() && w.sent < r.end.Load() {
					expected.Add(int64(r.recipients[w.dev]))
				}
			}
		}()
	}
	var h0 machine.Histogram
	var cpu0 float64
	counting := false
	tick := time.NewTicker(time.Duration(float64(time.Second) / r.rate))
	for i := 0; ; i++ {
		now := <-tick.C
		if now.UnixNano() >= r.end.Load() {
			break
		}
		if !counting && now.UnixNano() >= r.start.Load() {
			counting = true
			var err error
			if h0, err = machine.ReadHistogram(ctx, client, r.base, "lwm2m_agent_realtime_delivery_seconds"); err != nil {
				return err
			}
			cpu0 = machine.CPUSeconds(a.Cmd.Process.Pid)
		}
		select {
		case writes <- write{dev: r.devices[i%len(r.devices)], sent: time.Now().UnixNano()}:
		default:
			behind.Add(1) // the writers did not keep up with the rate
		}
	}
	tick.Stop()
	cpu := machine.CPUSeconds(a.Cmd.Process.Pid) - cpu0
	close(writes)
	wg.Wait()
	h1, err := machine.ReadHistogram(ctx, client, r.base, "lwm2m_agent_realtime_delivery_seconds")
	if err != nil {
		return err
	}
	// what was written in the window arrives within the grace, or is lost
	received := func() int64 {
		var n int64
		for _, s := range r.subs {
			n += atomic.LoadInt64(&s.received)
		}
		return n
	}
	for deadline := time.Now().Add(10 * time.Second); received() < expected.Load() && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	for _, s := range r.subs {
		s.c.Close()
	}
	var all, post, stored regload.Histogram
	for _, s := range r.subs {
		all.Merge(&s.hist)
		s.mu.Lock()
		for _, p := range s.pairs {
			// a notification that came before the write's answer counts 0
			stored.Add(time.Duration(max(p[1]-answered[p[0]], 0)))
		}
		s.mu.Unlock()
	}
	for i := range posts {
		post.Merge(&posts[i])
	}
	got, want := received(), expected.Load()
	secs := r.window.Seconds()
	dropped, _ := machine.Metric(ctx, client, r.base, "lwm2m_agent_realtime_clients_dropped_total")
	lost, _ := machine.Metric(ctx, client, r.base, "lwm2m_agent_realtime_changes_lost_total")
	fmt.Printf("realtime: %.0f measurements/s written through the API for %.0f s (%d written, %d failed, %d not sent: writers behind), %.0f notifications/s delivered\n",
		r.rate, secs, written.Load(), failed.Load(), behind.Load(), float64(got)/secs)
	fmt.Printf("realtime: one write through the API (POST /measurement/measurements, its store commit included): p50 %s, p99 %s\n",
		ms(post.Quantile(0.5)), ms(post.Quantile(0.99)))
	fmt.Printf("realtime: write (the POST sent) to receipt at the subscriber, %d notifications: p50 %s, p90 %s, p99 %s, p99.9 %s, max %s; %d of %d due not received (%.3f %%)\n",
		all.Count(), ms(all.Quantile(0.5)), ms(all.Quantile(0.9)), ms(all.Quantile(0.99)), ms(all.Quantile(0.999)), ms(all.Quantile(1)),
		want-got, want, 100*float64(want-got)/float64(max(want, 1)))
	fmt.Printf("realtime: write answered (stored) to receipt at the subscriber, 0 when the notification came first: p50 %s, p90 %s, p99 %s, p99.9 %s, max %s\n",
		ms(stored.Quantile(0.5)), ms(stored.Quantile(0.9)), ms(stored.Quantile(0.99)), ms(stored.Quantile(0.999)), ms(stored.Quantile(1)))
	fmt.Printf("realtime: the agent's store write to the write on the connection (lwm2m_agent_realtime_delivery_seconds): p50 <= %s, p99 <= %s, mean %.2f ms; clients dropped %v, changes lost %v; agent CPU %.0f %% of one core\n",
		h1.Quantile(h0, 0.5), h1.Quantile(h0, 0.99), 1000*(h1.Sum-h0.Sum)/max(h1.Count-h0.Count, 1), dropped, lost, 100*cpu/secs)
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }
