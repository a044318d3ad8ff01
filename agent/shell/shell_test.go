package shell

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

func paths(ss ...string) []node.Path {
	out := make([]node.Path, len(ss))
	for i, s := range ss {
		out[i] = node.MustParsePath(s)
	}
	return out
}

func i64(n int64) *int64       { return &n }
func f64(f float64) *float64   { return &f }
func num(s string) json.Number { return json.Number(s) }

func TestParse(t *testing.T) {
	tests := []struct {
		line  string
		want  Command // Raw is filled in by the test
		canon string  // String(); "" means the line itself
	}{
		{line: "read /3/0/0", want: Command{Kind: Read, Paths: paths("/3/0/0")}},
		{line: "read /3", want: Command{Kind: Read, Paths: paths("/3")}},
		{line: "read /3/0", want: Command{Kind: Read, Paths: paths("/3/0")}},
		{line: "read /3/0/7/1", want: Command{Kind: Read, Paths: paths("/3/0/7/1")}},
		{line: "  READ   3/0/0/  ", want: Command{Kind: Read, Paths: paths("/3/0/0")}, canon: "read /3/0/0"},
		{line: "read\t/3303/0/5700\r", want: Command{Kind: Read, Paths: paths("/3303/0/5700")}, canon: "read /3303/0/5700"},
		{line: "observe /3303/0/5700", want: Command{Kind: Observe, Paths: paths("/3303/0/5700")}},
		{line: "observe /3303", want: Command{Kind: Observe, Paths: paths("/3303")}},
		{line: "cancelobservation /3303/0/5700", want: Command{Kind: CancelObservation, Paths: paths("/3303/0/5700")}},
		{line: "cancelobservation /3303/0/5700 /3/0/9", want: Command{Kind: CancelObservation, Paths: paths("/3303/0/5700", "/3/0/9")}},
		{line: "execute /3/0/4", want: Command{Kind: Execute, Paths: paths("/3/0/4")}},
		{line: "execute /3/0/4 0='a',1", want: Command{Kind: Execute, Paths: paths("/3/0/4"), Args: "0='a',1"}},
		{line: "execute /3/0/4   some  args  ", want: Command{Kind: Execute, Paths: paths("/3/0/4"), Args: "some  args"}, canon: "execute /3/0/4 some  args"},
		{line: "write /3/0/14 +02", want: Command{Kind: Write, Paths: paths("/3/0/14"), Value: "+02"}},
		{line: "write /1/0/1 300", want: Command{Kind: Write, Paths: paths("/1/0/1"), Value: "300"}},
		{line: "write /3/0/15 Europe/Berlin time zone", want: Command{Kind: Write, Paths: paths("/3/0/15"), Value: "Europe/Berlin time zone"}},
		{line: "write /3/0/7/1 3800", want: Command{Kind: Write, Paths: paths("/3/0/7/1"), Value: "3800"}},
		{line: `write /3/0/15 {"not": "parsed"}`, want: Command{Kind: Write, Paths: paths("/3/0/15"), Value: `{"not": "parsed"}`}},
		{line: "delete /3303/1", want: Command{Kind: Delete, Paths: paths("/3303/1")}},
		{line: "delete /3303/1/5700", want: Command{Kind: Delete, Paths: paths("/3303/1/5700")}},
		{line: "delete /3/0/7/2", want: Command{Kind: Delete, Paths: paths("/3/0/7/2")}},
		{line: "discover /3", want: Command{Kind: Discover, Paths: paths("/3")}},
		{line: "discover /3/0/0", want: Command{Kind: Discover, Paths: paths("/3/0/0")}},
		{line: "create /3303", want: Command{Kind: Create, Paths: paths("/3303")}},
		{line: "create /3303 {}", want: Command{Kind: Create, Paths: paths("/3303"), JSON: map[string]any{}}},
		{line: `create /3303 {"5700": 21.5, "5701":"Cel", "5750": true}`,
			want:  Command{Kind: Create, Paths: paths("/3303"), JSON: map[string]any{"5700": num("21.5"), "5701": "Cel", "5750": true}},
			canon: `create /3303 {"5700":21.5,"5701":"Cel","5750":true}`},
		{line: `create /2 {"0": 3, "2": {"0": 15, "101": 1}}`,
			want:  Command{Kind: Create, Paths: paths("/2"), JSON: map[string]any{"0": num("3"), "2": map[string]any{"0": num("15"), "101": num("1")}}},
			canon: `create /2 {"0":3,"2":{"0":15,"101":1}}`},
		{line: `create /9 {"1": 12345678901234567890}`, want: Command{Kind: Create, Paths: paths("/9"), JSON: map[string]any{"1": num("12345678901234567890")}}, canon: `create /9 {"1":12345678901234567890}`},
		{line: "writeattr /3303/0/5700 pmin=10&pmax=60",
			want: Command{Kind: WriteAttributes, Paths: paths("/3303/0/5700"), Attrs: Attributes{PMin: i64(10), PMax: i64(60)}}},
		{line: "writeattr /3303/0/5700 pmax=60&pmin=10&gt=20.5&lt=-5&st=0.5&epmin=1&epmax=30",
			want:  Command{Kind: WriteAttributes, Paths: paths("/3303/0/5700"), Attrs: Attributes{PMin: i64(10), PMax: i64(60), GT: f64(20.5), LT: f64(-5), ST: f64(0.5), EPMin: i64(1), EPMax: i64(30)}},
			canon: "writeattr /3303/0/5700 pmin=10&pmax=60&gt=20.5&lt=-5&st=0.5&epmin=1&epmax=30"},
		{line: "writeattr /3303 pmin=0", want: Command{Kind: WriteAttributes, Paths: paths("/3303"), Attrs: Attributes{PMin: i64(0)}}},
		{line: "writeattr /3303/0/5700 cancel", want: Command{Kind: WriteAttributes, Paths: paths("/3303/0/5700"), Attrs: Attributes{Cancel: true}}},
		{line: "writeattr /3303/0/5700 st=&pmin", want: Command{Kind: WriteAttributes, Paths: paths("/3303/0/5700"), Attrs: Attributes{Unset: []string{"pmin", "st"}}}, canon: "writeattr /3303/0/5700 pmin&st"},
		{line: "writeattr /3303/0/5700 PMIN = 5 & gt=1e2", want: Command{Kind: WriteAttributes, Paths: paths("/3303/0/5700"), Attrs: Attributes{PMin: i64(5), GT: f64(100)}}, canon: "writeattr /3303/0/5700 pmin=5&gt=100"},
		{line: "writeattr /3303/0 pmin=5&pmax=5", want: Command{Kind: WriteAttributes, Paths: paths("/3303/0"), Attrs: Attributes{PMin: i64(5), PMax: i64(5)}}},
		{line: "cread /3/0/0 /3/0/1 /3303/0", want: Command{Kind: CompositeRead, Paths: paths("/3/0/0", "/3/0/1", "/3303/0")}},
		{line: "cobserve /3303/0/5700", want: Command{Kind: CompositeObserve, Paths: paths("/3303/0/5700")}},
		{line: `cwrite {"/3/0/14": "+02", "1/0/1": 300, "/3/0/7/1": 5}`,
			want:  Command{Kind: CompositeWrite, Paths: paths("/1/0/1", "/3/0/7/1", "/3/0/14"), JSON: map[string]any{"/3/0/14": "+02", "/1/0/1": num("300"), "/3/0/7/1": num("5")}},
			canon: `cwrite {"/1/0/1":300,"/3/0/14":"+02","/3/0/7/1":5}`},
		{line: `cwrite {"/3/0/15": "<a&b>"}`, want: Command{Kind: CompositeWrite, Paths: paths("/3/0/15"), JSON: map[string]any{"/3/0/15": "<a&b>"}}, canon: `cwrite {"/3/0/15":"<a&b>"}`},
		{line: "writeb /19/0/0 CAFE00", want: Command{Kind: WriteBinary, Paths: paths("/19/0/0"), Value: "cafe00"}, canon: "writeb /19/0/0 cafe00"},
		{line: "writeb /19/0/0/1 binary:12345", want: Command{Kind: WriteBinary, Paths: paths("/19/0/0/1"), Binary: "12345"}},
		{line: "writeb /19/0/0 BINARY:abc", want: Command{Kind: WriteBinary, Paths: paths("/19/0/0"), Binary: "abc"}, canon: "writeb /19/0/0 binary:abc"},
		{line: "serialization TLV", want: Command{Kind: Serialization, Format: "TLV"}},
		{line: "serialization senml-json", want: Command{Kind: Serialization, Format: "SENML_JSON"}, canon: "serialization SENML_JSON"},
		{line: "serialization default", want: Command{Kind: Serialization, Format: "DEFAULT"}, canon: "serialization DEFAULT"},
		{line: "fwupdate fw-a;1.2.0;https://files.example.com/fw-a.bin",
			want: Command{Kind: FirmwareUpdate, Firmware: Firmware{Name: "fw-a", Version: "1.2.0", URL: "https://files.example.com/fw-a.bin"}}},
		{line: "fwupdate fw-a;1.2.0;binary:42",
			want: Command{Kind: FirmwareUpdate, Firmware: Firmware{Name: "fw-a", Version: "1.2.0", URL: "binary:42"}}},
		{line: "fwupdate /fw-a/1.2.0/coap://10.0.0.1:5683/fw/a.bin/",
			want:  Command{Kind: FirmwareUpdate, Firmware: Firmware{Name: "fw-a", Version: "1.2.0", URL: "coap://10.0.0.1:5683/fw/a.bin"}},
			canon: "fwupdate fw-a;1.2.0;coap://10.0.0.1:5683/fw/a.bin"},
		{line: "fwupdate My Firmware ; 2.0 beta ; http://h/x;y",
			want:  Command{Kind: FirmwareUpdate, Firmware: Firmware{Name: "My Firmware", Version: "2.0 beta", URL: "http://h/x;y"}},
			canon: "fwupdate My Firmware;2.0 beta;http://h/x;y"},
	}
	for _, tc := range tests {
		t.Run(tc.line, func(t *testing.T) {
			got, err := Parse(tc.line)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			want := tc.want
			want.Raw = strings.TrimSpace(tc.line)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got  %#v\nwant %#v", got, want)
			}
			canon := tc.canon
			if canon == "" {
				canon = tc.line
			}
			if s := got.String(); s != canon {
				t.Errorf("String() = %q, want %q", s, canon)
			}
			again, err := Parse(got.String())
			if err != nil {
				t.Fatalf("Parse(String()): %v", err)
			}
			if !got.Equal(again) || !reflect.DeepEqual(withoutRaw(got), withoutRaw(again)) {
				t.Errorf("round trip changed the command:\n%#v\n%#v", got, again)
			}
		})
	}
}

