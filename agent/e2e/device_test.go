package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/simulator"
)

// The device-management round trip that an operator sees, for both
// content-format families: LwM2M 1.0 devices speak TLV, 1.1 and 1.2 SenML
// CBOR (a 1.2 client refused at registration might never fall back).
func TestDeviceManagement(t *testing.T) {
	for _, version := range []string{"1.0", "1.1", "1.2"} {
		t.Run("lwm2m-"+version, func(t *testing.T) {
			h := startAgent(t)
			sim := h.simulate(1, func(c *simulator.Config) { c.Version = version })
			ep := sim.Endpoints()[0]

			var mo managedObject
			h.eventually(5*time.Second, func() error {
				mo = h.device(ep)
				if got := mo.str("c8y_Availability", "status"); got != "AVAILABLE" {
					return fmt.Errorf("availability %q, want AVAILABLE", got)
				}
				return nil
			})
			id := mo.str("id")
			if got := mo.str("lwm2m", "lwm2mVersion"); got != version {
				t.Errorf("lwm2mVersion %q, want %s", got, version)
			}
			objs, _ := mo["lwm2m"].(map[string]any)["objects"].([]any)
			for _, want := range []string{"/3/0", "/3303/0", "/1/0"} {
				if !slices.Contains(objs, any(want)) {
					t.Errorf("objects %v lack %s", objs, want)
				}
			}
			if evs := h.events(id, "c8y_LWM2MDeviceRegistration"); len(evs) != 1 {
				t.Errorf("%d registration events, want 1", len(evs))
			}

			op := h.shell(id, "read /3/0", 10*time.Second)
			if op.Status != "SUCCESSFUL" {
				t.Fatalf("read /3/0: %s: %s", op.Status, op.FailureReason)
			}
			for _, want := range []string{"/3/0/0 (Manufacturer) = lwm2m-agent", "/3/0/1 (Model Number) = simulator", "/3/0/2 (Serial Number) = " + ep} {
				if !strings.Contains(op.Command.Result, want) {
					t.Errorf("read /3/0 result lacks %q:\n%s", want, op.Command.Result)
				}
			}

			op = h.shell(id, "write /3/0/14 +02:00", 10*time.Second)
			if op.Status != "SUCCESSFUL" {
				t.Fatalf("write: %s: %s", op.Status, op.FailureReason)
			}
			if v, _ := sim.Device(ep).Value(node.MustParsePath("/3/0/14")); v.Str != "+02:00" {
				t.Errorf("device holds /3/0/14 = %q after the write", v.Str)
			}
			op = h.shell(id, "read /3/0/14", 10*time.Second)
			if op.Status != "SUCCESSFUL" || !strings.Contains(op.Command.Result, "= +02:00") {
				t.Errorf("read after write: %s %q %s", op.Status, op.Command.Result, op.FailureReason)
			}

			op = h.shell(id, "execute /3/0/4", 10*time.Second)
			if op.Status != "SUCCESSFUL" {
				t.Errorf("execute /3/0/4: %s: %s", op.Status, op.FailureReason)
			}

			op = h.shell(id, "write /3/0/0 other", 10*time.Second)
			if op.Status != "FAILED" || !strings.Contains(op.FailureReason, "4.05") {
				t.Errorf("write to read-only /3/0/0: %s %q, want FAILED with 4.05", op.Status, op.FailureReason)
			}

			op = h.shell(id, "discover /3/0", 10*time.Second)
			if op.Status != "SUCCESSFUL" || !strings.Contains(op.Command.Result, "</3/0/0>") {
				t.Errorf("discover /3/0: %s %q %s", op.Status, op.Command.Result, op.FailureReason)
			}
		})
	}
}

