package browsertest_test

import (
	"fmt"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/lwm2m-agent/lwm2m-agent/agent/console/browsertest"
)

// press sends keys to whatever has the focus, as a keyboard does.
func press(b *browsertest.Browser, keys string) {
	b.T.Helper()
	b.Do("press "+fmt.Sprintf("%q", keys), chromedp.KeyEvent(keys))
}

// focusOn fails the test unless the focused element matches sel.
func focusOn(t *testing.T, b *browsertest.Browser, sel, when string) {
	t.Helper()
	b.WaitFor(fmt.Sprintf("the focus on %s %s", sel, when), fmt.Sprintf(`!!document.activeElement && document.activeElement.matches(%q)`, sel))
}

// trapped presses Tab n times in an open modal dialog and fails the test
// if the focus ever leaves it.
func trapped(t *testing.T, b *browsertest.Browser, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		press(b, "\t")
		var inside bool
		b.Eval(`!!document.activeElement && !!document.activeElement.closest('dialog[open]')`, &inside)
		if !inside {
			var where string
			b.Eval(`document.activeElement ? document.activeElement.outerHTML.slice(0, 120) : ''`, &where)
			t.Fatalf("after %d presses of Tab the focus left the dialog, to %s", i+1, where)
		}
	}
}

// Execute and write on the Objects tab with the keyboard alone: the
// editor takes the focus when it opens, Enter sends, Escape closes, and
// the focus returns to the button that opened it each time.
func TestKeyboardWriteAndExecute(t *testing.T) {
	a := browsertest.StartAgent(t)
	sim := a.Simulate(1, "kbw", nil)
	id := a.DeviceID(sim.Endpoints()[0])
	b := browsertest.AdminBrowser(t, a, "/devices/"+id+"/objects")
	b.WaitVisible(`tr[data-path="/3/0/15"]`)

	exec := `button[aria-label="Execute /3/0/12"]`
	tabTo(t, b, exec, 400)
	enter(b)
	focusOn(t, b, `tr.editor-row input[name=args]`, "once Execute opened its editor")
	enter(b)
	b.WaitText(`[data-results="/3/0"] .result`, "execute /3/0/12")
	b.WaitText(`[data-results="/3/0"] .result`, "SUCCESSFUL")
	b.WaitGone("tr.editor-row")
	focusOn(t, b, exec, "after the execute was sent")

	write := `button[aria-label="Write /3/0/15"]`
	tabTo(t, b, write, 100)
	enter(b)
	focusOn(t, b, `tr.editor-row input[name=value]`, "once Write opened its editor")
	press(b, kb.Escape)
	b.WaitGone("tr.editor-row")
	focusOn(t, b, write, "after Escape closed the editor")

	enter(b)
	focusOn(t, b, `tr.editor-row input[name=value]`, "once Write opened its editor again")
	press(b, "Europe/Berlin") // the current value is selected: typing replaces it
	enter(b)
	b.WaitGone("tr.editor-row")
	focusOn(t, b, write, "after the write was sent")
	b.WaitText(`tr[data-path="/3/0/15"] td.value`, "Europe/Berlin")
}

// An alarm is cleared with the keyboard alone; the focus stays in the
// list, visible, where the cleared alarm was.
func TestKeyboardAlarmClear(t *testing.T) {
	a := browsertest.StartAgent(t)
	setFunctionality(t, a, map[string]any{
		"alarm": map[string]any{"type": "c8y_HighTemperature", "severity": "MAJOR", "text": "Temperature {value}"},
	})
	sim := a.Simulate(1, "kba", nil)
	id := a.DeviceID(sim.Endpoints()[0])
	if code := a.Admin("POST", "/devicecontrol/operations", map[string]any{"deviceId": id, "c8y_Command": map[string]string{"text": "read /3303/0/5700"}}, nil); code != http.StatusCreated {
		t.Fatalf("read: HTTP %d", code)
	}
	b := browsertest.AdminBrowser(t, a, "/devices/"+id+"/alarms")
	b.WaitText(".tab-alarms .alarms tbody tr", "ACTIVE")

	tabTo(t, b, `.tab-alarms .alarms button:not([disabled])`, 60)
	focusOn(t, b, `.tab-alarms .alarms tr[data-id] button`, "on the alarm's first action")
	var label string
	b.Eval(`document.activeElement.innerText`, &label)
	if label != "Acknowledge" {
		t.Fatalf("the first action is %q, want Acknowledge", label)
	}
	enter(b)
	b.WaitText(".tab-alarms .alarms tbody tr", "ACKNOWLEDGED")
	focusOn(t, b, `.tab-alarms .alarms tr[data-id] button`, "on the alarm's next action after Acknowledge")
	b.Eval(`document.activeElement.innerText`, &label)
	if label != "Clear" {
		t.Fatalf("after Acknowledge the focus is on %q, want Clear", label)
	}
	enter(b)
	b.WaitText(".tab-alarms .alarms", "No alarms")
	b.WaitFor("the focus kept in the tab", `!!document.activeElement && document.activeElement !== document.body && !!document.activeElement.closest('.tab-alarms')`)
	var alarms struct{ Alarms []struct{ Status string } }
	a.Admin("GET", "/alarm/alarms?source="+id, nil, &alarms)
	if len(alarms.Alarms) != 1 || alarms.Alarms[0].Status != "CLEARED" {
		t.Fatalf("alarms after Clear: %+v", alarms.Alarms)
	}
}