func withoutRaw(c Command) Command {
	c.Raw = ""
	return c
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		line string
		want string // the whole message
	}{
		{"", "empty command"},
		{"   ", "empty command"},
		{"raed /3/0/0", `unknown command "raed" (did you mean "read"?); the commands are read, observe, cancelobservation, execute, write, delete, discover, create, writeattr, cread, cobserve, cwrite, writeb, serialization, fwupdate`},
		{"frobnicate /3", `unknown command "frobnicate"; the commands are read, observe, cancelobservation, execute, write, delete, discover, create, writeattr, cread, cobserve, cwrite, writeb, serialization, fwupdate`},
		{"read", "read: a path /O, /O/I, /O/I/R or /O/I/R/RI is needed"},
		{"read /", "read /: a path /O, /O/I, /O/I/R or /O/I/R/RI is needed"},
		{"read /3/x", `read /3/x: not a path: bad path "/3/x": "x" is not an ID from 0 to 65534`},
		{"read /3/0/0/0/0", `read /3/0/0/0/0: not a path: bad path "/3/0/0/0/0": more than 4 levels`},
		{"read /65535", `read /65535: not a path: bad path "/65535": "65535" is not an ID from 0 to 65534`},
		{"read /3/0 /3/1", `read /3/0: unexpected "/3/1" after the path`},
		{"observe", "observe: a path /O, /O/I, /O/I/R or /O/I/R/RI is needed"},
		{"cancelobservation /", "cancelobservation /: a path /O, /O/I, /O/I/R or /O/I/R/RI is needed"},
		{"write /3/0 x", "write /3/0: a resource path /O/I/R is needed (or /O/I/R/RI for a resource instance)"},
		{"write /3 x", "write /3: a resource path /O/I/R is needed (or /O/I/R/RI for a resource instance)"},
		{"write /3/0/14", "write /3/0/14: a value is needed after the path"},
		{"write", "write: a resource path /O/I/R is needed (or /O/I/R/RI for a resource instance)"},
		{"execute /3/0", "execute /3/0: a resource path /O/I/R is needed"},
		{"execute /3/0/4/0", "execute /3/0/4/0: a resource path /O/I/R is needed"},
		{"delete /3303", "delete /3303: an instance path /O/I (or /O/I/R, /O/I/R/RI) is needed"},
		{"delete", "delete: an instance path /O/I (or /O/I/R, /O/I/R/RI) is needed"},
		{"discover /3/0/0/1", "discover /3/0/0/1: a path /O, /O/I or /O/I/R is needed"},
		{"create /3303/0", "create /3303/0: an object path /O is needed"},
		{"create /3303 {", "create /3303: not valid JSON: unexpected end"},
		{"create /3303 [1]", "create /3303: a JSON object {...} is needed"},
		{`create /3303 {"a": 1}`, `create /3303: key "a" is not a resource ID from 0 to 65534`},
		{`create /3303 {"05700": 1}`, `create /3303: key "05700" is not a resource ID from 0 to 65534`},
		{`create /3303 {"5700": null}`, `create /3303: resource 5700: null is not a value; give a string, number, boolean, or an object {"<instanceId>": value} for a multiple resource`},
		{`create /3303 {"5700": [1]}`, `create /3303: resource 5700: an array is not a value; give a string, number, boolean, or an object {"<instanceId>": value} for a multiple resource`},
		{`create /2 {"2": {"x": 1}}`, `create /2: resource 2: key "x" is not a resource instance ID from 0 to 65534`},
		{`create /2 {"2": {"0": {}}}`, `create /2: resource 2/0: an object is not a value; give a string, number or boolean`},
		{`create /2 {"2": {}}`, `create /2: resource 2: no resource instances in {}`},
		{`create /3303 {} {}`, `create /3303: not valid JSON: text after the closing '}'`},
		{"writeattr /3/0/9", "writeattr /3/0/9: no attributes given; use pmin, pmax, gt, lt, st, epmin, epmax, cancel, e.g. pmin=10&pmax=60"},
		{"writeattr /3/0/9 pmin=20&pmax=10", "writeattr: pmin 20 is above pmax 10"},
		{"writeattr /3/0/9 epmin=20&epmax=10", "writeattr: epmin 20 is above epmax 10"},
		{"writeattr /3/0/9 pmin=abc", `writeattr: pmin "abc" is not a whole number of seconds from 0`},
		{"writeattr /3/0/9 pmin=-1", `writeattr: pmin "-1" is not a whole number of seconds from 0`},
		{"writeattr /3/0/9 pmax=1.5", `writeattr: pmax "1.5" is not a whole number of seconds from 0`},
		{"writeattr /3/0/9 gt=hot", `writeattr: gt "hot" is not a number`},
		{"writeattr /3/0/9 gt=NaN", `writeattr: gt "NaN" is not a number`},
		{"writeattr /3/0/9 lt=Inf", `writeattr: lt "Inf" is not a number`},
		{"writeattr /3/0/9 st=-1", "writeattr: st -1 is negative; a step is 0 or more"},
		{"writeattr /3/0/9 gt=10&lt=20", "writeattr: lt 20 must be below gt 10"},
		{"writeattr /3/0/9 gt=10&lt=5&st=3", "writeattr: lt + 2*st (5 + 2*3) must be below gt 10"},
		{"writeattr /3/0/9 foo=1", `writeattr: unknown attribute "foo"; the attributes are pmin, pmax, gt, lt, st, epmin, epmax, cancel`},
		{"writeattr /3/0/9 pmin=1&pmin=2", "writeattr: pmin is given twice"},
		{"writeattr /3/0/9 pmin=1&pmin", "writeattr: pmin is given twice"},
		{"writeattr /3/0/9 pmin=1&&pmax=2", `writeattr: empty attribute in "pmin=1&&pmax=2" (two '&' in a row, or one at an end)`},
		{"writeattr /3/0/9 cancel=1", "writeattr: cancel takes no value"},
		{"writeattr /3/0 gt=1", "writeattr /3/0: gt, lt and st apply to a resource; a resource path /O/I/R is needed (or /O/I/R/RI for a resource instance)"},
		{"writeattr /3 st", "writeattr /3: gt, lt and st apply to a resource; a resource path /O/I/R is needed (or /O/I/R/RI for a resource instance)"},
		{"cread", "cread: at least one path is needed"},
		{"cread /3/0 /", "cread /: a path /O, /O/I, /O/I/R or /O/I/R/RI is needed"},
		{"cread /3/0 3/0", "cread: path /3/0 is given twice"},
		{"cobserve /3/x", `cobserve /3/x: not a path: bad path "/3/x": "x" is not an ID from 0 to 65534`},
		{"cwrite", `cwrite: a JSON object of paths and values is needed, e.g. {"/3/0/14": "+02", "/1/0/1": 300}`},
		{"cwrite {}", "cwrite: no paths in {}"},
		{`cwrite {"/3/0": 1}`, "cwrite /3/0: a resource path /O/I/R is needed (or /O/I/R/RI for a resource instance)"},
		{`cwrite {"/3/a/1": 1}`, `cwrite: key "/3/a/1" is not a path: bad path "/3/a/1": "a" is not an ID from 0 to 65534`},
		{`cwrite {"/3/0/1": {"a": 1}}`, "cwrite /3/0/1: an object is not a value; give a string, number or boolean"},
		{`cwrite {"/3/0/1": 1, "3/0/1": 2}`, "cwrite: path /3/0/1 is given twice"},
		{`cwrite "x"`, "cwrite: a JSON object {...} is needed"},
		{"writeb /19/0", "writeb /19/0: a resource path /O/I/R is needed (or /O/I/R/RI for a resource instance)"},
		{"writeb /19/0/0", "writeb /19/0/0: the bytes are needed as hex, or binary:<id>"},
		{"writeb /19/0/0 abc", `writeb /19/0/0: "abc" is not hex: odd number of digits`},
		{"writeb /19/0/0 abzz", `writeb /19/0/0: "abzz" is not hex: 'z' at position 3`},
		{"writeb /19/0/0 ab cd", "writeb /19/0/0: one value is expected, hex without spaces or binary:<id>"},
		{"writeb /19/0/0 binary:", "writeb /19/0/0: binary: needs the ID of a stored binary"},
		{"serialization", "serialization: a format is needed: TLV, JSON, CBOR, TEXT, OPAQUE, SENML_JSON, SENML_CBOR, DEFAULT"},
		{"serialization XML", `serialization: unknown format "XML"; the formats are TLV, JSON, CBOR, TEXT, OPAQUE, SENML_JSON, SENML_CBOR, DEFAULT`},
		{"fwupdate", "fwupdate: name, version and URL are needed: fwupdate <name>;<version>;<url> (or /<name>/<version>/<url>/)"},
		{"fwupdate fw;1.0", "fwupdate: name, version and URL are needed: fwupdate <name>;<version>;<url> (or /<name>/<version>/<url>/)"},
		{"fwupdate ;1.0;http://h/f", "fwupdate: the firmware name is empty: fwupdate <name>;<version>;<url> (or /<name>/<version>/<url>/)"},
		{"fwupdate fw; ;http://h/f", "fwupdate: the firmware version is empty: fwupdate <name>;<version>;<url> (or /<name>/<version>/<url>/)"},
		{"fwupdate fw;1;", "fwupdate: the URL is empty: fwupdate <name>;<version>;<url> (or /<name>/<version>/<url>/)"},
		{"fwupdate fw;1;ftp://h/f", `fwupdate: "ftp://h/f" is not a firmware URL; it must be binary:<id> or absolute with scheme http, https, coap, coaps, coap+tcp, coaps+tcp`},
		{"fwupdate fw;1;/local/file", `fwupdate: "/local/file" is not a firmware URL; it must be binary:<id> or absolute with scheme http, https, coap, coaps, coap+tcp, coaps+tcp`},
		{"fwupdate fw;1;http://h/a b", `fwupdate: URL "http://h/a b" contains white space`},
		{"fwupdate fw;1;binary:", `fwupdate: "binary:": binary: needs the ID of a stored binary (digits)`},
		{"fwupdate fw;1;binary:4a", `fwupdate: "binary:4a": binary: needs the ID of a stored binary (digits)`},
		{"fwupdate /f;w/1/http://h/f/", "fwupdate: a firmware name or version cannot contain ';'"},
		{"read /3/0\nread /3/1", "one command per line: the command spans several lines"},
	}
	for _, tc := range tests {
		t.Run(tc.line, func(t *testing.T) {
			c, err := Parse(tc.line)
			if err == nil {
				t.Fatalf("no error; got %q", c.String())
			}
			var se *Error
			if !errors.As(err, &se) {
				t.Fatalf("error %T is not a *shell.Error: %v", err, err)
			}
			if err.Error() != tc.want {
				t.Errorf("message\n got  %s\n want %s", err, tc.want)
			}
		})
	}
}

