package browsertest_test

import (
	"fmt"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/console/browsertest"
)

// The Bootstrap tab shows a device's parameters; a value the agent
// refuses shows the API's reason at its field and stores nothing, a good
// one is stored and shown; PSK keys are never shown, only typed.
func TestBootstrapTab(t *testing.T) {
	a := browsertest.StartAgent(t)
	sim := a.Simulate(1, "boot", nil)
	id := a.DeviceID(sim.Endpoints()[0])
	b := browsertest.AdminBrowser(t, a, "/devices/"+id+"/bootstrap")
	b.WaitVisible(`.bootstrap-form input[name="endpointId"]`)
	var got struct {
		Endpoint, Mode, KeyType, KeyValue string
	}
	b.Eval(`(() => { const f = (n) => document.querySelector('.bootstrap-form [name="' + n + '"]');
		return {Endpoint: f('endpointId').value, Mode: f('securityMode').value, KeyType: f('lwm2mPskKey').type, KeyValue: f('lwm2mPskKey').value}; })()`, &got)
	if got.Endpoint != "boot-0" || got.Mode != "NO_SEC" || got.KeyType != "password" || got.KeyValue != "" {
		t.Fatalf("the tab shows %+v, want endpoint boot-0, NO_SEC and an empty password field for the key", got)
	}

	b.Fill(`.bootstrap-form input[name="registrationLifetime"]`, "0")
	b.Fill(`.bootstrap-form input[name="lwm2mRequestTimeout"]`, "soon")
	b.Click(`.bootstrap-form button[type=submit]`)
	b.WaitText(`.bootstrap-form input[name="registrationLifetime"] ~ .field-error`, "registrationLifetime 0 must be 1 or more")
	b.WaitText(`.bootstrap-form input[name="lwm2mRequestTimeout"] ~ .field-error`, "lwm2mRequestTimeout")
	// checked whole: an auto-registered device has no server URI yet
	b.WaitText(`.bootstrap-form input[name="lwm2mServerUri"] ~ .field-error`, "lwm2mServerUri is missing")
	b.WaitText(".bootstrap-form .form-errors", "3 fields to correct")
	b.WaitCount(".bootstrap-form .field-error", 3)
	b.Eval(`document.querySelector('.param-groups').scrollIntoView({block: 'start'})`, nil)
	b.Screenshot("bootstrap-refused")
	var params map[string]any
	a.Admin("GET", "/lwm2m/devices/"+id+"/bootstrap", nil, &params)
	if _, ok := params["registrationLifetime"]; ok {
		t.Fatalf("a refused change was stored: %v", params)
	}

	b.Fill(`.bootstrap-form input[name="registrationLifetime"]`, "3600")
	b.Fill(`.bootstrap-form input[name="lwm2mRequestTimeout"]`, "")
	b.Fill(`.bootstrap-form input[name="lwm2mServerUri"]`, "coap://127.0.0.1:5783")
	b.Select(`.bootstrap-form select[name="bindingMode"]`, "UQ")
	b.Click(`.bootstrap-form button[type=submit]`)
	b.WaitText("#main .callout.ok", "Saved: lwm2mServerUri, bindingMode, registrationLifetime.")
	a.Admin("GET", "/lwm2m/devices/"+id+"/bootstrap", nil, &params)
	if fmt.Sprint(params["registrationLifetime"]) != "3600" || params["bindingMode"] != "UQ" || params["lwm2mServerUri"] != "coap://127.0.0.1:5783" {
		t.Fatalf("stored parameters: %v", params)
	}
	b.WaitFor("the form showing the stored values", `document.querySelector('.bootstrap-form [name="registrationLifetime"]').value === '3600' && !document.querySelector('.field-error')`)
	b.Screenshot("bootstrap")
}
