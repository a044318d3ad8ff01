package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/simulator"
)

// Operators import devices; the devices then bootstrap (NO_SEC on the
// plain port, PSK with their bootstrap identity over DTLS), get their
// server account, and register with it: the whole path of a new device.
func TestImportBootstrapRegister(t *testing.T) {
	for _, version := range []string{"1.0", "1.1"} {
		t.Run("lwm2m-"+version, func(t *testing.T) {
			h := startAgent(t, withAutoRegister(false))
			coap, coaps := "coap://"+h.agent.CoAPAddr.String(), "coaps://"+h.agent.CoAPSAddr.String()
			csv := "ID,IDTYPE,CREDENTIALS,NAME,TYPE,SHELL,endpoint id,lwm2m server uri,securityMode,lwm2m psk_id,lwm2m psk_key,bootstrap psk_id,bootstrap psk_key,generateBootstrapServerConfig,securityInstanceOffset,lwm2mShortServerId,registrationLifetime,bindingMode\n" +
				fmt.Sprintf("bs-plain,c8y_Id,Secret-pass-1234!,Plain,c8y_lwm2m,1,bs-plain,%s,NO_SEC,,,,,false,0,1,120,U\n", coap) +
				fmt.Sprintf("bs-psk,c8y_Id,Secret-pass-1234!,Secure,c8y_lwm2m,1,bs-psk,%s,PSK,bs-psk-id,000102030405060708090a0b0c0d0e0f,bs-psk-bs,0f0e0d0c0b0a09080706050403020100,true,2,7,300,U\n", coaps)
			if code, res, raw := h.postCSV("management/admin", adminPassword, []byte(csv), false); code != 201 || res.Created != 2 {
				t.Fatalf("import: HTTP %d %s", code, raw)
			}
			bsPlain := "coap://" + h.agent.BootstrapAddr.String()
			bsSecure := "coaps://" + h.agent.BootstrapSAddr.String()
			sim := h.simulate(2, func(c *simulator.Config) {
				c.Server = ""
				c.Version = version
				c.Devices = []simulator.DeviceConfig{
					{Endpoint: "bs-plain", BootstrapURI: bsPlain},
					{Endpoint: "bs-psk", BootstrapURI: bsSecure, BootstrapPSKIdentity: "bs-psk-bs",
						BootstrapPSK: []byte{15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0}},
				}
			})
			for _, ep := range []string{"bs-plain", "bs-psk"} {
				if !sim.Device(ep).Bootstrapped() {
					t.Errorf("%s registered without bootstrapping", ep)
				}
			}
			plain, secure := h.device("bs-plain"), h.device("bs-psk")
			if plain.str("c8y_Availability", "status") != "AVAILABLE" || secure.str("c8y_Availability", "status") != "AVAILABLE" {
				t.Fatalf("availability: %q %q", plain.str("c8y_Availability", "status"), secure.str("c8y_Availability", "status"))
			}
			// the server account the bootstrap server wrote is what they registered with
			if lw := secure["lwm2m"].(map[string]any); fmt.Sprint(lw["secure"]) != "true" || fmt.Sprint(lw["lifetime"]) != "300" {
				t.Errorf("bs-psk registered with %v, want DTLS and lifetime 300", lw)
			}
			if lw := plain["lwm2m"].(map[string]any); fmt.Sprint(lw["secure"]) != "false" || fmt.Sprint(lw["lifetime"]) != "120" {
				t.Errorf("bs-plain registered with %v, want plain CoAP and lifetime 120", lw)
			}
			for _, mo := range []managedObject{plain, secure} {
				id := mo.str("id")
				if n := len(h.events(id, "c8y_LWM2MDeviceBootstrapStart")); n != 1 {
					t.Errorf("%s: %d bootstrap start events", mo.str("name"), n)
				}
				if n := len(h.events(id, "c8y_LWM2MDeviceBootstrapEnd")); n != 1 {
					t.Errorf("%s: %d bootstrap end events", mo.str("name"), n)
				}
				if n := len(h.events(id, "c8y_LWM2MDeviceBootstrapWrite")); n < 2 {
					t.Errorf("%s: %d bootstrap write events, want one per instance", mo.str("name"), n)
				}
				if n := len(h.events(id, "c8y_LWM2MDeviceBootstrapFailure")); n != 0 {
					t.Errorf("%s: %d bootstrap failures", mo.str("name"), n)
				}
			}
			// the server account of bs-psk went to /0/2 (its offset); the
			// generated bootstrap account replaced the device's own one,
			// which a 1.1 device shows in Bootstrap-Discover (at /0/0), and
			// went to offset + 1 for a 1.0 device, which has no Discover
			bsInstance := "/0/3"
			if version != "1.0" {
				bsInstance = "/0/0"
			}
			writes := fmt.Sprint(h.events(secure.str("id"), "c8y_LWM2MDeviceBootstrapWrite"))
			for _, want := range []string{"/0/2", bsInstance, "/1/0"} {
				if !strings.Contains(writes, want) {
					t.Errorf("bs-psk write events %s lack %s", writes, want)
				}
			}
			if op := h.shell(secure.str("id"), "read /3/0/0", 10*time.Second); op.Status != "SUCCESSFUL" {
				t.Errorf("read from the bootstrapped PSK device: %s %s", op.Status, op.FailureReason)
			}
		})
	}
}

// A device the registry does not know gets no bootstrap account and
// nothing is created for it. (Failure events of sessions that break off
// are covered by agent/bootstrap's tests, with a device that refuses.)
func TestBootstrapUnknownEndpointRefused(t *testing.T) {
	h := startAgent(t, withAutoRegister(false))
	csv := "ID,IDTYPE,CREDENTIALS,NAME,TYPE,SHELL,endpoint id,lwm2m server uri,securityMode\n" +
		"bs-known,c8y_Id,Secret-pass-1234!,Known,c8y_lwm2m,1,bs-known,coap://127.0.0.1:1,NO_SEC\n"
	if code, res, raw := h.postCSV("management/admin", adminPassword, []byte(csv), false); code != 201 || res.Created != 1 {
		t.Fatalf("import: HTTP %d %s", code, raw)
	}
	bsPlain := "coap://" + h.agent.BootstrapAddr.String()
	sim, err := simulator.New(simulator.Config{
		Version: "1.1", Lifetime: time.Minute, BootstrapTimeout: 5 * time.Second, HandshakeTimeout: 2 * time.Second,
		Devices: []simulator.DeviceConfig{{Endpoint: "bs-unknown", BootstrapURI: bsPlain}},
	})
	if err != nil {
		t.Fatal(err)
	}
	runFor(t, sim)
	select {
	case <-sim.Settled():
	case <-time.After(15 * time.Second):
		t.Fatal("the unknown device neither failed nor registered")
	}
	if f := sim.Failures(); len(f) != 1 || f[0].Err() == nil {
		t.Fatalf("unknown endpoint: failures %v", f)
	}
	if code := h.call("GET", "/identity/externalIds/c8y_Id/bs-unknown", nil, nil); code != 404 {
		t.Errorf("bootstrap of an unknown endpoint created a device: HTTP %d", code)
	}
}

func runFor(t *testing.T, sim *simulator.Simulator) {
	t.Helper()
	ctx, cancel := contextWithCancel()
	done := make(chan error, 1)
	go func() { done <- sim.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}
