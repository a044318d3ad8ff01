package jsonlimit_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/jsonlimit"
)

var limits = jsonlimit.Limits{Depth: 3, Members: 3, Array: 4, Values: 10, Fragment: 16}

func TestCheckLimits(t *testing.T) {
	tests := []struct {
		name, doc string
		cause     string // "" for no error
		says      string
	}{
		{"empty object", `{}`, "", ""},
		{"scalars", `{"a":1,"b":"x","c":null}`, "", ""},
		{"white space around", " \t\r\n{ \"a\" : [ 1 , 2 ] } \n", "", ""},
		{"depth at the limit", `{"a":{"b":[1]}}`, "", ""},
		{"too deep", `{"a":{"b":[[1]]}}`, jsonlimit.CauseDepth, "JSON nested deeper than 3 levels at a > b"},
		{"too deep, arrays", `[[[[]]]]`, jsonlimit.CauseDepth, "JSON nested deeper than 3 levels"},
		{"too deep before invalid", `{"a":[[[ nonsense`, jsonlimit.CauseDepth, "nested deeper than 3 levels at a"},
		{"members at the limit", `{"a":1,"b":2,"c":3}`, "", ""},
		{"too many members", `{"a":1,"b":2,"c":3,"d":4}`, jsonlimit.CauseMembers, "a JSON object of more than 3 members at d"},
		{"too many nested members", `{"a":{"w":1,"x":2,"y":3,"z":4}}`, jsonlimit.CauseMembers, "more than 3 members at a > z"},
		{"array at the limit", `[1,2,3,4]`, "", ""},
		{"array too long", `{"a":[{},{},{},{},{}]}`, jsonlimit.CauseArray, "a JSON array of more than 4 elements at a"},
		{"too many values", `{"a":[1,2,3,4],"b":[1,2,3,4],"c":1}`, jsonlimit.CauseValues, "more than 10 members and array elements in all at c"},
		{"fragment at the limit", `{"a":"0123456789abcd"}`, "", ""},
		{"fragment too large", `{"a":"0123456789abcde"}`, jsonlimit.CauseFragment, `fragment "a" is larger than 16 bytes`},
		{"nested fragment too large", `{"ok":1,"big":{"x":"0123456789"}}`, jsonlimit.CauseFragment, `fragment "big"`},
		{"elements of a top-level array are no fragments", `["0123456789abcdefghij"]`, "", ""},
		{"escaped name in a path", `{"a\u002eb":{"c":[[1]]}}`, jsonlimit.CauseDepth, "at a.b > c"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := jsonlimit.Check([]byte(tc.doc), limits)
			if tc.cause == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var le *jsonlimit.LimitError
			if !errors.As(err, &le) {
				t.Fatalf("got %v, want a limit error %s", err, tc.cause)
			}
			if le.Cause != tc.cause || !strings.Contains(le.Error(), tc.says) {
				t.Fatalf("got %s %q, want %s saying %q", le.Cause, le.Error(), tc.cause, tc.says)
			}
		})
	}
}

// A path of many names keeps its ends.
func TestCheckLongPath(t *testing.T) {
	doc := strings.Repeat(`{"n":`, 20) + `{"last":[[1]]}` + strings.Repeat("}", 20)
	err := jsonlimit.Check([]byte(`{"first":`+doc+"}"), jsonlimit.Limits{Depth: 22})
	if err == nil || !strings.Contains(err.Error(), "at first > n > n > … > n > n > last") {
		t.Fatalf("got %v", err)
	}
}

func TestCheckNames(t *testing.T) {
	noDollar := func(name string) error {
		if strings.HasPrefix(name, "$") {
			return errors.New("it starts with '$'")
		}
		return nil
	}
	for _, tc := range []struct{ doc, name, path string }{
		{`{"$where":1}`, "$where", "$where"},
		{`{"a":[1,{"ok":1,"$set":2}]}`, "$set", "a > $set"},
		{`{"a":{"\u0024gt":1}}`, "$gt", "a > $gt"},
	} {
		err := jsonlimit.Check([]byte(tc.doc), jsonlimit.Limits{Name: noDollar})
		var ne *jsonlimit.NameError
		if !errors.As(err, &ne) || ne.Name != tc.name || ne.Path != tc.path {
			t.Fatalf("%s: got %v, want the name %q at %q", tc.doc, err, tc.name, tc.path)
		}
	}
	if err := jsonlimit.Check([]byte(`{"a":{"b$":1},"c":"$x"}`), jsonlimit.Limits{Name: noDollar}); err != nil {
		t.Fatalf("refused: %v", err)
	}
}

