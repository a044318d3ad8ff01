package browsertest_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/lwm2m-agent/lwm2m-agent/agent/console/browsertest"
)

// One device registered by the form: the agent's reasons for a refused
// device show next to the fields they name (weak credentials, PSK
// without a key), nothing is stored then; fixed, the device is
// registered, and the device list finds it.
func TestRegistrationForm(t *testing.T) {
	a := browsertest.StartAgent(t)
	b := browsertest.AdminBrowser(t, a, "")
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

// A registration file with good and bad lines, chosen with the file
// input: the summary counts them, the table shows the failed lines first,
// each with its reason, and the filter shows the registered ones; a file
// dropped on the page is taken as well.
func TestRegistrationFile(t *testing.T) {
	a := browsertest.StartAgent(t)
	b := browsertest.AdminBrowser(t, a, "")
	b.Go("/registration?view=file")
	b.WaitText("#main .tabs a.active", "From a file")
	bad, err := filepath.Abs("../../../examples/devices-bad.csv")
	if err != nil {
		t.Fatal(err)
	}
	b.Do("choose the file", chromedp.SetUploadFiles(chromedp.CSS(`#main input[type=file]`), []string{bad}))
	b.WaitText("#main .dropzone", "devices-bad.csv")
	b.ClickText("#main button", "Upload and register")
	b.WaitText("#main .bulk-results .callout", "2 of 10 lines registered (1 created, 1 updated), 8 failed.")
	want := []struct {
		line     int
		endpoint string
		reason   string
	}{
		{3, "weak_password", "CREDENTIALS: must be at least 12 characters"},
		{4, "endpoint_mismatch", `endpoint id "other_name" must equal ID "endpoint_mismatch"`},
		{5, "psk_without_key", "lwm2m psk_key is missing: securityMode PSK needs it"},
		{6, "psk_bad_hex", "lwm2m psk_key is not hexadecimal"},
		{7, "nosec_with_key", "securityMode NO_SEC must not carry keys"},
		{8, "bad_mode", `securityMode "RPK_MAYBE" must be NO_SEC or PSK`},
		{9, "wrong_type", `TYPE "c8y_mqtt" must be c8y_lwm2m`},
		{11, "", "ID is missing; endpoint id is missing"},
	}
	// failed lines first, shown as the filter's default
	b.WaitCount("#main table.grid tbody tr", len(want))
	var rows []struct{ Line, Endpoint, Status, Reason string }
	b.Eval(`[...document.querySelectorAll('#main table.grid tbody tr')].map((tr) => {
		const td = tr.querySelectorAll('td');
		return {Line: td[0].innerText, Endpoint: td[1].innerText, Status: td[2].innerText, Reason: td[3].innerText}; })`, &rows)
	for i, w := range want {
		r := rows[i]
		if r.Line != strconv.Itoa(w.line) || r.Endpoint != w.endpoint || r.Status != "FAILED" || !strings.Contains(r.Reason, w.reason) {
			t.Errorf("row %d: %+v, want line %d (%s) FAILED with %q", i+1, r, w.line, w.endpoint, w.reason)
		}
	}
	b.Screenshot("registration-file")

	b.Select(`#main select[name="show"]`, "ok")
	b.WaitCount("#main table.grid tbody tr", 2)
	if got := b.Text("#main table.grid tbody tr"); strings.Count(got, "ok_device") != 2 || !strings.Contains(got, "REGISTERED") {
		t.Fatalf("registered lines: %q, want line 2 and its repeat on line 10", got)
	}
	b.Select(`#main select[name="show"]`, "all")
	b.WaitCount("#main table.grid tbody tr", 10)

	// dropped: the nosec example, built in the page as a user's file
	csv, err := os.ReadFile("../../../examples/devices-nosec.csv")
	if err != nil {
		t.Fatal(err)
	}
	b.Eval(`(() => { const dt = new DataTransfer(); dt.items.add(new File([`+"`"+string(csv)+"`"+`], 'dropped.csv', {type: 'text/csv'}));
		document.querySelector('#main .dropzone').dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true})); return true; })()`, nil)
	b.WaitText("#main .dropzone", "dropped.csv")
	b.ClickText("#main button", "Upload and register")
	b.WaitText("#main .bulk-results .callout", "2 of 2 lines registered (2 created, 0 updated), 0 failed.")
	a.DeviceID("nosec_sleepy")
}

// The post-registration commands: a bad command is refused with the
// agent's message naming its line (blank lines counted), nothing is
// stored; the saved list runs on a device that registers afterwards.
func TestPostRegistrationCommands(t *testing.T) {
	a := browsertest.StartAgent(t)
	b := browsertest.AdminBrowser(t, a, "")
	b.Go("/registration?view=commands")
	b.WaitText("#main .tabs a.active", "Post-registration commands")
	b.WaitVisible("#main textarea[name=commands]")
	b.Fill("#main textarea[name=commands]", "read /3/0\n\nreed /3/0")
	b.ClickText("#main button", "Save")
	b.WaitText("#main .form-errors [role=alert]", `line 3: unknown command "reed"`)
	var stored struct{ Commands []string }
	if code := a.Admin("GET", "/lwm2m/postoperations", nil, &stored); code != http.StatusOK || len(stored.Commands) != 0 {
		t.Fatalf("after a refused save: HTTP %d, %q stored", code, stored.Commands)
	}
	b.Screenshot("postregistration-error")

	b.Fill("#main textarea[name=commands]", "read /3/0/0\n\nobserve /3/0/9")
	b.ClickText("#main button", "Save")
	b.WaitText("#main .result-slot .callout", "Saved: 2 commands run after each registration.")
	b.WaitGone("#main .form-errors [role=alert]")
	if code := a.Admin("GET", "/lwm2m/postoperations", nil, &stored); code != http.StatusOK || strings.Join(stored.Commands, "|") != "read /3/0/0|observe /3/0/9" {
		t.Fatalf("saved: HTTP %d, %q", code, stored.Commands)
	}
	b.Screenshot("postregistration")

	sim := a.Simulate(1, "post", nil)
	id := a.DeviceID(sim.Endpoints()[0])
	browsertest.Eventually(t, browsertest.Wait, func() error {
		var ops struct {
			Operations []struct {
				Status     string
				C8YCommand struct{ Text string } `json:"c8y_Command"`
			}
		}
		a.Admin("GET", "/devicecontrol/operations?pageSize=10&deviceId="+id, nil, &ops)
		var done []string
		for _, o := range ops.Operations {
			if o.Status == "SUCCESSFUL" {
				done = append(done, o.C8YCommand.Text)
			}
		}
		if strings.Join(done, "|") != "read /3/0/0|observe /3/0/9" {
			return errorf("the device's successful operations: %q", done)
		}
		return nil
	})
}

// At a phone's width the registration, binaries and tenants pages fit:
// nothing makes the page scroll sideways (tables stack, fields wrap).
func TestRegistrationPagesAtPhoneWidth(t *testing.T) {
	a := browsertest.StartAgent(t)
	b := browsertest.AdminBrowser(t, a, "")
	const width = 360
	b.Viewport(width, 740)
	for _, route := range []string{"/registration", "/registration?view=file", "/registration?view=commands", "/binaries", "/tenants"} {
		b.Go(route)
		b.WaitVisible("#main .card")
		b.WaitGone("#main .loading")
		var w int
		b.Eval(`document.documentElement.scrollWidth`, &w)
		if w > width {
			t.Errorf("%s is %d px wide at a width of %d", route, w, width)
		}
	}
}
