package browsertest_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/lwm2m-agent/lwm2m-agent/agent/console/browsertest"
	"github.com/lwm2m-agent/lwm2m-agent/agent/simulator"
)

// setFunctionality gives resource /3303/*/5700 (the simulated
// temperature) functionalities through the API.
func setFunctionality(t *testing.T, a *browsertest.Agent, f map[string]any) {
	t.Helper()
	if code := a.Admin("PUT", "/lwm2m/deviceprotocols/3303/resources/5700/functionalities", f, nil); code != http.StatusOK {
		t.Fatalf("set functionalities of /3303/5700: HTTP %d", code)
	}
}

// count answers how many items of a collection the API lists for a query.
func count(t *testing.T, a *browsertest.Agent, path string) int {
	t.Helper()
	var res struct {
		Statistics struct{ TotalElements int } `json:"statistics"`
	}
	if code := a.Admin("GET", path+"&pageSize=1&withTotalPages=true", nil, &res); code != http.StatusOK {
		t.Fatalf("GET %s: HTTP %d", path, code)
	}
	return res.Statistics.TotalElements
}

// A device notifying its temperature every 100 ms, mapped to a
// measurement: the Measurements tab charts it, keeps every stored value
// as it arrives, zooms by dragging and by its buttons, and shows the
// values as a table. The rate the page keeps up with is logged (the
// figure of docs/performance.md).
func TestMeasurementsChartKeepsUp(t *testing.T) {
	a := browsertest.StartAgent(t)
	setFunctionality(t, a, map[string]any{
		"measurement": map[string]any{"type": "c8y_Temperature", "series": "T", "unit": "C"}, "autoObserve": true,
	})
	sim := a.Simulate(1, "meas", func(c *simulator.Config) { c.NotifyInterval = 100 * time.Millisecond })
	id := a.DeviceID(sim.Endpoints()[0])
	stored := func() int { return count(t, a, "/measurement/measurements?source="+id) }
	browsertest.Eventually(t, browsertest.Wait, func() error {
		if n := stored(); n < 20 {
			return fmt.Errorf("%d measurements stored, want 20 before opening the page", n)
		}
		return nil
	})

	b := browsertest.AdminBrowser(t, a, "/devices/"+id+"/measurements")
	b.WaitVisible(".tab-measurements .chart path.line.series-0")
	b.WaitText(".series-chooser", "Temperature T")
	shown := func() int {
		var n int
		b.Eval(`Number(document.querySelector('.tab-measurements').dataset.points || 0)`, &n)
		return n
	}

	// keeping up: every value stored by some moment is on the page soon
	// after, again and again while the device goes on notifying
	start, p0, s0 := time.Now(), shown(), stored()
	for round := 0; round < 3; round++ {
		want := stored()
		b.WaitFor(fmt.Sprintf("the chart holding the %d values stored", want),
			fmt.Sprintf(`Number(document.querySelector('.tab-measurements').dataset.points) >= %d`, want))
	}
	b.WaitFor("50 more values on the chart", fmt.Sprintf(`Number(document.querySelector('.tab-measurements').dataset.points) >= %d`, p0+50))
	el, p1, s1 := time.Since(start).Seconds(), shown(), stored()
	var lagMs float64
	b.Eval(`Date.now() - Date.parse(document.querySelector('.tab-measurements').dataset.latest)`, &lagMs)
	var mode string
	b.Eval(`document.querySelector('.tab-measurements .live-mode').dataset.mode`, &mode)
	t.Logf("device notifying every 100 ms: %.1f values/s stored, %.1f values/s charted over %.1f s (%s); newest value %.0f ms old when read",
		float64(s1-s0)/el, float64(p1-p0)/el, el, mode, lagMs)

	// zoom: a drag across the part of the last 10 minutes that has values
	b.Select(".tab-measurements select[name=range]", "10min")
	b.WaitFor("the chart of 10 minutes with its values", fmt.Sprintf(`Number(document.querySelector('.tab-measurements').dataset.points) >= %d`, p1))
	b.WaitVisible(".tab-measurements .chart path.line")
	var box struct{ X, Y, W, H, Left, Right float64 }
	b.Eval(`(() => {
		const r = document.querySelector('.tab-measurements .chart-svg').getBoundingClientRect();
		const l = document.querySelector('.tab-measurements path.line').getBoundingClientRect();
		return {x: r.x, y: r.y, w: r.width, h: r.height, left: l.left, right: l.right};
	})()`, &box)
	y := box.Y + box.H/2
	b.Do("drag across the chart", chromedp.DragAndDropXY(max(box.Left-4, box.X+60), y, box.Right, y))
	b.WaitText(".chart-status", "(zoomed)")
	b.WaitFor("the zoomed chart's line across a third of its width or more",
		`document.querySelector('.tab-measurements path.line').getBoundingClientRect().width > document.querySelector('.tab-measurements .chart-svg').getBoundingClientRect().width / 3`)
	b.Screenshot("measurements")
	b.ClickText(".tab-measurements button", "Reset zoom")
	b.WaitFor("the zoom reset", `!document.querySelector('.chart-status').innerText.includes('(zoomed)')`)
	b.ClickText(".tab-measurements button", "Zoom in")
	b.WaitText(".chart-status", "(zoomed)")
	b.ClickText(".tab-measurements button", "Reset zoom")

	// the values as a table, and choosing no series empties the chart
	b.ClickText(".tab-measurements button", "Show values")
	b.WaitText(".tab-measurements .values td", "Temperature T")
	b.Click(".series-chooser input[type=checkbox]")
	b.WaitText(".tab-measurements .charts", "Choose a series")
}

