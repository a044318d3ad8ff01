// Command dtlsbench measures full DTLS-PSK handshakes per second, closed
// loop: -concurrency clients in this process, each opening a new UDP
// socket (a new source port), doing a full PSK handshake with the cookie
// exchange as devices do (ClientHello, HelloVerifyRequest, ClientHello
// with the cookie, then the key exchange), sending one confirmable CoAP
// GET over the session, reading its answer and closing the session
// (close_notify), then starting over. It counts completed cycles over a
// window after a warm-up, with their latency, the server's CPU time and
// its resident memory.
//
// It runs the same load, in the same run, against the real agent (built
// from this repository, a fresh embedded store, -identities PSK devices
// imported through its bulk registration API, each client cycling
// through them) and against Debian's libcoap server with OpenSSL,
// coap-server-openssl (one key for every identity, answers GET / from
// memory): the ceiling of this machine with this generator. Both sides
// share the same cores; the generator's CPU per handshake is printed
// beside the server's so one can tell which held the rate back.
package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/bench/machine"
	"github.com/lwm2m-agent/lwm2m-agent/agent/bench/regload"
	"github.com/pion/dtls/v3"
)

const password = "Dtls-bench-pass-1!"

type options struct {
	concurrency    int
	warmup, window time.Duration
	identities     int
	suite          dtls.CipherSuiteID
	timeout        time.Duration
}

func main() {
	var (
		servers    = flag.String("servers", "coap-server,agent", "which servers to measure, in this order: coap-server (libcoap's coap-server-openssl), agent")
		libcoapBin = flag.String("coap-server", "coap-server-openssl", "libcoap's server with OpenSSL (Debian: apt-get install libcoap3-bin)")
		suite      = flag.String("suite", "ccm8", "cipher suite the clients offer: ccm8 (TLS_PSK_WITH_AES_128_CCM_8, LwM2M's mandatory one) or cbc (TLS_PSK_WITH_AES_128_CBC_SHA256)")
		profile    = flag.String("cpuprofile", "", "write a CPU profile of the agent over the window to this file (from its pprof port)")
		keep       = flag.Bool("keep", false, "keep the agent's data directory and log")
		runLimit   = flag.Duration("limit", 20*time.Minute, "the whole run's time limit")
		env        = flag.String("agent-env", "", "extra environment of the agent, comma separated NAME=VALUE")
		o          options
		bin        = machine.BinaryFlags()
	)
	flag.IntVar(&o.concurrency, "concurrency", 16, "clients, each with one handshake under way")
	flag.DurationVar(&o.warmup, "warmup", 3*time.Second, "time each server runs before counting")
	flag.DurationVar(&o.window, "window", 10*time.Second, "time each server counts")
	flag.IntVar(&o.identities, "identities", 1000, "PSK devices imported into the agent, used round robin")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Second, "a cycle (handshake, request, answer) that takes longer fails")
	flag.Parse()
	switch *suite {
	case "ccm8":
		o.suite = dtls.TLS_PSK_WITH_AES_128_CCM_8
	case "cbc":
		o.suite = dtls.TLS_PSK_WITH_AES_128_CBC_SHA256
	default:
		fail(fmt.Errorf("-suite: %q is neither ccm8 nor cbc", *suite))
	}
	ctx, cancel := context.WithTimeout(context.Background(), *runLimit)
	defer cancel()

	cpuModel, cores := machine.CPU()
	fmt.Printf("machine: %s, %d cores; server and this generator on the same cores, loopback; %d clients, closed loop, %s warm-up, %s window; %s\n",
		cpuModel, cores, o.concurrency, o.warmup, o.window, o.suite)
	var rows []row
	for _, s := range strings.Split(*servers, ",") {
		var (
			r   row
			err error
		)
		switch strings.TrimSpace(s) {
		case "coap-server":
			path, lerr := exec.LookPath(*libcoapBin)
			if lerr != nil {
				fmt.Printf("coap-server: %s is not installed (Debian: apt-get install -y libcoap3-bin); its column is skipped\n", *libcoapBin)
				continue
			}
			r, err = libcoap(ctx, path, o)
		case "agent":
			if bin.Build {
				if err := machine.Build(ctx, bin.Path); err != nil {
					fail(err)
				}
			}
			var extra []string
			if *env != "" {
				extra = strings.Split(*env, ",")
			}
			r, err = agent(ctx, bin.Path, o, *profile, *keep, extra)
		default:
			fail(fmt.Errorf("-servers: unknown server %q", s))
		}
		if err != nil {
			fail(err)
		}
		rows = append(rows, r)
	}
	table(rows)
}

func fail(err error) { machine.Fail("dtlsbench", err) }

