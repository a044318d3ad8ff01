package e2e

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/config"
	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/testproc"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/simulator"
)

func withPluginsConfig(path string) option { return func(c *config.Config) { c.PluginsConfig = path } }

// buildFrameDecoder compiles the bundled frame decoder program into a
// temporary folder, as an operator would install it.
func buildFrameDecoder(t *testing.T) string {
	return buildProgram(t, "frame-decoder", "./decoders/frame/cmd/frame-decoder")
}

// buildProgram compiles a program of the module (pkg relative to its
// root) into a temporary folder; with -short the test is skipped.
func buildProgram(t *testing.T, name, pkg string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds " + name)
	}
	bin := filepath.Join(t.TempDir(), name)
	cmd := exec.Command("go", "build", "-buildvcs=false", "-o", bin, pkg)
	cmd.Dir = "../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// agentWithPlugin starts an agent whose plugins file declares one plugin
// of kind, the test plugin program run with args.
func agentWithPlugin(t *testing.T, name, kind string, args ...string) *harness {
	t.Helper()
	bin := buildProgram(t, "testplugin", "./agent/plugins/testdata/testplugin")
	a, _ := json.Marshal(args)
	conf := filepath.Join(t.TempDir(), "plugins.json")
	spec := fmt.Sprintf(`{"plugins":[{"name":%q,"kind":%q,"path":%q,"args":%s,"timeout":"5s"}]}`, name, kind, bin, a)
	if err := os.WriteFile(conf, []byte(spec), 0o600); err != nil {
		t.Fatal(err)
	}
	return startAgent(t, func(c *config.Config) { c.PluginsConfig = conf })
}

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// c8yRequest is what a decoder with the Cumulocity decoder interface is
// posted.
type c8yRequest struct {
	Args           map[string]string `json:"args"`
	SourceDeviceID string            `json:"sourceDeviceId"`
	ServiceKey     string            `json:"serviceKey"`
	Value          string            `json:"value"`
}

// c8yPressureDecoder serves POST /decode as a Cumulocity decoder
// microservice does: two bytes, big endian, are a pressure in tenths of
// hPa; a frame starting with 0xFF is of a kind it does not know and is
// refused with success false. It records what it was asked.
func c8yPressureDecoder(t *testing.T) (*httptest.Server, func() []c8yRequest) {
	var mu sync.Mutex
	var seen []c8yRequest
	mux := http.NewServeMux()
	mux.HandleFunc("POST /decode", func(w http.ResponseWriter, r *http.Request) {
		var req c8yRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		seen = append(seen, req)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		b, err := hex.DecodeString(req.Value)
		switch {
		case err != nil || len(b) != 2:
			fmt.Fprintf(w, `{"success":false,"message":"want 2 bytes, got %q"}`, req.Value)
		case b[0] == 0xFF:
			fmt.Fprint(w, `{"success":false,"message":"unknown frame kind 0xff"}`)
		default:
			p := float64(binary.BigEndian.Uint16(b)) / 10
			fmt.Fprintf(w, `{"measurements":[{"type":"c8y_Pressure","series":"c8y_Pressure",
			  "values":[{"seriesName":"P","unit":"hPa","value":%g}]}],"success":true}`, p)
		}
	})
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s, func() []c8yRequest {
		mu.Lock()
		defer mu.Unlock()
		return append([]c8yRequest(nil), seen...)
	}
}

// startFrameService runs the frame decoder program as a gRPC decoder
// service on a free loopback port; it stops with the test.
func startFrameService(t *testing.T, bin, layout string) string {
	t.Helper()
	return startFrameServiceAt(t, bin, layout, freeTCPAddr(t))
}

// startFrameServiceAt is startFrameService on addr. The agent dials
// lazily, but a service still starting would make the first values wait
// for retries: it returns once the service listens.
func startFrameServiceAt(t *testing.T, bin, layout, addr string) string {
	t.Helper()
	testproc.ServeAt(t, addr, bin, "--config", layout, "--listen", addr)
	return addr
}

type seriesValue struct {
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
}

type decodedMeasurement struct {
	ID     string
	Type   string
	Source string
	Series map[string]seriesValue // fragment.series
}

// measurements lists the device's measurements of a type, every page.
func (h *harness) measurements(source, typ string) []decodedMeasurement {
	h.t.Helper()
	var all []decodedMeasurement
	for page := 1; ; page++ {
		var res struct {
			Measurements []map[string]json.RawMessage `json:"measurements"`
		}
		path := fmt.Sprintf("/measurement/measurements?pageSize=2000&currentPage=%d&source=%s&type=%s", page, source, typ)
		if code := h.call("GET", path, nil, &res); code != 200 {
			h.t.Fatalf("GET %s: HTTP %d", path, code)
		}
		for _, raw := range res.Measurements {
			m := decodedMeasurement{Series: map[string]seriesValue{}}
			for k, v := range raw {
				switch k {
				case "type":
					_ = json.Unmarshal(v, &m.Type)
				case "source":
					var src struct{ ID string }
					_ = json.Unmarshal(v, &src)
					m.Source = src.ID
				case "id":
					_ = json.Unmarshal(v, &m.ID)
				case "time", "self", "creationTime":
				default:
					var frag map[string]seriesValue
					if json.Unmarshal(v, &frag) == nil {
						for s, sv := range frag {
							m.Series[k+"."+s] = sv
						}
					}
				}
			}
			all = append(all, m)
		}
		if len(res.Measurements) < 2000 {
			return all
		}
	}
}

