package e2e

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/simulator"
)

// timedValue is one measurement's value of a series, with its time.
type timedValue struct {
	time  time.Time
	value float64
}

// seriesValues lists the values of one series of the device's
// measurements of a type, oldest first.
func (h *harness) seriesValues(source, typ, fragment, series string) []timedValue {
	h.t.Helper()
	var res struct {
		Measurements []map[string]any `json:"measurements"`
	}
	path := fmt.Sprintf("/measurement/measurements?pageSize=2000&source=%s&type=%s", source, typ)
	if code := h.call("GET", path, nil, &res); code != 200 {
		h.t.Fatalf("GET %s: HTTP %d", path, code)
	}
	var out []timedValue
	for _, m := range res.Measurements {
		at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(m["time"]))
		if err != nil {
			h.t.Fatalf("measurement time %v: %v", m["time"], err)
		}
		s, _ := m[fragment].(map[string]any)[series].(map[string]any)
		v, ok := s["value"].(float64)
		if !ok {
			h.t.Fatalf("measurement %v has no %s.%s", m, fragment, series)
		}
		out = append(out, timedValue{at, v})
	}
	slices.SortStableFunc(out, func(a, b timedValue) int { return a.time.Compare(b.time) })
	return out
}

// A simulated device with an object of its own, from the example DDF
// file, reports binary frames of an opaque resource as notifications at
// a chosen rate and a counter with LwM2M Send; the agent, given the same
// DDF, decodes every frame with the frame decoder plugin and maps every
// counter value, each once and in the device's order.
func TestSimulatedObjectsFromDDF(t *testing.T) {
	const example = "../../examples/simulator"
	bin := buildFrameDecoder(t)
	layout := writeFile(t, "frame.json",
		`{"fields":[{"measurement":"c8y_Temperature","series":"T","offset":0,"type":"int16","scale":0.01,"unit":"C"}],"exact":true}`)
	plugins := writeFile(t, "plugins.json", fmt.Sprintf(`{"plugins":[{"name":"frame","kind":"decoder","path":%q,"args":["--config",%q]}]}`, bin, layout))
	h := startAgent(t, withPluginsConfig(plugins))

	ddf, err := os.ReadFile(filepath.Join(example, "frame-sensor.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if code, _, e := h.postDDF("management/admin", adminPassword, ddf, "?source=frame-sensor.xml"); code != 201 {
		t.Fatalf("upload the example DDF: HTTP %d %+v", code, e)
	}
	h.setFunctionality("management/admin", adminPassword, "32050/resources/0", map[string]any{"customAction": "decoder:frame", "autoObserve": true})
	h.setFunctionality("management/admin", adminPassword, "32050/resources/1", map[string]any{"measurement": map[string]any{"type": "c8y_FrameCounter", "series": "n"}})

	// the example file, with its frames and counter at 5 a second, the
	// counter by Send
	objs, err := simulator.LoadObjects(filepath.Join(example, "frame-sensor.json"), nil)
	if err != nil {
		t.Fatal(err)
	}
	const every = 200 * time.Millisecond
	for i := range objs.Resources {
		r := &objs.Resources[i]
		switch r.Path.String() {
		case "/32050/0/0":
			r.Every = every
		case "/32050/0/1":
			r.Every, r.Report = every, simulator.ReportSend
		}
	}
	start := time.Now()
	sim := h.simulate(1, func(c *simulator.Config) { c.Objects = objs; c.NotifyInterval = 0 })
	ep := sim.Endpoints()[0]
	id := h.device(ep).str("id")
	if lw, _ := h.device(ep)["lwm2m"].(map[string]any); !strings.Contains(fmt.Sprint(lw["objects"]), "/32050/0") {
		objects := lw["objects"]
		t.Errorf("registered objects %s, without /32050/0", objects)
	}

	const want = 12
	var temps, counts []timedValue
	h.eventually(30*time.Second, func() error {
		temps = h.seriesValues(id, "c8y_Temperature", "c8y_Temperature", "T")
		counts = h.seriesValues(id, "c8y_FrameCounter", "c8y_FrameCounter", "n")
		if len(temps) < want || len(counts) < want {
			return fmt.Errorf("%d decoded frames and %d counter values, want %d each", len(temps), len(counts), want)
		}
		return nil
	})
	took := time.Since(start)

	// The frames cycle 21.50, 21.60, 21.70, 21.60 °C: each decoded value
	// follows the one before in that cycle, so none was lost or repeated.
	next := map[int][]int{2150: {2160}, 2160: {2170, 2150}, 2170: {2160}}
	for i, m := range temps {
		centi := int(math.Round(m.value * 100))
		if _, ok := next[centi]; !ok {
			t.Fatalf("decoded %v °C, a temperature the device never sent", m.value)
		}
		if i > 0 {
			prev := int(math.Round(temps[i-1].value * 100))
			if !slices.Contains(next[prev], centi) {
				t.Errorf("decoded %v °C after %v °C: a frame was lost or repeated", m.value, temps[i-1].value)
			}
		}
	}
	// Send carries each counter value once, in order.
	for i := 1; i < len(counts); i++ {
		if counts[i].value != counts[i-1].value+1 {
			t.Errorf("counter %v after %v", counts[i].value, counts[i-1].value)
		}
	}
	// at the chosen rate: about 5 a second, not as fast as possible
	if n := len(temps) + len(counts); float64(n) > 2*(took.Seconds()/every.Seconds())+4 {
		t.Errorf("%d measurements in %v: faster than one of each every %v", n, took, every)
	}
	if s := sim.Stats(); s.Sends == 0 || s.Measurements < 2*want {
		t.Errorf("simulator stats %+v", s)
	}
}