// A resource's functionalities are set with the keyboard alone: the
// dialog takes the focus, keeps it while it is open, closes on Escape
// and saves on Enter, and the focus returns to the button that opened it.
func TestKeyboardFunctionalities(t *testing.T) {
	a := browsertest.StartAgent(t)
	b := browsertest.AdminBrowser(t, a, "/protocols/3303")
	opener := `tr[data-resource-id="5701"] button[aria-label^="Functionalities of"]`
	b.WaitVisible(opener)

	tabTo(t, b, opener, 200)
	enter(b)
	b.WaitVisible("dialog[open] .functionalities-form")
	focusOn(t, b, "dialog[open] input", "once the dialog opened")
	trapped(t, b, 40)
	press(b, kb.Escape)
	b.WaitGone("dialog[open]")
	focusOn(t, b, opener, "after Escape closed the dialog")

	enter(b)
	b.WaitVisible("dialog[open] .functionalities-form")
	tabTo(t, b, `dialog[open] input[name="event-on"]`, 40)
	press(b, " ")
	focusOn(t, b, `dialog[open] input[name="event.type"]`, "once the event's fields opened")
	press(b, "c8y_UnitsRead")
	tabTo(t, b, `dialog[open] input[name="event.text"]`, 5)
	press(b, "Units {value}")
	tabTo(t, b, `dialog[open] .functionalities-form button[type=submit]`, 40)
	enter(b)
	b.WaitGone("dialog[open]")
	focusOn(t, b, opener, "after the dialog saved")

	var p struct {
		Resources []struct {
			ID              int
			Functionalities map[string]any
		}
	}
	a.Admin("GET", "/lwm2m/deviceprotocols/3303", nil, &p)
	for _, r := range p.Resources {
		if r.ID == 5701 {
			if ev, _ := r.Functionalities["event"].(map[string]any); ev["type"] != "c8y_UnitsRead" || ev["text"] != "Units {value}" {
				t.Fatalf("functionalities of 5701: %v", r.Functionalities)
			}
			return
		}
	}
	t.Fatal("no resource 5701 in the protocol")
}

// A registration file is chosen and uploaded with the keyboard alone
// (the browser's file chooser stands for the user's choice), and the
// result of each line shows.
func TestKeyboardCSVUpload(t *testing.T) {
	a := browsertest.StartAgent(t)
	b := browsertest.AdminBrowser(t, a, "/registration?view=file")
	b.WaitText("#main .tabs a.active", "From a file")
	bad, err := filepath.Abs("../../../examples/devices-bad.csv")
	if err != nil {
		t.Fatal(err)
	}
	tabTo(t, b, `#main input[type=file]`, 40)
	b.Do("choose the file", chromedp.SetUploadFiles(chromedp.CSS(`#main input[type=file]`), []string{bad}))
	b.WaitText("#main .dropzone", "devices-bad.csv")
	tabTo(t, b, `#main button.btn-primary`, 10)
	enter(b)
	b.WaitText("#main .bulk-results .callout", "8 failed")
	b.WaitText("#main .bulk-results", "CREDENTIALS: must be at least 12 characters")
}
