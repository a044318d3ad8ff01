// Package regload is a closed-loop generator of LwM2M Registers for the
// load runs: a fixed number of UDP sockets, each sending a confirmable
// POST /rd?ep=...&lt=...&lwm2m=1.1&b=U with a link-format body as soon as
// its previous one is answered. It is built to cost little beside the
// server it measures: one goroutine per socket, reading and writing its
// blocking socket with plain system calls (no network poller between, so
// no wake-up of another thread per datagram), one message buffer per
// socket filled in place, no allocation per message, counters and a
// latency histogram per socket merged at the end. Against libcoap's
// resource directory it costs 3 to 5 µs of CPU a Register, about half of
// what the server spends.
//
// It speaks only the CoAP the exchange needs: it retransmits an
// unanswered Register with the same message ID (2 s, doubling, 4 times,
// as RFC 7252's defaults), waits for a separate response after an empty
// ACK (and acknowledges it), and answers the server's own requests with
// a Reset (a bench device has no objects to read).
package regload

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Config says where Registers go and what they say.
type Config struct {
	Server   string        // host:port of the LwM2M server or resource directory
	Bind     string        // local IP address of the sockets; "" is 127.0.0.1
	Sockets  int           // sockets, each with one Register outstanding; 0 is 16
	Prefix   string        // an endpoint's name is Prefix and its number
	Lifetime time.Duration // the lt parameter; 0 is 24 h
	Awake    time.Duration // the at parameter (awake time); 0 leaves it out
	Version  string        // the lwm2m parameter; "" is 1.1
	Timeout  time.Duration // first retransmission; 0 is 2 s
	Retries  int           // retransmissions before a Register is given up; 0 is 4
}

func (c Config) withDefaults() Config {
	if c.Bind == "" {
		c.Bind = "127.0.0.1"
	}
	if c.Sockets <= 0 {
		c.Sockets = 16
	}
	if c.Lifetime <= 0 {
		c.Lifetime = 24 * time.Hour
	}
	if c.Version == "" {
		c.Version = "1.1"
	}
	if c.Timeout <= 0 {
		c.Timeout = 2 * time.Second
	}
	if c.Retries <= 0 {
		c.Retries = 4
	}
	return c
}

// Plan says which endpoints the sockets register. Socket s sends its
// k-th Register for endpoint number Start+k*Sockets+s; with Cycle > 0
// the number is taken modulo Cycle (the same endpoints again and again,
// each always from the same socket when Cycle is a multiple of the
// sockets); with Count > 0 a socket stops at the first number at or past
// Start+Count (every endpoint once).
type Plan struct {
	Start, Count, Cycle int
}

func (p Plan) index(k, s, sockets int) (int, bool) {
	i := k*sockets + s
	if p.Cycle > 0 {
		i %= p.Cycle
	}
	if p.Count > 0 && i >= p.Count {
		return 0, false
	}
	return p.Start + i, true
}

// Result is what a run counted. Counts other than Total are of the
// window only.
type Result struct {
	Created         uint64            // 2.01 answers
	Total           uint64            // 2.01 answers of the whole run, warm-up included
	Other           map[string]uint64 // other answers, by code ("RST" for a Reset)
	Lost            uint64            // Registers given up after every retransmission
	Retransmissions uint64
	Stale           uint64 // answers to an earlier Register (the server's duplicate cache)
	ServerRequests  uint64 // requests from the server, answered with a Reset
	SocketErrors    uint64 // reads or writes that failed (no one listening)
	Window          time.Duration
	Latency         Histogram     // first transmission to 2.01, of the answers counted
	CPU             time.Duration // this process's CPU time during the window
}

// Rate is the 2.01 answers per second of the window.
func (r *Result) Rate() float64 {
	if r.Window <= 0 {
		return 0
	}
	return float64(r.Created) / r.Window.Seconds()
}

// Fill registers endpoints Start to Start+Count-1 of plan once each and
// returns when all are answered; the window is the whole run.
func Fill(ctx context.Context, cfg Config, start, count int) (*Result, error) {
	return Run(ctx, cfg, Plan{Start: start, Count: count}, 0, 0, nil)
}

