package simulator

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// work bits: the network exchanges a device waits to make.
const (
	workRegister uint8 = 1 << iota
	workUpdate
	workDisable   // de-register, then register again after the disable timeout
	workBootstrap // Client Initiated Bootstrap, then register
	workSend      // LwM2M Send of the measurements queued in sendQ
)

// maxObservations bounds the observations one device keeps; further
// Observe requests are answered as plain reads, as RFC 7641 allows.
const maxObservations = 64

// Device is one simulated LwM2M client. Its methods are safe for
// concurrent use.
type Device struct {
	sim      *Simulator
	endpoint string
	spec     DeviceConfig
	index    int
	log      *slog.Logger
	silent   atomic.Bool
	ignoring atomic.Bool // Ignore was called: requests are screened by path
	settled  atomic.Bool // had its first outcome (Simulator.Settled)
	updates  atomic.Uint64

	queued bool // in the work queue; guarded by sim.work.mu

	mu          sync.Mutex
	tree        tree
	attrs       map[node.Path]attrs
	execArgs    map[node.Path]string // the arguments of each resource's last Execute
	obs         []*observation
	rng         *rand.Rand
	conn        *client.Conn // link.cc
	link        *link        // connection to the LwM2M server
	srv         uint16       // Server object instance of the account in use
	bsLink      *link        // connection to the bootstrap server
	bsWaiting   bool         // Bootstrap-Request accepted, no Bootstrap-Finish yet
	needBS      bool         // the next registration starts with a bootstrap
	bootstraps  int          // bootstraps that finished
	lastErr     error        // the last failed bootstrap or registration; nil once registered
	location    string       // Location-Path of the registration, "/rd/5a3f"
	registered  bool
	stopped     bool      // Stop, Deregister or shutdown: no more exchanges
	lastReg     time.Time // last successful Register or Update
	want        uint8     // work bits
	busy        bool      // a worker runs the device's exchanges
	epoch       uint64    // raised by a reboot: exchanges begun before it are void
	sendParams  bool      // lifetime or binding changed since the last Update
	sendObjects bool      // instances were created or deleted since then
	failures    int       // consecutive failed exchanges, for back-off
	conBusy     bool      // a CON sender goroutine runs
	conQueue    []*observation
	conMID      int32         // message ID of the CON notification awaiting its ACK; -1 for none
	conDone     chan struct{} // the ACK or Reset of conMID came

	// sleeping devices (Config.AwakeTime) and what the device saw
	exchanging    int       // Registers and Updates under way: the radio is on
	awakeUntil    time.Time // end of the awake time after the last one
	wakeups       int       // Registers and Updates sent
	pendingWake   Wakeup    // the window the exchange under way opens
	wakes         []Wakeup  // the last Config.Record windows
	requests      []Request // the last Config.Record requests of the server
	dropped       int
	ignore        map[string]int // path → requests still to ignore (Ignore)
	ignoredTokens []string       // tokens of ignored requests, for their retransmissions
	// answeredTokens are the tokens of the last requests answered (with an
	// awake time and Config.Record), so that a copy of one arriving while
	// asleep is recorded as a Repeat.
	answeredTokens []string

	regTimer    *timer // next Register or Update
	changeTimer *timer // value drift
	fwTimer     *timer // the firmware update step (Updating, then the reboot)
	fwGen       uint64 // raised by every Package URI write: older downloads are void
	fwCancel    context.CancelFunc
	fw          FirmwareConfig // DeviceConfig.Firmware, else Config.Firmware
	pull        pullState
	push        pushState
	// pkgSize and pkgSum are the length and SHA-256 of the last package
	// received whole (pushed or written), for tests: the bytes are not
	// kept, as a device's flash is not the simulator's memory.
	pkgSize     int64
	pkgSum      [sha256.Size]byte
	pushStalled bool // FirmwareConfig.StallAfter took effect, once for good
	pushTaken   PushTaken
	bsTimer     *timer // bootstrap timeout, then closing the bootstrap connection

	// Config.Objects: a timer per valueGroup, the measurements taken of
	// each resource (by index of Simulator.specs), and the measurements
	// waiting for a Send.
	valTimers []*timer
	measured  []uint64
	sendQ     []node.Record
}

func newDevice(s *Simulator, dc DeviceConfig, idx int, tmpl *template) *Device {
	d := &Device{
		sim:      s,
		endpoint: dc.Endpoint,
		spec:     dc,
		index:    idx,
		log:      s.log.With("endpoint", dc.Endpoint),
		rng:      rand.New(rand.NewPCG(uint64(idx), 0x5eed)),
		conMID:   -1,
		conDone:  make(chan struct{}, 1),
		needBS:   dc.BootstrapURI != "",
	}
	d.tree = tmpl.instantiate(d)
	d.fw = s.cfg.Firmware
	if dc.Firmware != nil {
		d.fw = dc.Firmware.withDefaults()
		d.fw.Cancel = s.cfg.Firmware.Cancel
		d.fwResourcesLocked()
	}
	d.regTimer = newTimer(func(time.Time) { d.requestWork(0) })
	d.changeTimer = newTimer(d.drift)
	d.fwTimer = newTimer(d.firmwareStep)
	d.bsTimer = newTimer(d.bootstrapTimer)
	if len(s.groups) > 0 {
		d.measured = make([]uint64, len(s.specs))
		d.valTimers = make([]*timer, len(s.groups))
		for i, g := range s.groups {
			d.valTimers[i] = newTimer(func(now time.Time) { d.measure(g, d.valTimers[i], now) })
		}
	}
	return d
}