func TestCheckSyntax(t *testing.T) {
	for _, doc := range []string{
		``, ` `, `{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `[1,]`, `[1 2]`, `{a:1}`, `{"a":1}}`, `{"a":1} x`,
		`"\x"`, `"\u12g4"`, "\"a\x01\"", `01`, `-`, `1.`, `1e`, `tru`, `nul`, `{"a":1]`, `[1}`, `"abc`,
	} {
		err := jsonlimit.Check([]byte(doc), jsonlimit.Limits{})
		var se *jsonlimit.SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("%q: got %v, want a syntax error", doc, err)
		}
		if json.Valid([]byte(doc)) {
			t.Errorf("%q is valid JSON", doc)
		}
	}
	for _, doc := range []string{`0`, `-0.5e+3`, `"\u00e9\n\"\\"`, `true`, `[false,null]`, `{"a":{"b":[]}}`, "\"caf\xc3\xa9\""} {
		if err := jsonlimit.Check([]byte(doc), jsonlimit.Limits{}); err != nil {
			t.Errorf("%q: %v", doc, err)
		}
	}
}

// A million levels cost no more than the first few past the limit: the
// check stops there, with no tree built.
func TestCheckStopsEarly(t *testing.T) {
	doc := []byte(strings.Repeat("[", 1_000_000))
	allocs := testing.AllocsPerRun(10, func() {
		var le *jsonlimit.LimitError
		if err := jsonlimit.Check(doc, jsonlimit.Limits{Depth: 32}); !errors.As(err, &le) || le.Cause != jsonlimit.CauseDepth {
			t.Fatalf("got %v", err)
		}
	})
	if allocs > 20 {
		t.Fatalf("%v allocations to refuse a deep document", allocs)
	}
}

// shape is what the limits measure, taken from the decoder's tokens.
type shape struct {
	depth, maxMembers, maxArray, values int
}

func measure(t *testing.T, data []byte) shape {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	type level struct {
		object  bool
		n       int
		wantKey bool
	}
	var s shape
	var stack []level
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return s
		}
		if err != nil {
			t.Fatalf("measure %q: %v", data, err)
		}
		if _, isKey := tok.(string); isKey && len(stack) > 0 && stack[len(stack)-1].object && stack[len(stack)-1].wantKey {
			n := len(stack)
			stack[n-1].wantKey = false
			stack[n-1].n++
			s.values++
			s.maxMembers = max(s.maxMembers, stack[n-1].n)
			continue
		}
		if n := len(stack); n > 0 && !stack[n-1].object && tok != json.Delim(']') {
			stack[n-1].n++
			s.values++
			s.maxArray = max(s.maxArray, stack[n-1].n)
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			stack = append(stack, level{object: tok == json.Delim('{'), wantKey: tok == json.Delim('{')})
			s.depth = max(s.depth, len(stack))
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		if n := len(stack); n > 0 && stack[n-1].object {
			stack[n-1].wantKey = true
		}
	}
}

// FuzzCheck holds Check to encoding/json: without limits it accepts
// exactly what json.Valid accepts, and with limits it refuses a valid
// document exactly when the document passes one of them.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":[1,2,{"b":"c"}]}`, `[[[[1]]]]`, `{"a":1,"b":2,"c":3,"d":4}`, `"\u00e9"`, `-1.5e3`, `{"a":"0123456789abcdefghij"}`, `[1,2,3,4,5]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := jsonlimit.Check(data, jsonlimit.Limits{})
		if valid := json.Valid(data); (err == nil) != valid {
			t.Fatalf("%q: Check says %v, json.Valid says %v", data, err, valid)
		}
		if err != nil {
			var se *jsonlimit.SyntaxError
			if !errors.As(err, &se) || se.Offset < 0 || se.Offset > len(data) {
				t.Fatalf("%q: %v is not a syntax error within the document", data, err)
			}
			return
		}
		got := measure(t, data)
		err = jsonlimit.Check(data, limits)
		var le *jsonlimit.LimitError
		switch {
		case err == nil:
			if got.depth > limits.Depth || got.maxMembers > limits.Members || got.maxArray > limits.Array || got.values > limits.Values {
				t.Fatalf("%q passed with %+v", data, got)
			}
			var top map[string]json.RawMessage
			if json.Unmarshal(data, &top) == nil {
				for k, v := range top {
					if len(v) > limits.Fragment {
						t.Fatalf("%q passed with fragment %q of %d bytes", data, k, len(v))
					}
				}
			}
		case errors.As(err, &le):
			over := map[string]bool{
				jsonlimit.CauseDepth: got.depth > limits.Depth, jsonlimit.CauseMembers: got.maxMembers > limits.Members,
				jsonlimit.CauseArray: got.maxArray > limits.Array, jsonlimit.CauseValues: got.values > limits.Values,
				jsonlimit.CauseFragment: true,
			}
			if !over[le.Cause] {
				t.Fatalf("%q refused for %v with %+v", data, err, got)
			}
		default:
			t.Fatalf("%q: %v", data, err)
		}
	})
}
