package codec

import (
	"encoding/hex"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// The Read /3/0 answer of the Core specification in SenML JSON (TS 1.1
// section 7.4.4) and in the 1.0 JSON format (TS 1.0.2 section 6.4.4).
const (
	senmlJSONDevice = `[{"bn":"/3/0/","n":"0","vs":"Open Mobile Alliance"},{"n":"1","vs":"Lightweight M2M Client"},` +
		`{"n":"2","vs":"345000123"},{"n":"3","vs":"1.0"},{"n":"6/0","v":1},{"n":"6/1","v":5},{"n":"7/0","v":3800},` +
		`{"n":"7/1","v":5000},{"n":"8/0","v":125},{"n":"8/1","v":900},{"n":"9","v":100},{"n":"10","v":15},` +
		`{"n":"11/0","v":0},{"n":"13","v":1367491215},{"n":"14","vs":"+02:00"},{"n":"16","vs":"U"}]`
	lwm2mJSONDevice = `{"bn":"/3/0/","e":[{"n":"0","sv":"Open Mobile Alliance"},{"n":"1","sv":"Lightweight M2M Client"},` +
		`{"n":"2","sv":"345000123"},{"n":"3","sv":"1.0"},{"n":"6/0","v":1},{"n":"6/1","v":5},{"n":"7/0","v":3800},` +
		`{"n":"7/1","v":5000},{"n":"8/0","v":125},{"n":"8/1","v":900},{"n":"9","v":100},{"n":"10","v":15},` +
		`{"n":"11/0","v":0},{"n":"13","v":1367491215},{"n":"14","sv":"+02:00"},{"n":"16","sv":"U"}]}`
)

type jsonCase struct {
	name      string
	base      string
	payload   string
	want      []node.Record
	canonical bool
}

func runJSONCases(t *testing.T, f Format, tests []jsonCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := node.MustParsePath(tt.base)
			got, err := Decode(f, base, []byte(tt.payload), testTypes)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			assertRecords(t, got, tt.want)
			enc, err := Encode(f, base, tt.want)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if tt.canonical && string(enc) != tt.payload {
				t.Errorf("Encode\n got %s\nwant %s", enc, tt.payload)
			}
			again, err := Decode(f, base, enc, testTypes)
			if err != nil {
				t.Fatalf("Decode(Encode): %v", err)
			}
			assertRecords(t, again, tt.want)
		})
	}
}

