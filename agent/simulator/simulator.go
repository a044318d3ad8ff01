// Package simulator runs many simulated LwM2M clients in one process, for
// tests, benchmarks and people trying the server out.
//
// Each device owns one UDP socket. On it the device registers with the
// server (client role: Register, Update, De-register, Send) and answers the
// server's device-management requests (server role: Read, Write, Execute,
// Create, Delete, Discover, Write-Attributes, Observe) on a small object
// tree: Security, Server, Device, Connectivity Monitoring, Firmware Update,
// Location and one IPSO Temperature sensor whose value drifts over time;
// Config.Objects adds objects of the user's own (from DDF files) and
// says what their resources hold, how often they are measured, and
// whether each measurement goes out as a notification or a Send.
//
// The simulator is built to hold tens of thousands of devices: all timed
// work (updates, value changes, notification periods) runs from one
// scheduler goroutine, network exchanges that wait for an answer run on a
// bounded pool of workers, and go-coap's per-connection housekeeping shares
// one ticker. What remains per device are the two goroutines go-coap needs
// for each connection (reader and handler).
package simulator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	piondtls "github.com/pion/dtls/v3"

	"github.com/lwm2m-agent/lwm2m-agent/agent/codec"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/plgd-dev/go-coap/v3/pkg/runner/periodic"
)

// Config says what to simulate. Server is required unless every device
// has its own server or bootstraps; any other field left zero takes its
// default, except NotifyInterval, where zero means the values never change.
type Config struct {
	// Server is the LwM2M server: a CoAP address, "127.0.0.1:5783", or a
	// URI, "coap://127.0.0.1:5783" or "coaps://127.0.0.1:5784". A coaps
	// server needs the devices' PSK credentials (Devices).
	Server string
	// Bootstrap is the LwM2M bootstrap server URI ("coap://host:port" or
	// "coaps://host:port"). When set, devices without a bootstrap server
	// of their own start with a Client Initiated Bootstrap and register to
	// the server account it gives them.
	Bootstrap string
	// Devices lists the devices one by one, each with its endpoint and
	// credentials (a bulk registration file, for example). When set,
	// Count, Prefix and Start are not used.
	Devices []DeviceConfig
	// CipherSuites are the DTLS cipher suites devices offer, most
	// preferred first (default DefaultCipherSuites).
	CipherSuites []piondtls.CipherSuiteID
	// HandshakeTimeout bounds one DTLS handshake, retransmissions
	// included (default 10s).
	HandshakeTimeout time.Duration
	// BootstrapTimeout is how long a device waits for Bootstrap-Finish
	// after its Bootstrap-Request was accepted (default 60s).
	BootstrapTimeout time.Duration
	// Count is the number of devices (default 1).
	Count int
	// Prefix starts every endpoint name; endpoints are Prefix+"-"+index,
	// "sim-0" (default "sim").
	Prefix string
	// Start is the index of the first device.
	Start int
	// Version is the LwM2M version the devices register with: "1.0" (TLV
	// by default), "1.1" or "1.2" (SenML CBOR by default). Default "1.1".
	Version string
	// Format is the content format the devices declare at registration
	// (ct=) and answer reads in when the server names none: TLV for 1.0
	// and SenML CBOR for later versions by default. A 1.0 device may
	// declare the 1.0 JSON format (codec.LwM2MJSON) as many do.
	Format codec.Format
	// Strict10 makes the devices read writes and creates as strictly as
	// LwM2M 1.0 clients built on the specification's text do (wakaama's
	// reference client among them), refusing anything else with 4.00:
	// in LwM2M JSON the base name is the object or instance, ending in
	// "/", every entry names its resource in "n", and numbers come in
	// "v", booleans in "bv", object links in "ov", strings and opaque in
	// "sv"; a Create has a payload. By default the devices decode as
	// liberally as the agent does.
	Strict10 bool
	// Lifetime is the registration lifetime (default 300s). Devices send an
	// Update after about half of it, jittered so that many devices spread out.
	Lifetime time.Duration
	// NotifyInterval is how often the changing values (temperature, signal
	// strength) move, and so how often their observers hear of them; 0 (or
	// negative) means never. DefaultNotifyInterval is what the CLI offers.
	NotifyInterval time.Duration
	// AwakeTime makes the devices sleep: they register with at=<ms>, and
	// their radio is on only while they send a Register or Update and for
	// AwakeTime after its answer; requests of the server at other times
	// are dropped without a word. 0 keeps them always listening.
	AwakeTime time.Duration
	// UpdateEvery is the period of the devices' Updates (jittered by 10%);
	// 0 sends them after about half the lifetime. It must be shorter than
	// the lifetime.
	UpdateEvery time.Duration
	// Record keeps, per device, the last Record requests of the server
	// and awake windows, for Device.Requests and Device.Wakeups; 0 keeps
	// none.
	Record int
	// NotifyCON sends notifications as confirmable messages (default
	// non-confirmable).
	NotifyCON bool
	// Binding is the binding mode (default "U").
	Binding string
	// RegisterRate limits registrations per second across all devices;
	// 0 registers as fast as Concurrency allows.
	RegisterRate float64
	// Concurrency bounds the registrations and updates in flight (default 64).
	Concurrency int
	// Bind is the local IP address the devices' sockets use (default: any).
	// Each address has its own port range, so load runs of many tens of
	// thousands of devices spread them over several loopback addresses.
	Bind string
	// Firmware governs the devices' firmware update object: delivery
	// methods, pull protocols, flash size and injected failures; see
	// FirmwareConfig and DeviceConfig.Firmware.
	Firmware FirmwareConfig
	// Objects gives the devices objects of their own (from DDF files)
	// and says what resources hold, how often they are measured and how
	// they are reported (LoadObjects reads them from a file).
	Objects Objects
	// Logger receives the simulator's logs (default: discarded).
	Logger *slog.Logger
}