func TestObserveAndCancel(t *testing.T) {
	h := startAgent(t)
	sim := h.simulate(1, func(c *simulator.Config) { c.Bind = "127.0.0.3" })
	ep := sim.Endpoints()[0]
	var mo managedObject
	h.eventually(5*time.Second, func() error {
		if mo = h.device(ep); mo.str("lwm2m", "address") == "" {
			return fmt.Errorf("no registration stored yet")
		}
		return nil
	})
	id := mo.str("id")
	if addr := mo.str("lwm2m", "address"); !strings.HasPrefix(addr, "127.0.0.3:") {
		t.Errorf("device address %q, want the simulator's bind address 127.0.0.3", addr)
	}

	op := h.shell(id, "observe /3303/0/5700", 10*time.Second)
	if op.Status != "SUCCESSFUL" {
		t.Fatalf("observe: %s: %s", op.Status, op.FailureReason)
	}
	// Values change every 100 ms on the device; the objects view must follow.
	seen := map[string]bool{}
	h.eventually(10*time.Second, func() error {
		v, _ := h.objectValue(id, "/3303/0/5700")
		if v != "" {
			seen[v] = true
		}
		if len(seen) < 3 {
			return fmt.Errorf("objects view showed %d distinct values of /3303/0/5700 so far", len(seen))
		}
		return nil
	})

	op = h.shell(id, "cancelobservation /3303/0/5700", 10*time.Second)
	if op.Status != "SUCCESSFUL" {
		t.Fatalf("cancelobservation: %s: %s", op.Status, op.FailureReason)
	}
	// After the cancel nothing more is accepted and the stored value stays.
	// Notifications in flight may still land and the last known values are
	// coalesced per device over a second, so a change in the first look is
	// no failure; one in every look for 15 s is. Each look spans more than
	// the coalescing second and ten changes of the value on the device.
	h.eventually(15*time.Second, func() error {
		before, _ := h.objectValue(id, "/3303/0/5700")
		n0 := h.agent.Server.Stats().Notifications
		time.Sleep(1200 * time.Millisecond)
		after, _ := h.objectValue(id, "/3303/0/5700")
		if n := h.agent.Server.Stats().Notifications - n0; n != 0 {
			return fmt.Errorf("%d notifications accepted after the cancel", n)
		}
		if before != after {
			return fmt.Errorf("value kept changing after cancel: %s then %s", before, after)
		}
		return nil
	})
}

func TestDeregisterAndExpiry(t *testing.T) {
	h := startAgent(t)
	sim := h.simulate(2, func(c *simulator.Config) { c.Lifetime = 2 * time.Second })
	eps := sim.Endpoints()

	// A clean de-registration.
	goneID := h.device(eps[0]).str("id")
	if err := sim.Device(eps[0]).Deregister(h.ctx); err != nil {
		t.Fatalf("deregister: %v", err)
	}
	h.eventually(5*time.Second, func() error {
		if got := h.device(eps[0]).str("c8y_Availability", "status"); got != "UNAVAILABLE" {
			return fmt.Errorf("after de-register: %s", got)
		}
		if len(h.events(goneID, "c8y_LWM2MDeviceDeRegistration")) != 1 {
			return fmt.Errorf("no de-registration event yet")
		}
		return nil
	})

	// A device that goes silent: its lifetime runs out.
	silentID := h.device(eps[1]).str("id")
	sim.Device(eps[1]).Stop()
	h.eventually(15*time.Second, func() error {
		if got := h.device(eps[1]).str("c8y_Availability", "status"); got != "UNAVAILABLE" {
			return fmt.Errorf("after silence: %s", got)
		}
		if len(h.events(silentID, "c8y_LWM2MDeviceRegistrationExpired")) != 1 {
			return fmt.Errorf("no expiry event yet")
		}
		return nil
	})
}

func TestSilentDeviceTimesOut(t *testing.T) {
	// One attempt: a timed-out request fails the operation at once
	// instead of waiting for the device's next Update.
	h := startAgent(t, withRequestTimeout(1*time.Second), withOperationAttempts(1))
	sim := h.simulate(1, nil)
	ep := sim.Endpoints()[0]
	id := h.device(ep).str("id")
	sim.Device(ep).SetSilent(true)
	op := h.shell(id, "read /3/0", 20*time.Second)
	if op.Status != "FAILED" || !strings.Contains(strings.ToLower(op.FailureReason), "timeout") {
		t.Errorf("read from a silent device: %s %q, want FAILED with a timeout reason", op.Status, op.FailureReason)
	}
}