func TestSenMLJSONGolden(t *testing.T) {
	pinNow(t, time.Unix(1700000000, 0))
	runJSONCases(t, SenMLJSON, []jsonCase{
		{name: "device instance", base: "/3/0", payload: senmlJSONDevice, want: deviceRecords(), canonical: true},
		{
			name: "single resource", base: "/3303/0/5700", canonical: true,
			payload: `[{"bn":"/3303/0/5700","v":22.5}]`,
			want:    []node.Record{rec("/3303/0/5700", node.Float(22.5))},
		},
		{
			name: "integral float stays a float", base: "/3303/0/5700", canonical: true,
			payload: `[{"bn":"/3303/0/5700","v":22.0}]`,
			want:    []node.Record{rec("/3303/0/5700", node.Float(22))},
		},
		{
			// RFC 8428 section 5.1.2 style: base time and per-record offsets.
			name: "timestamped values", base: "/3303/0/5700",
			payload: `[{"bn":"/3303/0/5700","bt":1.320067464e+09,"v":22.4},{"v":22.9,"t":-10},{"v":24.1,"t":-20}]`,
			want: []node.Record{
				trec("/3303/0/5700", node.Float(22.4), 1320067464),
				trec("/3303/0/5700", node.Float(22.9), 1320067454),
				trec("/3303/0/5700", node.Float(24.1), 1320067444),
			},
		},
		{
			name: "relative time counts from now", base: "/3303/0/5700",
			payload: `[{"bn":"/3303/0/5700","t":-60,"v":21}]`,
			want:    []node.Record{trec("/3303/0/5700", node.Float(21), 1700000000-60)},
		},
		{
			name: "absolute record times", base: "/3303/0", canonical: true,
			payload: `[{"bn":"/3303/0/","n":"5700","v":21.5,"t":1700000000},{"n":"5700","v":21.25,"t":1700000000.5}]`,
			want: []node.Record{
				trec("/3303/0/5700", node.Float(21.5), 1700000000),
				trec("/3303/0/5700", node.Float(21.25), 1700000000.5),
			},
		},
		{
			name: "every value kind", base: "/1024/0", canonical: true,
			payload: `[{"bn":"/1024/0/","n":"0","vs":"a \"quoted\"\nline"},{"n":"1","v":-1.5e-7},{"n":"2","vb":false},` +
				`{"n":"3","v":18446744073709551615},{"n":"4","vs":"</1/0>"},{"n":"5","vd":"AQID_w"},{"n":"6","vlo":"3:0"}]`,
			want: []node.Record{
				rec("/1024/0/0", node.String("a \"quoted\"\nline")),
				rec("/1024/0/1", node.Float(-1.5e-7)),
				rec("/1024/0/2", node.Bool(false)),
				rec("/1024/0/3", node.Uint(math.MaxUint64)),
				rec("/1024/0/4", node.CoreLink("</1/0>")),
				rec("/1024/0/5", node.Opaque([]byte{1, 2, 3, 0xff})),
				rec("/1024/0/6", node.Link(3, 0)),
			},
		},
		{
			name: "composite", base: "/", canonical: true,
			payload: `[{"n":"/3/0/9","v":100},{"n":"/3303/0/5700","v":22.5}]`,
			want:    []node.Record{rec("/3/0/9", node.Int(100)), rec("/3303/0/5700", node.Float(22.5))},
		},
		{
			name: "base name without trailing slash", base: "/3/0",
			payload: `[{"bn":"/3/0","n":"9","v":100}]`,
			want:    []node.Record{rec("/3/0/9", node.Int(100))},
		},
		{
			name: "padded standard base64", base: "/5/0/0",
			payload: `[{"bn":"/5/0/0","vd":"AQID/w=="}]`,
			want:    []node.Record{rec("/5/0/0", node.Opaque([]byte{1, 2, 3, 0xff}))},
		},
		{name: "empty array", base: "/3/0", payload: `[]`, want: []node.Record{}},
		{name: "empty payload", base: "/3/0", payload: ``, want: []node.Record{}},
	})
}

func TestLwM2MJSONGolden(t *testing.T) {
	pinNow(t, time.Unix(1700000000, 0))
	runJSONCases(t, LwM2MJSON, []jsonCase{
		{name: "device instance", base: "/3/0", payload: lwm2mJSONDevice, want: deviceRecords(), canonical: true},
		{
			name: "root base name", base: "/3/0",
			payload: `{"bn":"/","e":[{"n":"3/0/9","v":100},{"n":"3/0/14","sv":"+02:00"}]}`,
			want:    []node.Record{rec("/3/0/9", node.Int(100)), rec("/3/0/14", node.String("+02:00"))},
		},
		{
			name: "no base name", base: "/3/0",
			payload: `{"e":[{"n":"/3/0/9","v":100}]}`,
			want:    []node.Record{rec("/3/0/9", node.Int(100))},
		},
		{
			// The timestamped example of TS 1.0.2 section 6.4.4.
			name: "timestamped values", base: "/1024/0/1",
			payload: `{"bn":"/1024/0/1","e":[{"v":22.9,"t":-30},{"v":22.4,"t":-5},{"v":24.1,"t":-50}],"bt":25462634}`,
			want: []node.Record{
				trec("/1024/0/1", node.Float(22.9), 25462634-30),
				trec("/1024/0/1", node.Float(22.4), 25462634-5),
				trec("/1024/0/1", node.Float(24.1), 25462634-50),
			},
		},
		{
			name: "relative time without base time", base: "/1024/0/1",
			payload: `{"bn":"/1024/0/1","e":[{"v":22.9,"t":-30}]}`,
			want:    []node.Record{trec("/1024/0/1", node.Float(22.9), 1700000000-30)},
		},
		{
			name: "every value kind", base: "/1024/0", canonical: true,
			payload: `{"bn":"/1024/0/","e":[{"n":"0","sv":"x"},{"n":"1","v":10.5},{"n":"2","bv":true},{"n":"6","ov":"66:1"},{"n":"7","v":-3}]}`,
			want: []node.Record{
				rec("/1024/0/0", node.String("x")), rec("/1024/0/1", node.Float(10.5)), rec("/1024/0/2", node.Bool(true)),
				rec("/1024/0/6", node.Link(66, 1)), rec("/1024/0/7", node.Int(-3)),
			},
		},
		{
			name: "opaque as base64", base: "/5/0/0", canonical: true,
			payload: `{"bn":"/5/0/","e":[{"n":"0","sv":"AQIDBAU="}]}`,
			want:    []node.Record{rec("/5/0/0", node.Opaque([]byte{1, 2, 3, 4, 5}))},
		},
		{
			name: "opaque with the resource as base name", base: "/5/0/0",
			payload: `{"bn":"/5/0/0","e":[{"sv":"AQIDBAU="}]}`,
			want:    []node.Record{rec("/5/0/0", node.Opaque([]byte{1, 2, 3, 4, 5}))},
		},
		{
			name: "absolute times", base: "/1024/0/1", canonical: true,
			payload: `{"bn":"/1024/0/","e":[{"n":"1","v":1.5,"t":1700000000}]}`,
			want:    []node.Record{trec("/1024/0/1", node.Float(1.5), 1700000000)},
		},
		{
			name: "empty list", base: "/2", payload: `{"e":[]}`, want: []node.Record{},
		},
	})
}

