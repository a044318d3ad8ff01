package sqlite

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// encodeJSON writes the JSON-shaped values of telemetry (fragments of
// measurements, events and alarms) as JSON. It differs from
// encoding/json in one respect, which is its reason to exist: a float
// is always written with a fraction or an exponent ("21.0", never "21"),
// so that decodeFragments gives it back as a float64, as the MongoDB
// engine does, and not as an int64. A measurement's values are floats,
// mostly whole ones. It is also several times faster than encoding/json
// on maps of any, which matters at tens of thousands of measurements a
// second. Other types (structs, json.Marshaler) go through encoding/json.
func encodeJSON(what string, v any) (string, error) {
	b, err := appendJSON(make([]byte, 0, 128), v)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %w", store.ErrInvalid, what, err)
	}
	return string(b), nil
}

var marshalerType = reflect.TypeFor[json.Marshaler]()

func appendJSON(b []byte, v any) ([]byte, error) {
	switch t := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		return appendString(b, t), nil
	case bool:
		return strconv.AppendBool(b, t), nil
	case float64:
		return appendFloat(b, t, 64)
	case float32:
		return appendFloat(b, float64(t), 32)
	case int:
		return strconv.AppendInt(b, int64(t), 10), nil
	case int64:
		return strconv.AppendInt(b, t, 10), nil
	case int32:
		return strconv.AppendInt(b, int64(t), 10), nil
	case uint64:
		return strconv.AppendUint(b, t, 10), nil
	case json.Number:
		if t == "" {
			t = "0"
		}
		if !json.Valid([]byte(t)) {
			return nil, fmt.Errorf("invalid number %q", string(t))
		}
		return append(b, t...), nil
	case time.Time:
		if y := t.Year(); y < 0 || y > 9999 {
			return nil, fmt.Errorf("time %v: year outside [0,9999]", t)
		}
		b = append(b, '"')
		b = t.AppendFormat(b, time.RFC3339Nano)
		return append(b, '"'), nil
	case map[string]any:
		return appendObject(b, t, appendJSON)
	case []any:
		return appendArray(b, t, appendJSON)
	}
	return appendReflect(b, v)
}

// appendReflect writes the other shapes: typed maps, slices and numbers
// keep the float rule; what implements json.Marshaler, structs and the
// rest are encoding/json's.
func appendReflect(b []byte, v any) ([]byte, error) {
	rv := reflect.ValueOf(v)
	if rv.Type().Implements(marshalerType) {
		return appendMarshal(b, v)
	}
	var err error
	switch rv.Kind() {
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return append(b, "null"...), nil
		}
		return appendJSON(b, rv.Elem().Interface())
	case reflect.Float32:
		return appendFloat(b, rv.Float(), 32)
	case reflect.Float64:
		return appendFloat(b, rv.Float(), 64)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.AppendInt(b, rv.Int(), 10), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return strconv.AppendUint(b, rv.Uint(), 10), nil
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			break
		}
		if rv.IsNil() {
			return append(b, "null"...), nil
		}
		b = append(b, '{')
		for i, it := 0, rv.MapRange(); it.Next(); i++ {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, it.Key().String())
			b = append(b, ':')
			if b, err = appendJSON(b, it.Value().Interface()); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	case reflect.Slice, reflect.Array:
		if rv.Type().Elem().Kind() == reflect.Uint8 {
			break // base64, as encoding/json writes bytes
		}
		if rv.Kind() == reflect.Slice && rv.IsNil() {
			return append(b, "null"...), nil
		}
		b = append(b, '[')
		for i := range rv.Len() {
			if i > 0 {
				b = append(b, ',')
			}
			if b, err = appendJSON(b, rv.Index(i).Interface()); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	}
	return appendMarshal(b, v)
}

// appendObject and appendArray write a map or a slice of any, elem each
// member: the general encoder and the one-pass dated one (appendDated)
// share them.
func appendObject(b []byte, m map[string]any, elem func([]byte, any) ([]byte, error)) ([]byte, error) {
	if m == nil {
		return append(b, "null"...), nil
	}
	b = append(b, '{')
	first := true
	for k, e := range m {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(appendString(b, k), ':')
		var err error
		if b, err = elem(b, e); err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}

func appendArray(b []byte, s []any, elem func([]byte, any) ([]byte, error)) ([]byte, error) {
	if s == nil {
		return append(b, "null"...), nil
	}
	b = append(b, '[')
	for i, e := range s {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = elem(b, e); err != nil {
			return nil, err
		}
	}
	return append(b, ']'), nil
}

func appendMarshal(b []byte, v any) ([]byte, error) {
	j, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(b, j...), nil
}

// appendFloat writes f as encoding/json does (shortest repetition,
// exponent form outside [1e-6, 1e21)), and ".0" after a whole number.
func appendFloat(b []byte, f float64, bits int) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return nil, fmt.Errorf("unsupported number %v", f)
	}
	format := byte('f')
	if a := math.Abs(f); a != 0 {
		if bits == 64 && (a < 1e-6 || a >= 1e21) || bits == 32 && (float32(a) < 1e-6 || float32(a) >= 1e21) {
			format = 'e'
		}
	}
	start := len(b)
	b = strconv.AppendFloat(b, f, format, -1, bits)
	if format == 'e' {
		return b, nil
	}
	for _, c := range b[start:] {
		if c == '.' {
			return b, nil
		}
	}
	return append(b, '.', '0'), nil
}

const hexDigits = "0123456789abcdef"

// appendString quotes s as a JSON string; invalid UTF-8 becomes U+FFFD,
// as encoding/json writes it.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