func TestMalformedShellCommand(t *testing.T) {
	h := startAgent(t)
	sim := h.simulate(1, nil)
	id := h.device(sim.Endpoints()[0]).str("id")
	for _, text := range []string{"raed /3/0", "write /3/0", "execute", "read /3/x/1", "writeattr /3/0/9 pmin=20&pmax=10"} {
		var e struct{ Error, Message string }
		code := h.call("POST", "/devicecontrol/operations", map[string]any{"deviceId": id, "c8y_Command": map[string]string{"text": text}}, &e)
		if code != 422 || e.Message == "" {
			t.Errorf("%q: HTTP %d %q, want 422 with a message", text, code, e.Message)
		}
	}
	var list struct {
		Operations []operation `json:"operations"`
	}
	h.call("GET", "/devicecontrol/operations?deviceId="+id, nil, &list)
	if len(list.Operations) != 0 {
		t.Errorf("malformed commands left %d operations", len(list.Operations))
	}
}

// The rest of the device-management operations, as an operator drives them.
func TestCreateDeleteWriteAttributesAndSend(t *testing.T) {
	h := startAgent(t)
	sim := h.simulate(1, nil)
	ep := sim.Endpoints()[0]
	id := h.device(ep).str("id")

	op := h.shell(id, `create /3303 {"5700": 12.5, "5701": "Cel"}`, 10*time.Second)
	if op.Status != "SUCCESSFUL" || !strings.Contains(op.Command.Result, "Created /3303/") {
		t.Fatalf("create: %s %q %s", op.Status, op.Command.Result, op.FailureReason)
	}
	created := strings.TrimSpace(strings.TrimPrefix(op.Command.Result, "Created "))
	if v, ok := sim.Device(ep).Value(node.MustParsePath(created + "/5700")); !ok || v.Float != 12.5 {
		t.Errorf("device holds %s/5700 = %+v, %v after create", created, v, ok)
	}
	// The device announces its new instance with an Update; the agent
	// records the new object list and an update event.
	h.eventually(10*time.Second, func() error {
		objs, _ := h.device(ep)["lwm2m"].(map[string]any)["objects"].([]any)
		if !slices.Contains(objs, any(created)) {
			return fmt.Errorf("objects %v lack %s", objs, created)
		}
		if len(h.events(id, "c8y_LWM2MDeviceRegistrationUpdate")) == 0 {
			return fmt.Errorf("no update event")
		}
		return nil
	})

	op = h.shell(id, "delete "+created, 10*time.Second)
	if op.Status != "SUCCESSFUL" {
		t.Fatalf("delete: %s %s", op.Status, op.FailureReason)
	}
	if _, ok := sim.Device(ep).Value(node.MustParsePath(created + "/5700")); ok {
		t.Errorf("%s still exists on the device", created)
	}
	op = h.shell(id, "delete "+created, 10*time.Second)
	if op.Status != "FAILED" || !strings.Contains(op.FailureReason, "4.04") {
		t.Errorf("second delete: %s %q, want FAILED with 4.04", op.Status, op.FailureReason)
	}

	op = h.shell(id, "writeattr /3303/0/5700 pmin=5&pmax=60", 10*time.Second)
	if op.Status != "SUCCESSFUL" {
		t.Fatalf("writeattr: %s %s", op.Status, op.FailureReason)
	}
	op = h.shell(id, "discover /3303/0/5700", 10*time.Second)
	if op.Status != "SUCCESSFUL" || !strings.Contains(op.Command.Result, "pmin=5") || !strings.Contains(op.Command.Result, "pmax=60") {
		t.Errorf("discover after writeattr: %s %q %s", op.Status, op.Command.Result, op.FailureReason)
	}

	// LwM2M 1.1 Send: values the device pushes on its own appear in the
	// objects view like notifications.
	sim.Device(ep).SetValue(node.MustParsePath("/3/0/9"), node.Int(17))
	if err := sim.Device(ep).Send(h.ctx, node.MustParsePath("/3/0/9")); err != nil {
		t.Fatalf("send: %v", err)
	}
	h.eventually(5*time.Second, func() error {
		if v, _ := h.objectValue(id, "/3/0/9"); v != "17" {
			return fmt.Errorf("objects view shows /3/0/9 = %q, want the sent 17", v)
		}
		return nil
	})
}