// Err is the error of the device's last failed bootstrap or registration
// attempt (a refused handshake, a rejected Register, a Bootstrap-Finish
// without a usable server account), or nil once it registers.
func (d *Device) Err() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lastErr
}

// Bootstrapped reports whether the device finished a bootstrap since it
// started.
func (d *Device) Bootstrapped() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.bootstraps > 0
}

// fail records a failed bootstrap or registration attempt.
func (d *Device) fail(err error) {
	d.mu.Lock()
	d.lastErr = err
	d.mu.Unlock()
	d.settle()
}

// settle counts the device's first outcome.
func (d *Device) settle() {
	if d.settled.CompareAndSwap(false, true) && d.sim.unsettled.Add(-1) == 0 {
		close(d.sim.settled)
	}
}

// Endpoint is the device's endpoint name.
func (d *Device) Endpoint() string { return d.endpoint }

// RegistrationID is the ID the server gave the current registration (the
// last segment of its location), or "" when the device is not registered.
func (d *Device) RegistrationID() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.registered {
		return ""
	}
	for i := len(d.location) - 1; i >= 0; i-- {
		if d.location[i] == '/' {
			return d.location[i+1:]
		}
	}
	return d.location
}

// Registered reports whether the device holds a registration now.
func (d *Device) Registered() bool { return d.isRegistered() }

func (d *Device) isRegistered() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.registered
}

// Package returns the length and SHA-256 of the last firmware package the
// device received whole in /5/0/0, pushed block-wise or written at once;
// size 0 when none.
func (d *Device) Package() (size int64, sum [sha256.Size]byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.pkgSize, d.pkgSum
}

// PushTaken counts the blocks of pushed packages a device took, over its
// life: a push resumed where the device was sends each byte once, one
// started again from the start sends the first blocks again.
type PushTaken struct {
	Blocks int   // blocks written (taken for the first time)
	Bytes  int64 // bytes written: each byte of a package once, unless it starts again
	// Repeats counts the blocks that came again after the device had
	// taken them (the server had not received the answer) and were
	// acknowledged without being written twice.
	Repeats int
	// Starts counts the pushes begun at block 0: more than one for one
	// package means it was sent again from the start.
	Starts int
}

// PushTaken returns what the device took of pushed packages so far.
func (d *Device) PushTaken() PushTaken {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.pushTaken
}

// Pulled returns the bytes of the pull download under way so far; 0
// when none is.
func (d *Device) Pulled() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.pull.got
}

// Value returns the device's value at a resource or resource-instance
// path; false if there is none (missing, executable, or a multiple
// resource asked for as a whole).
func (d *Device) Value(p node.Path) (node.Value, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.tree.value(p, time.Now())
}

// SetValue changes a value on the device as if the device itself had
// measured it, regardless of the resource's operations, and notifies the
// observers of it. A value that does not fit the resource's type, or a
// path that is not a resource of an existing instance, is logged and
// ignored.
func (d *Device) SetValue(p node.Path, v node.Value) {
	d.mu.Lock()
	changed, err := d.tree.write(p, []node.Record{{Path: p, Value: v}}, writeCreate)
	var out []*outgoing
	if err == nil {
		out = d.changedLocked(changed, time.Now())
	}
	d.mu.Unlock()
	if err != nil {
		d.log.Warn("set value refused", "path", p.String(), "err", err)
		return
	}
	d.emit(out)
}

// SetSilent makes the device stop (true) or resume (false) answering the
// server's requests. Its registration stays alive: Updates go on.
func (d *Device) SetSilent(silent bool) { d.silent.Store(silent) }

// Stop makes the device go silent without de-registering: no more
// Updates, answers or notifications, so the server sees its lifetime run
// out or its requests time out. A stopped device does not start again.
func (d *Device) Stop() {
	d.halt()
	d.mu.Lock()
	d.setRegisteredLocked(false)
	d.mu.Unlock()
	d.closeConn()
}

// Deregister de-registers the device and stops it.
func (d *Device) Deregister(ctx context.Context) error {
	d.halt()
	err := d.deregister(ctx)
	d.closeConn()
	return err
}

