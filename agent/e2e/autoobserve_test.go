package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/simulator"
)

// Functionalities with autoObserve stored while devices are registered
// (issue 10): the devices are observed without registering anew, each
// path once per registration.

var (
	autoTemperature = map[string]any{"measurement": map[string]any{"type": "c8y_Temperature", "series": "T", "unit": "C"}, "autoObserve": true}
	autoMinimum     = map[string]any{"measurement": map[string]any{"type": "c8y_TemperatureMin", "series": "T", "unit": "C"}, "autoObserve": true}
)

func (h *harness) setAuto(path string, f map[string]any) {
	h.t.Helper()
	h.setFunctionality("management/admin", adminPassword, path, f)
}

// gets counts the GET requests for path a device answered (observations
// and reads alike: the tests read nothing else at these paths) and
// those it dropped.
func gets(dev *simulator.Device, path string) (answered, dropped int) {
	for _, r := range dev.Requests() {
		if r.Method != "GET" || r.Path != path {
			continue
		}
		if r.Answered {
			answered++
		} else {
			dropped++
		}
	}
	return answered, dropped
}

// waitGets waits until every device answered at least one GET for path.
func waitGets(t *testing.T, sim *simulator.Simulator, path string, d time.Duration) {
	t.Helper()
	waitFor(t, d, func() error {
		for _, ep := range sim.Endpoints() {
			if n, _ := gets(sim.Device(ep), path); n == 0 {
				return fmt.Errorf("%s has not been asked for %s", ep, path)
			}
		}
		return nil
	})
}

// exactlyGets checks that each device answered n GETs for path and
// dropped none.
func exactlyGets(t *testing.T, sim *simulator.Simulator, path string, n int) {
	t.Helper()
	for _, ep := range sim.Endpoints() {
		if got, dropped := gets(sim.Device(ep), path); got != n || dropped != 0 {
			t.Errorf("%s answered %d GETs for %s (dropped %d), want %d", ep, got, path, dropped, n)
		}
	}
}

// Three always-online devices register before the functionality exists;
// once it is stored each is observed at once and its notifications
// become measurements, without registering anew. A second identical PUT
// sends no second Observe: once a later functionality's observations
// have reached every device (so the second PUT has been handled), each
// device still got exactly one Observe for the path.
func TestAutoObserveRegisteredDevices(t *testing.T) {
	h := startAgent(t)
	sim := h.simulate(3, func(c *simulator.Config) { c.Record = 256 })
	ids := h.deviceIDs(sim)
	regIDs := map[string]string{}
	for _, ep := range sim.Endpoints() {
		regIDs[ep] = sim.Device(ep).RegistrationID()
	}

	h.setAuto("3303/resources/5700", autoTemperature)
	// the first answer and at least two notifications
	waitFor(t, 30*time.Second, func() error {
		for ep, id := range ids {
			if n := len(h.measurementsAs("management/admin", adminPassword, id, "c8y_Temperature")); n < 3 {
				return fmt.Errorf("%s: %d temperature measurements", ep, n)
			}
		}
		return nil
	})
	h.setAuto("3303/resources/5700", autoTemperature)
	h.setAuto("3303/resources/5601", autoMinimum)
	waitGets(t, sim, "/3303/0/5601", 30*time.Second)
	exactlyGets(t, sim, "/3303/0/5700", 1)
	exactlyGets(t, sim, "/3303/0/5601", 1)
	for ep, reg := range regIDs {
		if got := sim.Device(ep).RegistrationID(); got != reg {
			t.Errorf("%s registered anew (%s, was %s)", ep, got, reg)
		}
	}
	// the counter moves when the device's answer is in, a moment after
	// the device saw the request
	waitFor(t, 10*time.Second, func() error {
		if got := h.metric("lwm2m_agent_auto_observations_total"); got < 6 {
			return fmt.Errorf("lwm2m_agent_auto_observations_total = %v, want 6", got)
		}
		return nil
	})
	if got := h.metric("lwm2m_agent_auto_observations_total"); got != 6 {
		t.Errorf("lwm2m_agent_auto_observations_total = %v, want 6", got)
	}
}

