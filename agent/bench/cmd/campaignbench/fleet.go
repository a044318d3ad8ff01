package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// method is how a delivery method of the bench shows in the registration
// file (what the agent reads of the device) and in the simulator's
// firmware flags (what the device reports in /5/0/8 and /5/0/9 and takes).
type method struct {
	delivery     string // fwUpdateDeliveryMethod
	protocol     string // fwUpdateSupportedDeviceProtocol; empty: not set
	simDelivery  string // --fw-delivery
	simProtocols string // --fw-protocols
	psk          bool   // the devices register over DTLS with a PSK of their own
	external     bool   // the package is the bench's HTTP URL, not an agent binary
}

var methods = map[string]method{
	"push":  {delivery: "PUSH", simDelivery: "push", simProtocols: "coap"},
	"coap":  {delivery: "PULL", protocol: "COAP", simDelivery: "pull", simProtocols: "coap"},
	"coaps": {delivery: "PULL", protocol: "COAPS", simDelivery: "pull", simProtocols: "coaps", psk: true},
	"http":  {delivery: "PULL", protocol: "HTTP", simDelivery: "pull", simProtocols: "http"},
	"https": {delivery: "PULL", protocol: "HTTPS", simDelivery: "pull", simProtocols: "https"},
	"both":  {delivery: "BOTH", protocol: "COAP", simDelivery: "both", simProtocols: "coap"},
	"url":   {delivery: "PULL", protocol: "HTTP", simDelivery: "pull", simProtocols: "http", external: true},
}

