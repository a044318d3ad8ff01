package browsertest_test

import (
	"strings"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/console/browsertest"
)

// The management tenant's administrator creates a tenant (a bad ID shows
// the API's message in the form); its administrator logs in, has no
// Tenants menu entry (and the page shows the API's refusal), and sees
// only the device it registers, none of the management tenant's.
func TestTenants(t *testing.T) {
	a := browsertest.StartAgent(t)
	a.Simulate(2, "mgmt", nil)
	b := browsertest.AdminBrowser(t, a, "")
	b.WaitText("#main table.grid tbody", "mgmt-1")
	b.ClickText("#nav a", "Tenants")
	b.WaitText("#main .tenants tbody", "management")

	b.Fill("#main input[name=id]", "Bad Name")
	b.Fill("#main input[name=adminPass]", "Acme-pass-2024!")
	b.ClickText("#main button", "Create tenant")
	b.WaitText("#main .form-errors [role=alert]", `tenant id "Bad Name": use 1 to 32 lower-case letters, digits or '-'`)
	b.Fill("#main input[name=id]", "acme")
	b.Fill("#main input[name=adminPass]", "Acme-pass-2024!")
	b.ClickText("#main button", "Create tenant")
	b.WaitText("#main .result-slot .callout", "Created tenant acme")
	b.WaitText("#main .tenants tbody tr.fresh", "acme")
	b.WaitGone("#main .form-errors [role=alert]")
	b.Screenshot("tenants")

	b.ClickText(".topbar button", "Log out")
	b.Login("acme", "admin", "Acme-pass-2024!")
	b.WaitText("#main", "No devices yet")
	if nav := b.Text("#nav"); strings.Contains(nav, "Tenants") || !strings.Contains(nav, "Registration") {
		t.Fatalf("acme's menu: %q, want Registration and no Tenants", nav)
	}
	b.Go("/tenants")
	b.WaitText("#main [role=alert]", "only an administrator of the management tenant lists tenants")
	b.WaitGone("#main form")

	b.Go("/registration")
	b.Fill(`#main input[name="ID"]`, "acme-dev-1")
	b.Fill(`#main input[name="CREDENTIALS"]`, "Acme-dev-pass-1!")
	b.Click("#main form.registration-form button[type=submit]")
	b.WaitText("#main .result-slot .callout", "Registered acme-dev-1")
	b.Go("/devices")
	b.WaitText("#main table.grid tbody", "acme-dev-1")
	b.WaitCount("#main table.grid tbody tr[data-device-id]", 1)
	b.Go("/devices?q=mgmt")
	b.WaitText("#main table.grid tbody", "No device matches")
	b.Go("/devices")
	b.WaitCount("#main table.grid tbody tr[data-device-id]", 1)
	// nor does it learn how many devices the management tenant has
	b.WaitText("#main .pager-info", "1 in all")
	b.Screenshot("tenant-isolation")
}
