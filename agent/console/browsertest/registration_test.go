package browsertest_test

import (
	"net/http"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/console/browsertest"
)

// One device registered by the form: the agent's reasons for a refused
// device show next to the fields they name (weak credentials, PSK
// without a key), nothing is stored then; fixed, the device is
// registered, and the device list finds it.
func TestRegistrationForm(t *testing.T) {
	a := browsertest.StartAgent(t)
	b := browsertest.NewBrowser(t, a)
	b.Login("management", "admin", browsertest.AdminPassword)
	b.Go("/registration")
	b.WaitText("#main .tabs a.active", "One device")
	b.Fill(`#main input[name="ID"]`, "form-dev-1")
	b.Fill(`#main input[name="NAME"]`, "Boiler room meter")
	b.Fill(`#main input[name="CREDENTIALS"]`, "password")
	b.Select(`#main select[name="securityMode"]`, "PSK")
	b.WaitVisible(`#main input[name="lwm2m psk_id"]`)
	b.Fill(`#main input[name="lwm2m psk_id"]`, "form-dev-1-psk")
	b.Click("#main form.registration-form button[type=submit]")
	b.WaitFor("the credentials' reason next to the field", fieldError("CREDENTIALS", "at least 12 characters"))
	b.WaitFor("the missing key's reason next to the field", fieldError("lwm2m psk_key", "lwm2m psk_key is missing"))
	if code := a.Admin("GET", "/identity/externalIds/c8y_Id/form-dev-1", nil, nil); code != http.StatusNotFound {
		t.Fatalf("a refused device was stored: external ID answers HTTP %d", code)
	}
	b.Screenshot("registration-errors")

	b.Select(`#main select[name="securityMode"]`, "NO_SEC")
	b.Fill(`#main input[name="CREDENTIALS"]`, "Form-pass-2024!")
	b.Fill(`#main input[name="awakeTimeRegistrationParameter"]`, "5000")
	b.Click("#main form.registration-form button[type=submit]")
	b.WaitText("#main .result-slot .callout", "Registered form-dev-1")
	b.WaitGone("#main .field-error")
	id := a.DeviceID("form-dev-1")
	var boot map[string]any
	if code := a.Admin("GET", "/lwm2m/devices/"+id+"/bootstrap", nil, &boot); code != http.StatusOK {
		t.Fatalf("bootstrap parameters: HTTP %d", code)
	}
	if boot["awakeTimeRegistrationParameter"] != float64(5000) || boot["securityMode"] != "NO_SEC" {
		t.Fatalf("the form's values were not registered: %v", boot)
	}
	b.Screenshot("registration")

	b.ClickText("#main .result-slot a", "Open the device")
	b.WaitText("#main h1", "Boiler room meter")
	b.Go("/devices?q=Boiler")
	b.WaitText("#main table.grid tbody", "Boiler room meter")
}

// fieldError is a JavaScript condition: the form field of a column shows
// an error containing text, and its input is marked invalid.
func fieldError(column, text string) string {
	return `(() => { const i = document.querySelector('#main [name="` + column + `"]'); if (!i) return false;
		const e = i.closest('.field').querySelector('.field-error');
		return !!e && e.innerText.includes(` + "`" + text + "`" + `) && i.getAttribute('aria-invalid') === 'true'; })()`
}
