package e2e

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/config"
	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/testproc"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/simulator"
)

// backlogRig is what the decode backlog's end-to-end tests share: the
// frame decoder program, to run as a gRPC decoder service at svc, which
// the plugins file names frame-svc, and nothing listens there yet: the
// decoder is down.
type backlogRig struct {
	t       *testing.T
	bin     string
	layout  string
	svc     string
	plugins string
	// proc is the decoder service's process, once started
	proc *os.Process
}

// latestPayload is Temperature Readings' Latest Payload (10268/0/6029),
// an opaque resource, decoded by frame-svc.
var latestPayload = node.ResourcePath(10268, 0, 6029)

func newBacklogRig(t *testing.T) *backlogRig {
	t.Helper()
	r := &backlogRig{t: t, bin: buildFrameDecoder(t), svc: freeTCPAddr(t)}
	r.layout = writeFile(t, "temperature.json",
		`{"fields":[{"measurement":"c8y_Temperature","series":"T","offset":0,"type":"int16","scale":0.01,"unit":"C"}]}`)
	r.plugins = writeFile(t, "plugins.json", fmt.Sprintf(`{"plugins":[
	  {"name":"frame-svc","kind":"decoder","address":%q,"timeout":"2s","minBackoff":"50ms","maxBackoff":"500ms"}]}`, r.svc))
	return r
}

// decoderBack starts the decoder service and returns when it listens.
func (r *backlogRig) decoderBack() time.Time {
	r.proc = testproc.ServeAt(r.t, r.svc, r.bin, "--config", r.layout, "--listen", r.svc)
	return time.Now()
}

// drain starts the decoder service after the agent's restart (what
// names it) and checks that each of the devices' each values is decoded
// exactly once, and nothing dropped.
func (r *backlogRig) drain(h *harness, ids []string, each int, what string) {
	r.t.Helper()
	back := r.decoderBack()
	checkDecodedOnce(r.t, h, ids, each, 60*time.Second)
	drained := time.Since(back)
	h.checkDrained(len(ids) * each)
	r.t.Logf("decoder down across %s: %d values sent, %d decoded once each, 0 dropped; drained %v after the decoder started",
		what, len(ids)*each, len(ids)*each, drained.Round(time.Millisecond))
}

// setUp uploads the object's definition and names frame-svc on the
// resource, through the API.
func (r *backlogRig) setUp(h *harness) {
	r.t.Helper()
	doc, err := os.ReadFile(filepath.Join(sharedDir(r.t, "lwm2m-registry"), "10268.xml"))
	if err != nil {
		r.t.Fatal(err)
	}
	if code, _, e := h.postDDF("management/admin", adminPassword, doc, ""); code != 201 {
		r.t.Fatalf("upload 10268.xml: HTTP %d %+v", code, e)
	}
	url := "/lwm2m/deviceprotocols/10268/resources/6029/functionalities"
	if code, _, e := h.put("management/admin", adminPassword, url, map[string]any{"customAction": "decoder:frame-svc"}); code != 200 {
		r.t.Fatalf("PUT %s: HTTP %d %+v", url, code, e)
	}
}

// simulated sets up the object (setUp) and runs n simulated devices
// without notifications of their own, with their managed object IDs.
func (r *backlogRig) simulated(h *harness, n int) (*simulator.Simulator, []string) {
	r.t.Helper()
	r.setUp(h)
	sim := h.simulate(n, func(c *simulator.Config) { c.NotifyInterval = 0 })
	var ids []string
	for _, ep := range sim.Endpoints() {
		ids = append(ids, h.device(ep).str("id"))
	}
	return sim, ids
}

// centi is device d's i-th temperature, in hundredths of a degree: each
// value of the test is a temperature of its own.
func centi(d, i int) int { return d*1000 + i }

// reportFrames sends each of sim's devices its frames from to to-1
// with LwM2M Send, one by one, each answered before the next.
func reportFrames(t *testing.T, sim *simulator.Simulator, from, to int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := from; i < to; i++ {
		for d, ep := range sim.Endpoints() {
			dev := sim.Device(ep)
			dev.SetValue(latestPayload, node.Opaque(binary.LittleEndian.AppendUint16(nil, uint16(int16(centi(d, i))))))
			if err := dev.Send(ctx, latestPayload); err != nil {
				t.Fatalf("send %d of %s: %v", i, ep, err)
			}
		}
	}
}

