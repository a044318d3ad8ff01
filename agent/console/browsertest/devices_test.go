package browsertest_test

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp/kb"

	"github.com/lwm2m-agent/lwm2m-agent/agent/console/browsertest"
)

// An operator finds a device by searching, opens it, reads and writes a
// resource in the Objects view (a wrong value refused in the browser
// with the words of the API, a written value read back), and runs shell
// commands with completion and history, seeing each result arrive.
func TestDeviceObjectsAndShell(t *testing.T) {
	a := browsertest.StartAgent(t)
	a.Simulate(3, "plant", nil)
	meters := a.Simulate(2, "meter", nil)
	meterID := a.DeviceID(meters.Endpoints()[1])
	b := browsertest.AdminBrowser(t, a, "")

	rows := "#main table.grid tbody tr[data-device-id]"
	b.WaitCount(rows, 5)
	b.WaitText(rows, "AVAILABLE")
	b.Screenshot("devices")
	b.Viewport(390, 844)
	b.WaitVisible(rows + " td[data-label=Availability]")
	b.Screenshot("devices-phone")
	b.Viewport(1280, 800)

	b.Fill("#main input[name=q]", "meter-1")
	b.WaitCount(rows, 1)
	b.WaitText(rows, "meter-1")
	var hash string
	b.Eval(`location.hash`, &hash)
	if !strings.Contains(hash, "q=meter-1") {
		t.Errorf("the address %s does not keep the search", hash)
	}
	b.Fill("#main input[name=q]", "no-such-device")
	b.WaitText("#main td.empty", `No device matches “no-such-device”`)
	b.Fill("#main input[name=q]", "meter-1")
	b.ClickText(rows+" a", "meter-1")

	b.WaitText(".device-head h1", "meter-1")
	b.WaitText(".tab-details", "LwM2M registration")
	b.WaitText(".tab-details", "meter-1")
	if text := b.Text(".tab-details"); strings.Contains(text, `{"`) {
		t.Errorf("the details show raw JSON: %.300s", text)
	}
	b.Screenshot("device-details")

	// Objects: read one resource, see its value and the result
	b.ClickText(".tabs a", "Objects")
	inst := `section.instance[data-path="/3/0"]`
	b.WaitVisible(inst)
	b.WaitText(`tr[data-path="/3/0/0"]`, "Manufacturer")
	b.Click(`button[aria-label="Read /3/0/0"]`)
	b.WaitText(`[data-results="/3/0"] .result`, "/3/0/0 (Manufacturer) = lwm2m-agent")
	b.WaitText(`tr[data-path="/3/0/0"] td.value`, "lwm2m-agent")

	// a value of the wrong type is refused before anything is sent
	b.Click(`button[aria-label="Write /1/0/1"]`)
	b.Fill("tr.editor-row input[name=value]", "soon")
	b.Click("tr.editor-row button[type=submit]")
	b.WaitText("tr.editor-row .form-errors", `write /1/0/1: "soon" is not an integer`)
	b.ClickText("tr.editor-row button", "Cancel")
	b.WaitGone("tr.editor-row")

	// a write, then the value read back from the device
	b.Click(`button[aria-label="Write /3/0/15"]`)
	b.Fill("tr.editor-row input[name=value]", "Europe/Berlin")
	b.Click("tr.editor-row button[type=submit]")
	b.WaitText(`[data-results="/3/0"] .result`, "Wrote /3/0/15 = Europe/Berlin")
	b.WaitText(`[data-results="/3/0"] .result`, "/3/0/15 (Timezone) = Europe/Berlin")
	b.WaitText(`tr[data-path="/3/0/15"] td.value`, "Europe/Berlin")
	// the screenshot: every object closed but the Device object, read
	b.Click(`section.instance[data-path="/3/0"] .instance-head button`)
	b.WaitText(`[data-results="/3/0"] .result`, "/3/0/9 (Battery Level) =")
	b.ClickText("#main .toolbar button", "Collapse all")
	b.Click(`details.object[data-path="/3"] > summary`)
	b.Eval(`document.querySelector('details.object[data-path="/3"]').scrollIntoView()`, nil)
	b.Screenshot("objects")

	// Shell: completion, a result arriving, history, refusals
	b.ClickText(".tabs a", "Shell")
	in := ".shell-form input[name=command]"
	b.WaitVisible(in)
	b.Keys(in, "rea")
	b.Keys(in, kb.Tab)
	b.WaitFor("the command completed", `document.querySelector('.shell-form input').value === 'read '`)
	b.Keys(in, "/330")
	b.Keys(in, kb.Tab)
	b.WaitFor("the object completed", `document.querySelector('.shell-form input').value === 'read /3303'`)
	b.Keys(in, "/0/")
	b.Keys(in, kb.Tab)
	b.WaitText(".suggest li", "Sensor Value")
	b.Keys(in, kb.Escape)
	b.Fill(in, "read /3/0/2")
	b.Keys(in, kb.Enter)
	b.WaitText(".shell-log .entry", "/3/0/2 (Serial Number) = meter-1")
	b.Keys(in, kb.ArrowUp)
	b.WaitFor("the last command recalled", `document.querySelector('.shell-form input').value === 'read /3/0/2'`)
	b.Fill(in, "reed /3/0")
	b.Keys(in, kb.Enter)
	b.WaitText(".shell-form .form-errors", `unknown command "reed"`)
	b.Fill(in, "write /1/0/1 soon")
	b.Keys(in, kb.Enter)
	b.WaitText(".shell-form .form-errors", `"soon" is not an integer`)
	b.WaitFor("the refused command back in the line", `document.querySelector('.shell-form input').value === 'write /1/0/1 soon'`)
	b.Fill(in, "read /3303/0/5700")
	b.Keys(in, kb.Enter)
	b.WaitText(".shell-log .entry", "/3303/0/5700 (Sensor Value) =")
	b.Fill(in, "")
	b.Screenshot("shell")

	// an operation created elsewhere shows up with its result
	body := map[string]any{"deviceId": meterID, "c8y_Command": map[string]string{"text": "read /3/0/1"}}
	if code := a.Admin("POST", "/devicecontrol/operations", body, nil); code != 201 {
		t.Fatalf("create operation: HTTP %d", code)
	}
	b.WaitText(".shell-log .entry", "/3/0/1 (Model Number) =")
}

// A user of a second tenant sees none of the first tenant's devices, not
// even by the address of one.
func TestTenantSeesOnlyItsDevices(t *testing.T) {
	a := browsertest.StartAgent(t)
	sim := a.Simulate(2, "mgmt", nil)
	id := a.DeviceID(sim.Endpoints()[0])
	a.CreateTenant("acme", "Acme-pass-2024!")

	b := browsertest.AdminBrowser(t, a, "")
	b.WaitCount("#main table.grid tbody tr[data-device-id]", 2)
	b.ClickText(".topbar button", "Log out")

	b.Login("acme", "admin", "Acme-pass-2024!")
	b.WaitText("#main td.empty", "No devices yet")
	b.WaitCount("#main table.grid tbody tr[data-device-id]", 0)
	b.Fill("#main input[name=q]", "mgmt")
	b.WaitText("#main td.empty", `No device matches “mgmt”`)
	b.Open("/devices/" + id + "/objects")
	b.WaitText("#main [role=alert]", "not found")
	if text := b.Text("#main"); strings.Contains(text, "mgmt-0") {
		t.Fatalf("acme sees the management tenant's device: %.300s", text)
	}
}
