package browsertest_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/console/browsertest"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// runOp runs a shell command on a device through the API and waits for
// it to succeed.
func runOp(t *testing.T, a *browsertest.Agent, id, text string) {
	t.Helper()
	var op struct{ ID, Status, FailureReason string }
	if code := a.Admin("POST", "/devicecontrol/operations", map[string]any{"deviceId": id, "c8y_Command": map[string]string{"text": text}}, &op); code != http.StatusCreated {
		t.Fatalf("%s on %s: HTTP %d", text, id, code)
	}
	browsertest.Eventually(t, browsertest.Wait, func() error {
		a.Admin("GET", "/devicecontrol/operations/"+op.ID, nil, &op)
		if op.Status != "SUCCESSFUL" {
			return fmt.Errorf("%s on %s is %s %s", text, id, op.Status, op.FailureReason)
		}
		return nil
	})
}

// The Audit tab compares a device with a reference chosen from the
// tenant's devices, per instance; a refused sync names the path at its
// row, and a sync of one selected value writes the reference's value to
// the device, shown as the operation ends.
func TestAuditTab(t *testing.T) {
	a := browsertest.StartAgent(t)
	sim := a.Simulate(2, "audit", nil)
	devEP, refEP := sim.Endpoints()[0], sim.Endpoints()[1]
	dev, ref := a.DeviceID(devEP), a.DeviceID(refEP)
	set := func(ep, path, v string) { sim.Device(ep).SetValue(node.MustParsePath(path), node.String(v)) }
	set(devEP, "/3/0/14", "+01:00")
	set(devEP, "/3/0/15", "Europe/Berlin")
	set(refEP, "/3/0/14", "+09:00")
	set(refEP, "/3/0/15", "Asia/Tokyo")
	runOp(t, a, dev, "read /3/0")
	runOp(t, a, ref, "read /3/0")
	// the values read are stored a moment after the operations end
	browsertest.Eventually(t, browsertest.Wait, func() error {
		var au struct {
			Instances []struct {
				Resources []struct {
					Path                  string
					Value, ReferenceValue any
				}
			}
		}
		a.Admin("GET", "/lwm2m/devices/"+dev+"/audit?reference="+ref, nil, &au)
		for _, in := range au.Instances {
			for _, r := range in.Resources {
				if r.Path == "/3/0/15" && r.Value == "Europe/Berlin" && r.ReferenceValue == "Asia/Tokyo" {
					return nil
				}
			}
		}
		return fmt.Errorf("the audit does not compare /3/0/15 yet: %+v", au)
	})
	// a rule that the reference's /3/0/14 breaks: its sync is refused
	if code := a.Admin("PUT", "/lwm2m/deviceprotocols/3/resources/14/validation",
		map[string]any{"groups": [][]map[string]any{{{"type": "REGEX", "rule": "EQUALS", "value": `[+-]0[0-8]:00`}}}}, nil); code != http.StatusOK {
		t.Fatalf("validation rule: HTTP %d", code)
	}

	b := browsertest.AdminBrowser(t, a, "/devices/"+dev+"/audit")
	b.WaitFor("the reference device among the choices", `[...document.querySelectorAll('select[name="reference"] option')].some((o) => o.value === `+fmt.Sprintf("%q", ref)+`)`)
	if n := b.Text(`select[name="reference"] option[value="` + dev + `"]`); n != "" {
		t.Errorf("the device itself is offered as its reference: %q", n)
	}
	b.Select(`select[name="reference"]`, ref)
	b.WaitVisible(`.audit-instance[data-path="/3/0"]`)
	b.WaitText(`.audit-instance[data-path="/3/0"] h3`, "DIFFERENT")
	row := `.audit-instance tr[data-path="/3/0/15"]`
	b.WaitText(row, "Europe/Berlin")
	b.WaitText(row, "Asia/Tokyo")
	if got := b.Text(`.audit-instance tr[data-path="/3/0/0"]`); got != "" {
		t.Errorf("a value that is the same is shown among only the differences: %q", got)
	}
	var where string
	b.Eval(`location.hash`, &where)
	if where != "#/devices/"+dev+"/audit?reference="+ref {
		t.Errorf("the address is %s, want the reference in it", where)
	}

	// /3/0/14 breaks the rule: the API's reason at its row, nothing queued
	b.Click(row + ` input[type=checkbox]`)
	b.Click(`.audit-instance tr[data-path="/3/0/14"] input[type=checkbox]`)
	b.ClickText(".audit-summary button", "Sync selected")
	b.WaitText(`.audit-instance tr[data-path="/3/0/14"] .field-error`, "validation of /3/0/14 failed")
	var ops struct {
		Operations []any `json:"operations"`
	}
	a.Admin("GET", "/devicecontrol/operations?deviceId="+dev+"&pageSize=100", nil, &ops)
	before := len(ops.Operations)

	b.Click(`.audit-instance tr[data-path="/3/0/14"] input[type=checkbox]`)
	b.ClickText(".audit-summary button", "Sync selected")
	b.WaitText(".sync-results", "write /3/0/15 Asia/Tokyo")
	b.WaitText(".sync-results li", "SUCCESSFUL")
	if v, _ := sim.Device(devEP).Value(node.MustParsePath("/3/0/15")); v.Str != "Asia/Tokyo" {
		t.Errorf("the device holds /3/0/15 = %q after the sync, want Asia/Tokyo", v.Str)
	}
	a.Admin("GET", "/devicecontrol/operations?deviceId="+dev+"&pageSize=100", nil, &ops)
	if len(ops.Operations) != before+1 {
		t.Errorf("%d operations after the sync, %d before: want one write", len(ops.Operations), before)
	}
	b.Screenshot("audit")
}
