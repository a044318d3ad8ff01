package codec

import (
	"bytes"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

func TestTextGolden(t *testing.T) {
	tests := []struct {
		name      string
		base      string
		payload   string
		want      []node.Record
		canonical bool
	}{
		// TS 1.0.2 section 6.4.1: GET /3/0/0 answers the manufacturer.
		{name: "string", base: "/3/0/0", payload: "Open Mobile Alliance", canonical: true, want: []node.Record{rec("/3/0/0", node.String("Open Mobile Alliance"))}},
		{name: "integer", base: "/3/0/9", payload: "100", canonical: true, want: []node.Record{rec("/3/0/9", node.Int(100))}},
		{name: "integer of a resource instance", base: "/3/0/7/1", payload: "-5000", canonical: true, want: []node.Record{rec("/3/0/7/1", node.Int(-5000))}},
		{name: "float", base: "/3303/0/5700", payload: "22.25", canonical: true, want: []node.Record{rec("/3303/0/5700", node.Float(22.25))}},
		{name: "boolean", base: "/1/0/6", payload: "1", canonical: true, want: []node.Record{rec("/1/0/6", node.Bool(true))}},
		{name: "time", base: "/3/0/13", payload: "1367491215", canonical: true, want: []node.Record{rec("/3/0/13", node.TimeValue(time.Unix(1367491215, 0).UTC()))}},
		{name: "object link", base: "/66/0/2", payload: "67:0", canonical: true, want: []node.Record{rec("/66/0/2", node.Link(67, 0))}},
		{name: "unsigned", base: "/1024/0/3", payload: "18446744073709551615", canonical: true, want: []node.Record{rec("/1024/0/3", node.Uint(math.MaxUint64))}},
		// TS 1.1 section 7.4.1: opaque in text is base64.
		{name: "opaque as base64", base: "/5/0/0", payload: "AQIDBAU=", canonical: true, want: []node.Record{rec("/5/0/0", node.Opaque([]byte{1, 2, 3, 4, 5}))}},
		{name: "opaque base64 without padding", base: "/5/0/0", payload: "AQIDBAU", want: []node.Record{rec("/5/0/0", node.Opaque([]byte{1, 2, 3, 4, 5}))}},
		{name: "unknown resource keeps the text bytes", base: "/9999/0/1", payload: "raw", canonical: true, want: []node.Record{rec("/9999/0/1", node.Value{Type: node.TypeNone, Bytes: []byte("raw")})}},
		{name: "empty string", base: "/3/0/0", payload: "", canonical: true, want: []node.Record{rec("/3/0/0", node.String(""))}},
		{name: "empty integer is no value", base: "/3/0/9", payload: "", want: []node.Record{}},
		{name: "empty at an instance", base: "/3/0", payload: "", want: []node.Record{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := node.MustParsePath(tt.base)
			got, err := Decode(Text, base, []byte(tt.payload), testTypes)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			assertRecords(t, got, tt.want)
			if !tt.canonical {
				return
			}
			enc, err := Encode(Text, base, tt.want)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if string(enc) != tt.payload {
				t.Errorf("Encode = %q, want %q", enc, tt.payload)
			}
		})
	}
}

func TestTextErrors(t *testing.T) {
	for _, tt := range []struct {
		name, base, payload string
		want                error
	}{
		{"not an integer", "/3/0/9", "ten", ErrMalformed},
		{"bad base64", "/5/0/0", "!,-INVALID$_'", ErrMalformed},
		{"bad boolean", "/1/0/6", "2", ErrMalformed},
		{"instance", "/3/0", "x", ErrUnsupported},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Decode(Text, node.MustParsePath(tt.base), []byte(tt.payload), testTypes); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := Encode(Text, node.MustParsePath("/3/0"), deviceRecords()); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("Encode of an instance: err = %v", err)
	}
}

func TestOpaque(t *testing.T) {
	base := node.MustParsePath("/5/0/0")
	payload := []byte{0, 1, 0xfe, 0xff}
	got, err := Decode(Opaque, base, payload, testTypes)
	if err != nil {
		t.Fatal(err)
	}
	assertRecords(t, got, []node.Record{rec("/5/0/0", node.Opaque(payload))})
	payload[0] = 9
	if got[0].Value.Bytes[0] != 0 {
		t.Error("decoded value aliases the payload")
	}
	enc, err := Encode(Opaque, base, got)
	if err != nil || !bytes.Equal(enc, []byte{0, 1, 0xfe, 0xff}) {
		t.Fatalf("Encode = %x, %v", enc, err)
	}
	if _, err := Encode(Opaque, base, []node.Record{rec("/5/0/0", node.Int(1))}); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("Encode of an integer: err = %v", err)
	}
	if _, err := Decode(Opaque, node.MustParsePath("/5/0"), payload, testTypes); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("Decode at an instance: err = %v", err)
	}
}

