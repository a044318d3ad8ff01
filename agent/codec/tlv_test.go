package codec

import (
	"bytes"
	"errors"
	"runtime"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// TLV examples of the Core specification (TS 1.0.2 section 6.4.3 and
// appendix; the same vectors appear in TS 1.1 appendix C).
var (
	// Device object instance 0 as resources only (Read /3/0).
	tlvDevice = mustHex(`C800144F70656E204D6F62696C6520416C6C69616E6365
		C801164C69676874776569676874204D324D20436C69656E74
		C80209333435303030313233 C303312E30 860641000141010588070842000ED842011388
		870841007D42010384 C10964 C10A0F 830B410000 C40D5182428F C60E2B30323A3030 C11055`)
	// The same inside an object instance TLV (Read /3).
	tlvDeviceInstance = append(mustHex("080079"), tlvDevice...)
	// Access Control object, instances 0 and 2 (Read /2).
	tlvACL = mustHex("08000EC10001C101008302417F07C1037F080212C10003C101008702417F0761013601C1037F")
	// Server object, one instance (Read /1).
	tlvServer = mustHex("08000FC10001C40100015180C10601C10755")
	// Object 65 instance 0: a multiple object link resource (Read /65/0).
	tlvObj65 = mustHex("88000C440000420000440100420001C8010D38363133383030373535353030C40212345678")
	// Object 66 instances 0 and 1 with object links (Read /66).
	tlvObj66 = mustHex(`080026C8000B6D79536572766963652031C8010F496E7465726E65742E31352E323334C40200430000
		080126C8000B6D79536572766963652032C8010F496E7465726E65742E31352E323335C402FFFFFFFF`)
)

func TestTLVGolden(t *testing.T) {
	tests := []struct {
		name    string
		base    string
		payload []byte
		want    []node.Record
		// canonical is false where the payload is not what Encode writes.
		canonical bool
	}{
		{name: "device instance as resources", base: "/3/0", payload: tlvDevice, want: deviceRecords(), canonical: true},
		{name: "device object", base: "/3", payload: tlvDeviceInstance, want: deviceRecords(), canonical: true},
		{name: "device instance wrapped in its instance", base: "/3/0", payload: tlvDeviceInstance, want: deviceRecords()},
		{name: "device object without instance wrapper", base: "/3", payload: tlvDevice, want: deviceRecords()},
		{name: "access control instances", base: "/2", payload: tlvACL, canonical: true, want: []node.Record{
			rec("/2/0/0", node.Int(1)), rec("/2/0/1", node.Int(0)), rec("/2/0/2/127", node.Int(7)), rec("/2/0/3", node.Int(127)),
			rec("/2/2/0", node.Int(3)), rec("/2/2/1", node.Int(0)), rec("/2/2/2/127", node.Int(7)), rec("/2/2/2/310", node.Int(1)), rec("/2/2/3", node.Int(127)),
		}},
		{name: "server single instance", base: "/1", payload: tlvServer, canonical: true, want: []node.Record{
			rec("/1/0/0", node.Int(1)), rec("/1/0/1", node.Int(86400)), rec("/1/0/6", node.Bool(true)), rec("/1/0/7", node.String("U")),
		}},
		{name: "multiple object links", base: "/65/0", payload: tlvObj65, canonical: true, want: []node.Record{
			rec("/65/0/0/0", node.Link(66, 0)), rec("/65/0/0/1", node.Link(66, 1)),
			rec("/65/0/1", node.String("8613800755500")), rec("/65/0/2", node.Int(305419896)),
		}},
		{name: "object links in two instances", base: "/66", payload: tlvObj66, canonical: true, want: []node.Record{
			rec("/66/0/0", node.String("myService 1")), rec("/66/0/1", node.String("Internet.15.234")), rec("/66/0/2", node.Link(67, 0)),
			rec("/66/1/0", node.String("myService 2")), rec("/66/1/1", node.String("Internet.15.235")), rec("/66/1/2", node.Link(65535, 65535)),
		}},
		{name: "multiple resource", base: "/3/0/6", payload: mustHex("8606410001410105"), canonical: true, want: []node.Record{
			rec("/3/0/6/0", node.Int(1)), rec("/3/0/6/1", node.Int(5)),
		}},
		{name: "resource instances without their resource", base: "/3/0/6", payload: mustHex("410001410105"), want: []node.Record{
			rec("/3/0/6/0", node.Int(1)), rec("/3/0/6/1", node.Int(5)),
		}},
		{name: "one resource instance", base: "/3/0/7/1", payload: mustHex("42011388"), canonical: true, want: []node.Record{
			rec("/3/0/7/1", node.Int(5000)),
		}},
		{name: "single resource", base: "/3/0/9", payload: mustHex("C10964"), canonical: true, want: []node.Record{
			rec("/3/0/9", node.Int(100)),
		}},
		{name: "single resource wrapped in its instance", base: "/3/0/9", payload: mustHex("0300C10964"), want: []node.Record{
			rec("/3/0/9", node.Int(100)),
		}},
		{name: "16-bit resource ID, float", base: "/3303/0", payload: mustHex("E4164441B20000"), canonical: true, want: []node.Record{
			rec("/3303/0/5700", node.Float(22.25)),
		}},
		{name: "eight-byte float", base: "/3303/0/5700", payload: mustHex("E81644083FB999999999999A"), canonical: true, want: []node.Record{
			rec("/3303/0/5700", node.Float(0.1)),
		}},
		{name: "unknown resource is opaque", base: "/3/0/99", payload: mustHex("C1632A"), canonical: true, want: []node.Record{
			rec("/3/0/99", node.Value{Type: node.TypeNone, Bytes: []byte{0x2a}}),
		}},
		{name: "unsigned integer", base: "/1024/0/3", payload: mustHex("C80308FFFFFFFFFFFFFFFF"), canonical: true, want: []node.Record{
			rec("/1024/0/3", node.Uint(1<<64-1)),
		}},
		{name: "negative integers take the smallest width", base: "/3/0", payload: mustHex("C109FF C20A8000 C40BFF7FFFFF"), canonical: true, want: []node.Record{
			rec("/3/0/9", node.Int(-1)), rec("/3/0/10", node.Int(-32768)), rec("/3/0/11", node.Int(-8388609)),
		}},
		{name: "empty", base: "/3/0", payload: nil, canonical: true, want: []node.Record{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := node.MustParsePath(tt.base)
			got, err := Decode(TLV, base, tt.payload, testTypes)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			assertRecords(t, got, tt.want)
			if got == nil {
				t.Error("Decode returned nil, want an empty slice")
			}
			if !tt.canonical {
				return
			}
			enc, err := Encode(TLV, base, tt.want)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if !bytes.Equal(enc, tt.payload) {
				t.Errorf("Encode\n got %X\nwant %X", enc, tt.payload)
			}
		})
	}
}

func TestTLVOldFormatNumber(t *testing.T) {
	got, err := Decode(OldTLV, node.MustParsePath("/3/0"), tlvDevice, testTypes)
	if err != nil {
		t.Fatal(err)
	}
	assertRecords(t, got, deviceRecords())
}

func TestTLVEncodeLengths(t *testing.T) {
	tests := []struct {
		name   string
		n      int
		header string
	}{
		{"length in type byte", 7, "C700"},
		{"8-bit length", 8, "C80008"},
		{"8-bit length max", 255, "C800FF"},
		{"16-bit length", 256, "D0000100"},
		{"24-bit length", 65536, "D800010000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := node.Opaque(bytes.Repeat([]byte{0xab}, tt.n))
			enc, err := Encode(TLV, node.MustParsePath("/5/0/0"), []node.Record{rec("/5/0/0", v)})
			if err != nil {
				t.Fatal(err)
			}
			h := mustHex(tt.header)
			if !bytes.HasPrefix(enc, h) || len(enc) != len(h)+tt.n {
				t.Fatalf("header %X, want %X", enc[:min(len(enc), 6)], h)
			}
			got, err := Decode(TLV, node.MustParsePath("/5/0/0"), enc, testTypes)
			if err != nil {
				t.Fatal(err)
			}
			assertRecords(t, got, []node.Record{rec("/5/0/0", v)})
		})
	}
}

