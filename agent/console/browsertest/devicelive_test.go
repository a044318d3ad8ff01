package browsertest_test

import (
	"context"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/console/browsertest"
)

// The device list shows a device's availability as it changes, without a
// reload: a device that de-registers turns UNAVAILABLE in the open list.
func TestDeviceListAvailabilityLive(t *testing.T) {
	a := browsertest.StartAgent(t)
	sim := a.Simulate(2, "live", nil)
	ep := sim.Endpoints()[0]
	id := a.DeviceID(ep)
	other := a.DeviceID(sim.Endpoints()[1])

	b := browsertest.AdminBrowser(t, a, "/devices")
	row := `tr[data-device-id="` + id + `"] td.availability`
	b.WaitText(row, "AVAILABLE")
	b.WaitVisible(`[data-live="realtime"] tr[data-device-id]`)

	if err := sim.Device(ep).Deregister(context.Background()); err != nil {
		t.Fatal(err)
	}
	b.WaitText(row, "UNAVAILABLE")
	if got := b.Text(`tr[data-device-id="` + other + `"] td.availability`); got != "AVAILABLE" {
		t.Errorf("the other device's availability: %q, want AVAILABLE", got)
	}
}

// A device deleted through the API leaves the open device list at once,
// the other devices staying.
func TestDeviceListDeletionLive(t *testing.T) {
	a := browsertest.StartAgent(t)
	sim := a.Simulate(2, "gone", nil)
	id := a.DeviceID(sim.Endpoints()[0])
	other := a.DeviceID(sim.Endpoints()[1])

	b := browsertest.AdminBrowser(t, a, "/devices")
	b.WaitVisible(`[data-live="realtime"] tr[data-device-id="` + id + `"]`)

	if code := a.Admin("DELETE", "/inventory/managedObjects/"+id, nil, nil); code != 204 {
		t.Fatalf("delete device %s: HTTP %d", id, code)
	}
	b.WaitGone(`tr[data-device-id="` + id + `"]`)
	b.WaitVisible(`tr[data-device-id="` + other + `"]`)
}
