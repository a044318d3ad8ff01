package mapping

import (
	"math"
	"strconv"
	"strings"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// Number is the value as a measurement holds it: numbers as they come,
// booleans as 0 and 1, times as Unix seconds, and strings that hold a
// number (decimal, with an exponent such as 1.23E10, or hexadecimal with a
// 0x prefix) parsed. Anything else (text, opaque bytes, object links, NaN
// and infinities) is not a number.
func Number(v node.Value) (float64, bool) {
	switch v.Type {
	case node.TypeInteger:
		return float64(v.Int), true
	case node.TypeUnsignedInteger:
		return float64(v.Uint), true
	case node.TypeFloat:
		if math.IsNaN(v.Float) || math.IsInf(v.Float, 0) {
			return 0, false
		}
		return v.Float, true
	case node.TypeBoolean:
		if v.Bool {
			return 1, true
		}
		return 0, true
	case node.TypeTime:
		return float64(v.Time.Unix()), true
	case node.TypeString:
		return ParseNumber(v.Str)
	}
	return 0, false
}

// ParseNumber parses a string holding a number: decimal ("21.5", "-3",
// "1.23E10") or hexadecimal with a 0x prefix ("0x1F", "-0x10"). Leading
// zeros are decimal ("017" is 17, not octal); "NaN", "Inf" and digit
// separators are not numbers.
func ParseNumber(s string) (float64, bool) {
	s = strings.TrimSpace(s)
	if s == "" || strings.ContainsRune(s, '_') {
		return 0, false
	}
	body, neg := s, false
	if body[0] == '+' || body[0] == '-' {
		neg, body = body[0] == '-', body[1:]
	}
	if len(body) > 2 && body[0] == '0' && (body[1] == 'x' || body[1] == 'X') {
		if u, err := strconv.ParseUint(body[2:], 16, 64); err == nil {
			f := float64(u)
			if neg {
				f = -f
			}
			return f, true
		}
		// a hexadecimal float (0x1.8p3) is left to ParseFloat
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}

// ScalarOf is the value as raiseWhen conditions see it.
func ScalarOf(v node.Value) Scalar {
	text := Text(v)
	if f, ok := Number(v); ok {
		return Scalar{Num: f, IsNum: true, Text: text}
	}
	return Scalar{Text: text}
}

// Text is the value as people read it in texts and inventory
// fragments: booleans are true and false, opaque bytes hex, times RFC 3339.
func Text(v node.Value) string {
	switch v.Type {
	case node.TypeBoolean:
		return strconv.FormatBool(v.Bool)
	case node.TypeTime:
		return v.Time.UTC().Format("2006-01-02T15:04:05Z07:00")
	}
	return v.Text()
}

// Empty reports whether a value carries nothing: an empty string or no
// bytes.
func Empty(v node.Value) bool {
	switch v.Type {
	case node.TypeString, node.TypeCorelnk:
		return strings.TrimSpace(v.Str) == ""
	case node.TypeOpaque, node.TypeNone:
		return len(v.Bytes) == 0
	}
	return false
}
