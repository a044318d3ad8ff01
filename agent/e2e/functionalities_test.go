package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/simulator"
)

// measurements lists a device's measurements of a type, oldest first.
func (h *harness) measurementsAs(user, pass, source, typ string) []map[string]any {
	h.t.Helper()
	var res struct {
		Measurements []map[string]any `json:"measurements"`
	}
	if code := h.callAs(user, pass, "GET", "/measurement/measurements?pageSize=2000&source="+source+"&type="+typ, nil, &res); code != 200 {
		h.t.Fatalf("measurements: HTTP %d", code)
	}
	return res.Measurements
}

func (h *harness) setFunctionality(user, pass, path string, f map[string]any) {
	h.t.Helper()
	if code := h.callAs(user, pass, "PUT", "/lwm2m/deviceprotocols/"+path+"/functionalities", f, nil); code != 200 {
		h.t.Fatalf("functionalities of %s: HTTP %d", path, code)
	}
}

// The operator uploads 3303, says per resource what its values mean, and
// a device of another tenant (which inherits the management tenant's
// protocols) reports: temperature measurements with their unit, an alarm
// raised above 40 and cleared below, an event, RSSI measurements, and the
// device's hardware from its Device object, with observations started by
// the agent itself.
func TestFunctionalitiesEndToEnd(t *testing.T) {
	h := startAgent(t, withAutoRegister(false))
	ddf, err := os.ReadFile(filepath.Join(sharedDir(t, "lwm2m-registry"), "3303.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if code, _, failed := h.postDDF("management/admin", adminPassword, ddf, ""); code != 201 {
		t.Fatalf("upload 3303: HTTP %d %+v", code, failed)
	}
	mgmt := func(path string, f map[string]any) { h.setFunctionality("management/admin", adminPassword, path, f) }
	mgmt("3303/resources/5700", map[string]any{
		"measurement": map[string]any{"type": "c8y_Temperature", "series": "T", "unit": "C"},
		"alarm":       map[string]any{"type": "c8y_HighTemperature", "severity": "MAJOR", "text": "Temperature {value} at {path}", "raiseWhen": "value > 40"},
		"autoObserve": true,
	})
	mgmt("3303/resources/5701", map[string]any{"event": map[string]any{"type": "c8y_UnitsReported", "text": "Units are {value}"}})
	mgmt("4/resources/2", map[string]any{"customAction": "connectivity:updateRssi", "autoObserve": true})
	mgmt("3/resources/0", map[string]any{"customAction": "device:updateManufacturer"})
	mgmt("3/resources/1", map[string]any{"customAction": "device:updateModelNumber"})
	mgmt("3/resources/2", map[string]any{"customAction": "device:updateSerialNumber"})

	// the device lives in tenant acme, which has no protocols of its own
	const user, pass = "acme/admin", "Acme-pass-1234!"
	if code := h.call("POST", "/tenant/tenants", map[string]any{"id": "acme", "adminName": "admin", "adminPass": pass}, nil); code != 201 {
		t.Fatalf("create tenant: HTTP %d", code)
	}
	csv := "ID;IDTYPE;CREDENTIALS;NAME;TYPE;SHELL;endpoint id;lwm2m server uri;securityMode\n" +
		"meter-1;c8y_Id;Secret-pass-1234!;Meter;c8y_lwm2m;1;meter-1;coap://127.0.0.1:5783;NO_SEC\n"
	if code, res, raw := h.postCSV(user, pass, []byte(csv), false); code != 201 || res.Created != 1 {
		t.Fatalf("import: HTTP %d %s", code, raw)
	}
	sim := h.simulate(1, func(c *simulator.Config) {
		c.Prefix = "meter"
		c.Start = 1
		c.NotifyInterval = 0 // the test sets the values
	})
	dev := sim.Device("meter-1")
	var ext struct {
		ManagedObject struct{ ID string } `json:"managedObject"`
	}
	h.callAs(user, pass, "GET", "/identity/externalIds/c8y_Id/meter-1", nil, &ext)
	id := ext.ManagedObject.ID

	// automatic observations: the first answers are measurements already
	h.eventually(10*time.Second, func() error {
		if n := len(h.measurementsAs(user, pass, id, "c8y_Temperature")); n < 1 {
			return fmt.Errorf("%d temperature measurements", n)
		}
		if n := len(h.measurementsAs(user, pass, id, "c8y_SignalStrength")); n < 1 {
			return fmt.Errorf("%d signal measurements", n)
		}
		return nil
	})
	dev.SetValue(node.ResourcePath(3303, 0, 5700), node.Float(45.5))
	alarms := func() []map[string]any {
		var res struct {
			Alarms []map[string]any `json:"alarms"`
		}
		h.callAs(user, pass, "GET", "/alarm/alarms?source="+id+"&type=c8y_HighTemperature", nil, &res)
		return res.Alarms
	}
	h.eventually(10*time.Second, func() error {
		a := alarms()
		if len(a) != 1 || a[0]["status"] != "ACTIVE" || a[0]["text"] != "Temperature 45.5 at /3303/0/5700" {
			return fmt.Errorf("alarms %v", a)
		}
		return nil
	})
	dev.SetValue(node.ResourcePath(3303, 0, 5700), node.Float(20))
	h.eventually(10*time.Second, func() error {
		if a := alarms(); len(a) != 1 || a[0]["status"] != "CLEARED" {
			return fmt.Errorf("alarms %v", a)
		}
		return nil
	})
	var sawUnit bool
	for _, m := range h.measurementsAs(user, pass, id, "c8y_Temperature") {
		s := fmt.Sprint(m["c8y_Temperature"])
		if strings.Contains(s, "unit:C") && strings.Contains(s, "value:45.5") {
			sawUnit = true
		}
	}
	if !sawUnit {
		t.Errorf("no c8y_Temperature.T of 45.5 C among %v", h.measurementsAs(user, pass, id, "c8y_Temperature"))
	}
	dev.SetValue(node.ResourcePath(4, 0, 2), node.Int(-77))
	h.eventually(10*time.Second, func() error {
		for _, m := range h.measurementsAs(user, pass, id, "c8y_SignalStrength") {
			if s := fmt.Sprint(m["c8y_SignalStrength"]); strings.Contains(s, "rssi:map[unit:dBm value:-77]") {
				return nil
			}
		}
		return fmt.Errorf("no rssi of -77 dBm")
	})

	// reads go through the same mappings: an event, and the hardware
	var op operation
	body := map[string]any{"deviceId": id, "c8y_Command": map[string]string{"text": "read /3303/0/5701"}}
	if code := h.callAs(user, pass, "POST", "/devicecontrol/operations", body, &op); code != 201 {
		t.Fatalf("read: HTTP %d", code)
	}
	body["c8y_Command"] = map[string]string{"text": "read /3/0"}
	if code := h.callAs(user, pass, "POST", "/devicecontrol/operations", body, &op); code != 201 {
		t.Fatalf("read: HTTP %d", code)
	}
	h.eventually(10*time.Second, func() error {
		var evs struct {
			Events []map[string]any `json:"events"`
		}
		h.callAs(user, pass, "GET", "/event/events?source="+id+"&type=c8y_UnitsReported", nil, &evs)
		if len(evs.Events) != 1 || !strings.HasPrefix(fmt.Sprint(evs.Events[0]["text"]), "Units are ") {
			return fmt.Errorf("events %v", evs.Events)
		}
		var mo managedObject
		h.callAs(user, pass, "GET", "/inventory/managedObjects/"+id, nil, &mo)
		if mo.str("c8y_Hardware", "model") == "" || mo.str("c8y_Hardware", "serialNumber") == "" || mo.str("c8y_Hardware", "manufacturer") == "" {
			return fmt.Errorf("c8y_Hardware %v", mo["c8y_Hardware"])
		}
		return nil
	})
	// the management tenant's own devices got none of this
	var res struct {
		Measurements []map[string]any `json:"measurements"`
	}
	h.call("GET", "/measurement/measurements?pageSize=10", nil, &res)
	if len(res.Measurements) != 0 {
		t.Errorf("management sees measurements: %v", res.Measurements)
	}
}

// Shell results and the objects view name resources as the tenant's own
// protocol does, not only as the built-in definitions do.
func TestTenantProtocolNamesResources(t *testing.T) {
	h := startAgent(t)
	ddf, err := os.ReadFile(filepath.Join(sharedDir(t, "lwm2m-registry"), "3303.xml"))
	if err != nil {
		t.Fatal(err)
	}
	renamed := strings.Replace(string(ddf), "<Name>Application Type</Name>", "<Name>Room</Name>", 1)
	if renamed == string(ddf) {
		t.Fatal("3303.xml has no Application Type")
	}
	if code, _, failed := h.postDDF("management/admin", adminPassword, []byte(renamed), ""); code != 201 {
		t.Fatalf("upload: HTTP %d %+v", code, failed)
	}
	h.simulate(1, nil)
	id := h.device("testtenantprotocolnamesresources-0").str("id")
	if op := h.shell(id, "write /3303/0/5750 kitchen", 10*time.Second); op.Status != "SUCCESSFUL" {
		t.Fatalf("write: %s %s", op.Status, op.FailureReason)
	}
	op := h.shell(id, "read /3303/0/5750", 10*time.Second)
	if op.Status != "SUCCESSFUL" || op.Command.Result != "/3303/0/5750 (Room) = kitchen" {
		t.Fatalf("read: %s %q %s", op.Status, op.Command.Result, op.FailureReason)
	}
	var view map[string]any
	h.call("GET", "/lwm2m/devices/"+id+"/objects", nil, &view)
	if !strings.Contains(fmt.Sprint(view), "Room") {
		t.Errorf("objects view does not name 5750 Room: %v", view)
	}
}
