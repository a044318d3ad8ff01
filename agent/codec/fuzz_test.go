package codec

import (
	"errors"
	"slices"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// fuzzBases are the request paths fuzz inputs are decoded against; the
// first input byte picks one.
var fuzzBases = []node.Path{
	node.Root,
	node.MustParsePath("/3"),
	node.MustParsePath("/3/0"),
	node.MustParsePath("/3/0/6"),
	node.MustParsePath("/3/0/7/1"),
	node.MustParsePath("/2"),
	node.MustParsePath("/65/0"),
	node.MustParsePath("/66"),
	node.MustParsePath("/3303/0"),
	node.MustParsePath("/3303/0/5700"),
	node.MustParsePath("/1024/0"),
	node.MustParsePath("/5/0/0"),
	node.MustParsePath("/3/0/13"),
	node.MustParsePath("/1/0/6"),
	node.MustParsePath("/9999/0/1"),
}

func baseIndex(p string) uint8 {
	return uint8(slices.Index(fuzzBases, node.MustParsePath(p)))
}

// fuzzRoundTrip decodes payload; where that succeeds, the records must
// encode in the same format and decode to the same records. sorted
// compares in path order, for formats that group records by path.
func fuzzRoundTrip(t *testing.T, f Format, which uint8, payload []byte, sorted bool) {
	base := fuzzBases[int(which)%len(fuzzBases)]
	recs, err := Decode(f, base, payload, testTypes)
	if err != nil {
		if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupported) {
			t.Fatalf("error wraps neither ErrMalformed nor ErrUnsupported: %v", err)
		}
		return
	}
	if len(recs) > MaxRecords {
		t.Fatalf("%d records", len(recs))
	}
	enc, err := Encode(f, base, recs)
	if err != nil {
		t.Fatalf("Encode of decoded records: %v%s", err, dump(recs))
	}
	again, err := Decode(f, base, enc, testTypes)
	if err != nil {
		t.Fatalf("Decode of encoded records %x: %v", enc, err)
	}
	if sorted {
		cmp := func(a, b node.Record) int { return comparePaths(a.Path, b.Path) }
		recs = slices.Clone(recs)
		slices.SortStableFunc(recs, cmp)
		slices.SortStableFunc(again, cmp)
	}
	if !recordsEqual(recs, again) {
		t.Fatalf("round trip changed records\nfirst: %s\nagain: %s", dump(recs), dump(again))
	}
}

func FuzzTLV(f *testing.F) {
	f.Add(baseIndex("/3/0"), tlvDevice)
	f.Add(baseIndex("/3"), tlvDeviceInstance)
	f.Add(baseIndex("/2"), tlvACL)
	f.Add(baseIndex("/65/0"), tlvObj65)
	f.Add(baseIndex("/66"), tlvObj66)
	f.Add(baseIndex("/3/0/6"), mustHex("8606410001410105"))
	f.Add(baseIndex("/3/0/7/1"), mustHex("42011388"))
	f.Add(baseIndex("/3303/0"), mustHex("E4164441B20000"))
	f.Add(baseIndex("/3/0"), mustHex("D800FFFFFF0102030405060708090A0B0C0D0E0F"))
	f.Fuzz(func(t *testing.T, which uint8, payload []byte) {
		fuzzRoundTrip(t, TLV, which, payload, true)
	})
}

func FuzzSenMLCBOR(f *testing.F) {
	f.Add(baseIndex("/3/0"), senmlCBORDevice)
	f.Add(baseIndex("/"), senmlCBORDevice)
	f.Add(baseIndex("/3303/0/5700"), mustHex("83a3216c2f333330332f302f35373030221a6553f10002fa41b40000a2062402fa41b80000a2062902fa41c40000"))
	f.Add(baseIndex("/65/0"), mustHex("82a321682f36352f302f302f00613063766c6f6436363a30a200613163766c6f6436363a31"))
	f.Add(baseIndex("/1024/0"), mustHex("83a321682f313032342f302f00613204f5a2006133021bffffffffffffffffa200613508420102"))
	f.Add(baseIndex("/3/0"), mustHex("9fbf217f652f332f302f6139ff021864ffff"))
	f.Add(baseIndex("/3/0"), mustHex("81a362626e662f332f302f39617618646378797a8101"))
	f.Fuzz(func(t *testing.T, which uint8, payload []byte) {
		fuzzRoundTrip(t, SenMLCBOR, which, payload, false)
	})
}

