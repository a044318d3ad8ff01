package browsertest_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/console/browsertest"
)

// Every page and every tab of the device page fits a phone's width: none
// makes the page scroll sideways at 360 px (wide tables stack into
// blocks), so an operator on the road can use each of them.
func TestEveryPageAtPhoneWidth(t *testing.T) {
	a := browsertest.StartAgent(t)
	sim := a.Simulate(1, "phone", nil)
	id := a.DeviceID(sim.Endpoints()[0])
	group := groupOf(t, a, id)
	b := browsertest.AdminBrowser(t, a, "")
	const width = 360
	b.Viewport(width, 740)
	for _, p := range everyPage(id, group) {
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
// page of device id, and group's page (groupOf), for the checks that hold
// on all of them.
func everyPage(id, group string) []page {
	pages := []page{
		{"/devices", `tr[data-device-id="` + id + `"]`},
		{"/groups", `tr[data-group-id="` + group + `"]`},
		{"/groups/" + group, `tr[data-member-id="` + id + `"]`},
		{"/firmware", "#main .firmware"},
		{"/bulkoperations", "#main tr[data-bulk-id]"},
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

// groupOf makes a group of device id with a bulk operation (due in a
// day), and a firmware with a version, so that the pages of groups, bulk
// operations and firmware show rows; it answers the group's ID.
func groupOf(t *testing.T, a *browsertest.Agent, id string) string {
	t.Helper()
	var g, fw, ver struct{ ID string }
	a.Admin("POST", "/inventory/managedObjects", map[string]any{"name": "field sensors", "type": "c8y_DeviceGroup", "c8y_IsDeviceGroup": map[string]any{}}, &g)
	a.Admin("POST", "/inventory/managedObjects/"+g.ID+"/childAssets", map[string]any{"managedObject": map[string]any{"id": id}}, nil)
	a.Admin("POST", "/inventory/managedObjects", map[string]any{"name": "sensor", "type": "c8y_Firmware", "description": "sensor firmware"}, &fw)
	a.Admin("POST", "/inventory/managedObjects", map[string]any{"name": "sensor", "type": "c8y_FirmwareBinary",
		"c8y_Firmware": map[string]any{"version": "2.1.0", "url": "https://firmware.example.com/sensor/2.1.0.bin"}}, &ver)
	a.Admin("POST", "/inventory/managedObjects/"+fw.ID+"/childAdditions", map[string]any{"managedObject": map[string]any{"id": ver.ID}}, nil)
	if code := a.Admin("POST", "/devicecontrol/bulkoperations", map[string]any{"groupId": g.ID, "startDate": time.Now().Add(24 * time.Hour).Format(time.RFC3339),
		"creationRamp": 5, "operationPrototype": map[string]any{"c8y_Command": map[string]any{"text": "read /3/0/3"}}}, nil); code != http.StatusCreated {
		t.Fatalf("bulk operation: HTTP %d", code)
	}
	return g.ID
}