// target is a DTLS server under load.
type target struct {
	name string
	addr *net.UDPAddr
	pid  int
	// key returns the identity and key of client k's n-th handshake.
	key func(k, n int) (string, []byte)
	// path is the Uri-Path of the GET each session sends ("" for /).
	path string
}

// row is one server's figures.
type row struct {
	server            string
	done, failed      uint64
	window            time.Duration
	latency           regload.Histogram
	serverCPU, genCPU time.Duration
	rss, peak         int64 // bytes: at the window's end, the process's peak
	idleRSS           int64 // bytes, before the load
}

func (r row) rate() float64 { return float64(r.done) / r.window.Seconds() }

func perHandshake(d time.Duration, n uint64) float64 {
	if n == 0 {
		return 0
	}
	return float64(d.Microseconds()) / float64(n)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// measure runs the load against t: warm-up, then the window, with mark
// called as the window starts and ends (true at the start).
func measure(ctx context.Context, t target, o options, mark func(start bool)) (row, error) {
	r := row{server: t.name, idleRSS: rss(t.pid)}
	// One handshake first: a server that cannot complete one fails here
	// rather than in a window of timeouts.
	id, key := t.key(0, 0)
	if _, err := cycle(ctx, t, id, key, o, 0); err != nil {
		return r, fmt.Errorf("%s: first handshake: %w", t.name, err)
	}
	var (
		from    = time.Now().Add(o.warmup)
		until   = from.Add(o.window)
		wg      sync.WaitGroup
		mu      sync.Mutex
		errOnce atomic.Pointer[error]
	)
	startMark := make(chan struct{})
	go func() {
		time.Sleep(time.Until(from))
		r.genCPU = -regload.ProcessCPU()
		r.serverCPU = -cpu(t.pid)
		if mark != nil {
			mark(true)
		}
		close(startMark)
	}()
	for k := range o.concurrency {
		wg.Go(func() {
			var h regload.Histogram
			var done, failed uint64
			for n := 1; ; n++ {
				start := time.Now()
				if !start.Before(until) || ctx.Err() != nil {
					break
				}
				id, key := t.key(k, n)
				_, err := cycle(ctx, t, id, key, o, uint16(n))
				end := time.Now()
				if start.Before(from) || end.After(until) {
					continue
				}
				if err != nil {
					failed++
					errOnce.CompareAndSwap(nil, &err)
					continue
				}
				done++
				h.Add(end.Sub(start))
			}
			mu.Lock()
			r.latency.Merge(&h)
			r.done += done
			r.failed += failed
			mu.Unlock()
		})
	}
	<-startMark
	time.Sleep(time.Until(until))
	r.genCPU += regload.ProcessCPU()
	r.serverCPU += cpu(t.pid)
	r.rss, r.peak = rss(t.pid), peakRSS(t.pid)
	if mark != nil {
		mark(false)
	}
	r.window = o.window
	wg.Wait()
	if e := errOnce.Load(); e != nil {
		fmt.Printf("%s: %d cycles failed in the window, the first: %v\n", t.name, r.failed, *e)
	}
	report(r)
	return r, nil
}

// cycle is one device's first contact: a new socket, a full handshake,
// one GET and its answer, close_notify.
func cycle(ctx context.Context, t target, identity string, key []byte, o options, mid uint16) (time.Duration, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: t.addr.IP})
	if err != nil {
		return 0, err
	}
	defer pc.Close()
	dc, err := dtls.ClientWithOptions(pc, t.addr,
		dtls.WithPSK(func([]byte) ([]byte, error) { return key, nil }),
		dtls.WithPSKIdentityHint([]byte(identity)),
		dtls.WithCipherSuites(o.suite),
		dtls.WithFlightInterval(time.Second),
	)
	if err != nil {
		return 0, err
	}
	defer dc.Close()
	if err := dc.HandshakeContext(ctx); err != nil {
		return 0, fmt.Errorf("handshake: %w", err)
	}
	deadline, _ := ctx.Deadline()
	_ = dc.SetDeadline(deadline)
	req := get(mid, t.path)
	if _, err := dc.Write(req); err != nil {
		return 0, fmt.Errorf("write GET: %w", err)
	}
	buf := make([]byte, 2048)
	for {
		n, err := dc.Read(buf)
		if err != nil {
			return 0, fmt.Errorf("read answer: %w", err)
		}
		// the piggybacked answer, or an empty ACK before a separate one
		if n >= 4 && buf[0]>>4&3 == 2 && binary.BigEndian.Uint16(buf[2:4]) == mid {
			if buf[1] == 0 {
				continue
			}
			return time.Since(start), nil
		}
		if n >= 4 && buf[0]>>4&3 <= 1 && bytes.Equal(buf[4:4+min(int(buf[0]&0xf), n-4)], req[4:12]) {
			return time.Since(start), nil
		}
	}
}

