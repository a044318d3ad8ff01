package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/simulator"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
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
		c.Lifetime = 4 * time.Second // an Update every 2 s or so
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
	st, err := store.Open(context.Background(), store.Config{DataDir: dir})
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
	h2.eventually(10*time.Second, func() error {
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
