package validation

import (
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

func one(typ, rule string, value any) store.ValidationRules {
	return store.ValidationRules{Groups: [][]store.ValidationRule{{{Type: typ, Rule: rule, Value: value}}}}
}

func ref(typ, rule, path string) store.ValidationRules {
	return store.ValidationRules{Groups: [][]store.ValidationRule{{{Type: typ, Rule: rule, Resource: path}}}}
}

var target = node.MustParsePath("/3/0/14")

func TestRulesPerTypeAndRule(t *testing.T) {
	t2024 := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		rules store.ValidationRules
		value node.Value
		valid bool
		msg   string // part of the error when invalid
	}{
		// STRING: equal or not, as text
		{"string equals holds", one("STRING", "EQUALS", "abc"), node.String("abc"), true, ""},
		{"string equals fails", one("STRING", "EQUALS", "abc"), node.String("abcd"), false, `group 1: STRING EQUALS "abc"`},
		{"string equals_not holds", one("STRING", "EQUALS_NOT", "test"), node.String("prod"), true, ""},
		{"string equals_not fails", one("STRING", "EQUALS_NOT", "test"), node.String("test"), false, `STRING EQUALS_NOT "test"`},
		{"string of an integer", one("STRING", "EQUALS", "42"), node.Int(42), true, ""},
		{"string is case sensitive", one("STRING", "EQUALS", "ABC"), node.String("abc"), false, `STRING EQUALS "ABC"`},

		// NUMBER: ordered
		{"number equals int", one("NUMBER", "EQUALS", 5.0), node.Int(5), true, ""},
		{"number equals float", one("NUMBER", "EQUALS", 5.5), node.Float(5.5), true, ""},
		{"number equals fails", one("NUMBER", "EQUALS", 5.0), node.Int(6), false, "NUMBER EQUALS 5"},
		{"number equals_not", one("NUMBER", "EQUALS_NOT", 5.0), node.Int(6), true, ""},
		{"number equals_not fails", one("NUMBER", "EQUALS_NOT", 5.0), node.Uint(5), false, "NUMBER EQUALS_NOT 5"},
		{"number greater holds", one("NUMBER", "GREATER_THAN", 10.0), node.Int(11), true, ""},
		{"number greater at the bound", one("NUMBER", "GREATER_THAN", 10.0), node.Int(10), false, "NUMBER GREATER_THAN 10"},
		{"number lower holds", one("NUMBER", "LOWER_THAN", 10.0), node.Float(9.99), true, ""},
		{"number lower at the bound", one("NUMBER", "LOWER_THAN", 10.0), node.Int(10), false, "NUMBER LOWER_THAN 10"},
		{"number greater or equal at the bound", one("NUMBER", "GREATER_OR_EQUALS", 10.0), node.Int(10), true, ""},
		{"number greater or equal below", one("NUMBER", "GREATER_OR_EQUALS", 10.0), node.Int(9), false, "NUMBER GREATER_OR_EQUALS 10"},
		{"number lower or equal at the bound", one("NUMBER", "LOWER_OR_EQUALS", -3.0), node.Int(-3), true, ""},
		{"number lower or equal above", one("NUMBER", "LOWER_OR_EQUALS", -3.0), node.Int(-2), false, "NUMBER LOWER_OR_EQUALS -3"},
		{"number constant as a string", one("NUMBER", "LOWER_THAN", "100"), node.Int(99), true, ""},
		{"number constant as int64 (from the store)", one("NUMBER", "EQUALS", int64(7)), node.Int(7), true, ""},
		{"number from text", one("NUMBER", "GREATER_THAN", 1.0), node.String(" 2.5 "), true, ""},
		{"number from boolean", one("NUMBER", "EQUALS", 1.0), node.Bool(true), true, ""},
		{"not a number fails even equals_not", one("NUMBER", "EQUALS_NOT", 5.0), node.String("five"), false, `NUMBER EQUALS_NOT 5 ("five" is not a number)`},

		// DATE: ISO 8601 and Unix seconds, ordered
		{"date equals time value", one("DATE", "EQUALS", "2024-05-01T12:00:00Z"), node.TimeValue(t2024), true, ""},
		{"date equals across zones", one("DATE", "EQUALS", "2024-05-01T14:00:00+02:00"), node.TimeValue(t2024), true, ""},
		{"date equals unix seconds constant", one("DATE", "EQUALS", float64(t2024.Unix())), node.TimeValue(t2024), true, ""},
		{"date from unix seconds text", one("DATE", "EQUALS", "2024-05-01T12:00:00Z"), node.String("1714564800"), true, ""},
		{"date from an integer", one("DATE", "GREATER_THAN", "2024-01-01T00:00:00Z"), node.Int(t2024.Unix()), true, ""},
		{"date equals_not", one("DATE", "EQUALS_NOT", "2024-05-01T12:00:00Z"), node.TimeValue(t2024.Add(time.Second)), true, ""},
		{"date equals_not fails", one("DATE", "EQUALS_NOT", "2024-05-01T12:00:00Z"), node.TimeValue(t2024), false, `DATE EQUALS_NOT "2024-05-01T12:00:00Z"`},
		{"date greater holds", one("DATE", "GREATER_THAN", "2024-01-01T00:00:00Z"), node.TimeValue(t2024), true, ""},
		{"date greater fails", one("DATE", "GREATER_THAN", "2025-01-01T00:00:00Z"), node.TimeValue(t2024), false, "DATE GREATER_THAN"},
		{"date lower holds", one("DATE", "LOWER_THAN", "2025-01-01T00:00:00Z"), node.String("2024-12-31T23:59:59.5Z"), true, ""},
		{"date lower fails", one("DATE", "LOWER_THAN", "2024-05-01T12:00:00Z"), node.TimeValue(t2024), false, "DATE LOWER_THAN"},
		{"date greater or equal", one("DATE", "GREATER_OR_EQUALS", "2024-05-01T12:00:00Z"), node.TimeValue(t2024), true, ""},
		{"date greater or equal fails", one("DATE", "GREATER_OR_EQUALS", "2024-05-01T12:00:01Z"), node.TimeValue(t2024), false, "DATE GREATER_OR_EQUALS"},
		{"date lower or equal", one("DATE", "LOWER_OR_EQUALS", "2024-05-01T12:00:00Z"), node.TimeValue(t2024), true, ""},
		{"date lower or equal fails", one("DATE", "LOWER_OR_EQUALS", "2024-05-01T11:59:59Z"), node.TimeValue(t2024), false, "DATE LOWER_OR_EQUALS"},
		{"not a date", one("DATE", "GREATER_THAN", "2024-01-01T00:00:00Z"), node.String("yesterday"), false, `("yesterday" is not a date)`},

		// OBJECTLINK: "O:I", equal or not
		{"objlnk equals link value", one("OBJECTLINK", "EQUALS", "3:0"), node.Link(3, 0), true, ""},
		{"objlnk equals text, leading zeros", one("OBJECTLINK", "EQUALS", "3:0"), node.String("03:00"), true, ""},
		{"objlnk equals fails", one("OBJECTLINK", "EQUALS", "3:0"), node.Link(3, 1), false, `OBJECTLINK EQUALS "3:0"`},
		{"objlnk equals_not", one("OBJECTLINK", "EQUALS_NOT", "3:0"), node.Link(4, 0), true, ""},
		{"objlnk equals_not fails", one("OBJECTLINK", "EQUALS_NOT", "65535:65535"), node.Link(65535, 65535), false, `OBJECTLINK EQUALS_NOT "65535:65535"`},
		{"not an object link", one("OBJECTLINK", "EQUALS_NOT", "3:0"), node.String("3-0"), false, `("3-0" is not an object link)`},

		// REGEX: EQUALS matches the whole value, EQUALS_NOT does not match
		{"regex matches", one("REGEX", "EQUALS", ".*asd$"), node.String("qwerasd"), true, ""},
		{"regex does not match", one("REGEX", "EQUALS", ".*asd$"), node.String("asdqwer"), false, `REGEX EQUALS ".*asd$"`},
		{"regex matches the whole value", one("REGEX", "EQUALS", "asd"), node.String("xasd"), false, `REGEX EQUALS "asd"`},
		{"regex equals_not", one("REGEX", "EQUALS_NOT", "[0-9]+"), node.String("12a"), true, ""},
		{"regex equals_not fails", one("REGEX", "EQUALS_NOT", "[0-9]+"), node.String("123"), false, `REGEX EQUALS_NOT "[0-9]+"`},
		{"regex on an integer's text", one("REGEX", "EQUALS", `\d{2}`), node.Int(42), true, ""},
		{"regex alternatives stay inside the anchors", one("REGEX", "EQUALS", "a|b"), node.String("ab"), false, `REGEX EQUALS "a|b"`},
		{"regex with quotes", one("REGEX", "EQUALS", `"[a-z]+"`), node.String(`"abc"`), true, ""},
		{"string with quotes is no expression", one("STRING", "EQUALS", `x" || true || "`), node.String("y"), false, `STRING EQUALS "x\" || true || \""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := Compile(tt.rules)
			if err != nil {
				t.Fatalf("compile: %v", err)
			}
			err = rs.Check(target, tt.value, nil)
			if tt.valid {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("%+v accepted", tt.value)
			}
			if !IsFailure(err) {
				t.Fatalf("not a validation failure: %v", err)
			}
			if !strings.HasPrefix(err.Error(), "validation of /3/0/14 failed: group 1: ") || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q, want it to name %q", err, tt.msg)
			}
		})
	}
}

// A value is valid when every rule of at least one group holds; a refusal
// names, per group, the rules that did not.
func TestDNFTwoGroups(t *testing.T) {
	// below zero, or between 10 and 20 (exclusive)
	band, err := Compile(store.ValidationRules{Groups: [][]store.ValidationRule{
		{{Type: "NUMBER", Rule: "LOWER_THAN", Value: 0.0}},
		{{Type: "NUMBER", Rule: "GREATER_THAN", Value: 10.0}, {Type: "NUMBER", Rule: "LOWER_THAN", Value: 20.0}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name  string
		value int64
		want  string // "" valid
	}{
		{"first group", -5, ""},
		{"second group", 15, ""},
		{"neither, first rule of group 2", 5, "validation of /3/0/14 failed: group 1: NUMBER LOWER_THAN 0; group 2: NUMBER GREATER_THAN 10"},
		{"neither, second rule of group 2", 25, "validation of /3/0/14 failed: group 1: NUMBER LOWER_THAN 0; group 2: NUMBER LOWER_THAN 20"},
		{"bound of group 2", 20, "validation of /3/0/14 failed: group 1: NUMBER LOWER_THAN 0; group 2: NUMBER LOWER_THAN 20"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := band.Check(target, node.Int(tt.value), nil)
			if got := errText(err); got != tt.want {
				t.Errorf("got %q\nwant %q", got, tt.want)
			}
		})
	}

	// The example of API.md: not "test", or ending in "asd" and equal to
	// the last known /3/0/15.
	api, err := Compile(store.ValidationRules{Groups: [][]store.ValidationRule{
		{{Type: "STRING", Rule: "EQUALS_NOT", Value: "test"}},
		{{Type: "REGEX", Rule: "EQUALS", Value: ".*asd$"}, {Type: "STRING", Rule: "EQUALS", Resource: "/3/0/15"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if got := api.Refs(); len(got) != 1 || got[0] != node.MustParsePath("/3/0/15") {
		t.Fatalf("Refs = %v", got)
	}
	last := func(v string) Lookup {
		return func(p node.Path) (node.Value, bool) {
			if p == node.MustParsePath("/3/0/15") && v != "" {
				return node.String(v), true
			}
			return node.Value{}, false
		}
	}
	for _, tt := range []struct {
		name, value, last, want string
	}{
		{"first group holds", "prod", "", ""},
		{"second group holds alone", "qasd", "qasd", ""},
		{"only the failing rule of group 2 is named", "test", "test",
			`validation of /3/0/14 failed: group 1: STRING EQUALS_NOT "test"; group 2: REGEX EQUALS ".*asd$"`},
		{"both rules of group 2 fail", "test", "",
			`validation of /3/0/14 failed: group 1: STRING EQUALS_NOT "test"; group 2: REGEX EQUALS ".*asd$", STRING EQUALS resource /3/0/15 (no last known value of /3/0/15)`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := errText(api.Check(target, node.String(tt.value), last(tt.last))); got != tt.want {
				t.Errorf("got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestResourceComparison(t *testing.T) {
	min := node.MustParsePath("/3303/0/5601")
	tests := []struct {
		name  string
		rules store.ValidationRules
		value node.Value
		last  map[node.Path]node.Value
		msg   string // "" valid
	}{
		{"number above the other resource", ref("NUMBER", "GREATER_THAN", "/3303/0/5601"), node.Float(20), map[node.Path]node.Value{min: node.Float(10)}, ""},
		{"number not above", ref("NUMBER", "GREATER_THAN", "/3303/0/5601"), node.Float(5), map[node.Path]node.Value{min: node.Float(10)}, "NUMBER GREATER_THAN resource /3303/0/5601"},
		{"number compared with an integer's value", ref("NUMBER", "LOWER_OR_EQUALS", "/3303/0/5601"), node.Int(10), map[node.Path]node.Value{min: node.Int(10)}, ""},
		{"no last value", ref("NUMBER", "GREATER_THAN", "/3303/0/5601"), node.Float(5), nil, "(no last known value of /3303/0/5601)"},
		{"last value not a number", ref("NUMBER", "GREATER_THAN", "/3303/0/5601"), node.Float(5), map[node.Path]node.Value{min: node.String("cold")}, "(the last known value of /3303/0/5601 is not a number)"},
		{"string equals the other", ref("STRING", "EQUALS", "/3/0/15"), node.String("Europe/Berlin"), map[node.Path]node.Value{node.MustParsePath("/3/0/15"): node.String("Europe/Berlin")}, ""},
		{"string equals_not the other", ref("STRING", "EQUALS_NOT", "/3/0/15"), node.String("Europe/Berlin"), map[node.Path]node.Value{node.MustParsePath("/3/0/15"): node.String("Europe/Berlin")}, "STRING EQUALS_NOT resource /3/0/15"},
		{"date after the device's time", ref("DATE", "GREATER_THAN", "/3/0/13"), node.TimeValue(time.Unix(2000, 0)), map[node.Path]node.Value{node.MustParsePath("/3/0/13"): node.TimeValue(time.Unix(1000, 0))}, ""},
		{"object link equals another", ref("OBJECTLINK", "EQUALS", "/1/0/20"), node.String("3:0"), map[node.Path]node.Value{node.MustParsePath("/1/0/20"): node.Link(3, 0)}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := Compile(tt.rules)
			if err != nil {
				t.Fatal(err)
			}
			err = rs.Check(target, tt.value, func(p node.Path) (node.Value, bool) { v, ok := tt.last[p]; return v, ok })
			switch {
			case tt.msg == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.msg != "" && (err == nil || !strings.Contains(err.Error(), tt.msg)):
				t.Errorf("got %v, want %q", err, tt.msg)
			}
		})
	}
}

func TestCompileRefusesBadRules(t *testing.T) {
	for name, rules := range map[string]store.ValidationRules{
		"regex does not compile": one("REGEX", "EQUALS", "a("),
		"order of strings":       one("STRING", "GREATER_THAN", "a"),
		"date not a date":        one("DATE", "EQUALS", "May 1st"),
		"empty group":            {Groups: [][]store.ValidationRule{{}}},
		"value and resource":     {Groups: [][]store.ValidationRule{{{Type: "STRING", Rule: "EQUALS", Value: "a", Resource: "/3/0/1"}}}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Compile(rules); err == nil {
				t.Error("compiled")
			}
		})
	}
}

func TestStoredValue(t *testing.T) {
	at := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		in   store.ResourceValue
		want node.Value
	}{
		{"string", store.ResourceValue{Type: "STRING", Value: "x"}, node.String("x")},
		{"integer", store.ResourceValue{Type: "INTEGER", Value: int64(-3)}, node.Int(-3)},
		{"integer as int32", store.ResourceValue{Type: "INTEGER", Value: int32(7)}, node.Int(7)},
		{"unsigned", store.ResourceValue{Type: "UNSIGNED_INTEGER", Value: int64(7)}, node.Uint(7)},
		{"float", store.ResourceValue{Type: "FLOAT", Value: 1.5}, node.Float(1.5)},
		{"float NaN as text", store.ResourceValue{Type: "FLOAT", Value: "NaN"}, node.String("NaN")},
		{"boolean", store.ResourceValue{Type: "BOOLEAN", Value: true}, node.Bool(true)},
		{"time", store.ResourceValue{Type: "TIME", Value: at}, node.TimeValue(at)},
		{"object link", store.ResourceValue{Type: "OBJLNK", Value: "3:1"}, node.Link(3, 1)},
		{"opaque as hex", store.ResourceValue{Type: "OPAQUE", Value: "0102"}, node.Opaque([]byte{1, 2})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := StoredValue(tt.in)
			if tt.name == "float NaN as text" {
				// ParseText reads "NaN" as a float
				if !ok || got.Type != node.TypeFloat {
					t.Errorf("got %+v %v", got, ok)
				}
				return
			}
			if !ok || !got.Equal(tt.want) {
				t.Errorf("got %+v %v, want %+v", got, ok, tt.want)
			}
		})
	}
	if _, ok := StoredValue(store.ResourceValue{Type: "STRING"}); ok {
		t.Error("a missing value converted")
	}
}