func TestParseBadPathWrapsNodeError(t *testing.T) {
	_, err := Parse("read /3/x")
	if !errors.Is(err, node.ErrBadPath) {
		t.Errorf("error %v does not wrap node.ErrBadPath", err)
	}
}

func TestParseText(t *testing.T) {
	cmds, err := ParseText("read /3/0\r\n\n   \nwrite /1/0/1 300\r\nexecute /3/0/4\n")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range cmds {
		got = append(got, c.String())
	}
	if want := []string{"read /3/0", "write /1/0/1 300", "execute /3/0/4"}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}

	errTests := []struct {
		name  string
		text  string
		lines []int
		msg   string
	}{
		{"one bad line", "read /3/0\nraed /3/0\nread /3/1", []int{2}, `line 2: unknown command "raed"`},
		{"two bad lines", "write /3/0 x\n\nread /3/0\nexecute /3", []int{1, 4}, "line 1: write /3/0: a resource path /O/I/R is needed (or /O/I/R/RI for a resource instance)\nline 4: execute /3: a resource path /O/I/R is needed"},
		{"empty text", "\n  \n", nil, "no command: the text is empty"},
	}
	for _, tc := range errTests {
		t.Run(tc.name, func(t *testing.T) {
			cmds, err := ParseText(tc.text)
			if err == nil {
				t.Fatalf("no error; got %d commands", len(cmds))
			}
			if cmds != nil {
				t.Errorf("commands returned with an error: %v", cmds)
			}
			if !strings.HasPrefix(err.Error(), tc.msg) {
				t.Errorf("message\n got  %s\n want %s...", err, tc.msg)
			}
			var lines []int
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				for _, e := range j.Unwrap() {
					var se *Error
					if errors.As(e, &se) {
						lines = append(lines, se.Line)
					}
				}
			}
			if !reflect.DeepEqual(lines, tc.lines) {
				t.Errorf("error lines %v, want %v", lines, tc.lines)
			}
		})
	}
}

