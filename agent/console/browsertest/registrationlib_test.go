package browsertest_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/console/browsertest"
)

// The registration page's pure helpers (static/lib/registration.js), run
// in the browser that runs the console: which field a reason of the
// agent is about, the one-line file of the form, and the file's device
// lines as the agent numbers them.
func TestRegistrationHelpers(t *testing.T) {
	a := browsertest.StartAgent(t)
	b := browsertest.NewBrowser(t, a)
	b.Open("/login")
	b.WaitVisible("#main form")
	call := func(fn string, args ...any) json.RawMessage {
		t.Helper()
		raw, err := json.Marshal(args)
		if err != nil {
			t.Fatal(err)
		}
		var out json.RawMessage
		b.Eval(`import(document.querySelector('script[type=module]').src.replace(/app\.js$/, 'lib/registration.js'))
			.then((m) => m.`+fn+`(...`+string(raw)+`))`, &out)
		return out
	}

	reasons := []struct {
		reason string
		want   map[string][]string
	}{
		{"CREDENTIALS: must be at least 12 characters", map[string][]string{"CREDENTIALS": {"CREDENTIALS: must be at least 12 characters"}}},
		{`endpoint id "other" must equal ID "x"`, map[string][]string{"ID": {`endpoint id "other" must equal ID "x"`}}},
		{"ID is missing; endpoint id is missing", map[string][]string{"ID": {"ID is missing", "endpoint id is missing"}}},
		{"lwm2m psk_key is missing: securityMode PSK needs it", map[string][]string{"lwm2m psk_key": {"lwm2m psk_key is missing: securityMode PSK needs it"}}},
		{"securityMode NO_SEC must not carry keys, but lwm2m psk_id, lwm2m psk_key are given",
			map[string][]string{"securityMode": {"securityMode NO_SEC must not carry keys, but lwm2m psk_id, lwm2m psk_key are given"}}},
		{`lwm2m psk_id "p" belongs to another device; bootstrap psk_key is not hexadecimal`,
			map[string][]string{"lwm2m psk_id": {`lwm2m psk_id "p" belongs to another device`}, "bootstrap psk_key": {"bootstrap psk_key is not hexadecimal"}}},
		{`external ID c8y_Lwm2mPskId "p" belongs to another device`, map[string][]string{"external-c8y_Lwm2mPskId": {`external ID c8y_Lwm2mPskId "p" belongs to another device`}}},
		{"IDTYPE must be c8y_Id", map[string][]string{"": {"IDTYPE must be c8y_Id"}}},
		{"not stored: the store is closed", map[string][]string{"": {"not stored: the store is closed"}}},
	}
	for _, tc := range reasons {
		t.Run("reasonsByField/"+tc.reason, func(t *testing.T) {
			var got map[string][]string
			if err := json.Unmarshal(call("reasonsByField", tc.reason), &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}

	csv := []struct {
		name   string
		values map[string]any
		want   string
	}{
		{"mandatory columns and the checkbox", map[string]any{"ID": "dev-1", "CREDENTIALS": "Pass-word-123!", "securityMode": "NO_SEC", "lwm2m server uri": "coap://h:5783", "SHELL": true},
			"ID;IDTYPE;CREDENTIALS;TYPE;endpoint id;securityMode;lwm2m server uri;SHELL;com_cumulocity_model_Agent\n" +
				"dev-1;c8y_Id;Pass-word-123!;c8y_lwm2m;dev-1;NO_SEC;coap://h:5783;true;false\n"},
		{"quoted values, credentials kept as written", map[string]any{"ID": "a;b", "NAME": `say "hi"`, "CREDENTIALS": " Pass-word-123! ", "securityMode": "PSK", "awakeTimeRegistrationParameter": "5000 "},
			"ID;IDTYPE;CREDENTIALS;TYPE;endpoint id;NAME;securityMode;awakeTimeRegistrationParameter;SHELL;com_cumulocity_model_Agent\n" +
				`"a;b";c8y_Id;" Pass-word-123! ";c8y_lwm2m;"a;b";"say ""hi""";PSK;5000;false;false` + "\n"},
	}
	for _, tc := range csv {
		t.Run("deviceCSV/"+tc.name, func(t *testing.T) {
			var got string
			if err := json.Unmarshal(call("deviceCSV", tc.values), &got); err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}

	type line struct {
		Line     int    `json:"line"`
		Endpoint string `json:"endpoint"`
	}
	files := []struct {
		name, text string
		want       []line
	}{
		{"blank lines skipped, physical numbers", "ID;NAME\n\na;x\r\n\nb;y\n", []line{{3, "a"}, {5, "b"}}},
		{"a quoted field over two lines", "NAME,ID\n\"x\ny\",a\nz,b\n", []line{{2, "a"}, {4, "b"}}},
		{"byte order mark, no ID column", "\ufeffendpoint;ID2\nq;1\n", []line{{2, "q"}}},
		{"header only", "ID;NAME\n", []line{}},
	}
	for _, tc := range files {
		t.Run("fileLines/"+tc.name, func(t *testing.T) {
			got := []line{}
			if err := json.Unmarshal(call("fileLines", tc.text), &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