// Run sends Registers as plan says, closed loop on every socket, for
// warmup and then window, and counts what is answered in the window.
// mark, when set, is called as the window starts (true) and ends
// (false), to read the server's counters at the same moments. A window
// of 0 runs until the plan is done (it needs a Count) and counts all.
func Run(ctx context.Context, cfg Config, plan Plan, warmup, window time.Duration, mark func(start bool)) (*Result, error) {
	cfg = cfg.withDefaults()
	if window <= 0 && plan.Count <= 0 {
		return nil, errors.New("regload: a run without a window needs a plan with a count")
	}
	server, err := net.ResolveUDPAddr("udp", cfg.Server)
	if err != nil {
		return nil, fmt.Errorf("regload: server %s: %w", cfg.Server, err)
	}
	local, err := net.ResolveUDPAddr("udp", net.JoinHostPort(cfg.Bind, "0"))
	if err != nil {
		return nil, fmt.Errorf("regload: bind %s: %w", cfg.Bind, err)
	}
	tpl := newTemplate(cfg.Prefix, cfg.Lifetime, cfg.Awake, cfg.Version)
	begin := time.Now()
	from, until := begin.Add(warmup), begin.Add(warmup+window)
	if window <= 0 {
		from, until = begin, begin.Add(100*365*24*time.Hour)
	}
	workers := make([]*worker, cfg.Sockets)
	for s := range workers {
		w := &worker{cfg: cfg, tpl: tpl, plan: plan, s: s, server: server, local: local, from: from, until: until,
			fd: -1, msg: make([]byte, 0, 512), in: make([]byte, 2048), ctl: make([]byte, 0, 4),
			mid: uint16(rand.Uint32()), token: uint64(s+1) << 48, res: Result{Other: map[string]uint64{}}}
		if err := w.dial(); err != nil {
			for _, o := range workers[:s] {
				_ = syscall.Close(o.fd)
			}
			return nil, err
		}
		workers[s] = w
	}

	// a socket's reads wake every readTick: a stopped run ends that soon
	var stopped atomic.Bool
	stop := context.AfterFunc(ctx, func() { stopped.Store(true) })
	defer stop()
	var wg sync.WaitGroup
	for _, w := range workers {
		w.stopped = &stopped
		wg.Go(w.run)
	}
	cpu0, cpu1 := ProcessCPU(), time.Duration(0)
	if window > 0 {
		if sleepUntil(ctx, from) {
			cpu0 = ProcessCPU()
			if mark != nil {
				mark(true)
			}
		}
		if sleepUntil(ctx, until) {
			cpu1 = ProcessCPU()
			if mark != nil {
				mark(false)
			}
		}
	}
	wg.Wait()
	end := time.Now()
	if window <= 0 {
		cpu1 = ProcessCPU()
		window = end.Sub(begin)
	}
	res := &Result{Other: map[string]uint64{}, Window: window, CPU: cpu1 - cpu0}
	for _, w := range workers {
		_ = syscall.Close(w.fd)
		r := &w.res
		res.Created += r.Created
		res.Total += r.Total
		res.Lost += r.Lost
		res.Retransmissions += r.Retransmissions
		res.Stale += r.Stale
		res.ServerRequests += r.ServerRequests
		res.SocketErrors += r.SocketErrors
		for k, v := range r.Other {
			res.Other[k] += v
		}
		res.Latency.Merge(&r.Latency)
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	return res, nil
}

// sleepUntil waits until t; false when ctx ended first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

// ProcessCPU is the user and system CPU time this process used so far.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// midsPerSocket is how many Registers a socket sends before it is
// replaced by a new one (a new port): message IDs must not come back
// within the server's duplicate detection (EXCHANGE_LIFETIME, 247 s).
const midsPerSocket = 60000

// readTick is the longest a read blocks: how often a waiting socket
// looks at its retransmission time and at the run's end.
const readTick = 20 * time.Millisecond

// separateTimeout bounds the wait for a separate response after an
// empty ACK.
const separateTimeout = 30 * time.Second

// worker is one socket and its closed loop.
type worker struct {
	cfg           Config
	tpl           *template
	plan          Plan
	s             int
	server, local *net.UDPAddr
	from, until   time.Time
	stopped       *atomic.Bool

	fd   int // a blocking UDP socket connected to the server
	sent int // Registers on this socket

	msg, in, ctl []byte
	mid          uint16
	token        uint64
	res          Result
}

// dial opens the worker's socket, closing the one it had.
func (w *worker) dial() error {
	fd, err := dialUDP(w.local, w.server)
	if err != nil {
		return fmt.Errorf("regload: socket: %w", err)
	}
	if w.fd >= 0 {
		_ = syscall.Close(w.fd)
	}
	w.fd = fd
	return nil
}

// dialUDP returns a blocking UDP socket bound to local and connected to
// server, whose reads give up after readTick.
func dialUDP(local, server *net.UDPAddr) (int, error) {
	family, la, ra := syscall.AF_INET, sockaddr(local), sockaddr(server)
	if server.IP.To4() == nil {
		family = syscall.AF_INET6
	}
	if la == nil || ra == nil {
		return 0, fmt.Errorf("%s to %s: not one address family", local, server)
	}
	fd, err := syscall.Socket(family, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	tick := syscall.NsecToTimeval(readTick.Nanoseconds())
	for _, err := range []error{
		syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF, 1<<20),
		syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tick),
		syscall.Bind(fd, la),
		syscall.Connect(fd, ra),
	} {
		if err != nil {
			_ = syscall.Close(fd)
			return 0, err
		}
	}
	return fd, nil
}