func TestAttributesQuery(t *testing.T) {
	tests := []struct {
		name  string
		attrs Attributes
		want  []string
	}{
		{"none", Attributes{}, nil},
		{"zero is set", Attributes{PMin: i64(0)}, []string{"pmin=0"}},
		{"all", Attributes{PMin: i64(10), PMax: i64(60), GT: f64(20.5), LT: f64(-3), ST: f64(0.25), EPMin: i64(1), EPMax: i64(2), Cancel: true},
			[]string{"pmin=10", "pmax=60", "gt=20.5", "lt=-3", "st=0.25", "epmin=1", "epmax=2", "cancel"}},
		{"no exponent", Attributes{GT: f64(1e21), LT: f64(0.000001)}, []string{"gt=1000000000000000000000", "lt=0.000001"}},
		{"unset", Attributes{PMax: i64(5), Unset: []string{"pmin", "gt"}}, []string{"pmin", "pmax=5", "gt"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.attrs.Query(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if tc.attrs.IsZero() != (tc.want == nil) {
				t.Errorf("IsZero() = %v", tc.attrs.IsZero())
			}
		})
	}
}

func TestKindNames(t *testing.T) {
	for k := Read; k <= FirmwareUpdate; k++ {
		got, ok := ParseKind(strings.ToUpper(k.String()))
		if !ok || got != k {
			t.Errorf("ParseKind(%q) = %v %v", k.String(), got, ok)
		}
	}
	if _, ok := ParseKind("reads"); ok {
		t.Error(`ParseKind("reads") succeeded`)
	}
	if s := Kind(0).String(); s != "Kind(0)" {
		t.Errorf("Kind(0).String() = %q", s)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"read /3/0/0", "observe /3303/0/5700", "cancelobservation /3", "execute /3/0/4 0='x'",
		"write /3/0/14 +02", "delete /3303/1", "discover /3/0", `create /2 {"0": 3, "2": {"0": 15}}`,
		"writeattr /3303/0/5700 pmin=10&pmax=60&gt=20.5&lt=-5&st=0.5&epmin=1&epmax=30&cancel",
		"writeattr /3303/0/5700 pmin&st=", "cread /3/0/0 /3/0/1", "cobserve /3/0",
		`cwrite {"/3/0/14": "+02", "/1/0/1": 300.5e2}`, "writeb /19/0/0 CAFE", "writeb /19/0/0 binary:42",
		"serialization senml_cbor", "fwupdate a;1;http://h/x", "fwupdate /a/1/coaps://h:5684/x/",
		"raed /3", "write /3/0 1", "writeattr /3/0/1 pmin=20&pmax=10",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		c, err := Parse(line)
		if err != nil {
			var se *Error
			if !errors.As(err, &se) {
				t.Fatalf("error %T is not a *shell.Error: %v", err, err)
			}
			return
		}
		s := c.String()
		again, err := Parse(s)
		if err != nil {
			t.Fatalf("Parse(%q) succeeded, Parse of its String() %q failed: %v", line, s, err)
		}
		if !reflect.DeepEqual(withoutRaw(c), withoutRaw(again)) {
			t.Fatalf("round trip of %q through %q changed the command:\n%#v\n%#v", line, s, c, again)
		}
		if again.String() != s {
			t.Fatalf("String() is not stable: %q then %q", s, again.String())
		}
	})
}

func BenchmarkParse(b *testing.B) {
	for _, line := range []string{"read /3303/0/5700", "writeattr /3303/0/5700 pmin=10&pmax=60&gt=20.5", `cwrite {"/3/0/14": "+02", "/1/0/1": 300}`} {
		b.Run(strings.Fields(line)[0], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Parse(line); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