// get is a confirmable CoAP GET of path with message ID mid and an
// 8-byte token.
func get(mid uint16, path string) []byte {
	b := []byte{0x48, 0x01, byte(mid >> 8), byte(mid)}
	b = binary.BigEndian.AppendUint64(b, uint64(time.Now().UnixNano()))
	prev := 0
	for _, seg := range strings.Split(path, "/") {
		if seg == "" {
			continue
		}
		// Uri-Path (11); segments here are shorter than 13 bytes
		b = append(b, byte((11-prev)<<4|len(seg)))
		b = append(b, seg...)
		prev = 11
	}
	return b
}

func report(r row) {
	fmt.Printf("%s: %.0f handshakes/s (%d in %.1fs, %d failed), p50 %.2f ms, p99 %.2f ms; CPU: server %.2f cores (%.0f µs a handshake), generator %.2f cores (%.0f µs a handshake); server resident %d MiB before, %d MiB at the window's end, peak %d MiB\n",
		r.server, r.rate(), r.done, r.window.Seconds(), r.failed, ms(r.latency.Quantile(0.5)), ms(r.latency.Quantile(0.99)),
		r.serverCPU.Seconds()/r.window.Seconds(), perHandshake(r.serverCPU, r.done),
		r.genCPU.Seconds()/r.window.Seconds(), perHandshake(r.genCPU, r.done),
		r.idleRSS>>20, r.rss>>20, r.peak>>20)
}

// table prints the servers side by side.
func table(rows []row) {
	if len(rows) == 0 {
		return
	}
	fmt.Println()
	fmt.Println("| server | handshakes/s | p50 ms | p99 ms | failed | server CPU µs/handshake | server cores | generator CPU µs/handshake | server RSS before / end / peak MiB |")
	fmt.Println("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, r := range rows {
		fmt.Printf("| %s | %.0f | %.2f | %.2f | %d | %.0f | %.2f | %.0f | %d / %d / %d |\n", r.server, r.rate(),
			ms(r.latency.Quantile(0.5)), ms(r.latency.Quantile(0.99)), r.failed,
			perHandshake(r.serverCPU, r.done), r.serverCPU.Seconds()/r.window.Seconds(), perHandshake(r.genCPU, r.done),
			r.idleRSS>>20, r.rss>>20, r.peak>>20)
	}
}

func cpu(pid int) time.Duration {
	return time.Duration(machine.CPUSeconds(pid) * float64(time.Second))
}

// rss and peakRSS read a process's resident set now and at its peak
// (VmRSS, VmHWM), 0 when they cannot be read.
func rss(pid int) int64     { return status(pid, "VmRSS:") }
func peakRSS(pid int) int64 { return status(pid, "VmHWM:") }

