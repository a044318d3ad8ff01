package main

import (
	"context"
	"encoding/binary"
	"encoding/xml"
	"math"
	"os"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/sdk"
	"github.com/lwm2m-agent/lwm2m-agent/sdk/sdktest"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// Each frame goes through a real gRPC server on an in-memory connection,
// as the agent's calls do: what the test sees is what the agent would get.
func TestDecode(t *testing.T) {
	d := sdktest.Decoder(t, sdk.DecoderFunc(decode))
	for _, tt := range []struct {
		name    string
		frame   []byte
		want    float64
		message string // a refused frame's message
	}{
		{name: "room temperature", frame: []byte{0x66, 0x08}, want: 21.5},
		{name: "below zero", frame: []byte{0xfd, 0xfb}, want: -10.27},
		{name: "zero", frame: []byte{0x00, 0x00}, want: 0},
		{name: "lowest", frame: []byte{0x00, 0x80}, want: -327.68},
		{name: "highest", frame: []byte{0xff, 0x7f}, want: 327.67},
		{name: "empty", frame: nil, message: "temperature frame: 0 bytes, want 2"},
		{name: "one byte short", frame: []byte{0x66}, message: "temperature frame: 1 bytes, want 2"},
		{name: "one byte too many", frame: []byte{0x66, 0x08, 0x00}, message: "temperature frame: 3 bytes, want 2"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res, err := d.Decode(context.Background(), sdk.DecodeRequest{ResourcePath: "/32001/0/0", Value: tt.frame, Time: t0})
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if tt.message != "" {
				if res.Success || res.Message != tt.message || len(res.Measurements) != 0 {
					t.Fatalf("%+v, want refused with %q", res, tt.message)
				}
				return
			}
			if !res.Success || len(res.Measurements) != 1 {
				t.Fatalf("%+v, want one measurement", res)
			}
			m := res.Measurements[0]
			if m.Type != "c8y_Temperature" || m.Series != "T" || m.Unit != "C" || math.Abs(m.Value-tt.want) > 1e-9 || !m.Time.Equal(t0) {
				t.Errorf("measurement %+v, want c8y_Temperature T = %v C at %v", m, tt.want, t0)
			}
		})
	}
}

// The agent sends values in batches: one bad frame fails alone.
func TestDecodeBatch(t *testing.T) {
	d := sdktest.Decoder(t, sdk.DecoderFunc(decode))
	reqs := []sdk.DecodeRequest{
		{ResourcePath: "/32001/0/0", Value: []byte{0x66, 0x08}, Time: t0},
		{ResourcePath: "/32001/1/0", Value: []byte{0x66}, Time: t0},
		{ResourcePath: "/32001/2/0", Value: []byte{0x00, 0x00}, Time: t0},
	}
	res, err := d.DecodeBatch(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 3 || !res[0].Success || res[1].Success || !res[2].Success ||
		res[0].Measurements[0].Value != 21.5 || res[2].Measurements[0].Value != 0 {
		t.Fatalf("results %+v, want the second refused and the others decoded", res)
	}
}

// The object definition that ships with the decoder describes the opaque
// resource it decodes, with an ID of the private range.
func TestObjectDefinition(t *testing.T) {
	b, err := os.ReadFile("tempframe.xml")
	if err != nil {
		t.Fatal(err)
	}
	var ddf struct {
		Objects []struct {
			ID        int    `xml:"ObjectID"`
			URN       string `xml:"ObjectURN"`
			Resources []struct {
				ID   int    `xml:"ID,attr"`
				Type string `xml:"Type"`
			} `xml:"Resources>Item"`
		} `xml:"Object"`
	}
	if err := xml.Unmarshal(b, &ddf); err != nil {
		t.Fatal(err)
	}
	if len(ddf.Objects) != 1 {
		t.Fatalf("%d objects, want 1", len(ddf.Objects))
	}
	o := ddf.Objects[0]
	if o.ID < 26241 || o.ID > 32768 || o.URN != "urn:oma:lwm2m:x:32001" {
		t.Errorf("object %d (%s), want a private object ID (26241 to 32768)", o.ID, o.URN)
	}
	if len(o.Resources) != 1 || o.Resources[0].ID != 0 || o.Resources[0].Type != "Opaque" {
		t.Errorf("resources %+v, want resource 0 of type Opaque", o.Resources)
	}
}

// A decoder reads bytes from devices: whatever they are, it answers a
// measurement or refuses them, and never panics.
func FuzzDecode(f *testing.F) {
	for _, s := range [][]byte{{0x66, 0x08}, {0x00, 0x80}, {}, {0x01}, {1, 2, 3}} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := decode(context.Background(), sdk.DecodeRequest{Value: b, Time: t0})
		if len(b) != 2 {
			if err == nil {
				t.Fatalf("%x: %+v, want an error", b, res)
			}
			return
		}
		want := float64(int16(binary.LittleEndian.Uint16(b))) / 100
		if err != nil || !res.Success || res.Measurements[0].Value != want {
			t.Fatalf("%x: %+v, %v; want %v", b, res, err, want)
		}
	})
}
