package cbor_test

import (
	"context"
	"encoding/hex"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	fxcbor "github.com/fxamacker/cbor/v2"

	"github.com/lwm2m-agent/lwm2m-agent/decoders/cbor"
	"github.com/lwm2m-agent/lwm2m-agent/sdk"
	"github.com/lwm2m-agent/lwm2m-agent/sdk/sdktest"
)

func enc(t testing.TB, v any) []byte {
	b, err := fxcbor.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type m = map[string]any

func TestDecode(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		typ     string
		want    []sdk.Measurement
		wantErr string
	}{
		{
			name: "flat map, RFC 8949 hex", typ: "c8y_Env",
			// {"H": 40, "T": 21.5} (21.5 as a half-precision float)
			in:   mustHex("a2614818286154f94d60"),
			want: []sdk.Measurement{{Type: "c8y_Env", Series: "H", Value: 40}, {Type: "c8y_Env", Series: "T", Value: 21.5}},
		},
		{
			name: "nested fragment.series, default type",
			in:   enc(t, m{"c8y_Temperature": m{"T": -3.25}, "bat": uint64(3600), "name": "x", "on": true}),
			want: []sdk.Measurement{
				{Type: cbor.DefaultType, Series: "bat", Value: 3600},
				{Type: cbor.DefaultType, Series: "on", Value: 1},
				{Type: cbor.DefaultType, Fragment: "c8y_Temperature", Series: "T", Value: -3.25},
			},
		},
		{name: "integer keys", in: enc(t, map[int]any{5700: -2}), want: []sdk.Measurement{{Type: cbor.DefaultType, Series: "5700", Value: -2}}},
		{name: "empty map", in: mustHex("a0"), want: nil},
		{name: "not a map", in: enc(t, []int{1, 2}), wantErr: "not a CBOR map"},
		{name: "too deep", in: enc(t, m{"a": m{"b": m{"c": 1}}}), wantErr: "a.b: maps nest at most"},
		{name: "truncated", in: mustHex("a26148"), wantErr: "unexpected EOF"},
		{name: "duplicate keys", in: mustHex("a2614101614102"), wantErr: "duplicate map key"},
		{name: "NaN skipped", in: mustHex("a16154f97e00"), want: nil},
		{name: "empty input", in: nil, wantErr: "EOF"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := cbor.Decode(tc.in, tc.typ)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("[%d] = %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
	if _, err := cbor.Decode(enc(t, []int{1}), ""); !errors.Is(err, cbor.ErrNotMap) {
		t.Errorf("ErrNotMap not wrapped: %v", err)
	}
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// The measurement type is the request's argument (what a device protocol's
// decoder:<name>:<argument> sends), else the former "type" key, else the
// decoder's own.
func TestDecoderTypeArgument(t *testing.T) {
	client := sdktest.Decoder(t, cbor.Decoder{Type: "c8y_Default"})
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	in := mustHex("a2614818286154f94d60")
	for _, tt := range []struct {
		name string
		args map[string]string
		want string
	}{
		{"no argument", nil, "c8y_Default"},
		{"argument", map[string]string{sdk.ArgumentKey: "c8y_Env"}, "c8y_Env"},
		{"former type key", map[string]string{cbor.ArgType: "c8y_Other"}, "c8y_Other"},
		{"argument before the former key", map[string]string{sdk.ArgumentKey: "c8y_Env", cbor.ArgType: "c8y_Other"}, "c8y_Env"},
		{"empty argument", map[string]string{sdk.ArgumentKey: ""}, "c8y_Default"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res, err := client.Decode(context.Background(), sdk.DecodeRequest{Value: in, Args: tt.args, Time: t0})
			if err != nil || !res.Success || len(res.Measurements) != 2 {
				t.Fatalf("%+v, %v", res, err)
			}
			for _, m := range res.Measurements {
				if m.Type != tt.want || !m.Time.Equal(t0) {
					t.Errorf("measurement %+v, want type %s at %v", m, tt.want, t0)
				}
			}
		})
	}
	res, err := client.Decode(context.Background(), sdk.DecodeRequest{ResourcePath: "/19/0/0", Value: []byte{0xff}})
	if err != nil || res.Success || !strings.HasPrefix(res.Message, "decode /19/0/0: cbor:") {
		t.Fatalf("garbage: %+v, %v", res, err)
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{"a2614818286154f94d60", "a0", "a26148", "a2614101614102", "a16154f97e00", "a1616ba1617301", "bf6161f5ff"} {
		f.Add(mustHex(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ms, err := cbor.Decode(b, "t")
		if err != nil {
			return
		}
		for _, m := range ms {
			if m.Series == "" || m.Type != "t" || math.IsNaN(m.Value) || math.IsInf(m.Value, 0) {
				t.Fatalf("bad measurement %+v", m)
			}
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	in := enc(b, m{"c8y_Temperature": m{"T": 21.5}, "H": 40, "bat": 3.6})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cbor.Decode(in, ""); err != nil {
			b.Fatal(err)
		}
	}
}
