package browsertest_test

import (
	"fmt"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/console/browsertest"
)

// A write is checked against the resource's validation rules with the
// API's words; an instance counts the results that ended while the user
// looked elsewhere until its operations are opened, and links to all of
// its operations in the shell; instances are created and deleted through
// the definition's actions, the view following the device.
func TestObjectsInstanceOperations(t *testing.T) {
	a := browsertest.StartAgent(t)
	sim := a.Simulate(1, "inst", nil)
	id := a.DeviceID(sim.Endpoints()[0])
	b := browsertest.AdminBrowser(t, a, "")

	rules := map[string]any{"groups": []any{[]any{map[string]any{"type": "STRING", "rule": "EQUALS_NOT", "value": "test"}}}}
	if code := a.Admin("PUT", "/lwm2m/deviceprotocols/3/resources/15/validation", rules, nil); code != 200 {
		t.Fatalf("set validation: HTTP %d", code)
	}
	b.Open("/devices/" + id + "/objects")
	b.WaitVisible(`section.instance[data-path="/3/0"]`)

	// the resource's validation rules, shown and checked before sending
	b.Click(`button[aria-label="Write /3/0/15"]`)
	b.WaitText("tr.editor-row .rules", `Rules: STRING EQUALS_NOT "test"`)
	b.Fill("tr.editor-row input[name=value]", "test")
	b.Click("tr.editor-row button[type=submit]")
	b.WaitText("tr.editor-row .form-errors", `validation of /3/0/15 failed: group 1: STRING EQUALS_NOT "test"`)
	b.ClickText("tr.editor-row button", "Cancel")
	b.ClickText(".tabs a", "Details")
	b.WaitText(".tab-details", "LwM2M registration")
	// an operation someone else ran, ended while the Objects tab was closed
	var op struct{ ID, Status string }
	if code := a.Admin("POST", "/devicecontrol/operations", map[string]any{"deviceId": id, "c8y_Command": map[string]string{"text": "read /3/0/9"}}, &op); code != 201 {
		t.Fatalf("create operation: HTTP %d", code)
	}
	browsertest.Eventually(t, browsertest.Wait, func() error {
		a.Admin("GET", "/devicecontrol/operations/"+op.ID, nil, &op)
		if op.Status != "SUCCESSFUL" {
			return fmt.Errorf("operation %s is %s", op.ID, op.Status)
		}
		return nil
	})
	b.ClickText(".tabs a", "Objects")
	panel := `details.ops-panel[data-ops="/3/0"]`
	b.WaitText(panel+" > summary", "1 unread")
	b.Click(panel + " > summary")
	b.WaitText(panel, "read /3/0/9")
	b.WaitText(panel, "/3/0/9 (Battery Level) =")
	b.Click(panel + " > summary")
	b.WaitFor("the unread count gone", `!document.querySelector('`+panel+` > summary').textContent.includes('unread')`)

	// all operations of the instance, in the shell
	b.Click(panel + " > summary")
	b.ClickText(panel+" a", "All operations of /3/0")
	b.WaitText(".shell-log .entry", "read /3/0/9")
	b.WaitText(".tab-shell .callout", "Operations of /3/0 only")

	// create an instance of a multiple-instance object, then delete it
	b.ClickText(".tabs a", "Objects")
	temp := `details.object[data-path="/3303"]`
	b.WaitVisible(temp)
	b.ClickText(temp+" .object-bar button", "Create instance")
	b.WaitVisible("dialog[open] form")
	b.ClickText("dialog[open] button[type=submit]", "Create")
	b.WaitGone("dialog[open]")
	b.WaitText(`[data-results="/3303"] .result`, "Created /3303/1")
	b.WaitVisible(`section.instance[data-path="/3303/1"]`)
	b.Eval(`document.querySelector('details.object[data-path="/3303"]').scrollIntoView()`, nil)
	b.Screenshot("objects-created")

	// an object without a definition: its instance is read to learn it
	raw := `section.instance[data-path="/19/0"]`
	b.WaitText(raw, "No resource known yet")
	b.ClickText(raw+" .instance-head button", "Read")
	b.WaitText(`[data-results="/19/0"] .result`, "SUCCESSFUL")
	b.WaitVisible(`tr[data-path="/19/0/0"]`)
	b.ClickText(`section.instance[data-path="/3303/1"] .instance-head button`, "Delete")
	b.ClickText("dialog[open] button", "Delete")
	b.WaitText(`[data-results="/3303"] .result`, "Deleted /3303/1")
	b.WaitGone(`section.instance[data-path="/3303/1"]`)
}
