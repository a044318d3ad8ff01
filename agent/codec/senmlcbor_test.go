package codec

import (
	"bytes"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// senmlCBORDevice is the Read /3/0 answer in SenML CBOR of the Core
// specification (TS 1.1.1 section 7.4.5 example).
var senmlCBORDevice = mustHex(`90a321652f332f302f00613003744f70656e204d6f62696c6520416c6c69616e6365
	a200613103764c69676874776569676874204d324d20436c69656e74a20061320369333435303030313233
	a20061330363312e30a20063362f300201a20063362f310205a20063372f3002190ed8a20063372f3102191388
	a20063382f3002187da20063382f3102190384a2006139021864a200623130020fa2006431312f300200
	a200623133021a5182428fa20062313403662b30323a3030a200623136036155`)

func TestSenMLCBORGolden(t *testing.T) {
	pinNow(t, time.Unix(1700000000, 0))
	tests := []struct {
		name      string
		base      string
		payload   []byte
		want      []node.Record
		canonical bool
	}{
		{name: "device instance", base: "/3/0", payload: senmlCBORDevice, want: deviceRecords(), canonical: true},
		{name: "device instance read at the root", base: "/", payload: senmlCBORDevice, want: deviceRecords()},
		{
			// [{-2: "/3303/0/5700", 2: 22.5}]
			name: "single resource", base: "/3303/0/5700", canonical: true,
			payload: mustHex("81a2216c2f333330332f302f3537303002fa41b40000"),
			want:    []node.Record{rec("/3303/0/5700", node.Float(22.5))},
		},
		{
			// [{-2: "/3303/0/5700", -3: 1700000000, 2: 22.5}, {6: -5, 2: 23}, {6: -10, 2: 24.5}]
			name: "timestamped values of one resource", base: "/3303/0/5700",
			payload: mustHex(`83a3216c2f333330332f302f35373030221a6553f10002fa41b40000
				a2062402fa41b80000 a2062902fa41c40000`),
			want: []node.Record{
				trec("/3303/0/5700", node.Float(22.5), 1700000000),
				trec("/3303/0/5700", node.Float(23), 1700000000-5),
				trec("/3303/0/5700", node.Float(24.5), 1700000000-10),
			},
		},
		{
			// [{-2: "/3303/0/5700", 6: -30, 2: 21.5}]: relative to now.
			name: "relative time", base: "/3303/0/5700",
			payload: mustHex("81a3216c2f333330332f302f3537303006381d02fa41ac0000"),
			want:    []node.Record{trec("/3303/0/5700", node.Float(21.5), 1700000000-30)},
		},
		{
			// [{-2: "/65/0/0/", 0: "0", "vlo": "66:0"}, {0: "1", "vlo": "66:1"}]
			name: "object links", base: "/65/0/0", canonical: true,
			payload: mustHex("82a321682f36352f302f302f00613063766c6f6436363a30a200613163766c6f6436363a31"),
			want:    []node.Record{rec("/65/0/0/0", node.Link(66, 0)), rec("/65/0/0/1", node.Link(66, 1))},
		},
		{
			// [{-2: "/1024/0/", 0: "2", 4: true}, {0: "3", 2: 18446744073709551615}, {0: "5", 8: h'0102'}]
			name: "boolean, unsigned and opaque", base: "/1024/0", canonical: true,
			payload: mustHex("83a321682f313032342f302f00613204f5a2006133021bffffffffffffffffa200613508420102"),
			want: []node.Record{
				rec("/1024/0/2", node.Bool(true)),
				rec("/1024/0/3", node.Uint(math.MaxUint64)),
				rec("/1024/0/5", node.Opaque([]byte{1, 2})),
			},
		},
		{
			// Composite: [{0: "/3/0/9", 2: 100}, {0: "/3303/0/5700", 2: 22.5}]
			name: "composite at the root", base: "/", canonical: true,
			payload: mustHex("82a200662f332f302f39021864a2006c2f333330332f302f3537303002fa41b40000"),
			want:    []node.Record{rec("/3/0/9", node.Int(100)), rec("/3303/0/5700", node.Float(22.5))},
		},
		{
			// Indefinite array, map and text: [_ {_ -2: (_ "/3/0/", "9"), 2: 100}]
			name: "indefinite lengths", base: "/3/0",
			payload: mustHex("9fbf217f652f332f302f6139ff021864ffff"),
			want:    []node.Record{rec("/3/0/9", node.Int(100))},
		},
		{
			// Text labels and an unknown label: [{"bn": "/3/0/9", "v": 100, "xyz": [1]}]
			name: "text labels", base: "/3/0",
			payload: mustHex("81a362626e662f332f302f39617618646378797a8101"),
			want:    []node.Record{rec("/3/0/9", node.Int(100))},
		},
		{name: "empty array", base: "/3/0", payload: mustHex("80"), want: []node.Record{}},
		{name: "empty payload", base: "/3/0", payload: nil, want: []node.Record{}},
		{
			// A record without a value names a path only: [{0: "/3/0/9"}]
			name: "record without value is skipped", base: "/",
			payload: mustHex("81a100662f332f302f39"),
			want:    []node.Record{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := node.MustParsePath(tt.base)
			got, err := Decode(SenMLCBOR, base, tt.payload, testTypes)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			assertRecords(t, got, tt.want)
			enc, err := Encode(SenMLCBOR, base, tt.want)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if tt.canonical && !bytes.Equal(enc, tt.payload) {
				t.Errorf("Encode\n got %x\nwant %x", enc, tt.payload)
			}
			again, err := Decode(SenMLCBOR, base, enc, testTypes)
			if err != nil {
				t.Fatalf("Decode(Encode): %v", err)
			}
			assertRecords(t, again, tt.want)
		})
	}
}

// TestSenMLCBORReadsWhatALibraryWrites checks the hand-written reader
// against payloads a general CBOR encoder produces.
func TestSenMLCBORReadsWhatALibraryWrites(t *testing.T) {
	in := []map[any]any{
		{-2: "/3303/0/", -3: uint64(1700000000), 0: "5700", 2: 22.5},
		{0: "5700", 6: -60, 2: int64(-3)},
		{0: "5701", 3: "Cel"},
		{0: "5518", 2: uint64(1700000001)},
	}
	payload, err := cbor.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(SenMLCBOR, node.MustParsePath("/3303/0"), payload, testTypes)
	if err != nil {
		t.Fatal(err)
	}
	assertRecords(t, got, []node.Record{
		trec("/3303/0/5700", node.Float(22.5), 1700000000),
		trec("/3303/0/5700", node.Float(-3), 1700000000-60),
		trec("/3303/0/5701", node.String("Cel"), 1700000000),
		trec("/3303/0/5518", node.TimeValue(time.Unix(1700000001, 0).UTC()), 1700000000),
	})
}

func TestSenMLCBORMalformed(t *testing.T) {
	tests := []struct {
		name    string
		base    string
		payload string
	}{
		{"not an array", "/3/0", "a0"},
		{"record not a map", "/3/0", "8101"},
		{"truncated", "/3/0", "81a2216c2f33"},
		{"array claims more than it holds", "/3/0", "9a00ffffffa0"},
		{"string claims 4 GB", "/3/0", "81a1217affffffff00"},
		{"name is not a path", "/3/0", "81a20063612f62021864"},
		{"name is an object", "/", "81a200622f33021864"},
		{"outside the base", "/3/0", "81a200662f342f302f39021864"},
		{"bad object link", "/65/0/0", "81a200692f36352f302f302f3063766c6f6178"},
		{"trailing bytes", "/3/0", "8000"},
		{"invalid UTF-8", "/3/0", "81a20062ff00021864"},
		{"nested too deep", "/3/0", "81a10a818181818181818181818101"},
		{"reserved additional information", "/3/0", "81a1001c"},
		{"time in the far future", "/3/0", "81a300662f332f302f3902186406fb7e37e43c8800759c"},
		{"absolute time before 1978", "/3/0", "81a300662f332f302f39021864063a7fffffff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(SenMLCBOR, node.MustParsePath(tt.base), mustHex(tt.payload), testTypes)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestSenMLCBORRecordCap(t *testing.T) {
	var recs []node.Record
	for i := range MaxRecords + 1 {
		recs = append(recs, rec("/3303/0/5700", node.Float(float64(i))))
	}
	// Encode refuses too, so build the payload by hand.
	one := mustHex("a1 02 f93c00")
	payload := append(mustHex("9fa1216c2f333330332f302f35373030"), bytes.Repeat(one, MaxRecords+1)...)
	payload = append(payload, 0xff)
	if _, err := Decode(SenMLCBOR, node.MustParsePath("/3303/0/5700"), payload, testTypes); !errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v, want ErrMalformed", err)
	}
	if _, err := Encode(SenMLCBOR, node.MustParsePath("/3303/0/5700"), recs); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("Encode err = %v, want ErrUnsupported", err)
	}
}
