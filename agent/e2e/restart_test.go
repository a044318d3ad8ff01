package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/config"
	"github.com/lwm2m-agent/lwm2m-agent/agent/simulator"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/sqlite"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// A device registered before the agent restarts (on the same data
// directory and port) stays registered: an operation reaches it at its
// address, and its next Update to the old location is answered 2.04,
// not 4.04, so it never registers again. A registration whose lifetime
// ran out while the agent was down is expired at start: UNAVAILABLE,
// with the expiry event.
func TestRegistrationsSurviveRestart(t *testing.T) {
	dir, coap := t.TempDir(), freeUDPAddr(t)
	h, stop := startAgentIn(t, dir, coap)
	sim := h.simulate(2, func(c *simulator.Config) {
		c.NotifyInterval = 0
		// an Update every 5 s or so: a lifetime that outlasts the restart
		// even on a loaded machine, or the device rightly registers again
		c.Lifetime = 10 * time.Second
	})
	eps := sim.Endpoints()
	ep, gone := eps[0], eps[1]
	id, goneID := h.device(ep).str("id"), h.device(gone).str("id")
	regID := sim.Device(ep).RegistrationID()
	if op := h.shell(id, "read /3/0/0", 10*time.Second); op.Status != "SUCCESSFUL" {
		t.Fatalf("read before the restart: %s %s", op.Status, op.FailureReason)
	}
	// the second device falls silent; its lifetime will have run out
	sim.Device(gone).Stop()
	stop()

	// while the agent is down, the second device's last update ages
	st, err := sqlite.OpenEngine(context.Background(), sqlite.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	mo, err := st.GetManagedObject(context.Background(), "management", goneID)
	if err != nil {
		t.Fatal(err)
	}
	lw := mo.Fragments["lwm2m"].(map[string]any)
	lw["lastUpdate"] = time.Now().Add(-time.Hour).UTC()
	if err := st.UpdateFragments(context.Background(), "management", goneID, bson.M{"lwm2m": lw}); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	before := sim.Stats()
	h2, _ := startAgentIn(t, dir, coap)
	// an operation reaches the device before it said anything
	if op := h2.shell(id, "read /3/0/0", 10*time.Second); op.Status != "SUCCESSFUL" {
		t.Fatalf("read after the restart: %s %s", op.Status, op.FailureReason)
	}
	// its Updates to the old location are accepted
	h2.eventually(30*time.Second, func() error {
		if n := sim.Stats().Updates; n < before.Updates+2 {
			return fmt.Errorf("%d updates since the restart", n-before.Updates)
		}
		return nil
	})
	after := sim.Stats()
	if after.Registrations != before.Registrations || sim.Device(ep).RegistrationID() != regID {
		t.Fatalf("the device registered again: %d registrations (were %d), registration %s (was %s)",
			after.Registrations, before.Registrations, sim.Device(ep).RegistrationID(), regID)
	}
	if n := len(h2.events(id, "c8y_LWM2MDeviceRegistration")); n != 1 {
		t.Fatalf("%d registration events, want the one before the restart", n)
	}
	if s := h2.device(ep).str("c8y_Availability", "status"); s != "AVAILABLE" {
		t.Fatalf("availability %q after the restart", s)
	}

	// the aged registration expired at start
	h2.eventually(10*time.Second, func() error {
		if s := h2.device(gone).str("c8y_Availability", "status"); s != "UNAVAILABLE" {
			return fmt.Errorf("silent device's availability %q", s)
		}
		if n := len(h2.events(goneID, "c8y_LWM2MDeviceRegistrationExpired")); n != 1 {
			return fmt.Errorf("%d expiry events", n)
		}
		return nil
	})
}

// A plain registration whose device's record says PSK when the agent
// starts is not restored: an agent killed after it stored the device's
// new securityMode and before it ended the registration leaves both in
// the store. At the next start the registration ends (DISCONNECTED, a
// c8y_LWM2MSecurityEvent, lwm2m_agent_registrations_ended_total), the
// device's next Update is answered 4.04 and a plain Register 4.03, and
// it registers over DTLS with its new key; another device's registration
// is restored as before.
func TestRestartEndsRegistrationTheRecordNoLongerAllows(t *testing.T) {
	dir, coap, coaps := t.TempDir(), freeUDPAddr(t), freeUDPAddr(t)
	opts := []option{withSecureAddr(coaps), withAutoRegister(false), func(c *config.Config) { c.DTLSHandshakeTimeout = time.Second }}
	h, stop := startAgentIn(t, dir, coap, opts...)
	h.importOK("management/admin", adminPassword, pskHeader+
		"rc-moved;c8y_Id;Secret-pass-1234!;c8y_lwm2m;rc-moved;coap://127.0.0.1:5783;NO_SEC;;;;\n"+
		"rc-kept;c8y_Id;Secret-pass-1234!;c8y_lwm2m;rc-kept;coap://127.0.0.1:5783;NO_SEC;;;;\n")
	id := h.device("rc-moved").str("id")
	code, location, moved := plainRegister(t, coap, "rc-moved")
	if code != codes.Created {
		t.Fatalf("plain Register of rc-moved: %v", code)
	}
	code, keptLocation, kept := plainRegister(t, coap, "rc-kept")
	if code != codes.Created {
		t.Fatalf("plain Register of rc-kept: %v", code)
	}
	stop()

	// what a change to PSK leaves when the agent dies before it ends the
	// registration: the new identity bound, the new record stored
	ctx := context.Background()
	st, err := sqlite.OpenEngine(ctx, sqlite.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	r, err := st.DeviceSettings(ctx, "management", id)
	if err != nil {
		t.Fatal(err)
	}
	r.Params[store.ParamSecurityMode], r.Params["lwm2mPskId"], r.PSKKey = store.SecurityPSK, "rc-moved-id", []byte{0x0a, 0x0b, 0x0c, 0x0d}
	if err := st.BindPSKIdentity(ctx, store.PSKServer, "rc-moved-id", "management", id); err != nil {
		t.Fatal(err)
	}
	if err := st.SaveDeviceRegistration(ctx, "management", id, r); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(ctx); err != nil {
		t.Fatal(err)
	}

	h2, _ := startAgentIn(t, dir, coap, opts...)
	if _, ok := h2.agent.Server.Registration("rc-moved"); ok {
		t.Fatal("the plain registration of a PSK device was restored")
	}
	if code, err := updateAnswer(moved, location); err != nil || code != codes.NotFound {
		t.Fatalf("Update of the plain registration after the restart: %v %v, want 4.04", code, err)
	}
	if code, err := updateAnswer(kept, keptLocation); err != nil || code != codes.Changed {
		t.Fatalf("Update of the other device's registration after the restart: %v %v, want 2.04", code, err)
	}
	if code, _ := registerAt(t, moved, "rc-moved"); code != codes.Forbidden {
		t.Fatalf("plain Register of the PSK device: %v, want 4.03", code)
	}
	h2.waitRegistrationEnded("rc-moved", id, "not restored", "plain CoAP", "security mode is PSK")
	if got := h2.metric("lwm2m_agent_registrations_ended_total"); got != 1 {
		t.Errorf("%v registrations ended, want 1", got)
	}
	secure, err := dialPSK(t, h2.agent.CoAPSAddr, "rc-moved-id", []byte{0x0a, 0x0b, 0x0c, 0x0d})
	if err != nil {
		t.Fatalf("handshake with the new key: %v", err)
	}
	if code := register(t, secure, "rc-moved"); code != codes.Created {
		t.Fatalf("DTLS Register with the new key: %v, want 2.01", code)
	}
}