// DeviceConfig is one device of Config.Devices.
type DeviceConfig struct {
	// Endpoint is the device's endpoint client name (required, unique).
	Endpoint string
	// ServerURI is the LwM2M server the device is factory-bootstrapped
	// for ("coap://host:port" or "coaps://host:port"); empty means
	// Config.Server. Not used when the device bootstraps.
	ServerURI string
	// PSKIdentity and PSK are the device's DTLS credentials for a coaps
	// ServerURI.
	PSKIdentity string
	PSK         []byte
	// BootstrapURI is the bootstrap server; empty means Config.Bootstrap.
	// A device with a bootstrap server bootstraps before it registers.
	BootstrapURI string
	// BootstrapPSKIdentity and BootstrapPSK are the DTLS credentials for a
	// coaps BootstrapURI.
	BootstrapPSKIdentity string
	BootstrapPSK         []byte
	// NoConnectionID makes the device's DTLS sessions go without a
	// Connection ID (RFC 9146), as devices whose stack predates it do:
	// the server knows the session by the device's address alone. By
	// default the device uses the Connection ID the server gives it.
	NoConnectionID bool
	// Firmware, when set, governs this device's firmware update object
	// instead of Config.Firmware (whose Cancel holds for every device).
	Firmware *FirmwareConfig
}

// Defaults of Config.
const (
	DefaultLifetime         = 300 * time.Second
	DefaultNotifyInterval   = time.Second
	DefaultConcurrency      = 64
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultBootstrapTimeout = 60 * time.Second
)

// DefaultCipherSuites are the PSK cipher suites LwM2M requires of clients
// (Transport TS 1.1, 5.2.8.1: TLS_PSK_WITH_AES_128_CCM_8 mandatory,
// TLS_PSK_WITH_AES_128_CBC_SHA256 recommended), in that order.
var DefaultCipherSuites = []piondtls.CipherSuiteID{
	piondtls.TLS_PSK_WITH_AES_128_CCM_8,
	piondtls.TLS_PSK_WITH_AES_128_CBC_SHA256,
}

// maxRecord bounds Config.Record: each entry costs every device memory.
const maxRecord = 4096

// maxDevices bounds Count: every device holds a socket.
const maxDevices = 1_000_000