// metricValue finds one sample on the /metrics page; labels as they are
// printed, `plugin="frame",kind="decoder"` in any order.
func metricValue(page, name string, labels ...string) (float64, bool) {
	for line := range strings.Lines(page) {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		all := true
		for _, l := range labels {
			all = all && strings.Contains(rest, l)
		}
		if !all {
			continue
		}
		f := strings.Fields(rest)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		return v, err == nil
	}
	return 0, false
}

// Three decoders of one agent, each a real program or service: the
// bundled frame decoder as a plugin process the agent starts, the same
// program run apart as a gRPC service, and a Cumulocity-style HTTP
// decoder. A device reports opaque frames with LwM2M Send; each resource's
// customAction hands its frames to its decoder, and what the decoders
// make of them is the device's measurements. A frame the decoder refuses
// raises the mapping alarm; killing the plugin process in the middle of a
// stream loses no value, and /metrics shows the restart.
func TestDecoderPlugins(t *testing.T) {
	bin := buildFrameDecoder(t)
	tempLayout := writeFile(t, "temperature.json",
		`{"fields":[{"measurement":"c8y_Temperature","series":"T","offset":0,"type":"int16","scale":0.01,"unit":"C"}]}`)
	humLayout := writeFile(t, "humidity.json",
		`{"fields":[{"measurement":"c8y_Humidity","series":"h","offset":0,"type":"uint16","endian":"big","scale":0.1,"unit":"%RH"},
		            {"measurement":"c8y_Humidity","series":"dew","offset":2,"type":"int8","unit":"C"}],"exact":true}`)
	svcAddr := startFrameService(t, bin, humLayout)
	c8y, c8ySeen := c8yPressureDecoder(t)
	pluginsFile := writeFile(t, "plugins.json", fmt.Sprintf(`{"plugins":[
	  {"name":"frame","kind":"decoder","path":%q,"args":["--config",%q],"timeout":"2s","minBackoff":"200ms"},
	  {"name":"frame-svc","kind":"decoder","address":%q},
	  {"name":"pressure","kind":"decoder","url":%q}
	]}`, bin, tempLayout, svcAddr, c8y.URL+"/decode"))

	h := startAgent(t, withPluginsConfig(pluginsFile))
	h.uploadRegistry("19.xml", "10268.xml")
	latest := node.ResourcePath(10268, 0, 6029)  // Temperature Readings: Latest Payload
	history := node.ResourcePath(10268, 0, 6009) // Interval Historical Read Payload
	appData := node.ResourcePath(19, 0, 0)       // Binary App Data Container: Data
	for _, fn := range []struct {
		path    node.Path
		decoder string
	}{{latest, "frame"}, {history, "frame-svc"}, {appData, "pressure"}} {
		url := fmt.Sprintf("/lwm2m/deviceprotocols/%d/resources/%d/functionalities", fn.path.Object, fn.path.Resource)
		if code, _, e := h.put("management/admin", adminPassword, url, map[string]any{"customAction": "decoder:" + fn.decoder}); code != 200 {
			t.Fatalf("PUT %s: HTTP %d %+v", url, code, e)
		}
	}

	sim := h.simulate(1, func(c *simulator.Config) { c.NotifyInterval = 0 })
	ep := sim.Endpoints()[0]
	dev := sim.Device(ep)
	id := h.device(ep).str("id")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	report := func(p node.Path, frame []byte) {
		t.Helper()
		set := p
		if p.Object == 19 {
			set = p.Child(0) // Data is a multiple resource
		}
		dev.SetValue(set, node.Opaque(frame))
		if err := dev.Send(ctx, p); err != nil {
			t.Fatalf("send %v: %v", p, err)
		}
	}

	report(latest, binary.LittleEndian.AppendUint16(nil, uint16(2150)))
	report(history, []byte{0x02, 0x2b, 0xf6}) // 55.5 %RH, dew point -10 C
	report(appData, []byte{0x27, 0x94})       // 1013.2 hPa

	for _, want := range []struct {
		typ, series string
		value       float64
		unit        string
	}{
		{"c8y_Temperature", "c8y_Temperature.T", 21.5, "C"},
		{"c8y_Humidity", "c8y_Humidity.h", 55.5, "%RH"},
		{"c8y_Humidity", "c8y_Humidity.dew", -10, "C"},
		{"c8y_Pressure", "c8y_Pressure.P", 1013.2, "hPa"},
	} {
		ms := h.waitMeasurements(id, want.typ)
		got, ok := ms[0].Series[want.series]
		if len(ms) != 1 || ms[0].Type != want.typ || ms[0].Source != id || !ok ||
			math.Abs(got.Value-want.value) > 1e-9 || got.Unit != want.unit {
			t.Errorf("%s: %+v, want one measurement of %s with %s = %v %s", want.typ, ms, id, want.series, want.value, want.unit)
		}
	}
	// the HTTP decoder was asked as Cumulocity asks
	if seen := c8ySeen(); len(seen) != 1 || seen[0].Args["resourcePath"] != "/19/0/0/0" ||
		seen[0].SourceDeviceID != id || seen[0].ServiceKey != "pressure" || seen[0].Value != "2794" {
		t.Errorf("the HTTP decoder was posted %+v", seen)
	}

	// a frame the decoder refuses: the mapping alarm on the device
	report(appData, []byte{0xFF, 0x01})
	h.eventually(15*time.Second, func() error {
		var res struct {
			Alarms []struct {
				Text     string `json:"text"`
				Severity string `json:"severity"`
				Status   string `json:"status"`
			} `json:"alarms"`
		}
		if code := h.call("GET", "/alarm/alarms?source="+id+"&type=c8y_LWM2MMappingError", nil, &res); code != 200 {
			return fmt.Errorf("alarms: HTTP %d", code)
		}
		if len(res.Alarms) != 1 {
			return fmt.Errorf("%d mapping alarms, want 1", len(res.Alarms))
		}
		if a := res.Alarms[0]; a.Status != "ACTIVE" || !strings.Contains(a.Text, "/19/0/0/0") || !strings.Contains(a.Text, "unknown frame kind") {
			t.Errorf("mapping alarm %+v, want an active alarm naming the resource and the decoder's reason", a)
		}
		return nil
	})

	// kill the plugin process in the middle of a stream of frames
	firstPID := 0
	for _, s := range h.agent.Plugins.Stats() {
		if s.Name == "frame" {
			firstPID = s.PID
		}
	}
	if firstPID == 0 {
		t.Fatal("no PID of the frame plugin process")
	}
	const n = 80
	// in hundredths of a degree: the decoder scales by 0.01, which is not
	// exactly a division by 100 in floating point
	want := map[int]bool{2150: true}
	for i := range n {
		if i == n/4 {
			if err := syscall.Kill(firstPID, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		}
		centi := int16(i*13 - 400)
		want[int(centi)] = true
		report(latest, binary.LittleEndian.AppendUint16(nil, uint16(centi)))
		time.Sleep(10 * time.Millisecond)
	}
	var ms []decodedMeasurement
	h.eventually(30*time.Second, func() error {
		if ms = h.measurements(id, "c8y_Temperature"); len(ms) < len(want) {
			return fmt.Errorf("%d of %d temperature measurements", len(ms), len(want))
		}
		return nil
	})
	got := map[int]int{}
	for _, m := range ms {
		got[int(math.Round(m.Series["c8y_Temperature.T"].Value*100))]++
	}
	for v := range want {
		if got[v] != 1 {
			t.Errorf("temperature %v measured %d times, want once", float64(v)/100, got[v])
		}
	}
	for v, c := range got {
		if !want[v] {
			t.Errorf("temperature %v measured %d times, a value never sent", float64(v)/100, c)
		}
	}
	if len(ms) != len(want) {
		t.Errorf("%d temperature measurements, want %d", len(ms), len(want))
	}

	page, err := h.metrics()
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := metricValue(page, "lwm2m_agent_plugin_restarts_total", `plugin="frame"`, `reason="crash"`); !ok || v < 1 {
		t.Errorf("lwm2m_agent_plugin_restarts_total of frame = %v (found %v), want 1 or more", v, ok)
	}
	if v, ok := metricValue(page, "lwm2m_agent_plugin_up", `plugin="frame"`); !ok || v != 1 {
		t.Errorf("lwm2m_agent_plugin_up of frame = %v (found %v), want 1", v, ok)
	}
	// the refused frame is the only value not decoded
	if v, ok := metricValue(page, "lwm2m_agent_decode_failed_total"); !ok || v != 1 {
		t.Errorf("lwm2m_agent_decode_failed_total = %v (found %v), want 1", v, ok)
	}
	if v, ok := metricValue(page, "lwm2m_agent_decoded_total"); !ok || v != float64(n+3) {
		t.Errorf("lwm2m_agent_decoded_total = %v (found %v), want %d", v, ok, n+3)
	}
	// the decoded values' outputs were stored through the pipeline's writer
	if v, ok := metricValue(page, "lwm2m_agent_pipeline_store_delay_seconds_count"); !ok || v < float64(n+3) {
		t.Errorf("lwm2m_agent_pipeline_store_delay_seconds_count = %v (found %v), want %d or more", v, ok, n+3)
	}
	for _, s := range h.agent.Plugins.Stats() {
		if s.Name == "frame" && (s.PID == firstPID || s.PID == 0) {
			t.Errorf("frame plugin PID %d after the kill of %d, want a new process", s.PID, firstPID)
		}
	}
	if t.Failed() {
		for _, l := range regexp.MustCompile(`(?m)^lwm2m_agent_(plugin|decode).*$`).FindAllString(page, -1) {
			t.Log(l)
		}
	}
}
