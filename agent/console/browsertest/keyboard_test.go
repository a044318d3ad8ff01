package browsertest_test

import (
	"fmt"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/lwm2m-agent/lwm2m-agent/agent/console/browsertest"
)

// tabTo presses Tab until the focused element matches sel, at most max
// times, and checks that the focus is visible there (an outline or a
// box shadow), as a keyboard user needs to see where they are.
func tabTo(t *testing.T, b *browsertest.Browser, sel string, max int) {
	t.Helper()
	for i := 0; i < max; i++ {
		b.Do("press Tab", chromedp.KeyEvent("\t"))
		var at bool
		b.Eval(fmt.Sprintf(`!!document.activeElement && document.activeElement.matches(%q)`, sel), &at)
		if !at {
			continue
		}
		var visible bool
		b.Eval(`(() => { const s = getComputedStyle(document.activeElement);
			return (s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0) || s.boxShadow !== 'none'; })()`, &visible)
		if !visible {
			t.Errorf("the focus on %s is not visible", sel)
		}
		return
	}
	var where string
	b.Eval(`document.activeElement ? document.activeElement.outerHTML.slice(0, 120) : ''`, &where)
	t.Fatalf("%s not reached in %d presses of Tab; the focus is on %s", sel, max, where)
}

// enter presses Enter on the focused element.
func enter(b *browsertest.Browser) {
	b.Do("press Enter", chromedp.KeyEvent("\r"))
}

// A keyboard user goes from the device list to a device's Objects tab and
// reads a resource without a mouse, seeing where the focus is at each step.
func TestKeyboardFromListToRead(t *testing.T) {
	a := browsertest.StartAgent(t)
	sim := a.Simulate(1, "keys", nil)
	id := a.DeviceID(sim.Endpoints()[0])
	b := browsertest.AdminBrowser(t, a, "/devices")
	b.WaitVisible(`tr[data-device-id="` + id + `"]`)

	tabTo(t, b, `tr[data-device-id="`+id+`"] a`, 40)
	enter(b)
	b.WaitText(".tab-details", "LwM2M registration")
	tabTo(t, b, `.tabs a[href$="/objects"]`, 40)
	enter(b)
	b.WaitText(`tr[data-path="/3/0/0"]`, "Manufacturer")
	tabTo(t, b, `button[aria-label="Read /3/0/0"]`, 400)
	enter(b)
	b.WaitText(`[data-results="/3/0"] .result`, "/3/0/0 (Manufacturer) = lwm2m-agent")
}