func sockaddr(a *net.UDPAddr) syscall.Sockaddr {
	if ip := a.IP.To4(); ip != nil {
		sa := &syscall.SockaddrInet4{Port: a.Port}
		copy(sa.Addr[:], ip)
		return sa
	}
	if ip := a.IP.To16(); ip != nil {
		sa := &syscall.SockaddrInet6{Port: a.Port}
		copy(sa.Addr[:], ip)
		return sa
	}
	return nil
}

// outcome of one Register.
const (
	answered = iota
	refused  // answered with another code, or reset
	lost     // no answer after every retransmission
	ended    // the run ended first
)

func (w *worker) run() {
	for k := 0; ; k++ {
		i, ok := w.plan.index(k, w.s, w.cfg.Sockets)
		if !ok || w.stopped.Load() {
			return
		}
		if w.sent > 0 && w.sent%midsPerSocket == 0 {
			if err := w.dial(); err != nil {
				w.res.SocketErrors++
				return
			}
		}
		w.sent++
		w.mid++
		w.token++
		w.msg = w.tpl.appendRegister(w.msg[:0], w.mid, w.token, i)
		sent := time.Now()
		if !sent.Before(w.until) {
			return
		}
		out, code, at := w.exchange(sent)
		counted := !at.Before(w.from) && at.Before(w.until)
		switch out {
		case answered:
			w.res.Total++
			if counted {
				w.res.Created++
				w.res.Latency.Add(at.Sub(sent))
			}
		case refused:
			if counted {
				w.res.Other[code]++
			}
		case lost:
			if counted {
				w.res.Lost++
			}
		case ended:
			return
		}
	}
}

// exchange sends w.msg and waits for its answer, retransmitting; it
// returns what came, the code of another answer, and when.
func (w *worker) exchange(sent time.Time) (out int, code string, at time.Time) {
	rto := w.cfg.Timeout
	next := sent.Add(rto)
	tries := 0
	acked := false
	w.write(w.msg)
	for {
		n, err := syscall.Read(w.fd, w.in)
		now := time.Now()
		if w.stopped.Load() || !now.Before(w.until) {
			return ended, "", now
		}
		if err != nil {
			if err != syscall.EAGAIN && err != syscall.EINTR {
				// a port nobody listens on: wait as for a lost answer
				w.res.SocketErrors++
				time.Sleep(min(readTick, next.Sub(now)))
			}
		} else if h, ok := parseHeader(w.in[:n]); ok {
			if out, code, done := w.handle(h, now, &acked, &next); done {
				return out, code, now
			}
		}
		// Timeouts are checked after every read, not only after one
		// that timed out: a stream of datagrams that are not the answer
		// (a server's retransmissions of an earlier response) must not
		// hold the exchange for ever.
		if time.Now().Before(next) {
			continue
		}
		if acked || tries == w.cfg.Retries {
			return lost, "", time.Now()
		}
		tries++
		w.res.Retransmissions++
		rto *= 2
		next = time.Now().Add(rto)
		w.write(w.msg)
	}
}