// A sleeping device is observed in its next awake window after the
// functionality is stored, not while it sleeps: the agent sends nothing
// the device drops.
func TestAutoObserveSleepingDevice(t *testing.T) {
	h := startAgent(t, withRequestTimeout(2*time.Second))
	awake, period := 2*time.Second, 5*time.Second
	sim := sleepers(t, h.agent.CoAPAddr.String(), 1, awake, period)
	dev := sim.Device(sim.Endpoints()[0])
	// Stored while it sleeps, with time to spare before it wakes.
	var stored time.Time
	waitFor(t, 3*period, func() error {
		next, ok := dev.NextWakeup()
		if dev.Awake() || !ok || time.Until(next) < time.Second {
			return fmt.Errorf("awake, or waking within a second")
		}
		h.setAuto("3303/resources/5700", autoTemperature)
		stored = time.Now()
		return nil
	})
	waitFor(t, 3*period, func() error {
		if n, _ := gets(dev, "/3303/0/5700"); n == 0 {
			return fmt.Errorf("not observed yet")
		}
		return nil
	})
	wakes := dev.Wakeups()
	for _, r := range dev.Requests() {
		if r.Path != "/3303/0/5700" {
			continue
		}
		if !r.Answered {
			t.Errorf("Observe dropped at %v (asleep %v)", r.Time, r.Asleep)
			continue
		}
		if !inWindow(r, wakes) {
			t.Errorf("Observe at %v outside its awake window %d (%+v)", r.Time, r.Wakeup, wakes)
		}
		for _, w := range wakes {
			if w.Seq == r.Wakeup && (w.Start.Before(stored) || !w.Update) {
				t.Errorf("Observe in window %+v, want an Update's window after the functionality was stored at %v", w, stored)
			}
		}
	}
	if n := dev.Dropped(); n != 0 {
		t.Errorf("the device dropped %d requests: the agent sent while it slept", n)
	}
	// The window after also brings nothing more.
	seq := dev.Wakeups()
	last := seq[len(seq)-1].Seq
	waitFor(t, 3*period, func() error {
		w := dev.Wakeups()
		if w[len(w)-1].Seq < last+1 || w[len(w)-1].End.After(time.Now()) {
			return fmt.Errorf("in window %d", w[len(w)-1].Seq)
		}
		return nil
	})
	if n, dropped := gets(dev, "/3303/0/5700"); n != 1 || dropped != 0 {
		t.Errorf("%d Observes answered, %d dropped, want 1 and 0", n, dropped)
	}
}

// An Update whose object list adds an instance starts its observation;
// the instances observed at the Register are not observed again.
func TestAutoObserveInstanceAddedByUpdate(t *testing.T) {
	h := startAgent(t)
	h.setAuto("3303/resources/5700", autoTemperature)
	sim := h.simulate(1, func(c *simulator.Config) { c.Record = 256 })
	ep := sim.Endpoints()[0]
	dev := sim.Device(ep)
	id := h.deviceIDs(sim)[ep]
	waitGets(t, sim, "/3303/0/5700", 30*time.Second)

	// the device creates /3303/1 and says so in an Update
	if op := h.shell(id, "create /3303", 15*time.Second); op.Status != "SUCCESSFUL" {
		t.Fatalf("create: %s %s", op.Status, op.FailureReason)
	}
	waitGets(t, sim, "/3303/1/5700", 30*time.Second)
	exactlyGets(t, sim, "/3303/1/5700", 1)
	exactlyGets(t, sim, "/3303/0/5700", 1)
	var created, observed time.Time
	for _, r := range dev.Requests() {
		switch {
		case r.Method == "POST" && r.Path == "/3303":
			created = r.Time
		case r.Path == "/3303/1/5700":
			observed = r.Time
		}
	}
	if created.IsZero() || !observed.After(created) {
		t.Errorf("/3303/1/5700 observed at %v, the instance created at %v", observed, created)
	}
}

// A new full Register (the device rebooted and forgot its observations)
// observes once more, and only once.
func TestAutoObserveNewRegister(t *testing.T) {
	h := startAgent(t)
	sim := h.simulate(1, func(c *simulator.Config) { c.Record = 256 })
	ep := sim.Endpoints()[0]
	dev := sim.Device(ep)
	id := h.deviceIDs(sim)[ep]
	h.setAuto("3303/resources/5700", autoTemperature)
	waitGets(t, sim, "/3303/0/5700", 30*time.Second)
	first := dev.RegistrationID()

	if op := h.shell(id, "execute /3/0/4", 15*time.Second); op.Status != "SUCCESSFUL" {
		t.Fatalf("reboot: %s %s", op.Status, op.FailureReason)
	}
	waitFor(t, 30*time.Second, func() error {
		if reg := dev.RegistrationID(); reg == "" || reg == first {
			return fmt.Errorf("not registered anew")
		}
		if n, _ := gets(dev, "/3303/0/5700"); n < 2 {
			return fmt.Errorf("%d Observes", n)
		}
		return nil
	})
	// a later functionality's observation reached the device: the
	// registration's observations were all started by then
	h.setAuto("3303/resources/5601", autoMinimum)
	waitGets(t, sim, "/3303/0/5601", 30*time.Second)
	exactlyGets(t, sim, "/3303/0/5700", 2)
	exactlyGets(t, sim, "/3303/0/5601", 1)
	before := len(h.measurementsAs("management/admin", adminPassword, id, "c8y_Temperature"))
	waitFor(t, 30*time.Second, func() error {
		if n := len(h.measurementsAs("management/admin", adminPassword, id, "c8y_Temperature")); n <= before {
			return fmt.Errorf("no notification since the new registration")
		}
		return nil
	})
}

