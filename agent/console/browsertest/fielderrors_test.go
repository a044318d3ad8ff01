package browsertest_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/console/browsertest"
)

// The API's 422 messages, as the agent words them, go to the fields they
// name: lib/fielderrors.js's splitProblems, run in the browser that runs
// the console.
func TestSplitProblems(t *testing.T) {
	a := browsertest.StartAgent(t)
	b := browsertest.NewBrowser(t, a)
	b.Open("/login")
	b.WaitVisible("#main form")
	type split struct {
		ByKey map[string][]string `json:"byKey"`
		Rest  []string            `json:"rest"`
	}
	for _, tc := range []struct {
		name     string
		message  string
		keys     []string
		anywhere bool
		want     split
	}{
		{
			name:    "functionality: context dropped, two fields",
			message: `invalid functionality: measurement.type "a b" is not a fragment name (letters, digits, _); alarm.text is empty`,
			keys:    []string{"measurement.type", "measurement.series", "alarm.text"},
			want: split{ByKey: map[string][]string{
				"measurement.type": {`measurement.type "a b" is not a fragment name (letters, digits, _)`},
				"alarm.text":       {"alarm.text is empty"},
			}},
		},
		{
			name:    "a reason holding a semicolon stays whole",
			message: `invalid functionality: customAction "decoder:fram": no decoder "fram" is configured; the decoders: cbor, frame (did you mean "frame"?)`,
			keys:    []string{"customAction"},
			want: split{ByKey: map[string][]string{
				"customAction": {`customAction "decoder:fram": no decoder "fram" is configured; the decoders: cbor, frame (did you mean "frame"?)`},
			}},
		},
		{
			name:    "the longest key that matches whole",
			message: `invalid: validation rules: groups[0][1].value "x" is not a number; groups[1] is empty; a group holds at least one rule`,
			keys:    []string{"groups[0]", "groups[0][1]", "groups[0][1].value", "groups[1]"},
			want: split{ByKey: map[string][]string{
				"groups[0][1].value": {`groups[0][1].value "x" is not a number`},
				"groups[1]":          {"groups[1] is empty; a group holds at least one rule"},
			}},
		},
		{
			name:    "what names no field stays for the form",
			message: `invalid bootstrap parameters: unknown parameter foo (known: a, b); registrationLifetime 0 must be 1 or more`,
			keys:    []string{"registrationLifetime", "lwm2mPskKey"},
			want: split{
				ByKey: map[string][]string{"registrationLifetime": {"registrationLifetime 0 must be 1 or more"}},
				Rest:  []string{"invalid bootstrap parameters: unknown parameter foo (known: a, b)"},
			},
		},
		{
			name:     "paths anywhere in a line, one problem per line",
			message:  "/3/0/0 (Manufacturer) is not writable (operations R)\n/3/0/14: validation of /3/0/14 failed: group 1: REGEX EQUALS \"x\"\n\"/3/0\" is not a resource path",
			keys:     []string{"/3/0/1", "/3/0/14", "/3/0/0"},
			anywhere: true,
			want: split{
				ByKey: map[string][]string{
					"/3/0/0":  {"/3/0/0 (Manufacturer) is not writable (operations R)"},
					"/3/0/14": {`/3/0/14: validation of /3/0/14 failed: group 1: REGEX EQUALS "x"`},
				},
				Rest: []string{`"/3/0" is not a resource path`},
			},
		},
		{
			name:    "a key inside another word is not named",
			message: "lwm2mServerUriX is odd",
			keys:    []string{"lwm2mServerUri"},
			want:    split{Rest: []string{"lwm2mServerUriX is odd"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args, _ := json.Marshal([]any{tc.message, tc.keys, map[string]bool{"anywhere": tc.anywhere}})
			var got split
			b.Eval(`import(new URL('lib/fielderrors.js', document.querySelector('script[type=module]').src)).then((m) => {
				const r = m.splitProblems(...`+string(args)+`);
				return {byKey: Object.fromEntries(r.byKey), rest: r.rest};
			})`, &got)
			if len(got.ByKey) == 0 {
				got.ByKey = nil
			}
			if len(got.Rest) == 0 {
				got.Rest = nil
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}
