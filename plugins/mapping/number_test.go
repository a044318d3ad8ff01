package mapping

import (
	"math"
	"testing"
)

func TestParseNumber(t *testing.T) {
	tests := []struct {
		in   string
		want float64
		ok   bool
	}{
		{"21.5", 21.5, true}, {"-3", -3, true}, {"+7", 7, true}, {"1.23E10", 1.23e10, true}, {"1.23e-2", 0.0123, true},
		{"0x1F", 31, true}, {"0X1f", 31, true}, {"-0x10", -16, true}, {"0xFFFFFFFFFFFFFFFF", 18446744073709551615, true},
		{"0x1.8p1", 3, true}, {"017", 17, true}, {" 42\n", 42, true}, {"0", 0, true},
		{"", 0, false}, {"abc", 0, false}, {"0x", 0, false}, {"0xZZ", 0, false}, {"1_000", 0, false},
		{"NaN", 0, false}, {"Inf", 0, false}, {"-infinity", 0, false}, {"1e400", 0, false}, {"12abc", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, ok := ParseNumber(tc.in)
			if ok != tc.ok || (ok && got != tc.want) {
				t.Errorf("ParseNumber(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func FuzzParseNumber(f *testing.F) {
	for _, s := range []string{"21.5", "1.23E10", "0x1F", "-0x10", "017", "NaN", "0x1.8p1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, ok := ParseNumber(s)
		if ok {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatalf("ParseNumber(%q) = %v, a non-finite number", s, v)
			}
		}
	})
}