// The management tenant's functionality reaches the devices of a tenant
// that inherits its protocol, not those of a tenant with a protocol of
// its own for the object.
func TestAutoObserveInheritedProtocol(t *testing.T) {
	h := startAgent(t, withAutoRegister(false))
	const pass = "Tenant-pass-1234!"
	for i, tenant := range []string{"acme", "beta"} {
		if code := h.call("POST", "/tenant/tenants", map[string]any{"id": tenant, "adminName": "admin", "adminPass": pass}, nil); code != 201 {
			t.Fatalf("create tenant %s: HTTP %d", tenant, code)
		}
		csv := "ID;IDTYPE;CREDENTIALS;NAME;TYPE;SHELL;endpoint id;lwm2m server uri;securityMode\n" +
			fmt.Sprintf("inh-%d;c8y_Id;Secret-pass-1234!;Meter;c8y_lwm2m;1;inh-%d;coap://127.0.0.1:5783;NO_SEC\n", i, i)
		if code, res, raw := h.postCSV(tenant+"/admin", pass, []byte(csv), false); code != 201 || res.Created != 1 {
			t.Fatalf("import into %s: HTTP %d %s", tenant, code, raw)
		}
	}
	// beta configures 3303 itself: it has its own copy from now on
	h.setFunctionality("beta/admin", pass, "3303/resources/5701", map[string]any{"event": map[string]any{"type": "c8y_Units", "text": "{value}"}})
	sim := h.simulate(2, func(c *simulator.Config) { c.Prefix, c.Record = "inh", 256 })
	acme, beta := sim.Device("inh-0"), sim.Device("inh-1")

	h.setAuto("3303/resources/5700", autoTemperature)
	waitFor(t, 30*time.Second, func() error {
		if n, _ := gets(acme, "/3303/0/5700"); n == 0 {
			return fmt.Errorf("the acme device has not been observed")
		}
		return nil
	})
	// once beta's own functionality reached its device, the management
	// tenant's change has been handled for every tenant
	h.setFunctionality("beta/admin", pass, "3303/resources/5601", autoMinimum)
	waitFor(t, 30*time.Second, func() error {
		if n, _ := gets(beta, "/3303/0/5601"); n == 0 {
			return fmt.Errorf("the beta device has not been observed")
		}
		return nil
	})
	if n, _ := gets(beta, "/3303/0/5700"); n != 0 {
		t.Errorf("the beta device, with its own protocol, was observed %d times at /3303/0/5700", n)
	}
	if n, _ := gets(acme, "/3303/0/5601"); n != 0 {
		t.Errorf("the acme device was observed at beta's /3303/0/5601 %d times", n)
	}
	if n, _ := gets(acme, "/3303/0/5700"); n != 1 {
		t.Errorf("the acme device answered %d Observes at /3303/0/5700, want 1", n)
	}
}

// After a restart the agent holds none of its earlier observation tokens
// (the device's notifications on them get RST), so an always-online
// device is observed again at once, before any Update, and once.
func TestAutoObserveAfterRestart(t *testing.T) {
	dir, coap := t.TempDir(), freeUDPAddr(t)
	h, stop := startAgentIn(t, dir, coap)
	h.setAuto("3303/resources/5700", autoTemperature)
	sim := h.simulate(1, func(c *simulator.Config) {
		c.Record = 256
		c.Lifetime = 10 * time.Minute // no Update while the test runs
		// The test sets the values: a notification sent while the agent
		// is down would meet a closed port, and the simulated device
		// drops its socket until its next Update on that.
		c.NotifyInterval = 0
	})
	ep := sim.Endpoints()[0]
	dev := sim.Device(ep)
	id := h.deviceIDs(sim)[ep]
	waitGets(t, sim, "/3303/0/5700", 30*time.Second)
	stop()

	before := sim.Stats()
	h2, _ := startAgentIn(t, dir, coap)
	waitFor(t, 30*time.Second, func() error {
		if n, _ := gets(dev, "/3303/0/5700"); n < 2 {
			return fmt.Errorf("not observed again after the restart")
		}
		return nil
	})
	h2.setAuto("3303/resources/5601", autoMinimum)
	waitGets(t, sim, "/3303/0/5601", 30*time.Second)
	exactlyGets(t, sim, "/3303/0/5700", 2)
	after := sim.Stats()
	if after.Updates != before.Updates || after.Registrations != before.Registrations {
		t.Errorf("the device sent %d Updates and %d Registers since the restart, want none",
			after.Updates-before.Updates, after.Registrations-before.Registrations)
	}
	// its notifications are measurements again
	dev.SetValue(node.ResourcePath(3303, 0, 5700), node.Float(33.5))
	waitFor(t, 30*time.Second, func() error {
		for _, m := range h2.measurementsAs("management/admin", adminPassword, id, "c8y_Temperature") {
			if strings.Contains(fmt.Sprint(m["c8y_Temperature"]), "value:33.5") {
				return nil
			}
		}
		return fmt.Errorf("no measurement of the value set after the restart")
	})
}
