package sqlite

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"
	"time"
)

// The one-pass encoding of plain shapes writes what the general path
// (jsonDates, then encodeJSON) writes, and leaves the other shapes to
// it.
func TestAppendDated(t *testing.T) {
	at := time.Date(2026, 12, 6, 19, 0, 0, 123_456_789, time.UTC)
	cases := []struct {
		name  string
		v     any
		plain bool // written by appendDated
	}{
		{"registration state", map[string]any{
			"c8y_Availability": map[string]any{"status": "AVAILABLE", "lastMessage": at},
			"lwm2m": map[string]any{"endpoint": "ep \"1\"\n", "lifetime": int64(60), "secure": false, "queueMode": true,
				"objects": []string{"/1/0", "/3/0"}, "objectVersions": map[string]any{"3": "1.1"}, "contentFormat": 112,
				"ratio": 0.5, "whole": 2.0, "tiny": 1e-9, "none": nil, "list": []any{at, "x", int32(7)}},
		}, true},
		{"a time alone", at, true},
		{"empty shapes", map[string]any{"m": map[string]any{}, "s": []string{}, "a": []any{}, "nils": []string(nil)}, true},
		{"typed map", map[string]string{"a": "b"}, false},
		{"nested typed slice", map[string]any{"x": []map[string]any{{"t": at}}}, false},
		{"pointer to a time", map[string]any{"t": &at}, false},
		{"infinite float", map[string]any{"f": math.Inf(1)}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, derr := appendDated(nil, tc.v)
			if ok := derr == nil; ok != tc.plain {
				t.Fatalf("appendDated: %v, want plain %v", derr, tc.plain)
			}
			want, werr := encodeJSON("case", jsonDates(tc.v))
			got, gerr := marshal("case", tc.v)
			if (werr == nil) != (gerr == nil) {
				t.Fatalf("marshal error %v, general path %v", gerr, werr)
			}
			if werr != nil {
				return
			}
			var g, w any
			if err := json.Unmarshal([]byte(got), &g); err != nil {
				t.Fatalf("marshal wrote %s: %v", got, err)
			}
			if err := json.Unmarshal([]byte(want), &w); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(g, w) {
				t.Fatalf("marshal wrote %s, the general path %s", got, want)
			}
			if derr == nil {
				var one any
				if err := json.Unmarshal(b, &one); err != nil || !reflect.DeepEqual(one, w) {
					t.Fatalf("appendDated wrote %s (%v), the general path %s", b, err, want)
				}
			}
		})
	}
}

func BenchmarkMarshalRegistrationState(b *testing.B) {
	v := registrationState("urn:dev:1", "0123456789abcdef", time.Now())
	b.Run("one pass", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := marshal("state", v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("general", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := encodeJSON("state", jsonDates(v)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// The SET clause of fragments set and nothing else, made once, is the
// one the general path spells.
func TestMergeSQLSetOnly(t *testing.T) {
	now := time.UnixMilli(1000)
	for _, tc := range []struct {
		fields map[string]any
		want   string
		args   []any
	}{
		{map[string]any{}, "fragments = fragments, last_updated = ?", []any{int64(1000)}},
		{map[string]any{"lwm2m": "x"}, "fragments = json_set(fragments, ?, json(?)), last_updated = ?", []any{`$."lwm2m"`, `"x"`, int64(1000)}},
		{map[string]any{"c8y_A.b": 1, "c8y_Z": true, "id": "ignored"}, "fragments = json_set(fragments, ?, json(?), ?, json(?)), last_updated = ?",
			[]any{`$."c8y_A"."b"`, "1", `$."c8y_Z"`, "true", int64(1000)}},
		{map[string]any{"name": "n", "c8y_Z": nil}, "name = ?, fragments = json_remove(fragments, ?), last_updated = ?", []any{"n", `$."c8y_Z"`, int64(1000)}},
	} {
		sets, args, err := mergeSQL(tc.fields, true, now)
		if err != nil || sets != tc.want || !reflect.DeepEqual(args, tc.args) {
			t.Errorf("mergeSQL(%v) = %q %v (%v), want %q %v", tc.fields, sets, args, err, tc.want, tc.args)
		}
	}
}