// An alarm raised by a device's value shows in the Alarms tab as it is
// raised and counted again, and is acknowledged and cleared with its
// buttons; a cleared one leaves the open alarms and shows under Cleared.
func TestAlarmsAcknowledgeAndClear(t *testing.T) {
	a := browsertest.StartAgent(t)
	setFunctionality(t, a, map[string]any{
		"alarm": map[string]any{"type": "c8y_HighTemperature", "severity": "MAJOR", "text": "Temperature {value}"},
	})
	sim := a.Simulate(1, "alarm", nil) // NotifyInterval 0: values change only by reads of the test
	id := a.DeviceID(sim.Endpoints()[0])
	read := func() {
		t.Helper()
		var op struct{ ID string }
		if code := a.Admin("POST", "/devicecontrol/operations", map[string]any{"deviceId": id, "c8y_Command": map[string]string{"text": "read /3303/0/5700"}}, &op); code != http.StatusCreated {
			t.Fatalf("read: HTTP %d", code)
		}
	}

	b := browsertest.AdminBrowser(t, a, "/devices/"+id+"/alarms")
	b.WaitText(".tab-alarms .alarms", "No alarms")
	read() // raises it while the page is open
	b.WaitText(".tab-alarms .alarms tbody tr", "c8y_HighTemperature")
	b.WaitText(".tab-alarms .alarms tbody tr", "ACTIVE")
	read() // counts it again
	b.WaitFor("the alarm counted twice", `[...document.querySelectorAll('.tab-alarms .alarms td.num')].some((e) => e.innerText === '2')`)
	b.Screenshot("alarms")

	b.ClickText(".tab-alarms .alarms button", "Acknowledge")
	b.WaitText(".tab-alarms .alarms tbody tr", "ACKNOWLEDGED")
	var alarmID string
	b.Eval(`document.querySelector('.tab-alarms .alarms tbody tr').dataset.id`, &alarmID)
	var alarm struct{ Status string }
	a.Admin("GET", "/alarm/alarms/"+alarmID, nil, &alarm)
	if alarm.Status != "ACKNOWLEDGED" {
		t.Fatalf("after Acknowledge the API shows the alarm %s", alarm.Status)
	}
	b.ClickText(".tab-alarms .alarms button", "Clear")
	b.WaitText(".tab-alarms .alarms", "No alarms")
	b.Select(".tab-alarms select[name=status]", "CLEARED")
	b.WaitText(".tab-alarms .alarms tbody tr", "CLEARED")
	if n := count(t, a, "/alarm/alarms?source="+id+"&status=CLEARED"); n != 1 {
		t.Fatalf("%d cleared alarms in the API, want 1", n)
	}
}

// The Events tab lists the device's events newest first and shows a new
// one (a registration update) without a reload.
func TestEventsLive(t *testing.T) {
	a := browsertest.StartAgent(t)
	sim := a.Simulate(1, "ev", nil)
	ep := sim.Endpoints()[0]
	id := a.DeviceID(ep)

	b := browsertest.AdminBrowser(t, a, "/devices/"+id+"/events")
	b.WaitText(".tab-events .events tbody", "c8y_LWM2MDeviceRegistration")
	if n := count(t, a, "/event/events?source="+id+"&type=c8y_LWM2MDeviceRegistrationUpdate"); n != 0 {
		t.Fatalf("%d update events before the device sent an Update", n)
	}
	sim.Device(ep).Update()
	b.WaitText(".tab-events .events tbody tr:first-child", "c8y_LWM2MDeviceRegistrationUpdate")
	b.Screenshot("events")
}

// An operation for a sleeping device shows in Control as PENDING and
// then, when the device wakes up and answers, as SUCCESSFUL with its
// result, without a reload.
func TestControlFollowsStatus(t *testing.T) {
	a := browsertest.StartAgent(t)
	sim := a.Simulate(1, "ctl", func(c *simulator.Config) {
		c.AwakeTime = time.Second
		c.UpdateEvery = 50 * time.Second
		c.Lifetime = 120 * time.Second
	})
	ep := sim.Endpoints()[0]
	id := a.DeviceID(ep)
	dev := sim.Device(ep)
	browsertest.Eventually(t, browsertest.Wait, func() error {
		if dev.Awake() {
			return fmt.Errorf("%s still awake", ep)
		}
		return nil
	})

	b := browsertest.AdminBrowser(t, a, "/devices/"+id+"/control")
	b.WaitText(".tab-control .operations", "No operations")
	var op struct{ ID string }
	if code := a.Admin("POST", "/devicecontrol/operations", map[string]any{"deviceId": id, "c8y_Command": map[string]string{"text": "read /3/0/0"}}, &op); code != http.StatusCreated {
		t.Fatalf("create operation: HTTP %d", code)
	}
	row := `.tab-control tr[data-id="` + op.ID + `"]`
	b.WaitText(row, "PENDING")
	b.WaitText(row, "read /3/0/0")
	dev.Update() // wakes up: the operation is delivered
	b.WaitText(row, "SUCCESSFUL")
	b.WaitText(row, "lwm2m-agent")
	b.Screenshot("control")
}
