package codec

import (
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// notificationBatch is 64 timestamped temperature values of one resource,
// the shape of a batched notification or Send.
func notificationBatch() []node.Record {
	recs := make([]node.Record, 64)
	for i := range recs {
		recs[i] = node.Record{
			Path:  node.MustParsePath("/3303/0/5700"),
			Value: node.Float(20 + float64(i)/4),
			Time:  time.Unix(1700000000+int64(i)*10, 0).UTC(),
		}
	}
	return recs
}

// batchByInstance is 64 values across 64 resources of one instance, for
// TLV, which carries no times. Most of the resources are not in the test
// model, so this also measures the raw-bytes path of unknown resources.
func batchByInstance() []node.Record {
	recs := make([]node.Record, 64)
	for i := range recs {
		recs[i] = node.Record{Path: node.ResourcePath(3303, 0, uint16(5700+i)), Value: node.Float(20 + float64(i)/4)}
	}
	return recs
}

func benchDecode(b *testing.B, f Format, base node.Path, payload []byte) {
	b.Helper()
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		if _, err := Decode(f, base, payload, testTypes); err != nil {
			b.Fatal(err)
		}
	}
}

func benchEncode(b *testing.B, f Format, base node.Path, recs []node.Record) {
	b.Helper()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Encode(f, base, recs); err != nil {
			b.Fatal(err)
		}
	}
}

func mustEncode(b *testing.B, f Format, base node.Path, recs []node.Record) []byte {
	p, err := Encode(f, base, recs)
	if err != nil {
		b.Fatal(err)
	}
	return p
}

func BenchmarkTLVDecodeDevice(b *testing.B) {
	benchDecode(b, TLV, node.InstancePath(3, 0), tlvDevice)
}

func BenchmarkTLVEncodeDevice(b *testing.B) {
	benchEncode(b, TLV, node.InstancePath(3, 0), deviceRecords())
}

func BenchmarkTLVDecodeBatch64(b *testing.B) {
	base := node.InstancePath(3303, 0)
	benchDecode(b, TLV, base, mustEncode(b, TLV, base, batchByInstance()))
}

func BenchmarkTLVEncodeBatch64(b *testing.B) {
	benchEncode(b, TLV, node.InstancePath(3303, 0), batchByInstance())
}

func BenchmarkSenMLCBORDecodeDevice(b *testing.B) {
	benchDecode(b, SenMLCBOR, node.InstancePath(3, 0), senmlCBORDevice)
}

func BenchmarkSenMLCBOREncodeDevice(b *testing.B) {
	benchEncode(b, SenMLCBOR, node.InstancePath(3, 0), deviceRecords())
}

func BenchmarkSenMLCBORDecodeBatch64(b *testing.B) {
	base := node.ResourcePath(3303, 0, 5700)
	benchDecode(b, SenMLCBOR, base, mustEncode(b, SenMLCBOR, base, notificationBatch()))
}

func BenchmarkSenMLCBOREncodeBatch64(b *testing.B) {
	benchEncode(b, SenMLCBOR, node.ResourcePath(3303, 0, 5700), notificationBatch())
}

func BenchmarkSenMLJSONDecodeBatch64(b *testing.B) {
	base := node.ResourcePath(3303, 0, 5700)
	benchDecode(b, SenMLJSON, base, mustEncode(b, SenMLJSON, base, notificationBatch()))
}

func BenchmarkParseLinksRegister(b *testing.B) {
	payload := []byte(`</>;rt="oma.lwm2m";ct=110,</1/0>,</3/0>;ver=1.1,</3303>;ver=1.1,</3303/0>,</3303/1>,</4/0>,</5/0>`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseLinks(payload); err != nil {
			b.Fatal(err)
		}
	}
}
