package browsertest_test

import (
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/console/browsertest"
)

// Every page and every tab of the device page fits a phone's width: none
// makes the page scroll sideways at 360 px (wide tables stack into
// blocks), so an operator on the road can use each of them.
func TestEveryPageAtPhoneWidth(t *testing.T) {
	a := browsertest.StartAgent(t)
	sim := a.Simulate(1, "phone", nil)
	id := a.DeviceID(sim.Endpoints()[0])
	b := browsertest.NewBrowser(t, a)
	b.Login("management", "admin", browsertest.AdminPassword)
	const width = 360
	b.Viewport(width, 740)
	for _, p := range everyPage(id) {
		b.Go(p.route)
		b.WaitVisible(p.ready)
		b.WaitGone("#main .loading")
		var w int
		b.Eval(`document.documentElement.scrollWidth`, &w)
		if w > width {
			t.Errorf("%s is %d px wide at a width of %d", p.route, w, width)
		}
	}
}

// page is a route of the console and what shows once it is drawn.
type page struct{ route, ready string }

// everyPage names every page of the console and every tab of the device
// page of device id, for the checks that hold on all of them.
func everyPage(id string) []page {
	pages := []page{
		{"/devices", `tr[data-device-id="` + id + `"]`},
		{"/protocols", `tr[data-object-id="3303"]`},
		{"/protocols/3303", `tr[data-resource-id="5700"]`},
		{"/registration", "#main .card"},
		{"/binaries", "#main .card"},
		{"/tenants", "#main .card"},
		{"/plugins", "#main .plugins"},
	}
	for _, tab := range []string{"details", "objects", "shell", "measurements", "events", "alarms", "control", "bootstrap", "audit"} {
		pages = append(pages, page{"/devices/" + id + "/" + tab, "#main .tab-" + tab + " > *"})
	}
	return pages
}
