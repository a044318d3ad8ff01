package browsertest_test

import (
	"fmt"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/console/browsertest"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/simulator"
)

// objectsReads counts the page's requests of the objects view so far.
const objectsReads = `performance.getEntriesByType('resource').filter((e) => /\/lwm2m\/devices\/[^/]+\/objects/.test(e.name)).length`

// within answers, from inside the page, how many milliseconds it took
// until expr held, or -1 when it did not hold within ms.
func within(b *browsertest.Browser, expr string, ms int) float64 {
	b.T.Helper()
	var took float64
	b.Eval(fmt.Sprintf(`new Promise((resolve) => { const t0 = performance.now();
		const check = () => { if (%s) resolve(performance.now() - t0); else if (performance.now() - t0 > %d) resolve(-1); else setTimeout(check, 25); };
		check(); })`, expr, ms), &took)
	return took
}

// The Objects tab shows an observed resource's new value as the device
// notifies it, without a reload and without reading the view again: the
// value comes from the realtime notifications within 3 s, where the
// tab's fallback polling would take 10 s.
func TestObjectsLiveValues(t *testing.T) {
	a := browsertest.StartAgent(t)
	sim := a.Simulate(1, "objlive", func(c *simulator.Config) { c.NotifyInterval = 0 })
	ep := sim.Endpoints()[0]
	id := a.DeviceID(ep)
	b := browsertest.AdminBrowser(t, a, "/devices/"+id+"/objects")
	b.Eval(`performance.setResourceTimingBufferSize(100000)`, nil)
	cell := `tr[data-path="/3303/0/5700"] td.value`
	b.WaitVisible(`.tab-objects[data-live="realtime"] ` + cell)

	var op struct{ ID, Status string }
	if code := a.Admin("POST", "/devicecontrol/operations", map[string]any{"deviceId": id, "c8y_Command": map[string]string{"text": "observe /3303/0/5700"}}, &op); code != 201 {
		t.Fatalf("observe: HTTP %d", code)
	}
	// the page reads the view once the operation has ended: then it is quiet
	b.WaitVisible(`tr[data-path="/3303/0/5700"] [data-observed]:not([hidden])`)
	var before int
	b.Eval(objectsReads, &before)

	sim.Device(ep).SetValue(node.ResourcePath(3303, 0, 5700), node.Float(42.42))
	took := within(b, `document.querySelector('`+cell+`').innerText.includes('42.42')`, 3000)
	if took < 0 {
		t.Fatalf("the new value 42.42 not shown within 3 s; the cell shows %q", b.Text(cell))
	}
	var after int
	b.Eval(objectsReads, &after)
	if after != before {
		t.Errorf("the page read the objects view %d times while the value changed, want none: values come from the notifications", after-before)
	}
	t.Logf("new value shown %.0f ms after the device notified it", took)
	b.WaitText(`tr[data-path="/3303/0/5700"] td:nth-child(4)`, "just now")
}