func FuzzSenMLJSON(f *testing.F) {
	f.Add(baseIndex("/3/0"), []byte(senmlJSONDevice))
	f.Add(baseIndex("/3303/0/5700"), []byte(`[{"bn":"/3303/0/5700","bt":1.320067464e+09,"v":22.4},{"v":22.9,"t":-10},{"v":24.1,"t":-20}]`))
	f.Add(baseIndex("/1024/0"), []byte(`[{"bn":"/1024/0/","n":"0","vs":"a"},{"n":"1","v":-1.5e-7},{"n":"2","vb":false},{"n":"3","v":18446744073709551615},{"n":"5","vd":"AQID_w"},{"n":"6","vlo":"3:0"}]`))
	f.Add(baseIndex("/"), []byte(`[{"n":"/3/0/9","v":100},{"n":"/3303/0/5700","v":22.5}]`))
	f.Fuzz(func(t *testing.T, which uint8, payload []byte) {
		fuzzRoundTrip(t, SenMLJSON, which, payload, false)
	})
}

func FuzzLwM2MJSON(f *testing.F) {
	f.Add(baseIndex("/3/0"), []byte(lwm2mJSONDevice))
	f.Add(baseIndex("/1024/0"), []byte(`{"bn":"/1024/0/1","e":[{"v":22.9,"t":-30},{"v":22.4,"t":-5}],"bt":25462634}`))
	f.Add(baseIndex("/1024/0"), []byte(`{"bn":"/1024/0/","e":[{"n":"0","sv":"x"},{"n":"1","v":10.5},{"n":"2","bv":true},{"n":"6","ov":"66:1"}]}`))
	f.Add(baseIndex("/5/0/0"), []byte(`{"bn":"/5/0/0","e":[{"sv":"AQIDBAU="}]}`))
	f.Add(baseIndex("/"), []byte(`{"bn":"/","e":[{"n":"3/0/9","v":100}]}`))
	f.Add(baseIndex("/3/0"), []byte(`{"bn":"/3/","e":[{"n":"/0/14","sv":"+03:00"},{"n":"0/7/1","v":5000}]}`))
	f.Add(baseIndex("/3/0"), []byte(`{"e":[{"n":"9","v":100},{"n":"11/0","v":0}]}`))
	f.Add(baseIndex("/66"), []byte(`{"bn":"/66/","e":[{"n":"0/2","ov":"67:0"},{"n":"1/2","ov":"65535:65535"}]}`))
	f.Fuzz(func(t *testing.T, which uint8, payload []byte) {
		fuzzRoundTrip(t, LwM2MJSON, which, payload, false)
	})
}

func FuzzText(f *testing.F) {
	f.Add(baseIndex("/3303/0/5700"), []byte("22.25"))
	f.Add(baseIndex("/5/0/0"), []byte("AQIDBAU="))
	f.Add(baseIndex("/3/0/13"), []byte("1367491215"))
	f.Add(baseIndex("/1/0/6"), []byte("1"))
	f.Add(baseIndex("/9999/0/1"), []byte("raw"))
	f.Add(baseIndex("/3/0/7/1"), []byte("-5000"))
	f.Fuzz(func(t *testing.T, which uint8, payload []byte) {
		fuzzRoundTrip(t, Text, which, payload, false)
	})
}

func FuzzCBOR(f *testing.F) {
	f.Add(baseIndex("/3303/0/5700"), mustHex("fa41b20000"))
	f.Add(baseIndex("/3/0/13"), mustHex("c11a5182428f"))
	f.Add(baseIndex("/5/0/0"), mustHex("420102"))
	f.Add(baseIndex("/1/0/6"), mustHex("f5"))
	f.Add(baseIndex("/9999/0/1"), mustHex("6436373a30"))
	f.Add(baseIndex("/3/0/7/1"), mustHex("3863"))
	f.Fuzz(func(t *testing.T, which uint8, payload []byte) {
		fuzzRoundTrip(t, CBOR, which, payload, false)
	})
}

func FuzzLinkFormat(f *testing.F) {
	f.Add([]byte(`</>;rt="oma.lwm2m";ct=110,</1/0>,</3/0>;ver=1.1,</3303>;ver=1.1`))
	f.Add([]byte(`</3/0>;pmin=10;pmax=60,</3/0/1>,</3/0/6>;dim=2`))
	f.Add([]byte(`</a>;title="x, y; \"z\" \\";obs,</b>;ct=""`))
	f.Add([]byte(" </1/0> ;  ver = 1.1 ,\n\t,</3/0>,  "))
	f.Fuzz(func(t *testing.T, payload []byte) {
		links, err := ParseLinks(payload)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		out := FormatLinks(links)
		again, err := ParseLinks(out)
		if err != nil {
			t.Fatalf("ParseLinks(FormatLinks) of %q: %v", out, err)
		}
		if !slices.EqualFunc(links, again, func(a, b Link) bool {
			return a.Target == b.Target && slices.Equal(a.Attrs, b.Attrs)
		}) {
			t.Fatalf("round trip changed links\nfirst: %#v\nagain: %#v", links, again)
		}
	})
}
