package e2e

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/config"
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
	startFrameServiceAt(r.t, r.bin, r.layout, r.svc)
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

// centi is device d's i-th temperature, in hundredths of a degree: each
// value of the test is a temperature of its own.
func centi(d, i int) int { return d*1000 + i }

// report sends each of sim's devices n frames with LwM2M Send, one by
// one, each answered before the next.
func reportFrames(t *testing.T, sim *simulator.Simulator, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := range n {
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
// fails the test unless each value sent was decoded exactly once.
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
		for _, m := range h.measurements(id, "c8y_Temperature") {
			seen[int(math.Round(m.Series["c8y_Temperature.T"].Value*100))]++
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
	r.setUp(h)
	sim := h.simulate(devices, func(c *simulator.Config) { c.NotifyInterval = 0 })
	var ids []string
	for _, ep := range sim.Endpoints() {
		ids = append(ids, h.device(ep).str("id"))
	}
	reportFrames(t, sim, each)
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
	reportFrames(t, sim, each)
	h.waitMetric(15*time.Second, devices*each, "lwm2m_agent_decode_backlog_values", `plugin="frame-svc"`)
	p.kill()

	_, h2 := startAgentProcess(t, dir, coap, httpAddr, args...)
	r.drain(h2, ids, each, "SIGKILL of the agent")
}