// The shapes of the 1.0 specification (TS 1.0.2 section 6.4.4 and the
// JSON examples of its appendix): the base name is the object or the
// instance, ending in "/"; every entry names its resource in "n"; numbers
// travel in "v", strings and opaque (base64) in "sv", booleans in "bv",
// object links in "ov". Writes of one resource take the same shape as a
// Read of its instance narrowed to that resource, which is what 1.0
// clients parse. Encoding each case gives the payload back byte for byte.
func TestLwM2MJSONSpecShapes(t *testing.T) {
	runJSONCases(t, LwM2MJSON, []jsonCase{
		{name: "read of the device instance", base: "/3/0", payload: lwm2mJSONDevice, want: deviceRecords(), canonical: true},
		{
			// The object link example: an object with two instances.
			name: "read of an object with object links", base: "/66", canonical: true,
			payload: `{"bn":"/66/","e":[{"n":"0/0","sv":"myService 1"},{"n":"0/1","sv":"Internet.15.234"},{"n":"0/2","ov":"67:0"},` +
				`{"n":"1/0","sv":"myService 2"},{"n":"1/1","sv":"Internet.15.235"},{"n":"1/2","ov":"65535:65535"}]}`,
			want: []node.Record{
				rec("/66/0/0", node.String("myService 1")), rec("/66/0/1", node.String("Internet.15.234")), rec("/66/0/2", node.Link(67, 0)),
				rec("/66/1/0", node.String("myService 2")), rec("/66/1/1", node.String("Internet.15.235")), rec("/66/1/2", node.Link(65535, 65535)),
			},
		},
		{
			name: "root with object links", base: "/", canonical: true,
			payload: `{"bn":"/","e":[{"n":"66/0/0","sv":"myService 1"},{"n":"66/0/2","ov":"67:0"},{"n":"67/0/0","sv":"85.76.76.84"}]}`,
			want: []node.Record{
				rec("/66/0/0", node.String("myService 1")), rec("/66/0/2", node.Link(67, 0)), rec("/67/0/0", node.String("85.76.76.84")),
			},
		},
		{
			name: "write of a string resource", base: "/3/0/14", canonical: true,
			payload: `{"bn":"/3/0/","e":[{"n":"14","sv":"+03:00"}]}`,
			want:    []node.Record{rec("/3/0/14", node.String("+03:00"))},
		},
		{
			name: "write of an integer resource", base: "/1/0/1", canonical: true,
			payload: `{"bn":"/1/0/","e":[{"n":"1","v":300}]}`,
			want:    []node.Record{rec("/1/0/1", node.Int(300))},
		},
		{
			name: "write of a boolean resource", base: "/1/0/6", canonical: true,
			payload: `{"bn":"/1/0/","e":[{"n":"6","bv":false}]}`,
			want:    []node.Record{rec("/1/0/6", node.Bool(false))},
		},
		{
			name: "write of a float resource", base: "/1024/0/1", canonical: true,
			payload: `{"bn":"/1024/0/","e":[{"n":"1","v":21.5}]}`,
			want:    []node.Record{rec("/1024/0/1", node.Float(21.5))},
		},
		{
			name: "write of a time resource", base: "/3/0/13", canonical: true,
			payload: `{"bn":"/3/0/","e":[{"n":"13","v":1367491215}]}`,
			want:    []node.Record{rec("/3/0/13", node.TimeValue(time.Unix(1367491215, 0).UTC()))},
		},
		{
			name: "write of an object link", base: "/66/0/2", canonical: true,
			payload: `{"bn":"/66/0/","e":[{"n":"2","ov":"67:0"}]}`,
			want:    []node.Record{rec("/66/0/2", node.Link(67, 0))},
		},
		{
			name: "write of a multiple resource", base: "/3/0/7", canonical: true,
			payload: `{"bn":"/3/0/","e":[{"n":"7/0","v":3800},{"n":"7/1","v":5000}]}`,
			want:    []node.Record{rec("/3/0/7/0", node.Int(3800)), rec("/3/0/7/1", node.Int(5000))},
		},
		{
			name: "write of a resource instance", base: "/3/0/7/1", canonical: true,
			payload: `{"bn":"/3/0/","e":[{"n":"7/1","v":5000}]}`,
			want:    []node.Record{rec("/3/0/7/1", node.Int(5000))},
		},
		{
			name: "create of an instance", base: "/3303", canonical: true,
			payload: `{"bn":"/3303/","e":[{"n":"1/5700","v":12.5},{"n":"1/5701","sv":"Cel"}]}`,
			want:    []node.Record{rec("/3303/1/5700", node.Float(12.5)), rec("/3303/1/5701", node.String("Cel"))},
		},
		// What other clients send decodes too.
		{
			name: "resource as base name without a name", base: "/3/0/14",
			payload: `{"bn":"/3/0/14","e":[{"sv":"+03:00"}]}`,
			want:    []node.Record{rec("/3/0/14", node.String("+03:00"))},
		},
		{
			name: "object as base name", base: "/3/0",
			payload: `{"bn":"/3/","e":[{"n":"0/9","v":100}]}`,
			want:    []node.Record{rec("/3/0/9", node.Int(100))},
		},
		{
			name: "names with a leading slash", base: "/3/0",
			payload: `{"bn":"/3/0/","e":[{"n":"/9","v":100},{"n":"/14","sv":"+01:00"}]}`,
			want:    []node.Record{rec("/3/0/9", node.Int(100)), rec("/3/0/14", node.String("+01:00"))},
		},
		{
			name: "base name without trailing slash", base: "/3/0",
			payload: `{"bn":"/3/0","e":[{"n":"9","v":100}]}`,
			want:    []node.Record{rec("/3/0/9", node.Int(100))},
		},
		{
			name: "names relative to the request without base name", base: "/3/0",
			payload: `{"e":[{"n":"9","v":100},{"n":"11/0","v":0}]}`,
			want:    []node.Record{rec("/3/0/9", node.Int(100)), rec("/3/0/11/0", node.Int(0))},
		},
		{
			name: "integer sent as a string", base: "/1/0/1",
			payload: `{"bn":"/1/0/","e":[{"n":"1","sv":"300"}]}`,
			want:    []node.Record{rec("/1/0/1", node.String("300"))},
		},
	})
}

