package main

import (
	"bytes"
	"encoding/hex"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/registry"
)

func defaults() config {
	return config{devices: 10_000, sleeping: 0.5, awake: 5 * time.Second, every: time.Minute,
		method: "url", size: 64 << 10, ramp: 0.01, procs: 4, version: "1.0.1", name: "campaign"}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*config)
		want   string // a part of the error; empty: valid
	}{
		{"defaults", func(*config) {}, ""},
		{"every method", func(c *config) { c.method = "coaps" }, ""},
		{"unknown method", func(c *config) { c.method = "ftp" }, `-method "ftp": one of both, coap, coaps, http, https, push, url`},
		{"no devices", func(c *config) { c.devices = 0 }, "-devices 0"},
		{"more than one file holds", func(c *config) { c.devices = 100_001 }, "-devices 100001"},
		{"share above one", func(c *config) { c.sleeping = 1.5 }, "-sleeping 1.5"},
		{"awake as long as the interval", func(c *config) { c.awake = time.Minute }, "-awake 1m0s, -update-every 1m0s"},
		{"awake not in milliseconds", func(c *config) { c.awake = 1500 * time.Microsecond }, "whole milliseconds"},
		{"no sleepers: awake does not matter", func(c *config) { c.sleeping, c.awake = 0, 0 }, ""},
		{"one process for two kinds", func(c *config) { c.procs = 1 }, "-sim-processes 1: at least 2"},
		{"one process for one kind", func(c *config) { c.procs, c.sleeping = 1, 1 }, ""},
		{"empty package", func(c *config) { c.size = 0 }, "-size 0"},
		{"negative ramp", func(c *config) { c.ramp = -1 }, "-ramp -1"},
		{"version the simulator cannot read", func(c *config) { c.version = "1_0" }, `-version "1_0"`},
		{"every problem at once", func(c *config) { c.devices, c.method = 0, "" }, "-devices 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := defaults()
			tt.change(&c)
			err := c.validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && err == nil:
				t.Fatalf("accepted, want %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("error %q, want it to say %q", err, tt.want)
			}
		})
	}
	c := defaults()
	c.devices, c.method = 0, ""
	if err := c.validate(); !strings.Contains(err.Error(), "-method") {
		t.Errorf("every problem at once: %q does not name -method", err)
	}
}

func TestFleetAndSplit(t *testing.T) {
	tests := []struct {
		name      string
		devices   int
		sleeping  float64
		procs     int
		wantSleep int
		wantParts []int // devices per process, sleeping processes first
	}{
		{"half of 10,000 over 4", 10_000, 0.5, 4, 5000, []int{2500, 2500, 2500, 2500}},
		{"a quarter over 4", 1000, 0.25, 4, 250, []int{250, 250, 250, 250}},
		{"a tenth over 4: one process sleeps", 1000, 0.1, 4, 100, []int{100, 300, 300, 300}},
		{"most sleep over 2: one process each", 10, 0.9, 2, 9, []int{9, 1}},
		{"none sleep", 10, 0, 3, 0, []int{4, 3, 3}},
		{"all sleep", 10, 1, 2, 10, []int{5, 5}},
		{"more processes than devices", 3, 0.5, 8, 2, []int{1, 1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := defaults()
			c.devices, c.sleeping, c.procs = tt.devices, tt.sleeping, tt.procs
			devs := c.fleet()
			sleep := 0
			for i, d := range devs {
				if d.sleeping {
					sleep++
				}
				if j, ok := endpointIndex(d.endpoint); !ok || j != i || c.sleepingAt(j) != d.sleeping {
					t.Fatalf("device %d: endpoint %q reads back as %d, %v", i, d.endpoint, j, ok)
				}
			}
			if sleep != tt.wantSleep {
				t.Errorf("%d sleeping, want %d", sleep, tt.wantSleep)
			}
			var sizes []int
			seen := map[string]bool{}
			for _, part := range c.split(devs) {
				sizes = append(sizes, len(part))
				for _, d := range part {
					if d.sleeping != part[0].sleeping {
						t.Fatalf("a process mixes sleeping and always-online devices")
					}
					seen[d.endpoint] = true
				}
			}
			if !slices.Equal(sizes, tt.wantParts) || len(seen) != tt.devices {
				t.Errorf("parts %v holding %d devices, want %v holding %d", sizes, len(seen), tt.wantParts, tt.devices)
			}
		})
	}
	c := defaults()
	c.devices = 10
	devs := c.fleet()
	for i := 0; i+1 < len(devs); i += 2 {
		if devs[i].sleeping == devs[i+1].sleeping {
			t.Fatalf("half sleeping: devices %d and %d are alike; they should alternate", i, i+1)
		}
	}
}

