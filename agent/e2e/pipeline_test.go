package e2e

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/simulator"
)

// With no device protocol uploaded, the default mappings fill a device's
// inventory from what it answers (object 3 into c8y_Hardware and
// c8y_Firmware, 4 into c8y_Mobile, 6 into c8y_Position) and turn the
// observed radio signal strength into c8y_SignalStrength measurements,
// for both content-format families.
func TestDefaultMappings(t *testing.T) {
	for _, version := range []string{"1.0", "1.1"} {
		t.Run("lwm2m-"+version, func(t *testing.T) {
			h := startAgent(t)
			sim := h.simulate(1, func(c *simulator.Config) { c.Version = version })
			ep := sim.Endpoints()[0]
			var id string
			h.eventually(5*time.Second, func() error {
				if id = h.device(ep).str("id"); id == "" {
					return fmt.Errorf("no device for %s", ep)
				}
				return nil
			})
			for _, cmd := range []string{"read /3/0", "read /4/0", "read /6/0", "observe /4/0/2"} {
				if op := h.shell(id, cmd, 10*time.Second); op.Status != "SUCCESSFUL" {
					t.Fatalf("%s: %s: %s", cmd, op.Status, op.FailureReason)
				}
			}

			var mo managedObject
			h.eventually(5*time.Second, func() error {
				mo = h.device(ep)
				for _, f := range [][2]string{{"c8y_Hardware", "model"}, {"c8y_Position", "lat"}, {"c8y_Mobile", "cellId"}} {
					frag, _ := mo[f[0]].(map[string]any)
					if _, ok := frag[f[1]]; !ok {
						return fmt.Errorf("%s.%s not there yet: %v", f[0], f[1], mo[f[0]])
					}
				}
				return nil
			})
			for _, c := range []struct{ frag, field, want string }{
				{"c8y_Hardware", "model", "simulator"},
				{"c8y_Hardware", "serialNumber", ep},
				{"c8y_Hardware", "revision", "1.0"},
				{"c8y_Firmware", "version", "1.0.0"},
				{"c8y_Mobile", "mcc", "262"},
				{"c8y_Mobile", "mnc", "1"},
			} {
				if got := mo.str(c.frag, c.field); got != c.want {
					t.Errorf("%s.%s = %q, want %q", c.frag, c.field, got, c.want)
				}
			}
			if cell, _ := strconv.Atoi(mo.str("c8y_Mobile", "cellId")); cell < 10000 {
				t.Errorf("c8y_Mobile.cellId %q, want the simulator's (10000 and up)", mo.str("c8y_Mobile", "cellId"))
			}
			pos, _ := mo["c8y_Position"].(map[string]any)
			lat, _ := pos["lat"].(float64)
			lng, _ := pos["lng"].(float64)
			if lat < 52.4 || lat > 52.65 || lng < 13.2 || lng > 13.6 || pos["alt"] != 34.0 {
				t.Errorf("c8y_Position %v, want about 52.52, 13.405, 34", pos)
			}

			// The observation's first answer and the notifications of the
			// changing signal each become a measurement.
			type series struct {
				Value float64 `json:"value"`
				Unit  string  `json:"unit"`
			}
			var res struct {
				Measurements []struct {
					Type   string `json:"type"`
					Source struct {
						ID string `json:"id"`
					} `json:"source"`
					Signal map[string]series `json:"c8y_SignalStrength"`
				} `json:"measurements"`
			}
			h.eventually(10*time.Second, func() error {
				if code := h.call("GET", "/measurement/measurements?pageSize=100&source="+id+"&type=c8y_SignalStrength", nil, &res); code != 200 {
					return fmt.Errorf("measurements: HTTP %d", code)
				}
				if len(res.Measurements) < 3 {
					return fmt.Errorf("%d signal strength measurements, want 3 or more", len(res.Measurements))
				}
				return nil
			})
			distinct := map[float64]bool{}
			for _, m := range res.Measurements {
				rssi, ok := m.Signal["rssi"]
				if !ok || m.Source.ID != id || rssi.Unit != "dBm" || rssi.Value > -50 || rssi.Value < -115 {
					t.Errorf("measurement %+v, want series rssi in dBm between -115 and -50", m)
				}
				distinct[rssi.Value] = true
			}
			if len(distinct) < 2 {
				t.Errorf("signal strength did not change across %d measurements: %v", len(res.Measurements), distinct)
			}

			// every value had a mapping it fit: no mapping alarm
			var alarms struct {
				Alarms []map[string]any `json:"alarms"`
			}
			if code := h.call("GET", "/alarm/alarms?source="+id+"&type=c8y_LWM2MMappingError", nil, &alarms); code != 200 || len(alarms.Alarms) != 0 {
				t.Errorf("mapping alarms (HTTP %d): %v", code, alarms.Alarms)
			}
		})
	}
}