func methodNames() string {
	names := make([]string, 0, len(methods))
	for n := range methods {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// config is what the flags say of the fleet and the campaign.
type config struct {
	devices  int
	sleeping float64 // share of the devices that sleep
	awake    time.Duration
	every    time.Duration // a sleeping device's Update interval
	method   string
	size     int     // package bytes
	ramp     float64 // seconds between two devices' operations
	procs    int     // simulator processes
	version  string
	name     string
}

// validate reports every problem of the flags at once.
func (c config) validate() error {
	var errs []error
	if c.devices < 1 || c.devices > 100_000 {
		errs = append(errs, fmt.Errorf("-devices %d: 1 to 100000 (one registration file, one group)", c.devices))
	}
	if c.sleeping < 0 || c.sleeping > 1 || math.IsNaN(c.sleeping) {
		errs = append(errs, fmt.Errorf("-sleeping %v: a share from 0 to 1", c.sleeping))
	}
	if _, ok := methods[c.method]; !ok {
		errs = append(errs, fmt.Errorf("-method %q: one of %s", c.method, methodNames()))
	}
	if c.size < 1 {
		errs = append(errs, fmt.Errorf("-size %d: at least one byte", c.size))
	}
	if c.ramp < 0 || c.ramp > 86400 {
		errs = append(errs, fmt.Errorf("-ramp %v: 0 to 86400 seconds", c.ramp))
	}
	if c.sleepers() > 0 {
		if c.awake <= 0 || c.every <= c.awake {
			errs = append(errs, fmt.Errorf("-awake %v, -update-every %v: a sleeping device is awake a while, less than its Update interval", c.awake, c.every))
		}
		if c.awake%time.Millisecond != 0 {
			errs = append(errs, fmt.Errorf("-awake %v: whole milliseconds (awakeTimeRegistrationParameter)", c.awake))
		}
	}
	kinds := 0
	if c.sleepers() > 0 {
		kinds++
	}
	if c.sleepers() < c.devices {
		kinds++
	}
	if c.procs < kinds {
		errs = append(errs, fmt.Errorf("-sim-processes %d: at least %d, one for sleeping and one for always-online devices (their simulator flags differ)", c.procs, kinds))
	}
	if c.version == "" || strings.ContainsAny(c.version, "_/ ") {
		errs = append(errs, fmt.Errorf("-version %q: not empty, without '_', '/' or spaces (the simulator reads it from the package's file name)", c.version))
	}
	if c.name == "" || strings.ContainsAny(c.name, "_/ ") {
		errs = append(errs, fmt.Errorf("-name %q: not empty, without '_', '/' or spaces", c.name))
	}
	return errors.Join(errs...)
}

// sleepers is how many devices sleep.
func (c config) sleepers() int {
	return int(math.Round(c.sleeping * float64(c.devices)))
}

// device is one simulated device of the fleet.
type device struct {
	endpoint string
	sleeping bool
}

// fleet lists the devices, the sleeping ones spread evenly among the
// others so that the group's order, which is the creation ramp's,
// alternates between them.
func (c config) fleet() []device {
	devs := make([]device, c.devices)
	for i := range devs {
		devs[i] = device{endpoint: endpointPrefix + strconv.Itoa(i), sleeping: c.sleepingAt(i)}
	}
	return devs
}

const endpointPrefix = "camp-"

// sleepingAt tells whether the i-th device sleeps: one in every
// 1/sleeping, evenly.
func (c config) sleepingAt(i int) bool {
	s := c.sleepers()
	return (i+1)*s/c.devices > i*s/c.devices
}

// endpointIndex is the i of a device's endpoint.
func endpointIndex(endpoint string) (int, bool) {
	n, ok := strings.CutPrefix(endpoint, endpointPrefix)
	i, err := strconv.Atoi(n)
	return i, ok && err == nil && i >= 0
}

// split spreads the devices over the simulator processes: sleeping and
// always-online devices apart, each kind over a number of processes in
// proportion to its count (at least one).
func (c config) split(devs []device) [][]device {
	var sleep, online []device
	for _, d := range devs {
		if d.sleeping {
			sleep = append(sleep, d)
		} else {
			online = append(online, d)
		}
	}
	ps := 0
	switch {
	case len(sleep) == 0:
	case len(online) == 0:
		ps = c.procs
	default:
		ps = min(c.procs-1, max(1, int(math.Round(float64(c.procs)*float64(len(sleep))/float64(len(devs))))))
	}
	return append(chunks(sleep, ps), chunks(online, c.procs-ps)...)
}

// chunks cuts devs into n parts whose sizes differ by one at most; none
// when devs is empty.
func chunks(devs []device, n int) [][]device {
	if len(devs) == 0 || n < 1 {
		return nil
	}
	n = min(n, len(devs))
	out := make([][]device, 0, n)
	for p, start := 0, 0; p < n; p++ {
		size := len(devs)/n + min(1, max(0, len(devs)%n-p))
		out = append(out, devs[start:start+size])
		start += size
	}
	return out
}

// credentials are every device's; the import checks their strength.
const credentials = "Campaign-pass-1!"

var csvHeader = []string{
	"ID", "IDTYPE", "CREDENTIALS", "TYPE", "endpoint id", "lwm2m server uri", "securityMode",
	"lwm2m psk_id", "lwm2m psk_key", "awakeTimeRegistrationParameter", "bindingMode",
	"fwUpdateDeliveryMethod", "fwUpdateSupportedDeviceProtocol", "fwUpdateResetMechanism",
}

// pskKey is a device's key: derived from its endpoint, so that the
// registration file and the simulators' files agree without keeping it.
func pskKey(endpoint string) string {
	sum := sha256.Sum256([]byte("campaignbench " + endpoint))
	return hex.EncodeToString(sum[:16])
}

// csv is the bulk registration file of devs (';'-separated): NO_SEC
// devices at coap, or PSK devices at coaps for a method that needs
// them; the sleeping ones in queue mode with their awake time.
func (c config) csv(devs []device, coap, coaps string) []byte {
	m := methods[c.method]
	var b bytes.Buffer
	b.WriteString(strings.Join(csvHeader, ";") + "\n")
	for _, d := range devs {
		server, mode, pskID, key := "coap://"+coap, "NO_SEC", "", ""
		if m.psk {
			server, mode, pskID, key = "coaps://"+coaps, "PSK", d.endpoint, pskKey(d.endpoint)
		}
		awake, binding := "", "U"
		if d.sleeping {
			awake, binding = strconv.FormatInt(c.awake.Milliseconds(), 10), "UQ"
		}
		b.WriteString(strings.Join([]string{
			d.endpoint, "c8y_Id", credentials, "c8y_lwm2m", d.endpoint, server, mode,
			pskID, key, awake, binding, m.delivery, m.protocol, "PACKAGE_URI",
		}, ";") + "\n")
	}
	return b.Bytes()
}

// simArgs are the arguments of the simulator process of devs, reading
// its devices from the registration file at csvPath, its sockets on
// bind.
func (c config) simArgs(devs []device, csvPath, bind string) []string {
	m := methods[c.method]
	lifetime := time.Hour
	args := []string{"simulate", "--csv", csvPath, "--bind", bind,
		"--notify-interval", "0", "--stats-every", "1h", "--log-level", "error",
		"--fw-delivery", m.simDelivery, "--fw-protocols", m.simProtocols}
	if len(devs) > 0 && devs[0].sleeping {
		lifetime = max(lifetime, 3*c.every)
		args = append(args, "--awake", c.awake.String(), "--update-every", c.every.String(), "--binding", "UQ")
	}
	return append(args, "--lifetime", lifetime.String())
}

// packageBytes is the firmware package: its first line names it (as
// some clients read it), the rest a pattern that does not compress to
// nothing.
func (c config) packageBytes() []byte {
	b := make([]byte, 0, c.size)
	b = append(b, fmt.Sprintf("name=%s version=%s\n", c.name, c.version)...)
	for i := 0; len(b) < c.size; i++ {
		b = append(b, byte(i*7+i>>8))
	}
	return b[:c.size]
}