// TestCSV parses the registration file as the agent does: every line
// valid, with the security, awake time and firmware parameters the
// method and the device's kind call for.
func TestCSV(t *testing.T) {
	for name, m := range methods {
		t.Run(name, func(t *testing.T) {
			c := defaults()
			c.devices, c.method = 6, name
			devs := c.fleet()
			res, err := registry.ParseCSV(bytes.NewReader(c.csv(devs, "127.0.0.1:5783", "127.0.0.1:5784")), registry.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Failed) > 0 || len(res.IgnoredColumns) > 0 {
				t.Fatalf("refused lines %v, ignored columns %v", res.Failed, res.IgnoredColumns)
			}
			if len(res.Devices) != len(devs) {
				t.Fatalf("%d devices, want %d", len(res.Devices), len(devs))
			}
			for i, d := range res.Devices {
				if d.EndpointID != devs[i].endpoint || d.FwUpdateDeliveryMethod != m.delivery || d.FwUpdateSupportedDeviceProtocol != m.protocol {
					t.Errorf("line %d: endpoint %q, firmware %q %q", d.Line, d.EndpointID, d.FwUpdateDeliveryMethod, d.FwUpdateSupportedDeviceProtocol)
				}
				wantMode, wantURI := registry.SecurityNoSec, "coap://127.0.0.1:5783"
				if m.psk {
					wantMode, wantURI = registry.SecurityPSK, "coaps://127.0.0.1:5784"
					if d.PSKID != d.EndpointID || hex.EncodeToString(d.PSKKey) != pskKey(d.EndpointID) {
						t.Errorf("line %d: PSK identity %q, key not the endpoint's", d.Line, d.PSKID)
					}
				}
				if d.SecurityMode != wantMode || d.ServerURI != wantURI {
					t.Errorf("line %d: %s at %s, want %s at %s", d.Line, d.SecurityMode, d.ServerURI, wantMode, wantURI)
				}
				switch {
				case devs[i].sleeping && (d.AwakeTime == nil || *d.AwakeTime != c.awake || d.BindingMode != "UQ"):
					t.Errorf("line %d: a sleeping device with awake time %v, binding %q", d.Line, d.AwakeTime, d.BindingMode)
				case !devs[i].sleeping && (d.AwakeTime != nil || d.BindingMode != "U"):
					t.Errorf("line %d: an always-online device with awake time %v, binding %q", d.Line, d.AwakeTime, d.BindingMode)
				}
			}
		})
	}
}

func TestSimArgs(t *testing.T) {
	c := defaults()
	c.method = "push"
	devs := c.fleet()
	sleepy := strings.Join(c.simArgs(devs[1:2], "s.csv", "127.0.1.1"), " ")
	online := strings.Join(c.simArgs(devs[0:1], "o.csv", "127.0.1.2"), " ")
	for _, want := range []string{"--csv s.csv", "--bind 127.0.1.1", "--fw-delivery push", "--awake 5s", "--update-every 1m0s", "--binding UQ", "--lifetime 1h0m0s"} {
		if !strings.Contains(sleepy, want) {
			t.Errorf("sleeping process %q lacks %q", sleepy, want)
		}
	}
	if strings.Contains(online, "--awake") || !strings.Contains(online, "--fw-delivery push") {
		t.Errorf("always-online process: %q", online)
	}
}

func TestPackageBytes(t *testing.T) {
	for _, size := range []int{1, 30, 64 << 10} {
		c := defaults()
		c.size = size
		b := c.packageBytes()
		if len(b) != size {
			t.Errorf("size %d: %d bytes", size, len(b))
		}
	}
	if b := defaults().packageBytes(); !bytes.HasPrefix(b, []byte("name=campaign version=1.0.1\n")) {
		t.Errorf("the package does not start with its name and version: %q", b[:40])
	}
}