func TestEncodeCreate(t *testing.T) {
	tests := []struct {
		name string
		f    Format
		inst string
		recs []node.Record
		want string // hex for binary formats
	}{
		{"tlv empty instance", TLV, "/33605/0", nil, "0000"},
		{"tlv empty instance with a 16-bit ID", TLV, "/33605/300", nil, "20012c"},
		{"tlv instance", TLV, "/33605/1", []node.Record{rec("/33605/1/12", node.Int(5))}, "0301" + "c10c05"},
		{"tlv device picks the ID", TLV, "/33605", nil, ""},
		{"senml json empty", SenMLJSON, "/33605/0", nil, "[]"},
		{"senml json", SenMLJSON, "/33605/0", []node.Record{rec("/33605/0/12", node.Int(5))}, `[{"bn":"/33605/","n":"0/12","v":5}]`},
		{"senml cbor empty", SenMLCBOR, "/33605/0", nil, "80"},
		{"lwm2m json empty", LwM2MJSON, "/33605/0", nil, `{"bn":"/33605/","e":[]}`},
		{"lwm2m json", LwM2MJSON, "/33605/0", []node.Record{rec("/33605/0/12", node.Int(5))}, `{"bn":"/33605/","e":[{"n":"0/12","v":5}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := EncodeCreate(tt.f, node.MustParsePath(tt.inst), tt.recs)
			if err != nil {
				t.Fatalf("EncodeCreate: %v", err)
			}
			s := string(got)
			if tt.f == TLV || tt.f == SenMLCBOR {
				s = hex.EncodeToString(got)
			}
			if s != tt.want {
				t.Errorf("EncodeCreate\n got %s\nwant %s", s, tt.want)
			}
			// What the device reads back: the instance's values.
			recs, err := Decode(tt.f, node.ObjectPath(33605), got, nil)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if len(recs) != len(tt.recs) {
				t.Errorf("decoded %d records, want %d", len(recs), len(tt.recs))
			}
		})
	}
	for _, f := range []Format{Text, Opaque, CBOR, LinkFmt} {
		if _, err := EncodeCreate(f, node.MustParsePath("/33605/0"), nil); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%v: err = %v, want ErrUnsupported", f, err)
		}
	}
}

func TestJSONMalformed(t *testing.T) {
	tests := []struct {
		name    string
		f       Format
		base    string
		payload string
	}{
		{"senml not an array", SenMLJSON, "/3/0", `{"bn":"/3/0/9","v":1}`},
		{"senml bad name", SenMLJSON, "/3/0", `[{"n":"/3/x/9","v":1}]`},
		{"senml outside base", SenMLJSON, "/3/0", `[{"n":"/3/1/9","v":1}]`},
		{"senml bad vd", SenMLJSON, "/5/0/0", `[{"n":"/5/0/0","vd":"!!"}]`},
		{"senml bad vlo", SenMLJSON, "/3/0", `[{"n":"/3/0/9","vlo":"3"}]`},
		{"senml huge number", SenMLJSON, "/3/0", `[{"n":"/3/0/9","v":1e999}]`},
		{"senml string time", SenMLJSON, "/3/0", `[{"n":"/3/0/9","v":1,"t":"x"}]`},
		{"senml truncated", SenMLJSON, "/3/0", `[{"n":"/3/0/9"`},
		{"lwm2m json empty object", LwM2MJSON, "/3/0", `{}`},
		{"lwm2m json an array", LwM2MJSON, "/3/0", `[]`},
		{"lwm2m json bad ov", LwM2MJSON, "/3/0", `{"e":[{"n":"/3/0/9","ov":"x:1"}]}`},
		{"lwm2m json not a resource", LwM2MJSON, "/3", `{"bn":"/3/","e":[{"n":"0","v":1}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(tt.f, node.MustParsePath(tt.base), []byte(tt.payload), testTypes)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestJSONEncodeRejectsNaN(t *testing.T) {
	for _, f := range []Format{SenMLJSON, LwM2MJSON} {
		_, err := Encode(f, node.MustParsePath("/3303/0/5700"), []node.Record{rec("/3303/0/5700", node.Float(math.NaN()))})
		if !errors.Is(err, ErrUnsupported) {
			t.Errorf("%v: err = %v, want ErrUnsupported", f, err)
		}
	}
}
