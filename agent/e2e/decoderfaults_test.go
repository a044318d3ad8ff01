package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/simulator"
)

// A decoder plugin that goes wrong while devices report frames: it is
// stopped with SIGSTOP (hung: it neither answers nor exits), it panics on
// one frame and crashes on another, each in a batch of frames of several
// devices. The stopped process is killed and replaced, and every frame
// ends decoded exactly once, or, for the two frames at fault and only
// them, in a mapping alarm on its device that says why.
func TestDecoderFaultsLoseNoValue(t *testing.T) {
	bin := buildProgram(t, "testplugin", "./agent/plugins/testdata/testplugin")
	conf := writeFile(t, "plugins.json", fmt.Sprintf(`{"plugins":[{"name":"flaky","kind":"decoder","path":%q,
	  "timeout":"1s","hungAfter":2,"minBackoff":"50ms","maxBackoff":"500ms"}]}`, bin))
	h := startAgent(t, withPluginsConfig(conf))
	doc, err := os.ReadFile(filepath.Join(sharedDir(t, "lwm2m-registry"), "19.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if code, _, e := h.postDDF("management/admin", adminPassword, doc, ""); code != 201 {
		t.Fatalf("upload 19.xml: HTTP %d %+v", code, e)
	}
	if code, _, e := h.put("management/admin", adminPassword, "/lwm2m/deviceprotocols/19/resources/0/functionalities",
		map[string]any{"customAction": "decoder:flaky"}); code != 200 {
		t.Fatalf("route /19/x/0 to the decoder: HTTP %d %+v", code, e)
	}

	const devices, perDevice = 6, 40
	sim := h.simulate(devices, func(c *simulator.Config) { c.NotifyInterval = 0 })
	eps := sim.Endpoints()
	ids := make([]string, len(eps))
	for i, ep := range eps {
		ids[i] = h.device(ep).str("id")
	}
	data := node.ResourcePath(19, 0, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	// frame k of a device is the byte k, which the plugin measures as k;
	// device 1 sends "panic" as its frame 25, device 4 "crash" as its 30
	culprits := map[int]struct {
		k     int
		frame string
		why   string
	}{1: {25, "panic", "plugin panicked"}, 4: {30, "crash", "exited during the call"}}
	send := func(from, to int) {
		var wg sync.WaitGroup
		for d, ep := range eps {
			wg.Go(func() {
				dev := sim.Device(ep)
				for k := from; k < to; k++ {
					frame := []byte{byte(k)}
					if c, ok := culprits[d]; ok && c.k == k {
						frame = []byte(c.frame)
					}
					dev.SetValue(data.Child(0), node.Opaque(frame))
					if err := dev.Send(ctx, data); err != nil {
						t.Errorf("%s: send frame %d: %v", ep, k, err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	pluginPID := func() int {
		for _, s := range h.agent.Plugins.Stats() {
			if s.Name == "flaky" {
				return s.PID
			}
		}
		return 0
	}

	start := time.Now()
	send(1, 11)
	first := pluginPID()
	if first == 0 {
		t.Fatal("no process of the decoder plugin")
	}
	t.Cleanup(func() { _ = syscall.Kill(first, syscall.SIGKILL) })
	if err := syscall.Kill(first, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stoppedAt := time.Now()
	// the frames sent while the plugin is stopped queue up, and are
	// decoded in batches of several devices once it is replaced
	send(11, perDevice+1)

	total := devices * perDevice
	h.eventually(60*time.Second, func() error {
		n := 0
		for _, id := range ids {
			n += len(h.measurements(id, "v"))
		}
		if n < total-len(culprits) {
			return fmt.Errorf("%d of %d frames decoded", n, total-len(culprits))
		}
		return nil
	})
	t.Logf("%d frames from %d devices decoded %v after the first was sent, %v after the plugin was stopped",
		total-len(culprits), devices, time.Since(start).Round(time.Millisecond), time.Since(stoppedAt).Round(time.Millisecond))

	for d, id := range ids {
		got := map[int]int{}
		for _, m := range h.measurements(id, "v") {
			got[int(m.Series["v.v"].Value)]++
		}
		for k := 1; k <= perDevice; k++ {
			want := 1
			if c, ok := culprits[d]; ok && c.k == k {
				want = 0
			}
			if got[k] != want {
				t.Errorf("device %d frame %d decoded %d times, want %d", d, k, got[k], want)
			}
		}
		if len(got) > perDevice {
			t.Errorf("device %d has measurements of frames it never sent: %v", d, got)
		}
		var res struct {
			Alarms []struct {
				Text  string `json:"text"`
				Count int    `json:"count"`
			} `json:"alarms"`
		}
		if code := h.call("GET", "/alarm/alarms?source="+id+"&type=c8y_LWM2MMappingError", nil, &res); code != 200 {
			t.Fatalf("alarms: HTTP %d", code)
		}
		c, isCulprit := culprits[d]
		switch {
		case !isCulprit && len(res.Alarms) != 0:
			t.Errorf("device %d, which sent no bad frame, has mapping alarms %+v", d, res.Alarms)
		case isCulprit && (len(res.Alarms) != 1 || res.Alarms[0].Count != 1 || !strings.Contains(res.Alarms[0].Text, c.why)):
			t.Errorf("device %d: mapping alarms %+v, want one for its %s frame saying %q", d, res.Alarms, c.frame, c.why)
		}
	}

	page, err := h.metrics()
	if err != nil {
		t.Fatal(err)
	}
	hangs, _ := metricValue(page, "lwm2m_agent_plugin_restarts_total", `plugin="flaky"`, `reason="hang"`)
	crashes, _ := metricValue(page, "lwm2m_agent_plugin_restarts_total", `plugin="flaky"`, `reason="crash"`)
	decoded, _ := metricValue(page, "lwm2m_agent_decoded_total")
	failed, _ := metricValue(page, "lwm2m_agent_decode_failed_total")
	if hangs < 1 || crashes < 2 || decoded != float64(total-len(culprits)) || failed != float64(len(culprits)) {
		t.Errorf("restarts for a hang %v (want 1 or more), for a crash %v (want 2 or more); decoded %v, failed %v (want %d and %d)",
			hangs, crashes, decoded, failed, total-len(culprits), len(culprits))
	}
	if pid := pluginPID(); pid == first || pid == 0 {
		t.Errorf("plugin process %d, want a new one in place of the stopped %d", pid, first)
	}
	t.Logf("%d frames sent, %v decoded, %v failed with an alarm, 0 lost; plugin restarts: %v for a hang, %v for a crash",
		total, decoded, failed, hangs, crashes)
}