// checkDecodedOnce waits until every device has n temperatures, then
// fails the test unless each value sent was decoded exactly once, and
// each device's in the order sent (stored in that order: ascending ids).
func checkDecodedOnce(t *testing.T, h *harness, ids []string, n int, within time.Duration) {
	t.Helper()
	h.eventually(within, func() error {
		for _, id := range ids {
			if got := len(h.measurements(id, "c8y_Temperature")); got < n {
				return fmt.Errorf("%d of %d temperatures of device %s", got, n, id)
			}
		}
		return nil
	})
	for d, id := range ids {
		seen := map[int]int{}
		ms := h.measurements(id, "c8y_Temperature")
		slices.SortFunc(ms, func(a, b decodedMeasurement) int { return cmp.Compare(idNumber(t, a.ID), idNumber(t, b.ID)) })
		var order []int
		for _, m := range ms {
			v := int(math.Round(m.Series["c8y_Temperature.T"].Value * 100))
			seen[v]++
			order = append(order, v-centi(d, 0))
		}
		if !slices.IsSorted(order) {
			t.Errorf("device %s: values stored in the order %v, want the order sent", id, order)
		}
		for i := range n {
			if seen[centi(d, i)] != 1 {
				t.Errorf("device %s: value %d decoded %d times, want once", id, i, seen[centi(d, i)])
			}
			delete(seen, centi(d, i))
		}
		for v, c := range seen {
			t.Errorf("device %s: temperature %v measured %d times, a value never sent", id, float64(v)/100, c)
		}
	}
}

// waitMetric waits until the /metrics sample says want, within d.
func (h *harness) waitMetric(d time.Duration, want float64, name string, labels ...string) {
	h.t.Helper()
	h.eventually(d, func() error {
		page, err := h.metrics()
		if err != nil {
			return err
		}
		if v, ok := metricValue(page, name, labels...); !ok || v != want {
			return fmt.Errorf("%s%v = %v (found %v), want %v", name, labels, v, ok, want)
		}
		return nil
	})
}

// checkDrained waits until the backlog of frame-svc is empty, and fails
// the test unless the agent decoded n values and dropped none.
func (h *harness) checkDrained(n int) {
	h.t.Helper()
	h.waitMetric(15*time.Second, 0, "lwm2m_agent_decode_backlog_values", `plugin="frame-svc"`)
	page, err := h.metrics()
	if err != nil {
		h.t.Fatal(err)
	}
	if v, _ := metricValue(page, "lwm2m_agent_decoded_total"); v != float64(n) {
		h.t.Errorf("lwm2m_agent_decoded_total = %v, want %d", v, n)
	}
	for _, reason := range []string{"full", "expired", "store"} {
		if v, ok := metricValue(page, "lwm2m_agent_decode_dropped_total", `reason="`+reason+`"`); !ok || v != 0 {
			h.t.Errorf("lwm2m_agent_decode_dropped_total{reason=%q} = %v (found %v), want 0", reason, v, ok)
		}
	}
}

func withDecodeMaxBackoff(d time.Duration) option {
	return func(c *config.Config) { c.DecodeMaxBackoff = d }
}

// A decoder service is down while devices report 40 values: each waits
// in the decode backlog, in the store. The agent stops cleanly and
// starts again, still without its decoder; then the decoder starts, and
// every value is decoded exactly once.
func TestDecodeBacklogSurvivesAgentRestart(t *testing.T) {
	const devices, each = 2, 20
	r := newBacklogRig(t)
	dir, coap := t.TempDir(), freeUDPAddr(t)
	opts := []option{withPluginsConfig(r.plugins), withDecodeMaxBackoff(500 * time.Millisecond)}
	h, stop := startAgentIn(t, dir, coap, opts...)
	sim, ids := r.simulated(h, devices)
	reportFrames(t, sim, 0, each)
	h.waitMetric(15*time.Second, devices*each, "lwm2m_agent_decode_backlog_values", `plugin="frame-svc"`)
	h.eventually(10*time.Second, func() error {
		if s := h.agent.Decoder.Stats(); s.Retries == 0 {
			return fmt.Errorf("the decoder was not tried yet")
		}
		return nil
	})
	if s := h.agent.Decoder.Stats(); s.Decoded != 0 || s.Failed != 0 {
		t.Fatalf("before the restart: %+v, want nothing decoded nor failed", s)
	}
	stop()

	h2, _ := startAgentIn(t, dir, coap, opts...)
	h2.waitMetric(15*time.Second, devices*each, "lwm2m_agent_decode_backlog_values", `plugin="frame-svc"`)
	r.drain(h2, ids, each, "a clean restart")
}

