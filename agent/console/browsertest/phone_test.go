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
	pages := []struct{ route, ready string }{
		{"/devices", `tr[data-device-id="` + id + `"]`},
		{"/protocols", `tr[data-object-id="3303"]`},
		{"/protocols/3303", `tr[data-resource-id="5700"]`},
	}
	for _, tab := range []string{"details", "objects", "shell", "measurements", "events", "alarms", "control", "bootstrap", "audit"} {
		pages = append(pages, struct{ route, ready string }{"/devices/" + id + "/" + tab, "#main .tab-" + tab + " > *"})
	}
	for _, p := range pages {
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
