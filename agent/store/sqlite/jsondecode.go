package sqlite

import (
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// decodeJSON decodes a JSON document of this engine into the values the
// MongoDB engine answers: objects as map[string]any, arrays as []any,
// numbers as int64 when they are integers that fit and float64
// otherwise, date objects as time.Time (jsondates.go), strings, bools
// and nil. It answers what encoding/json with UseNumber, then
// store.JSONNumbers and goDates, answer, in one pass and without
// reflection: the start decodes the fragment of every live registration
// (100,000 and more), where encoding/json took most of the time.
func decodeJSON(b []byte) (any, error) {
	d := jsonDecoder{b: b}
	v, err := d.value(0)
	if err != nil {
		return nil, err
	}
	d.space()
	if d.i != len(d.b) {
		return nil, d.errorf("data after the value")
	}
	return v, nil
}

// maxDepth bounds the nesting decodeJSON follows, as encoding/json does
// (10,000), so that no document can exhaust the stack.
const maxDepth = 10_000

type jsonDecoder struct {
	b []byte
	i int
}

var errJSONEnd = errors.New("unexpected end of JSON")

func (d *jsonDecoder) errorf(format string, args ...any) error {
	return fmt.Errorf("JSON at offset %d: %s", d.i, fmt.Sprintf(format, args...))
}

func (d *jsonDecoder) space() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *jsonDecoder) value(depth int) (any, error) {
	d.space()
	if d.i >= len(d.b) {
		return nil, errJSONEnd
	}
	switch c := d.b[d.i]; {
	case (c == '{' || c == '[') && depth >= maxDepth:
		return nil, d.errorf("nested too deep")
	case c == '{':
		return d.object(depth)
	case c == '[':
		return d.array(depth)
	case c == '"':
		return d.string()
	case c == '-' || c >= '0' && c <= '9':
		return d.number()
	}
	for _, lit := range []struct {
		text string
		v    any
	}{{"true", true}, {"false", false}, {"null", nil}} {
		if len(d.b)-d.i >= len(lit.text) && string(d.b[d.i:d.i+len(lit.text)]) == lit.text {
			d.i += len(lit.text)
			return lit.v, nil
		}
	}
	return nil, d.errorf("unexpected %q", d.b[d.i])
}

func (d *jsonDecoder) object(depth int) (any, error) {
	d.i++ // {
	m := map[string]any{}
	d.space()
	if d.i < len(d.b) && d.b[d.i] == '}' {
		d.i++
		return m, nil
	}
	for {
		d.space()
		if d.i >= len(d.b) {
			return nil, errJSONEnd
		}
		if d.b[d.i] != '"' {
			return nil, d.errorf("expected a member name")
		}
		k, err := d.string()
		if err != nil {
			return nil, err
		}
		d.space()
		if d.i >= len(d.b) || d.b[d.i] != ':' {
			return nil, d.errorf("expected ':'")
		}
		d.i++
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		m[k] = v
		more, err := d.more('}')
		if err != nil {
			return nil, err
		}
		if more {
			continue
		}
		if len(m) == 1 {
			if ms, ok := m[dateKey].(int64); ok {
				return time.UnixMilli(ms).UTC(), nil
			}
		}
		return m, nil
	}
}

// more reads the ',' before another member or element, or the end of
// the object or array.
func (d *jsonDecoder) more(end byte) (bool, error) {
	d.space()
	if d.i >= len(d.b) {
		return false, errJSONEnd
	}
	switch d.b[d.i] {
	case ',':
		d.i++
		return true, nil
	case end:
		d.i++
		return false, nil
	}
	return false, d.errorf("expected ',' or %q", end)
}

func (d *jsonDecoder) array(depth int) (any, error) {
	d.i++ // [
	a := []any{}
	d.space()
	if d.i < len(d.b) && d.b[d.i] == ']' {
		d.i++
		return a, nil
	}
	for {
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		a = append(a, v)
		more, err := d.more(']')
		if err != nil {
			return nil, err
		}
		if !more {
			return a, nil
		}
	}
}

func (d *jsonDecoder) number() (any, error) {
	start := d.i
	if d.b[d.i] == '-' {
		d.i++
	}
	digits := func() int {
		n := 0
		for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
			d.i++
			n++
		}
		return n
	}
	intStart := d.i
	if n := digits(); n == 0 || n > 1 && d.b[intStart] == '0' {
		return nil, d.errorf("malformed number")
	}
	integer := true
	if d.i < len(d.b) && d.b[d.i] == '.' {
		d.i++
		if digits() == 0 {
			return nil, d.errorf("malformed number")
		}
		integer = false
	}
	if d.i < len(d.b) && (d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		d.i++
		if d.i < len(d.b) && (d.b[d.i] == '+' || d.b[d.i] == '-') {
			d.i++
		}
		if digits() == 0 {
			return nil, d.errorf("malformed number")
		}
		integer = false
	}
	lit := string(d.b[start:d.i])
	if integer {
		if n, err := strconv.ParseInt(lit, 10, 64); err == nil {
			return n, nil
		}
	}
	// As store.JSONNumbers: a number too large for a float64 is ±Inf.
	f, _ := strconv.ParseFloat(lit, 64)
	return f, nil
}

// string decodes a string as encoding/json does: an invalid UTF-8 byte
// or a lone surrogate escape is U+FFFD.
func (d *jsonDecoder) string() (string, error) {
	d.i++ // "
	start := d.i
	for d.i < len(d.b) {
		c := d.b[d.i]
		if c == '"' {
			s := string(d.b[start:d.i])
			d.i++
			return s, nil
		}
		if c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
			break
		}
		d.i++
	}
	out := append([]byte(nil), d.b[start:d.i]...)
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			return string(out), nil
		case c < 0x20:
			return "", d.errorf("control character in a string")
		case c == '\\':
			r, err := d.escape()
			if err != nil {
				return "", err
			}
			out = utf8.AppendRune(out, r)
		case c < utf8.RuneSelf:
			out = append(out, c)
			d.i++
		default:
			r, size := utf8.DecodeRune(d.b[d.i:])
			d.i += size
			out = utf8.AppendRune(out, r) // RuneError for an invalid byte
		}
	}
	return "", errJSONEnd
}

// escape decodes the escape at d.i, a surrogate pair whole.
func (d *jsonDecoder) escape() (rune, error) {
	if d.i+1 >= len(d.b) {
		return 0, errJSONEnd
	}
	c := d.b[d.i+1]
	d.i += 2
	switch c {
	case '"', '\\', '/':
		return rune(c), nil
	case 'b':
		return '\b', nil
	case 'f':
		return '\f', nil
	case 'n':
		return '\n', nil
	case 'r':
		return '\r', nil
	case 't':
		return '\t', nil
	case 'u':
		r, ok := d.hex4()
		if !ok {
			return 0, d.errorf("malformed \\u escape")
		}
		if !utf16.IsSurrogate(r) {
			return r, nil
		}
		// A high surrogate followed by an escaped low one is one rune;
		// anything else leaves the first as U+FFFD.
		if d.i+1 < len(d.b) && d.b[d.i] == '\\' && d.b[d.i+1] == 'u' {
			save := d.i
			d.i += 2
			if r2, ok := d.hex4(); ok {
				if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
					return dec, nil
				}
			}
			d.i = save
		}
		return utf8.RuneError, nil
	}
	return 0, d.errorf("malformed escape")
}

func (d *jsonDecoder) hex4() (rune, bool) {
	if len(d.b)-d.i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range d.b[d.i : d.i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	d.i += 4
	return r, true
}
