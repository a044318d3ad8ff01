package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/config"
	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/rawcoap"
	"github.com/lwm2m-agent/lwm2m-agent/agent/simulator"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// TestAdversarialBootstrapFlood: 3,000 unauthenticated Bootstrap-Requests
// for one NO_SEC endpoint, from 100 addresses, start a session or a few,
// not one each: the first is accepted, the next find its session running
// with another address, and the rest are answered 4.29 before any store
// lookup (the burst of 3, then one per interval while the flood lasts).
// The sessions' addresses never answer (they could be anybody's), so
// their start and failure events are stored once. The refusals and held
// back events are on /metrics. The device itself bootstraps and
// registers once the flood is over.
func TestAdversarialBootstrapFlood(t *testing.T) {
	const interval = 2 * time.Second
	h := startAgent(t, withAutoRegister(false), func(c *config.Config) { c.BootstrapRequestInterval = interval })
	csv := "ID,IDTYPE,CREDENTIALS,NAME,TYPE,SHELL,endpoint id,lwm2m server uri,securityMode,registrationLifetime\n" +
		fmt.Sprintf("bs-flooded,c8y_Id,Secret-pass-1234!,Flooded,c8y_lwm2m,1,bs-flooded,coap://%s,NO_SEC,120\n", h.agent.CoAPAddr)
	if code, res, raw := h.postCSV("management/admin", adminPassword, []byte(csv), false); code != 201 || res.Created != 1 {
		t.Fatalf("import: HTTP %d %s", code, raw)
	}
	id := h.device("bs-flooded").str("id")

	// 30 from each address: within the bootstrap port's burst per address
	const senders, n = 100, 3000
	start := time.Now()
	answers, _ := rawcoap.Answers(t, h.agent.BootstrapAddr, senders, n, func(s, i int, mid uint16) []byte {
		return rawcoap.Post(mid, []byte{byte(s), byte(i)}, "bs", []string{"ep=bs-flooded"}, nil)
	})
	took := time.Since(start)
	started, limited := answers[codes.Changed], answers[codes.TooManyRequests]
	t.Logf("%d Bootstrap-Requests in %v: %d sessions started, %d answered 4.29", n, took.Round(time.Millisecond), started, limited)
	if started+limited != n {
		t.Fatalf("answers %v, want 2.04 or 4.29 for all %d", answers, n)
	}
	if most := 3 + int(took/interval) + 1; started < 1 || started > most {
		t.Errorf("%d sessions started in %v, want 1 to the burst of 3 and one per %v beyond (%d)", started, took, interval, most)
	}
	h.eventually(10*time.Second, func() error {
		rate, running := h.refusedCount("bootstrap_rate_endpoint"), h.refusedCount("bootstrap_session_running")
		if rate+running != limited || rate == 0 {
			return fmt.Errorf("bootstrap_rate_endpoint %d and bootstrap_session_running %d, want %d together", rate, running, limited)
		}
		return nil
	})
	// the sessions end when their request times out
	h.eventually(20*time.Second, func() error {
		if st := h.agent.Bootstrap.Stats(); st.Sessions != 0 || st.Failed != uint64(started) {
			return fmt.Errorf("%d sessions running, %d failed of %d", st.Sessions, st.Failed, started)
		}
		return nil
	})
	if s, f := len(h.events(id, "c8y_LWM2MDeviceBootstrapStart")), len(h.events(id, "c8y_LWM2MDeviceBootstrapFailure")); s != 1 || f != 1 {
		t.Errorf("%d start and %d failure events stored for %d sessions, want one each", s, f, started)
	}
	if got, want := h.refusedCount("bootstrap_event_coalesced"), 2*(started-1); got != want {
		t.Errorf("bootstrap_event_coalesced %d, want %d", got, want)
	}

	// the device itself, from its own address, after the flood
	sim, err := simulator.New(simulator.Config{
		Version: "1.1", Lifetime: time.Minute, BootstrapTimeout: 10 * time.Second,
		Devices: []simulator.DeviceConfig{{Endpoint: "bs-flooded", BootstrapURI: "coap://" + h.agent.BootstrapAddr.String()}},
	})
	if err != nil {
		t.Fatal(err)
	}
	runFor(t, sim)
	h.eventually(30*time.Second, func() error {
		if sim.Registered() != 1 || !sim.Device("bs-flooded").Bootstrapped() {
			return fmt.Errorf("the device has not bootstrapped and registered: failures %v", sim.Failures())
		}
		return nil
	})
	if n := len(h.events(id, "c8y_LWM2MDeviceBootstrapEnd")); n != 1 {
		t.Errorf("%d bootstrap end events, want 1", n)
	}
}