func (c Config) withDefaults() Config {
	if c.Count == 0 {
		c.Count = 1
	}
	if len(c.Devices) > 0 {
		c.Count = len(c.Devices)
	}
	if len(c.CipherSuites) == 0 {
		c.CipherSuites = DefaultCipherSuites
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.BootstrapTimeout == 0 {
		c.BootstrapTimeout = DefaultBootstrapTimeout
	}
	if c.Prefix == "" {
		c.Prefix = "sim"
	}
	if c.Version == "" {
		c.Version = "1.1"
	}
	if c.Format == 0 {
		c.Format = codec.SenMLCBOR
		if c.Version == "1.0" {
			c.Format = codec.TLV
		}
	}
	if c.Lifetime == 0 {
		c.Lifetime = DefaultLifetime
	}
	if c.Binding == "" {
		c.Binding = "U"
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Firmware = c.Firmware.withDefaults()
	return c
}

// Validate reports the first setting that cannot work, prefixed with its
// name.
func (c Config) Validate() error {
	c = c.withDefaults()
	if c.Server != "" && !strings.Contains(c.Server, "://") {
		if _, _, err := net.SplitHostPort(c.Server); err != nil {
			return fmt.Errorf("server: %w", err)
		}
	}
	if c.Server != "" {
		if _, err := parseServerURI(serverURI(c.Server)); err != nil {
			return fmt.Errorf("server: %w", err)
		}
	}
	if c.Bootstrap != "" {
		if _, err := parseServerURI(c.Bootstrap); err != nil {
			return fmt.Errorf("bootstrap: %w", err)
		}
	}
	if len(c.Devices) == 0 && c.Server == "" && c.Bootstrap == "" {
		return errors.New("server: required")
	}
	if len(c.Devices) == 0 {
		// Numbered devices share the configuration: one stands for all.
		if err := (DeviceConfig{Endpoint: c.Prefix}).Validate(c); err != nil {
			return fmt.Errorf("%w (numbered devices have no PSK credentials: use Devices)", err)
		}
	}
	seen := make(map[string]bool, len(c.Devices))
	for i, dc := range c.Devices {
		if err := dc.Validate(c); err != nil {
			return fmt.Errorf("device %d (%s): %w", i, dc.Endpoint, err)
		}
		if dc.Firmware != nil {
			if err := dc.Firmware.validate(); err != nil {
				return fmt.Errorf("device %d (%s): %w", i, dc.Endpoint, err)
			}
		}
		if seen[dc.Endpoint] {
			return fmt.Errorf("device %d: endpoint %q appears twice", i, dc.Endpoint)
		}
		seen[dc.Endpoint] = true
	}
	if c.HandshakeTimeout < 0 || c.BootstrapTimeout < 0 {
		return errors.New("timeouts: negative")
	}
	if err := c.Firmware.validate(); err != nil {
		return err
	}
	for _, cs := range c.CipherSuites {
		if cs != piondtls.TLS_PSK_WITH_AES_128_CCM_8 && cs != piondtls.TLS_PSK_WITH_AES_128_CBC_SHA256 &&
			cs != piondtls.TLS_PSK_WITH_AES_128_CCM && cs != piondtls.TLS_PSK_WITH_AES_128_GCM_SHA256 {
			return fmt.Errorf("cipher suites: %v is not a PSK suite", cs)
		}
	}
	if c.Count < 0 || c.Count > maxDevices {
		return fmt.Errorf("count: %d is not between 1 and %d", c.Count, maxDevices)
	}
	if c.Start < 0 {
		return fmt.Errorf("start: %d is negative", c.Start)
	}
	switch c.Version {
	case "1.0", "1.1", "1.2":
	default:
		return fmt.Errorf("version: %q is not 1.0, 1.1 or 1.2", c.Version)
	}
	if !codec.CarriesInstance(c.Format) {
		return fmt.Errorf("format: %v cannot answer reads of instances; TLV, SenML JSON, SenML CBOR or LwM2M JSON", c.Format)
	}
	if c.Lifetime < time.Second {
		return fmt.Errorf("lifetime: %v is shorter than a second", c.Lifetime)
	}
	if c.AwakeTime < 0 || c.AwakeTime > time.Duration(math.MaxUint32)*time.Millisecond {
		return fmt.Errorf("awake time: %v is negative or too long", c.AwakeTime)
	}
	if c.UpdateEvery < 0 || (c.UpdateEvery > 0 && c.UpdateEvery*11/10 >= c.Lifetime) {
		return fmt.Errorf("update every: %v must be shorter than the lifetime %v, jitter included", c.UpdateEvery, c.Lifetime)
	}
	if c.AwakeTime > 0 && c.UpdateEvery > 0 && c.AwakeTime >= c.UpdateEvery*9/10 {
		return fmt.Errorf("awake time: %v leaves no time asleep between Updates every %v", c.AwakeTime, c.UpdateEvery)
	}
	if c.Record < 0 || c.Record > maxRecord {
		return fmt.Errorf("record: %d is not between 0 and %d", c.Record, maxRecord)
	}
	switch c.Binding {
	case "U", "UQ", "UQS", "US":
	default:
		return fmt.Errorf("binding: %q is not a UDP binding (U, UQ)", c.Binding)
	}
	if c.RegisterRate < 0 {
		return fmt.Errorf("register rate: %v is negative", c.RegisterRate)
	}
	if c.Concurrency < 0 {
		return fmt.Errorf("concurrency: %d is negative", c.Concurrency)
	}
	if c.Bind != "" && net.ParseIP(c.Bind) == nil {
		return fmt.Errorf("bind: %q is not an IP address", c.Bind)
	}
	if err := c.Objects.validate(c.Version); err != nil {
		return fmt.Errorf("objects: %w", err)
	}
	return nil
}

// Stats counts what the simulator did since it started.
type Stats struct {
	Registered      int    // devices registered now
	Registrations   uint64 // successful Registers
	Updates         uint64 // successful Updates
	Deregistrations uint64 // successful De-registers
	Requests        uint64 // server requests answered
	Notifications   uint64 // notifications sent
	Sends           uint64 // Send operations acknowledged
	Measurements    uint64 // values of Config.Objects measured anew
	Bootstraps      uint64 // bootstraps that ended with an accepted Bootstrap-Finish
	Handshakes      uint64 // full DTLS handshakes completed
	Errors          uint64 // failed exchanges and refused requests
}

type counters struct {
	registered      atomic.Int64
	registrations   atomic.Uint64
	updates         atomic.Uint64
	deregistrations atomic.Uint64
	requests        atomic.Uint64
	notifications   atomic.Uint64
	sends           atomic.Uint64
	measurements    atomic.Uint64
	bootstraps      atomic.Uint64
	handshakes      atomic.Uint64
	errors          atomic.Uint64
}

// Simulator runs a set of simulated devices.
type Simulator struct {
	cfg     Config
	log     *slog.Logger
	devices []*Device
	byName  map[string]*Device

	tmpl *template
	objs *objTable
	// specs are Config.Objects.Resources, measured in groups; given
	// holds their paths, whose values the simulator no longer moves or
	// draws itself.
	specs   []Resource
	groups  []*valueGroup
	given   map[node.Path]bool
	sched   *scheduler
	work    *workQueue
	pace    *pacer
	stats   counters
	running atomic.Bool

	// unsettled counts the devices without a first outcome (registered,
	// or failed once); settled closes when it reaches zero.
	unsettled atomic.Int64
	settled   chan struct{}

	// runCtx lives from Run until the devices have de-registered; the
	// connections and the scheduler stop with it.
	runCtx   context.Context
	periodic periodic.Func
	wg       sync.WaitGroup // workers, scheduler and CON senders
}

// New prepares the devices of cfg; nothing touches the network until Run.
func New(cfg Config) (*Simulator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("simulator config: %w", err)
	}
	cfg = cfg.withDefaults()
	s := &Simulator{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "simulator"),
		byName:  make(map[string]*Device, cfg.Count),
		sched:   newScheduler(),
		work:    newWorkQueue(),
		pace:    newPacer(cfg.RegisterRate),
		settled: make(chan struct{}),
	}
	s.objs = cfg.Objects.table()
	s.specs, s.groups = cfg.Objects.Resources, cfg.Objects.groups()
	s.given = make(map[node.Path]bool, len(s.specs))
	for _, r := range s.specs {
		s.given[r.Path] = true
	}
	tmpl := newTemplate(cfg, s.objs)
	s.tmpl = tmpl
	s.devices = make([]*Device, cfg.Count)
	for i := range cfg.Count {
		idx := cfg.Start + i
		var dc DeviceConfig
		if len(cfg.Devices) > 0 {
			dc = cfg.Devices[i]
		} else {
			dc.Endpoint = cfg.Prefix + "-" + strconv.Itoa(idx)
		}
		dc = dc.withDefaults(cfg)
		d := newDevice(s, dc, idx, tmpl)
		s.devices[i] = d
		s.byName[dc.Endpoint] = d
	}
	s.unsettled.Store(int64(cfg.Count))
	return s, nil
}