// handle takes one datagram of the server during an exchange: done is
// true with the exchange's outcome when it is the answer.
func (w *worker) handle(h header, now time.Time, acked *bool, next *time.Time) (out int, code string, done bool) {
	mine := len(h.token) == tokenLen && beUint64(h.token) == w.token
	switch {
	case h.typ == typeACK && h.mid == w.mid && h.code == 0:
		// an empty ACK: the answer follows as a separate response
		*acked, *next = true, now.Add(separateTimeout)
	case h.typ == typeACK && h.mid == w.mid && !mine:
		w.res.Stale++
	case h.typ == typeACK && h.mid == w.mid:
		out, code, _ = w.answer(h.code, now)
		return out, code, true
	case h.typ == typeRST && h.mid == w.mid:
		return refused, "RST", true
	case (h.typ == typeCON || h.typ == typeNON) && h.code >= 0x40 && mine:
		if h.typ == typeCON {
			w.control(typeACK, h.mid)
		}
		out, code, _ = w.answer(h.code, now)
		return out, code, true
	case h.typ == typeCON && h.code >= 0x40:
		// a separate response of an earlier exchange, sent again because
		// its ACK was lost: acknowledged, so that the server stops
		w.res.Stale++
		w.control(typeACK, h.mid)
	case h.typ == typeCON && h.code > 0 && h.code < 0x20:
		w.res.ServerRequests++
		w.control(typeRST, h.mid)
	}
	return 0, "", false
}

func (w *worker) write(b []byte) {
	for {
		_, err := syscall.Write(w.fd, b)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			w.res.SocketErrors++
		}
		return
	}
}

func (w *worker) answer(code byte, at time.Time) (int, string, time.Time) {
	if code == codeCreated {
		return answered, "", at
	}
	return refused, CodeString(code), at
}

func (w *worker) control(typ byte, mid uint16) {
	w.ctl = appendEmpty(w.ctl[:0], typ, mid)
	w.write(w.ctl)
}

func beUint64(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

// Probe sends a Register of endpoint number index from one socket, a new
// message every interval, until one of them is answered 2.01 or ctx
// ends, and returns when that answer came: the time a restarting server
// takes to let a known device in. Registers sent before the server
// served may wait in its socket's buffer; the first of them answered
// counts.
func Probe(ctx context.Context, cfg Config, index int, interval time.Duration) (time.Time, error) {
	cfg = cfg.withDefaults()
	c, err := net.Dial("udp", cfg.Server)
	if err != nil {
		return time.Time{}, fmt.Errorf("regload: probe: %w", err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.SetReadDeadline(time.Now()) })
	defer stop()
	tpl := newTemplate(cfg.Prefix, cfg.Lifetime, cfg.Awake, cfg.Version)
	msg, in := make([]byte, 0, 512), make([]byte, 2048)
	mid, token := uint16(rand.Uint32()), rand.Uint64()>>1
	first := token + 1
	last := "no answer"
	for {
		mid++
		token++
		msg = tpl.appendRegister(msg[:0], mid, token, index)
		_, _ = c.Write(msg)
		deadline := time.Now().Add(interval)
		_ = c.SetReadDeadline(deadline)
		for {
			n, err := c.Read(in)
			if ctx.Err() != nil {
				return time.Time{}, fmt.Errorf("regload: probe: %w (last: %s)", ctx.Err(), last)
			}
			if err != nil {
				if !errors.Is(err, os.ErrDeadlineExceeded) {
					time.Sleep(time.Until(deadline)) // nobody listens yet
				}
				break
			}
			h, ok := parseHeader(in[:n])
			if !ok || len(h.token) != tokenLen || h.code < 0x40 {
				continue
			}
			if t := beUint64(h.token); t < first || t > token {
				continue
			}
			if h.code == codeCreated {
				return time.Now(), nil
			}
			last = CodeString(h.code)
		}
	}
}
