package browsertest_test

import (
	"testing"

	"github.com/chromedp/chromedp/kb"

	"github.com/lwm2m-agent/lwm2m-agent/agent/console/browsertest"
)

// A wrong password shows the API's own message on the login page and
// stores nothing; the right one opens the device list, and logging out
// forgets the credentials.
func TestLogin(t *testing.T) {
	a := browsertest.StartAgent(t)
	b := browsertest.NewBrowser(t, a)
	b.Open("/devices")
	b.WaitVisible("#main form input[name=password]") // sent to log in first
	b.Fill("#main input[name=tenant]", "management")
	b.Fill("#main input[name=user]", "admin")
	b.Fill("#main input[name=password]", "not-the-password")
	b.Click("#main form button[type=submit]")
	b.WaitText("#main .form-errors [role=alert]", "invalid credentials")
	var stored string
	b.Eval(`sessionStorage.length + ':' + localStorage.length`, &stored)
	if stored != "0:0" {
		t.Fatalf("after a wrong password, sessionStorage:localStorage hold %s items", stored)
	}
	b.Screenshot("login-failed")

	// by keyboard alone: the password typed, Enter
	b.Fill("#main input[name=password]", browsertest.AdminPassword)
	b.Keys("#main input[name=password]", kb.Enter)
	b.WaitText(".topbar .user", "management/admin")
	b.WaitText("#main h1", "Devices")
	var where string
	b.Eval(`location.hash`, &where)
	if where != "#/devices" {
		t.Fatalf("after login the page is %s, want the devices it was sent from", where)
	}
	b.Eval(`String(localStorage.length)`, &stored)
	if stored != "0" {
		t.Fatalf("localStorage holds %s items after login", stored)
	}
	b.ClickText(".topbar button", "Log out")
	b.WaitVisible("#main form input[name=password]")
	b.Eval(`String(sessionStorage.length)`, &stored)
	if stored != "0" {
		t.Fatalf("sessionStorage holds %s items after logout", stored)
	}
}
