package mapping

import "testing"

func num(f float64) Scalar { return Scalar{Num: f, IsNum: true} }
func text(s string) Scalar { return Scalar{Text: s} }

func TestCondition(t *testing.T) {
	for _, c := range []struct {
		expr string
		v    Scalar
		want bool
	}{
		{"value > 40", num(41), true},
		{"value > 40", num(40), false},
		{"value >= 40", num(40), true},
		{"40 < value", num(40.5), true},
		{"value < -5.5", num(-6), true},
		{"value > 1e3", num(1001), true},
		{"value > 20 && value < 30", num(25), true},
		{"value > 20 && value < 30", num(31), false},
		{"value < 0 || value > 100", num(101), true},
		{"!(value > 10)", num(5), true},
		{"value == 'open'", text("open"), true},
		{`value != "open"`, text("closed"), true},
		{"value == 1", num(1), true},
		{"value", num(1), true},
		{"value", num(0), false},
		{"value", text("true"), true},
		{"value == true", num(1), true},
		{"value > 'b'", text("c"), true},
		{"value > 10", text("abc"), false},
		{"(value > 1 || value < -1) && value != 5", num(5), false},
	} {
		t.Run(c.expr, func(t *testing.T) {
			cond, err := ParseCondition(c.expr)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if got := cond.Holds(c.v); got != c.want {
				t.Errorf("Holds(%+v) = %v, want %v", c.v, got, c.want)
			}
		})
	}
}

func TestConditionErrors(t *testing.T) {
	for _, expr := range []string{
		"", "value >", "> 3", "value > 40 &&", "temp > 3", "value > 'x", "(value > 1", "value > 1)",
		"3 > 4", "value >> 3", "value ~ 3", "1.2.3 < value", "'abc'",
	} {
		t.Run(expr, func(t *testing.T) {
			if _, err := ParseCondition(expr); err == nil {
				t.Errorf("ParseCondition(%q) accepted", expr)
			}
		})
	}
}

func FuzzParseCondition(f *testing.F) {
	for _, s := range []string{"value > 40", "!(value <= 1) || value == 'x'", "((value))", "value != \"a\" && 3 < value"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCondition(s)
		if err == nil {
			c.Holds(num(1))
			c.Holds(text("x"))
		}
	})
}

func TestFunctionalityValidate(t *testing.T) {
	ok := []Functionality{
		{Measurement: &Measurement{Type: "c8y_Temperature", Series: "T", Unit: "C"}, AutoObserve: true},
		{Alarm: &Alarm{Type: "c8y_HighTemperature", Severity: "MAJOR", Text: "Temperature {value}", RaiseWhen: "value > 40"}},
		{Event: &Event{Type: "c8y_DoorEvent", Text: "Door is {value}"}},
		{CustomAction: "connectivity:updateRssi"},
		{CustomAction: "decoder:frame:meter-v2"},
		{CustomAction: "plugin:acts:c8y_Seen"},
	}
	for _, f := range ok {
		if err := f.Validate(); err != nil {
			t.Errorf("%+v: %v", f, err)
		}
	}
	bad := []Functionality{
		{AutoObserve: true},
		{Measurement: &Measurement{Type: "c8y Temp", Series: "T"}},
		{Alarm: &Alarm{Type: "a", Severity: "HUGE", Text: "x"}},
		{Alarm: &Alarm{Type: "a", Severity: "MAJOR", Text: "x", RaiseWhen: "temp > 3"}},
		{Event: &Event{Type: "e"}},
		{CustomAction: "device:explode"},
	}
	for _, f := range bad {
		if err := f.Validate(); err == nil {
			t.Errorf("%+v accepted", f)
		}
	}
}