// Without auto-registration an endpoint nobody registered is refused, and
// nothing is created for it.
func TestUnknownEndpointRefused(t *testing.T) {
	h := startAgent(t, withAutoRegister(false))
	sim, err := simulator.New(simulator.Config{Server: h.agent.CoAPAddr.String(), Count: 1, Prefix: "stranger", Version: "1.1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	go func() { _ = sim.Run(ctx) }()
	h.eventually(3*time.Second, func() error {
		if st := h.agent.Server.Stats(); st.Rejected == 0 {
			return fmt.Errorf("no register refused yet")
		}
		return nil
	})
	if n := sim.Registered(); n != 0 {
		t.Errorf("%d devices registered", n)
	}
	var ext map[string]any
	if code := h.call("GET", "/identity/externalIds/c8y_Id/stranger-0", nil, &ext); code != 404 {
		t.Errorf("external id of the refused endpoint: HTTP %d, want 404", code)
	}
}

// LwM2M 1.1 composite operations from the shell.
func TestCompositeOperations(t *testing.T) {
	h := startAgent(t)
	sim := h.simulate(1, nil)
	ep := sim.Endpoints()[0]
	id := h.device(ep).str("id")

	op := h.shell(id, `cwrite {"/3/0/14": "+05:00", "/3/0/15": "Asia/Karachi"}`, 10*time.Second)
	if op.Status != "SUCCESSFUL" {
		t.Fatalf("cwrite: %s %s", op.Status, op.FailureReason)
	}
	if v, _ := sim.Device(ep).Value(node.MustParsePath("/3/0/15")); v.Str != "Asia/Karachi" {
		t.Errorf("device holds /3/0/15 = %q after cwrite", v.Str)
	}
	op = h.shell(id, "cread /3/0/14 /3/0/15 /3303/0/5701", 10*time.Second)
	if op.Status != "SUCCESSFUL" {
		t.Fatalf("cread: %s %s", op.Status, op.FailureReason)
	}
	for _, want := range []string{"/3/0/14 (UTC Offset) = +05:00", "/3/0/15 (Timezone) = Asia/Karachi", "/3303/0/5701 (Sensor Units) = Cel"} {
		if !strings.Contains(op.Command.Result, want) {
			t.Errorf("cread result lacks %q:\n%s", want, op.Command.Result)
		}
	}
}

// A payload larger than one CoAP block goes to the device block-wise: a
// 3 KB firmware package (block-wise reads are covered in agent/lwm2m).
func TestBlockwiseWrite(t *testing.T) {
	h := startAgent(t)
	sim := h.simulate(1, func(c *simulator.Config) { c.Version = "1.0" })
	ep := sim.Endpoints()[0]
	id := h.device(ep).str("id")
	pkg := make([]byte, 3000)
	for i := range pkg {
		pkg[i] = byte(i * 7)
	}
	op := h.shell(id, "writeb /5/0/0 "+hex.EncodeToString(pkg), 20*time.Second)
	if op.Status != "SUCCESSFUL" {
		t.Fatalf("writeb of 3000 bytes: %s %s", op.Status, op.FailureReason)
	}
	if n, sum := sim.Device(ep).Package(); n != int64(len(pkg)) || sum != sha256.Sum256(pkg) {
		t.Fatalf("the device received %d bytes (SHA-256 %x), want the 3000 written", n, sum)
	}
}

// /metrics carries the agent's own figures, without authentication.
func TestMetrics(t *testing.T) {
	h := startAgent(t)
	h.simulate(2, nil)
	h.eventually(5*time.Second, func() error {
		text, err := h.metrics()
		if err != nil {
			return err
		}
		for _, want := range []string{"\nlwm2m_agent_registrations 2\n", "\nlwm2m_agent_registers_total 2\n", "\nlwm2m_agent_lifecycle_events_total 2\n", "\nlwm2m_agent_rate_limited_total 0\n"} {
			if !strings.Contains(text, want) {
				return fmt.Errorf("/metrics lacks %q", strings.TrimSpace(want))
			}
		}
		return nil
	})
}