func TestTLVMalformed(t *testing.T) {
	tests := []struct {
		name    string
		base    string
		payload string
	}{
		{"truncated header", "/3/0", "C8"},
		{"truncated 16-bit id", "/3/0", "E416"},
		{"truncated length", "/3/0", "D000"},
		{"length beyond payload", "/3/0", "C8000A4142"},
		{"24-bit length claiming 16 MB", "/3/0", "D800FFFFFF0102030405060708090A0B0C0D0E0F"},
		{"integer of three bytes", "/3/0/9", "C309010203"},
		{"boolean of value 2", "/1/0/6", "C10602"},
		{"object link of three bytes", "/66/0/2", "C302000000"},
		{"float of two bytes", "/3303/0/5700", "E2164400FF"},
		{"other instance in a read of an instance", "/3/0", "0101C10964"},
		{"other resource in a read of a resource", "/3/0/9", "C10A0F"},
		{"resource instance inside an instance", "/3/0", "410001"},
		{"resource inside a multiple resource", "/3/0", "8603C10001"},
		{"instance wrappers nested", "/3/0/9", "070005000300C10964"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(TLV, node.MustParsePath(tt.base), mustHex(tt.payload), testTypes)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestTLVRootIsUnsupported(t *testing.T) {
	if _, err := Decode(TLV, node.Root, mustHex("C10964"), testTypes); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("err = %v, want ErrUnsupported", err)
	}
}

func TestTLVHostileLengthDoesNotAllocate(t *testing.T) {
	payload := mustHex("D800FFFFFF0102030405060708090A0B0C0D0E0F")
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range 10 {
		if _, err := Decode(TLV, node.MustParsePath("/3/0"), payload, testTypes); err == nil {
			t.Fatal("no error")
		}
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<10 {
		t.Fatalf("decoding a 20-byte payload allocated %d bytes", grew)
	}
}

func TestTLVRecordCap(t *testing.T) {
	one := mustHex("410001") // resource instance 0 = 1
	payload := bytes.Repeat(one, MaxRecords+1)
	_, err := Decode(TLV, node.MustParsePath("/3/0/6"), payload, testTypes)
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v, want ErrMalformed for %d records", err, MaxRecords+1)
	}
	if _, err := Decode(TLV, node.MustParsePath("/3/0/6"), payload[:len(one)*MaxRecords], testTypes); err != nil {
		t.Fatalf("%d records: %v", MaxRecords, err)
	}
}

func TestTLVEncodeErrors(t *testing.T) {
	tests := []struct {
		name string
		base string
		recs []node.Record
	}{
		{"root", "/", []node.Record{rec("/3/0/9", node.Int(1))}},
		{"record outside base", "/3/0", []node.Record{rec("/4/0/9", node.Int(1))}},
		{"record above resources", "/3", []node.Record{{Path: node.MustParsePath("/3/0"), Value: node.Int(1)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Encode(TLV, node.MustParsePath(tt.base), tt.recs); !errors.Is(err, ErrUnsupported) {
				t.Fatalf("err = %v, want ErrUnsupported", err)
			}
		})
	}
}

func TestTLVEncodeSortsRecords(t *testing.T) {
	recs := deviceRecords()
	shuffled := append([]node.Record{}, recs[8:]...)
	shuffled = append(shuffled, recs[:8]...)
	enc, err := Encode(TLV, node.MustParsePath("/3/0"), shuffled)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(enc, tlvDevice) {
		t.Fatalf("got %X", enc)
	}
}
