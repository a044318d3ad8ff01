package browsertest_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/lwm2m-agent/lwm2m-agent/agent/console/browsertest"
	"github.com/lwm2m-agent/lwm2m-agent/agent/simulator"
)

// An operator's whole path from an object definition to a chart, in the
// browser: upload the DDF of an object the agent does not know, set its
// reading to be a measurement observed automatically, and watch the
// device's chart fill with what a simulated device of that object
// reports, live.
func TestProtocolUploadToChart(t *testing.T) {
	a := browsertest.StartAgent(t)
	b := browsertest.AdminBrowser(t, a, "")

	ddf, err := filepath.Abs(filepath.Join("testdata", "ddf", "33061.xml"))
	if err != nil {
		t.Fatal(err)
	}
	b.Open("/protocols")
	b.WaitVisible(`tr[data-object-id="3303"]`)
	b.Do("choose the DDF file", chromedp.SetUploadFiles(chromedp.CSS("#ddf-files"), []string{ddf}))
	b.WaitText(`.upload-results li[data-result="ok"]`, "33061 Console Test Meter")

	b.ClickText(`tr[data-object-id="33061"] a`, "Console Test Meter")
	b.WaitText("#main h1", "33061 · Console Test Meter")
	b.Click(`tr[data-resource-id="0"] button[aria-label^="Functionalities"]`)
	b.WaitVisible("dialog .functionalities-form")
	b.Click(`dialog input[name="measurement-on"]`)
	b.Fill(`dialog input[name="measurement.type"]`, "c8y_Energy")
	b.Fill(`dialog input[name="measurement.series"]`, "E")
	b.Click(`dialog input[name="autoObserve"]`)
	b.Click(`dialog .functionalities-form button[type=submit]`)
	b.WaitGone("dialog")
	b.WaitText(`tr[data-resource-id="0"]`, "measurement c8y_Energy.E (kWh)")

	// a device with the object, its reading a random walk measured every
	// 200 ms, notified to the agent, which observes it by itself
	dir := t.TempDir()
	objects := filepath.Join(dir, "meter.json")
	spec := fmt.Sprintf(`{"ddf": [%q], "every": "200ms", "report": "notify",
		"resources": {"/33061/0/0": {"walk": {"start": 100, "step": 0.5, "min": 0, "max": 1000}}}}`, ddf)
	if err := os.WriteFile(objects, []byte(spec), 0o600); err != nil {
		t.Fatal(err)
	}
	objs, err := simulator.LoadObjects(objects, nil)
	if err != nil {
		t.Fatal(err)
	}
	sim := a.Simulate(1, "meter", func(c *simulator.Config) { c.Objects = objs })
	id := a.DeviceID(sim.Endpoints()[0])

	b.Open("/devices/" + id + "/measurements")
	b.WaitText(".series-chooser", "E")
	b.WaitVisible(".tab-measurements .chart path.line.series-0")
	points := func() int {
		var n int
		b.Eval(`Number(document.querySelector('.tab-measurements').dataset.points || 0)`, &n)
		return n
	}
	// the chart fills without a reload: ten more points after it showed
	from := points()
	b.WaitFor("ten more points charted as the device reports",
		fmt.Sprintf(`Number(document.querySelector('.tab-measurements').dataset.points) >= %d`, from+10))
	if n := count(t, a, "/measurement/measurements?source="+id+"&type=c8y_Energy"); n < from+10 {
		t.Errorf("%d c8y_Energy measurements stored, fewer than the %d charted", n, from+10)
	}
}