// Settled is closed once every device has had a first outcome: it
// registered, or a bootstrap or registration attempt failed (the device
// goes on retrying). Device.Err tells which.
func (s *Simulator) Settled() <-chan struct{} { return s.settled }

// Failures lists the devices that are not registered now and whose last
// bootstrap or registration attempt failed, in index order.
func (s *Simulator) Failures() []*Device {
	var out []*Device
	for _, d := range s.devices {
		if !d.Registered() && d.Err() != nil {
			out = append(out, d)
		}
	}
	return out
}

// Endpoints lists the devices' endpoint names in index order.
func (s *Simulator) Endpoints() []string {
	eps := make([]string, len(s.devices))
	for i, d := range s.devices {
		eps[i] = d.endpoint
	}
	return eps
}

// Device returns the device with the given endpoint name, or nil.
func (s *Simulator) Device(endpoint string) *Device { return s.byName[endpoint] }

// Registered is the number of devices registered now.
func (s *Simulator) Registered() int { return int(s.stats.registered.Load()) }

// Stats returns the counters so far.
func (s *Simulator) Stats() Stats {
	return Stats{
		Registered:      s.Registered(),
		Registrations:   s.stats.registrations.Load(),
		Updates:         s.stats.updates.Load(),
		Deregistrations: s.stats.deregistrations.Load(),
		Requests:        s.stats.requests.Load(),
		Notifications:   s.stats.notifications.Load(),
		Sends:           s.stats.sends.Load(),
		Measurements:    s.stats.measurements.Load(),
		Bootstraps:      s.stats.bootstraps.Load(),
		Handshakes:      s.stats.handshakes.Load(),
		Errors:          s.stats.errors.Load(),
	}
}