func status(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// libcoapKey is the one key coap-server-openssl holds, for any identity.
var libcoapKey = []byte("dtlsbench-secret")

// libcoap runs the load against a coap-server-openssl process of its own.
func libcoap(ctx context.Context, path string, o options) (row, error) {
	addr, err := machine.FreePort("udp")
	if err != nil {
		return row{}, err
	}
	host, port, _ := strings.Cut(addr, ":")
	// -p is the plain port; DTLS listens on the next one. -v 0: its log
	// would cost it a write per session.
	p, _ := strconv.Atoi(port)
	cmd := exec.CommandContext(ctx, path, "-A", host, "-p", strconv.Itoa(p-1), "-k", string(libcoapKey), "-h", "dtlsbench", "-v", "0")
	if err := cmd.Start(); err != nil {
		return row{}, fmt.Errorf("coap-server: %w", err)
	}
	defer machine.StopProcess(cmd, 10*time.Second)
	t := target{name: "coap-server-openssl", addr: &net.UDPAddr{IP: net.ParseIP(host), Port: p}, pid: cmd.Process.Pid,
		key: func(k, n int) (string, []byte) { return fmt.Sprintf("dev-%d-%d", k, n), libcoapKey }}
	if err := waitFirst(ctx, t, o); err != nil {
		return row{}, fmt.Errorf("coap-server-openssl does not complete a handshake on %s: %w", t.addr, err)
	}
	fmt.Printf("coap-server: %s on %s (DTLS with OpenSSL, one PSK for every identity, answers GET / from memory)\n", path, t.addr)
	return measure(ctx, t, o, nil)
}

// waitFirst retries a first handshake until the server listens.
func waitFirst(ctx context.Context, t target, o options) error {
	id, key := t.key(0, 0)
	var err error
	for range 50 {
		short := o
		short.timeout = 500 * time.Millisecond
		if _, err = cycle(ctx, t, id, key, short, 1); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

// deviceKey is device i's PSK.
func deviceKey(i int) []byte {
	k, _ := hex.DecodeString(fmt.Sprintf("%032x", i+1))
	return k
}

// deviceFile is a registration file of n PSK devices.
func deviceFile(coaps string, n int) []byte {
	var b bytes.Buffer
	b.WriteString("ID,IDTYPE,CREDENTIALS,NAME,TYPE,SHELL,endpoint id,lwm2m server uri,securityMode,lwm2m psk_id,lwm2m psk_key,registrationLifetime\n")
	for i := range n {
		ep := fmt.Sprintf("hs-%d", i)
		fmt.Fprintf(&b, "%s,c8y_Id,Secret-pass-1234!,%s,c8y_lwm2m,0,%s,coaps://%s,PSK,%s-id,%032x,3600\n", ep, ep, ep, coaps, ep, i+1)
	}
	return b.Bytes()
}

// agent runs the load against one agent with a fresh embedded store and
// -identities PSK devices.
func agent(ctx context.Context, bin string, o options, profile string, keep bool, env []string) (row, error) {
	dir, err := os.MkdirTemp("", "dtlsbench-")
	if err != nil {
		return row{}, err
	}
	// Thousands of handshakes a second come from one address here, and
	// every cycle is a new session of a device that had one: the limits
	// per address would refuse the load.
	env = append([]string{"LWM2M_AGENT_PEER_RATE=-1"}, env...)
	a, err := machine.StartAgent(ctx, bin, dir, password, env...)
	if err != nil {
		return row{}, err
	}
	defer func() {
		if _, err := a.Stop(os.Interrupt, time.Minute); err != nil {
			fmt.Fprintln(os.Stderr, "dtlsbench: stop agent:", err)
		}
		if keep {
			fmt.Println("agent data and log kept in", dir)
			return
		}
		_ = os.RemoveAll(dir)
	}()
	client := &http.Client{Timeout: 10 * time.Minute}
	start := time.Now()
	var res struct {
		Successful int `json:"numberOfSuccessful"`
	}
	if err := machine.Send(ctx, client, a.HTTP, password, http.MethodPost, "/devicecontrol/bulkNewDeviceRequests", "text/csv",
		bytes.NewReader(deviceFile(a.CoAPS, o.identities)), &res); err != nil {
		return row{}, fmt.Errorf("import devices: %w", err)
	}
	if res.Successful != o.identities {
		return row{}, fmt.Errorf("import devices: %d of %d imported", res.Successful, o.identities)
	}
	udp, err := net.ResolveUDPAddr("udp", a.CoAPS)
	if err != nil {
		return row{}, err
	}
	fmt.Printf("agent: %s, DTLS on %s, embedded store in %s, %d PSK devices imported in %.1fs; each GET / is answered by the LwM2M server's router\n",
		bin, a.CoAPS, filepath.Join(dir, "data"), o.identities, time.Since(start).Seconds())
	t := target{name: "agent", addr: udp, pid: a.Cmd.Process.Pid, key: func(k, n int) (string, []byte) {
		i := (k*7919 + n) % o.identities
		return fmt.Sprintf("hs-%d-id", i), deviceKey(i)
	}}
	var (
		stopProfile func() error
		hs0         float64
	)
	mark := func(begin bool) {
		if begin {
			hs0, _ = machine.Metric(ctx, client, a.HTTP, "lwm2m_agent_dtls_handshake_failures_total")
			if profile != "" {
				stopProfile = cpuProfile(ctx, a.Pprof, o.window, profile)
			}
			return
		}
		if hs1, err := machine.Metric(ctx, client, a.HTTP, "lwm2m_agent_dtls_handshake_failures_total"); err == nil && hs1 > hs0 {
			fmt.Printf("agent: %.0f handshakes failed on the server's side in the window\n", hs1-hs0)
		}
	}
	r, err := measure(ctx, t, o, mark)
	if stopProfile != nil {
		if perr := stopProfile(); perr != nil {
			fmt.Fprintln(os.Stderr, "dtlsbench: cpu profile:", perr)
		} else {
			fmt.Println("agent: CPU profile of the window in", profile, "(go tool pprof -top", bin, profile+")")
		}
	}
	return r, err
}

// cpuProfile starts fetching a CPU profile of window from the agent's
// pprof address; the returned function waits for it and writes it to
// file.
func cpuProfile(ctx context.Context, base string, window time.Duration, file string) func() error {
	done := make(chan error, 1)
	go func() {
		secs := max(1, int(window.Seconds()))
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", base, secs), nil)
		if err != nil {
			done <- err
			return
		}
		resp, err := (&http.Client{Timeout: window + time.Minute}).Do(req)
		if err != nil {
			done <- err
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			done <- errors.New(resp.Status)
			return
		}
		f, err := os.Create(file)
		if err != nil {
			done <- err
			return
		}
		_, err = io.Copy(f, resp.Body)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		done <- err
	}()
	return func() error { return <-done }
}
