package browsertest_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/console/browsertest"
)

// libCall runs one exported function of a console module in the page
// with JSON arguments and answers its result as JSON.
func libCall(b *browsertest.Browser, module, fn string, args ...any) string {
	b.T.Helper()
	a, err := json.Marshal(args)
	if err != nil {
		b.T.Fatal(err)
	}
	var out string
	b.Eval(fmt.Sprintf(`(async () => {
		const src = document.querySelector('script[type=module]').src.replace(/app\.js$/, %q);
		const m = await import(src);
		return JSON.stringify(m[%q](...%s) ?? null);
	})()`, module, fn, a), &out)
	return out
}

// The pure parts of the console, run by the browser that runs the
// console: values checked as the API checks them, the validation rules'
// words, the shell's first check and completion, the router's matching.
func TestConsoleLibraries(t *testing.T) {
	a := browsertest.StartAgent(t)
	b := browsertest.NewBrowser(t, a)
	b.Open("/login")
	b.WaitVisible("#main form")

	t.Run("parseValue", func(t *testing.T) {
		for _, tc := range []struct{ typ, text, want string }{
			{"INTEGER", "300", `{"value":300,"text":"300"}`},
			{"INTEGER", "soon", `{"error":"\"soon\" is not an integer"}`},
			{"INTEGER", "1.5", `{"error":"\"1.5\" is not an integer"}`},
			{"INTEGER", "9223372036854775808", `{"error":"\"9223372036854775808\" is out of range"}`},
			{"UNSIGNED_INTEGER", "-1", `{"error":"\"-1\" is not an unsigned integer"}`},
			{"FLOAT", "1e3", `{"value":1000,"text":"1e3"}`},
			{"FLOAT", "21,5", `{"error":"\"21,5\" is not a number"}`},
			{"BOOLEAN", "TRUE", `{"value":true,"text":"TRUE"}`},
			{"BOOLEAN", "yes", `{"error":"\"yes\" is not a boolean (1, 0, true, false)"}`},
			{"TIME", "2024-05-01T12:00:00Z", `{"value":"2024-05-01T12:00:00.000Z","text":"2024-05-01T12:00:00Z"}`},
			{"TIME", "1714564800", `{"value":"2024-05-01T12:00:00.000Z","text":"1714564800"}`},
			{"TIME", "tomorrow", `{"error":"\"tomorrow\" is not a time (Unix seconds or RFC 3339)"}`},
			{"OBJLNK", "3:0", `{"value":"3:0","text":"3:0"}`},
			{"OBJLNK", "3-0", `{"error":"\"3-0\" is not an object link (O:I)"}`},
			{"OPAQUE", "00FF", `{"value":"00ff","text":"00FF"}`},
			{"OPAQUE", "0f0", `{"error":"\"0f0\" is not hex (an even number of digits 0-9, a-f)"}`},
			{"STRING", " any text ", `{"value":" any text ","text":" any text "}`},
		} {
			if got := libCall(b, "lib/values.js", "parseValue", tc.typ, tc.text); got != tc.want {
				t.Errorf("parseValue(%s, %q) = %s, want %s", tc.typ, tc.text, got, tc.want)
			}
		}
	})

	t.Run("checkRules", func(t *testing.T) {
		notTest := []any{map[string]any{"type": "STRING", "rule": "EQUALS_NOT", "value": "test"}}
		asdAndRef := []any{
			map[string]any{"type": "REGEX", "rule": "EQUALS", "value": ".*asd$"},
			map[string]any{"type": "STRING", "rule": "EQUALS", "resource": "/3/0/15"},
		}
		two := map[string]any{"groups": []any{notTest, asdAndRef}}
		between := map[string]any{"groups": []any{[]any{
			map[string]any{"type": "NUMBER", "rule": "GREATER_OR_EQUALS", "value": 10},
			map[string]any{"type": "NUMBER", "rule": "LOWER_THAN", "value": 100},
		}}}
		for _, tc := range []struct {
			name  string
			value any
			rules any
			want  string
		}{
			{"no rules", "x", map[string]any{"groups": []any{}}, `null`},
			{"first group holds", "hello", two, `null`},
			{"no group holds", "test", two, `"validation of /3/0/14 failed: group 1: STRING EQUALS_NOT \"test\"; group 2: REGEX EQUALS \".*asd$\", STRING EQUALS resource /3/0/15 (no last known value of /3/0/15)"`},
			{"in range", 50, between, `null`},
			{"below", 5, between, `"validation of /3/0/14 failed: group 1: NUMBER GREATER_OR_EQUALS 10"`},
			{"text that is no number", "many", between, `"validation of /3/0/14 failed: group 1: NUMBER GREATER_OR_EQUALS 10 (\"many\" is not a number), NUMBER LOWER_THAN 100 (\"many\" is not a number)"`},
			{"regex matches the whole value", "xasd", map[string]any{"groups": []any{[]any{map[string]any{"type": "REGEX", "rule": "EQUALS", "value": "a.d"}}}}, `"validation of /3/0/14 failed: group 1: REGEX EQUALS \"a.d\""`},
		} {
			if got := libCall(b, "lib/values.js", "checkRules", "/3/0/14", tc.value, tc.rules); got != tc.want {
				t.Errorf("%s: checkRules(%v) = %s, want %s", tc.name, tc.value, got, tc.want)
			}
		}
	})

	t.Run("writeCommand", func(t *testing.T) {
		for _, tc := range []struct{ text, typ, want string }{
			{"+02:00", "STRING", `"write /3/0/14 +02:00"`},
			{"Europe/Berlin", "STRING", `"write /3/0/15 Europe/Berlin"`},
			{" padded", "STRING", `"cwrite {\"/3/0/15\":\" padded\"}"`},
			{"", "STRING", `"cwrite {\"/3/0/15\":\"\"}"`},
		} {
			path := "/3/0/15"
			if tc.text == "+02:00" {
				path = "/3/0/14"
			}
			if got := libCall(b, "lib/values.js", "writeCommand", path, tc.text, tc.typ); got != tc.want {
				t.Errorf("writeCommand(%q) = %s, want %s", tc.text, got, tc.want)
			}
		}
	})

	t.Run("shell check", func(t *testing.T) {
		for _, tc := range []struct{ line, want string }{
			{"read /3/0/0", `null`},
			{"READ /3/0", `null`},
			{"serialization TLV", `null`},
			{"reed /3/0", `"unknown command \"reed\"; the commands: read, observe, cancelobservation, write, execute, create, delete, discover, writeattr, cread, cobserve, cwrite, writeb, serialization, fwupdate"`},
			{"read", `"read needs a path: read PATH"`},
			{"read /03/0", `"\"/03/0\" is not a path /O/I/R (IDs from 0 to 65534)"`},
			{"read /65535", `"\"/65535\" is not a path /O/I/R (IDs from 0 to 65534)"`},
			{"execute /3/0", `"execute takes PATH, not /3/0"`},
			{"create /3303/0", `"create takes /O, not /3303/0"`},
		} {
			if got := libCall(b, "lib/shell.js", "check", tc.line); got != tc.want {
				t.Errorf("check(%q) = %s, want %s", tc.line, got, tc.want)
			}
		}
	})

	t.Run("shell complete", func(t *testing.T) {
		model := map[string]any{"paths": []any{
			map[string]any{"path": "/3", "name": "Device"},
			map[string]any{"path": "/3/0", "name": "Device 0"},
			map[string]any{"path": "/3/0/0", "name": "Manufacturer", "operations": "R"},
			map[string]any{"path": "/3/0/4", "name": "Reboot", "operations": "E"},
			map[string]any{"path": "/3/0/14", "name": "UTC Offset", "operations": "RW"},
			map[string]any{"path": "/3303", "name": "Temperature"},
		}}
		labels := `(r) => r.items.map((i) => i.text)`
		for _, tc := range []struct {
			line string
			want string
		}{
			{"re", `["read "]`},
			{"w", `["write ","writeattr ","writeb "]`},
			{"read /3", `["/3","/3303"]`},
			{"read /3/0/", `["/3/0/0 ","/3/0/14 "]`},
			{"write /3/0/", `["/3/0/14 "]`},
			{"execute /3/0/", `["/3/0/4 "]`},
			{"create /3", `["/3 ","/3303 "]`},
			{"serialization SEN", `["SENML_JSON","SENML_CBOR"]`},
			{"read /3/0/0 ", `[]`},
		} {
			var got string
			a, _ := json.Marshal([]any{tc.line, len(tc.line), model})
			b.Eval(fmt.Sprintf(`(async () => {
				const src = document.querySelector('script[type=module]').src.replace(/app\.js$/, 'lib/shell.js');
				const m = await import(src);
				return JSON.stringify((%s)(m.complete(...%s)));
			})()`, labels, a), &got)
			if got != tc.want {
				t.Errorf("complete(%q) = %s, want %s", tc.line, got, tc.want)
			}
		}
	})

	t.Run("resultValues", func(t *testing.T) {
		got := libCall(b, "lib/shell.js", "resultValues", "Observing /3303/0/5700\n/3303/0/5700 (Sensor Value) = 21.97\n/3/0/6/1 (Available Power Sources) = 5\n/9/0/1 = x = y")
		want := `[{"path":"/3303/0/5700","name":"Sensor Value","value":"21.97"},{"path":"/3/0/6/1","name":"Available Power Sources","value":"5"},{"path":"/9/0/1","name":"","value":"x = y"}]`
		if got != want {
			t.Errorf("resultValues = %s, want %s", got, want)
		}
	})

	t.Run("router", func(t *testing.T) {
		for _, tc := range []struct{ path, want string }{
			{"/devices", `{"path":"/devices","params":{}}`},
			{"/devices/12", `{"path":"/devices/:id","params":{"id":"12"}}`},
			{"/devices/12/objects", `{"path":"/devices/:id/:tab","params":{"id":"12","tab":"objects"}}`},
			{"/devices/a%2Fb/shell", `{"path":"/devices/:id/:tab","params":{"id":"a/b","tab":"shell"}}`},
			{"/nothing", `null`},
		} {
			var got string
			b.Eval(fmt.Sprintf(`(async () => {
				const src = document.querySelector('script[type=module]').src.replace(/app\.js$/, 'router.js');
				const m = await import(src);
				const r = m.match(%q);
				return JSON.stringify(r ? {path: r.route.path, params: r.params} : null);
			})()`, tc.path), &got)
			if got != tc.want {
				t.Errorf("match(%q) = %s, want %s", tc.path, got, tc.want)
			}
		}
	})

	t.Run("devices search", func(t *testing.T) {
		for _, tc := range []struct{ text, want string }{
			{"", `"$filter=(has(c8y_IsDevice))"`},
			{"sim", `"$filter=(has(c8y_IsDevice) and (name eq '*sim*' or lwm2m.endpoint eq '*sim*' or type eq '*sim*'))"`},
			{"o'brien", `"$filter=(has(c8y_IsDevice) and (name eq '*o''brien*' or lwm2m.endpoint eq '*o''brien*' or type eq '*o''brien*'))"`},
		} {
			if got := libCall(b, "pages/devices.js", "searchQuery", tc.text); got != tc.want {
				t.Errorf("searchQuery(%q) = %s, want %s", tc.text, got, tc.want)
			}
		}
	})
}