func TestCBORGolden(t *testing.T) {
	tests := []struct {
		name      string
		base      string
		payload   string
		want      node.Value
		canonical bool
	}{
		{name: "unsigned small", base: "/3/0/9", payload: "1864", want: node.Int(100), canonical: true},
		{name: "negative", base: "/3/0/9", payload: "3863", want: node.Int(-100), canonical: true},
		{name: "unsigned above int64", base: "/1024/0/3", payload: "1bffffffffffffffff", want: node.Uint(math.MaxUint64), canonical: true},
		{name: "single float", base: "/3303/0/5700", payload: "fa41b20000", want: node.Float(22.25), canonical: true},
		{name: "double float", base: "/3303/0/5700", payload: "fb3fb999999999999a", want: node.Float(0.1), canonical: true},
		{name: "half float", base: "/3303/0/5700", payload: "f93e00", want: node.Float(1.5)},
		{name: "integer for a float resource", base: "/3303/0/5700", payload: "16", want: node.Float(22)},
		{name: "true", base: "/1/0/6", payload: "f5", want: node.Bool(true), canonical: true},
		{name: "text", base: "/3/0/0", payload: "63616263", want: node.String("abc"), canonical: true},
		{name: "bytes", base: "/5/0/0", payload: "420102", want: node.Opaque([]byte{1, 2}), canonical: true},
		{name: "time as integer", base: "/3/0/13", payload: "1a5182428f", want: node.TimeValue(time.Unix(1367491215, 0).UTC()), canonical: true},
		{name: "time as tag 1", base: "/3/0/13", payload: "c11a5182428f", want: node.TimeValue(time.Unix(1367491215, 0).UTC())},
		{name: "object link as text", base: "/66/0/2", payload: "6436373a30", want: node.Link(67, 0), canonical: true},
		{name: "unknown resource", base: "/9999/0/0", payload: "1864", want: node.Int(100), canonical: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := node.MustParsePath(tt.base)
			got, err := Decode(CBOR, base, mustHex(tt.payload), testTypes)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			want := []node.Record{{Path: base, Value: tt.want}}
			assertRecords(t, got, want)
			enc, err := Encode(CBOR, base, want)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if tt.canonical && !bytes.Equal(enc, mustHex(tt.payload)) {
				t.Errorf("Encode = %x, want %s", enc, tt.payload)
			}
		})
	}
}

func TestCBORMalformed(t *testing.T) {
	for _, tt := range []struct{ name, payload string }{
		{"array", "820102"},
		{"map", "a10102"},
		{"deeply nested", "8181818181818101"},
		{"trailing bytes", "0101"},
		{"truncated", "1a0102"},
		{"invalid UTF-8", "62ff00"},
		{"array claiming 4 billion items", "9affffffff"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Decode(CBOR, node.MustParsePath("/3/0/9"), mustHex(tt.payload), testTypes); !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
		})
	}
}

// TestRoundTripAcrossFormats decodes each golden payload and carries its
// records through every format that can hold them.
func TestRoundTripAcrossFormats(t *testing.T) {
	pinNow(t, time.Unix(1700000000, 0))
	sources := []struct {
		name    string
		f       Format
		base    string
		payload []byte
	}{
		{"tlv device", TLV, "/3/0", tlvDevice},
		{"tlv device object", TLV, "/3", tlvDeviceInstance},
		{"tlv access control", TLV, "/2", tlvACL},
		{"tlv object links", TLV, "/65/0", tlvObj65},
		{"tlv object links in instances", TLV, "/66", tlvObj66},
		{"senml cbor device", SenMLCBOR, "/3/0", senmlCBORDevice},
		{"senml json device", SenMLJSON, "/3/0", []byte(senmlJSONDevice)},
		{"lwm2m json device", LwM2MJSON, "/3/0", []byte(lwm2mJSONDevice)},
		{"senml json timestamped", SenMLJSON, "/3303/0/5700", []byte(`[{"bn":"/3303/0/5700","bt":1.320067464e+09,"v":22.4},{"v":22.9,"t":-10}]`)},
	}
	targets := []Format{TLV, SenMLCBOR, SenMLJSON, LwM2MJSON}
	for _, src := range sources {
		base := node.MustParsePath(src.base)
		want, err := Decode(src.f, base, src.payload, testTypes)
		if err != nil {
			t.Fatalf("%s: %v", src.name, err)
		}
		timed := false
		for _, r := range want {
			timed = timed || !r.Time.IsZero()
		}
		for _, f := range targets {
			if f == TLV && timed {
				continue // TLV carries no times
			}
			t.Run(src.name+" via "+f.String(), func(t *testing.T) {
				enc, err := Encode(f, base, want)
				if err != nil {
					t.Fatalf("Encode: %v", err)
				}
				got, err := Decode(f, base, enc, testTypes)
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				assertRecords(t, got, want)
			})
		}
	}
}