// The same with the agent killed (SIGKILL) rather than stopped: every
// value it stored before it died is decoded exactly once by the next run,
// once the decoder starts.
func TestDecodeBacklogSurvivesAgentKill(t *testing.T) {
	const devices, each = 2, 20
	r := newBacklogRig(t)
	dir, coap, httpAddr := t.TempDir(), freeUDPAddr(t), freeTCPAddr(t)
	args := []string{"--plugins-config", r.plugins, "--decode-max-backoff", "500ms"}
	p, h := startAgentProcess(t, dir, coap, httpAddr, args...)
	r.setUp(h)
	sim := runSimulator(t, simulator.Config{
		Server: coap, Count: devices, Prefix: "kill", Version: "1.1", Lifetime: 5 * time.Minute,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, 30*time.Second)
	ids := make([]string, 0, devices)
	for _, ep := range sim.Endpoints() {
		ids = append(ids, h.device(ep).str("id"))
	}
	reportFrames(t, sim, 0, each)
	h.waitMetric(15*time.Second, devices*each, "lwm2m_agent_decode_backlog_values", `plugin="frame-svc"`)
	p.kill()

	_, h2 := startAgentProcess(t, dir, coap, httpAddr, args...)
	r.drain(h2, ids, each, "SIGKILL of the agent")
}

// A decoder service that hangs (stopped with SIGSTOP: it keeps its
// connections and answers nothing) while devices report: it shows as
// down, in /metrics and /lwm2m/plugins, and the values sent meanwhile
// wait in the decode backlog. Once it answers again (SIGCONT), every
// value is decoded exactly once, and none was dropped.
func TestHungDecoderServiceValuesWait(t *testing.T) {
	const devices, each = 2, 10
	r := newBacklogRig(t)
	h := startAgent(t, withPluginsConfig(r.plugins), withDecodeMaxBackoff(500*time.Millisecond))
	r.decoderBack()
	sim, ids := r.simulated(h, devices)
	reportFrames(t, sim, 0, each)
	checkDecodedOnce(t, h, ids, each, 30*time.Second)

	testproc.Stop(t, r.proc.Pid)
	stopped := time.Now()
	// values 10 to 19 of each device, while the service hangs
	reportFrames(t, sim, each, 2*each)
	h.waitMetric(20*time.Second, 0, "lwm2m_agent_plugin_up", `plugin="frame-svc"`)
	h.waitMetric(20*time.Second, devices*each, "lwm2m_agent_decode_backlog_values", `plugin="frame-svc"`)
	var shown struct {
		Plugins []struct {
			Name string `json:"name"`
			Up   bool   `json:"up"`
		} `json:"plugins"`
		DecodeBacklog struct {
			Decoders []struct {
				Decoder string `json:"decoder"`
				Waiting int    `json:"waiting"`
			} `json:"decoders"`
		} `json:"decodeBacklog"`
	}
	if code := h.call("GET", "/lwm2m/plugins", nil, &shown); code != 200 {
		t.Fatalf("GET /lwm2m/plugins: HTTP %d", code)
	}
	for _, p := range shown.Plugins {
		if p.Name == "frame-svc" && p.Up {
			t.Errorf("/lwm2m/plugins shows the hung service up")
		}
	}
	if d := shown.DecodeBacklog.Decoders; len(d) != 1 || d[0].Decoder != "frame-svc" || d[0].Waiting != devices*each {
		t.Errorf("/lwm2m/plugins decode backlog %+v, want %d values waiting for frame-svc", d, devices*each)
	}
	for _, id := range ids {
		if n := len(h.measurements(id, "c8y_Temperature")); n != each {
			t.Fatalf("device %s has %d temperatures while its decoder hangs, want %d", id, n, each)
		}
	}
	waited := time.Since(stopped)

	if err := r.proc.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	checkDecodedOnce(t, h, ids, 2*each, 60*time.Second)
	drained := time.Since(back)
	h.checkDrained(devices * 2 * each)
	h.waitMetric(10*time.Second, 1, "lwm2m_agent_plugin_up", `plugin="frame-svc"`)
	t.Logf("decoder service hung %v: %d values sent, %d waited in the backlog, %d decoded once each, 0 dropped; drained %v after it answered again",
		waited.Round(time.Millisecond), devices*2*each, devices*each, devices*2*each, drained.Round(time.Millisecond))
}

// idNumber is a stored object's id as a number: the embedded store
// numbers them in the order it stores them.
func idNumber(t *testing.T, id string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		t.Fatalf("id %q: %v", id, err)
	}
	return n
}