// start begins the device's life: register, then drift values.
func (d *Device) start() {
	d.mu.Lock()
	if d.needBS {
		d.want |= workBootstrap
	} else {
		d.want |= workRegister
	}
	d.mu.Unlock()
	d.sim.work.push(d)
	if iv := d.sim.cfg.NotifyInterval; iv > 0 {
		// A random phase spreads the devices' changes over the interval.
		d.sim.sched.after(d.changeTimer, time.Duration(d.rng.Int64N(int64(iv)))+1)
	}
	for i, g := range d.sim.groups {
		d.sim.sched.after(d.valTimers[i], time.Duration(d.rng.Int64N(int64(g.every)))+1)
	}
}

// halt stops every timed action and CON sender of the device and makes it
// refuse further work; the connection stays open for a de-registration.
func (d *Device) halt() {
	d.mu.Lock()
	d.stopped = true
	d.want = 0
	obs := d.obs
	d.obs = nil
	d.conQueue = nil
	d.sendQ = nil
	d.mu.Unlock()
	for _, o := range obs {
		d.sim.sched.stop(o.timer)
	}
	d.sim.sched.stop(d.regTimer)
	d.sim.sched.stop(d.changeTimer)
	d.sim.sched.stop(d.fwTimer)
	d.sim.sched.stop(d.bsTimer)
	for _, t := range d.valTimers {
		d.sim.sched.stop(t)
	}
}

// closeConn closes the device's connections to its servers.
func (d *Device) closeConn() {
	d.mu.Lock()
	l, bl := d.link, d.bsLink
	d.link, d.conn, d.bsLink, d.bsWaiting = nil, nil, nil, false
	d.mu.Unlock()
	for _, c := range []*link{l, bl} {
		if err := c.close(); err != nil {
			d.log.Debug("close connection", "err", err)
		}
	}
}

// setRegisteredLocked keeps the simulator's count of registered devices.
func (d *Device) setRegisteredLocked(r bool) {
	if d.registered == r {
		return
	}
	d.registered = r
	if r {
		d.sim.stats.registered.Add(1)
	} else {
		d.sim.stats.registered.Add(-1)
	}
}

// requestWork adds work bits and queues the device for a worker; with
// bits 0 it queues whatever the registration state calls for.
func (d *Device) requestWork(bits uint8) {
	d.mu.Lock()
	if d.stopped {
		d.mu.Unlock()
		return
	}
	if bits == 0 {
		switch {
		case d.needBS:
			bits = workBootstrap
		case d.registered:
			bits = workUpdate
		default:
			bits = workRegister
		}
	}
	d.want |= bits
	d.mu.Unlock()
	d.sim.work.push(d)
}

// doWork runs on a worker: the pending exchanges, most drastic first,
// until none is left. A device's exchanges never run concurrently: a
// worker that finds the device busy leaves the bits to the one running.
func (d *Device) doWork(ctx context.Context) {
	d.mu.Lock()
	if d.busy {
		d.mu.Unlock()
		return
	}
	d.busy = true
	d.mu.Unlock()
	for {
		d.mu.Lock()
		w := d.want
		d.want = 0
		if d.stopped || w == 0 || ctx.Err() != nil {
			d.busy = false
			d.mu.Unlock()
			return
		}
		d.mu.Unlock()
		var err error
		switch {
		case w&workDisable != 0:
			err = d.disable(ctx)
		case w&workBootstrap != 0:
			err = d.bootstrap(ctx) // registering follows the Bootstrap-Finish
		case w&workRegister != 0:
			err = d.register(ctx) // an Update is moot after a Register
		case w&workUpdate != 0:
			err = d.update(ctx)
		case w&workSend != 0:
			if err := d.sendQueued(ctx); err != nil {
				d.log.Debug("send failed", "err", err) // counted by send
			}
		}
		if w&workSend != 0 && w != workSend {
			// measurements wait for the registration exchange, not for
			// the next period
			d.mu.Lock()
			d.want |= workSend
			d.mu.Unlock()
		}
		if err != nil && ctx.Err() == nil && !errors.Is(err, errStopped) {
			d.sim.stats.errors.Add(1)
			d.log.Debug("registration exchange failed", "err", err)
			if w&(workBootstrap|workRegister) != 0 {
				d.fail(err)
			}
		}
	}
}

// backoff is the wait before retrying after n consecutive failures.
func backoff(n int) time.Duration {
	d := time.Second << min(n, 6)
	return jitter(min(d, time.Minute), 0.25)
}

// errStopped is returned for exchanges of a stopped device.
var errStopped = errors.New("device stopped")

// String names the device in logs and test failures.
func (d *Device) String() string { return fmt.Sprintf("device %s", d.endpoint) }

// Update makes the device send a registration Update soon, as a client does
// when its address or parameters changed.
func (d *Device) Update() { d.requestWork(workUpdate) }

// Updates is the number of the device's Updates the server answered with
// success.
func (d *Device) Updates() uint64 { return d.updates.Load() }

// Executed returns the arguments of the last Execute of the resource p,
// and whether it was executed at all.
func (d *Device) Executed(p node.Path) (args string, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	args, ok = d.execArgs[p]
	return args, ok
}
