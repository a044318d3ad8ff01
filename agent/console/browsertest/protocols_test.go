package browsertest_test

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/lwm2m-agent/lwm2m-agent/agent/console/browsertest"
)

type protocolAnswer struct {
	ObjectID  int    `json:"objectId"`
	Name      string `json:"name"`
	Resources []struct {
		ID              int            `json:"id"`
		Functionalities map[string]any `json:"functionalities"`
		Validation      *struct {
			Groups [][]map[string]any `json:"groups"`
		} `json:"validation"`
	} `json:"resources"`
}

func (p protocolAnswer) functionalities(id int) map[string]any {
	for _, r := range p.Resources {
		if r.ID == id {
			return r.Functionalities
		}
	}
	return nil
}

// DDF files are uploaded two at once through the file input and one
// dropped on the drop zone, each file answered on its own (a broken one
// with the API's line and element); a resource's functionalities refused
// by the API show each reason next to its field and store nothing, and
// fixed they are stored; validation rules are built as groups of rules,
// and a bad rule value is named at its field.
func TestDeviceProtocols(t *testing.T) {
	a := browsertest.StartAgent(t)
	b := browsertest.AdminBrowser(t, a, "/protocols")
	b.WaitText("#main table", "Temperature") // the built-in definitions are listed
	b.WaitVisible(`tr[data-object-id="3303"]`)

	files := []string{filepath.Join("testdata", "ddf", "33061.xml"), filepath.Join("testdata", "ddf", "broken.xml")}
	for i, f := range files {
		abs, err := filepath.Abs(f)
		if err != nil {
			t.Fatal(err)
		}
		files[i] = abs
	}
	b.Do("choose DDF files", chromedp.SetUploadFiles(chromedp.CSS("#ddf-files"), files))
	b.WaitCount(`.upload-results li[data-result]`, 2)
	if got := b.Text(`.upload-results li[data-result="ok"]`); !strings.Contains(got, "33061.xml") || !strings.Contains(got, "33061 Console Test Meter") {
		t.Errorf("the good file's result: %q", got)
	}
	if got := b.Text(`.upload-results li[data-result="error"]`); !strings.Contains(got, "broken.xml") || !strings.Contains(got, "Description1") || !strings.Contains(got, "line") {
		t.Errorf("the broken file's result: %q, want the API's line and element", got)
	}
	b.WaitVisible(`tr[data-object-id="33061"]`)
	b.Screenshot("protocols")
	if code := a.Admin("GET", "/lwm2m/deviceprotocols/33062", nil, nil); code != http.StatusNotFound {
		t.Errorf("the broken file's object: HTTP %d, want 404", code)
	}

	// a file dropped on the zone, as a user drags one from a file manager
	b.Eval(`(() => {
		const xml = `+"`"+strings.ReplaceAll(dropped, "`", "")+"`"+`;
		const dt = new DataTransfer();
		dt.items.add(new File([xml], 'dropped.xml', {type: 'application/xml'}));
		document.querySelector('.dropzone').dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
		return true; })()`, nil)
	b.WaitText(`.upload-results li[data-result="ok"]`, "33063 Dropped Counter")
	b.WaitVisible(`tr[data-object-id="33063"]`)

	// functionalities of 33061/0: the API's objections at their fields
	b.ClickText(`tr[data-object-id="33061"] a`, "Console Test Meter")
	b.WaitText("#main h1", "33061 · Console Test Meter")
	b.WaitText(`tr[data-resource-id="0"]`, "Energy used since the last reset.")
	b.Click(`tr[data-resource-id="0"] button[aria-label^="Functionalities"]`)
	b.WaitVisible("dialog .functionalities-form")
	b.Click(`dialog input[name="measurement-on"]`)
	b.Fill(`dialog input[name="measurement.type"]`, "Energy reading")
	b.Fill(`dialog input[name="measurement.series"]`, "E")
	b.Click(`dialog input[name="event-on"]`)
	b.Fill(`dialog input[name="event.type"]`, "c8y_EnergyRead")
	b.Click(`dialog input[name="autoObserve"]`)
	b.Click(`dialog .functionalities-form button[type=submit]`)
	b.WaitText(`dialog input[name="measurement.type"] ~ .field-error`, `measurement.type "Energy reading" is not a fragment name`)
	b.WaitText(`dialog input[name="event.text"] ~ .field-error`, "event.text is empty")
	var invalid string
	b.Eval(`document.querySelector('dialog input[name="measurement.type"]').getAttribute('aria-invalid')`, &invalid)
	if invalid != "true" {
		t.Errorf("the refused field is not marked invalid (aria-invalid %q)", invalid)
	}
	if got := b.Text(`dialog input[name="measurement.series"] ~ .field-error`); got != "" {
		t.Errorf("a field the API did not name shows %q", got)
	}
	b.Screenshot("protocol-functionalities-refused")
	var p protocolAnswer
	a.Admin("GET", "/lwm2m/deviceprotocols/33061", nil, &p)
	if f := p.functionalities(0); len(f) != 0 {
		t.Fatalf("a refused functionality was stored: %v", f)
	}

	b.Fill(`dialog input[name="measurement.type"]`, "c8y_Energy")
	b.Fill(`dialog input[name="event.text"]`, "Energy read: {value}")
	b.Click(`dialog .functionalities-form button[type=submit]`)
	b.WaitGone("dialog")
	b.WaitText(`tr[data-resource-id="0"]`, "measurement c8y_Energy.E (kWh)")
	a.Admin("GET", "/lwm2m/deviceprotocols/33061", nil, &p)
	f := p.functionalities(0)
	m, _ := f["measurement"].(map[string]any)
	if m["type"] != "c8y_Energy" || m["series"] != "E" || m["unit"] != "kWh" || f["autoObserve"] != true || f["event"] == nil {
		t.Fatalf("stored functionalities: %v", f)
	}

	// validation rules of 33061/2: (NUMBER >= 0 and NUMBER <= 5000) or EQUALS resource
	b.Click(`tr[data-resource-id="2"] button[aria-label^="Validation"]`)
	b.WaitVisible("dialog .validation-form")
	b.ClickText("dialog button", "Add group (or)")
	b.Select(`dialog .rule-group select[name="type"]`, "NUMBER")
	b.Select(`dialog .rule-group select[name="rule"]`, "GREATER_OR_EQUALS")
	b.Fill(`dialog .rule-group input[name="value"]`, "zero")
	b.ClickText("dialog .rule-group button", "Add rule (and)")
	b.WaitCount("dialog .rule-row", 2)
	b.Select(`dialog .rule-row:nth-child(2) select[name="type"]`, "NUMBER")
	b.Select(`dialog .rule-row:nth-child(2) select[name="rule"]`, "LOWER_OR_EQUALS")
	b.Fill(`dialog .rule-row:nth-child(2) input[name="value"]`, "5000")
	b.Click(`dialog .validation-form button[type=submit]`)
	b.WaitText(`dialog .rule-row:nth-child(1) .field-error`, `groups[0][0].value "zero" is not a number`)
	b.Screenshot("protocol-validation-refused")
	b.Fill(`dialog .rule-row:nth-child(1) input[name="value"]`, "0")
	b.Click(`dialog .validation-form button[type=submit]`)
	b.WaitGone("dialog")
	b.WaitText(`tr[data-resource-id="2"]`, "number is at least 0 and number is at most 5000")
	a.Admin("GET", "/lwm2m/deviceprotocols/33061", nil, &p)
	if v := p.Resources[2].Validation; v == nil || len(v.Groups) != 1 || len(v.Groups[0]) != 2 || v.Groups[0][1]["rule"] != "LOWER_OR_EQUALS" {
		t.Fatalf("stored validation of 33061/2: %+v", v)
	}
	b.Screenshot("protocol")
}

// dropped is a DDF document made in the page, as a dropped file.
const dropped = `<?xml version="1.0" encoding="UTF-8"?>
<LWM2M><Object ObjectType="MODefinition"><Name>Dropped Counter</Name><Description1>A counter.</Description1>
<ObjectID>33063</ObjectID><ObjectURN>urn:oma:lwm2m:x:33063</ObjectURN><LWM2MVersion>1.1</LWM2MVersion><ObjectVersion>1.0</ObjectVersion>
<MultipleInstances>Single</MultipleInstances><Mandatory>Optional</Mandatory><Resources>
<Item ID="0"><Name>Count</Name><Operations>R</Operations><MultipleInstances>Single</MultipleInstances><Mandatory>Mandatory</Mandatory>
<Type>Integer</Type><RangeEnumeration></RangeEnumeration><Units></Units><Description>Counted so far.</Description></Item>
</Resources><Description2></Description2></Object></LWM2M>`