// deregisterTimeout bounds the whole de-registration at shutdown.
const deregisterTimeout = 3 * time.Second

// housekeepingTick is how often go-coap's per-connection housekeeping
// (retransmissions, expired exchanges) runs for all connections together.
const housekeepingTick = 250 * time.Millisecond

// Run registers every device, keeps the registrations alive, answers the
// server's requests and sends notifications until ctx is done. Then each
// registered device de-registers (best effort, within a few seconds) and
// Run returns. A Simulator runs once.
func (s *Simulator) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("simulator: already ran")
	}
	runCtx, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRun()
	s.runCtx = runCtx
	s.periodic = periodic.New(runCtx.Done(), housekeepingTick)

	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.sched.run(runCtx)
	}()
	workers := s.cfg.Concurrency
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0) * 16
	}
	for range workers {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.worker(ctx)
		}()
	}
	s.log.Info("starting devices", "count", len(s.devices), "server", s.cfg.Server, "bootstrap", s.cfg.Bootstrap, "lwm2m", s.cfg.Version)
	for _, d := range s.devices {
		d.start()
	}

	<-ctx.Done()
	s.work.close()
	s.shutdown()
	stopRun()
	s.wg.Wait()
	for _, d := range s.devices {
		d.closeConn()
	}
	s.log.Info("stopped", "stats", fmt.Sprintf("%+v", s.Stats()))
	return nil
}

// shutdown de-registers every registered device with bounded concurrency
// and a shared deadline.
func (s *Simulator) shutdown() {
	dctx, cancel := context.WithTimeout(s.runCtx, deregisterTimeout)
	defer cancel()
	n := s.cfg.Concurrency
	if n <= 0 {
		n = DefaultConcurrency
	}
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	for _, d := range s.devices {
		d.halt()
		if !d.isRegistered() {
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-dctx.Done():
		}
		if dctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := d.deregister(dctx); err != nil {
				s.log.Debug("de-register at shutdown", "endpoint", d.endpoint, "err", err)
			}
		}()
	}
	wg.Wait()
}

// jitter returns d scaled by a random factor in [1-f, 1+f].
func jitter(d time.Duration, f float64) time.Duration {
	return time.Duration(float64(d) * (1 - f + 2*f*rand.Float64()))
}
