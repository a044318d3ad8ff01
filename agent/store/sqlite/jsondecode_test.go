package sqlite

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// referenceDecode is what decodeJSON must answer: encoding/json with
// UseNumber, store.JSONNumbers, and date objects as times.
func referenceDecode(b []byte) (any, error) {
	if !json.Valid(b) {
		return nil, errors.New("invalid JSON")
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	var dates func(any) any
	dates = func(v any) any {
		switch t := v.(type) {
		case map[string]any:
			if ms, ok := t[dateKey].(int64); ok && len(t) == 1 {
				return time.UnixMilli(ms).UTC()
			}
			for k, e := range t {
				t[k] = dates(e)
			}
		case []any:
			for i, e := range t {
				t[i] = dates(e)
			}
		}
		return v
	}
	return dates(store.JSONNumbers(v)), nil
}

var jsonSamples = []string{
	`{}`, `[]`, `{"a":{"b":[1,2.5,-3,1e3,1E-2,-0,0.0,9223372036854775807,9223372036854775808,-9223372036854775809,1e400]}}`,
	`{"s":"plain","e":"a\"b\\c\/d\b\f\n\r\t","u":"\u00e9\u4e2d\ud83d\ude00","lone":"\ud800x","bad":"\ud800\u0041","rev":"\udc00\ud800"}`,
	`{"utf8":"héllo 中文 😀","t":true,"f":false,"n":null}`,
	"{\"inv\":\"a\xffb\xc3\"}",
	` { "sp" : [ 1 , { } , [ ] , "x" ] } `,
	`{"d":{"$date":1772366400000},"notd":{"$date":1.5},"two":{"$date":1,"x":2},"arr":[{"$date":0}]}`,
	`{"dup":1,"dup":2}`,
	`[1,2`, `{"a"}`, `{"a":}`, `{"a":1,}`, `[1,]`, `01`, `-`, `1.`, `1e`, `"\x"`, `"\u12"`, "\"a\x01\"", `tru`, `nul`, `{"a":1} x`, `"abc`, ``,
}

// decodeJSON answers as the reference on valid documents and refuses
// the others.
func TestDecodeJSON(t *testing.T) {
	for _, s := range jsonSamples {
		compareDecoders(t, []byte(s))
	}
	for _, n := range []int{maxDepth, maxDepth + 1} {
		compareDecoders(t, []byte(strings.Repeat("[", n)+strings.Repeat("]", n)))
	}
}

func FuzzDecodeJSON(f *testing.F) {
	for _, s := range jsonSamples {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) { compareDecoders(t, b) })
}

func compareDecoders(t *testing.T, b []byte) {
	t.Helper()
	want, werr := referenceDecode(b)
	got, gerr := decodeJSON(b)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("%q: error %v, reference %v", b, gerr, werr)
	}
	if werr == nil && !equalJSON(got, want) {
		t.Fatalf("%q: %#v, reference %#v", b, got, want)
	}
}

// equalJSON is reflect.DeepEqual with NaN-free floats compared by bits,
// so that -0 and 0 differ as they do in the reference.
func equalJSON(a, b any) bool {
	if fa, ok := a.(float64); ok {
		fb, ok := b.(float64)
		return ok && math.Float64bits(fa) == math.Float64bits(fb)
	}
	switch ta := a.(type) {
	case map[string]any:
		tb, ok := b.(map[string]any)
		if !ok || len(ta) != len(tb) {
			return false
		}
		for k, v := range ta {
			if w, ok := tb[k]; !ok || !equalJSON(v, w) {
				return false
			}
		}
		return true
	case []any:
		tb, ok := b.([]any)
		if !ok || len(ta) != len(tb) {
			return false
		}
		for i := range ta {
			if !equalJSON(ta[i], tb[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}
