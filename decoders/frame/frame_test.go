package frame_test

import (
	"context"
	"encoding/hex"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/decoders/frame"
	"github.com/lwm2m-agent/lwm2m-agent/sdk"
	"github.com/lwm2m-agent/lwm2m-agent/sdk/sdktest"
)

// A weather station frame: temperature int16 LE in 0.01 °C, humidity
// uint8 in %, pressure uint32 BE in Pa (as hPa), battery float32 LE in V.
const layout = `{"fields":[
 {"measurement":"c8y_Temperature","series":"T","offset":0,"type":"int16","scale":0.01,"unit":"C"},
 {"measurement":"c8y_Humidity","series":"h","offset":2,"type":"uint8","unit":"%"},
 {"measurement":"c8y_Pressure","series":"p","offset":3,"type":"uint32","endian":"big","scale":0.01,"unit":"hPa"},
 {"measurement":"c8y_Battery","fragment":"c8y_Power","series":"V","offset":7,"type":"float32","unit":"V"}
]}`

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func TestDecode(t *testing.T) {
	c, err := frame.ParseConfig([]byte(layout))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		frame   string
		want    []float64
		wantErr string
	}{
		// 0x0866 = 2150 -> 21.5; 0x2d = 45; 0x0001_8a88 = 101000 -> 1010 hPa; 3.5f = 0x40600000
		{name: "weather frame", frame: "66082d00018a8800006040", want: []float64{21.5, 45, 1010, 3.5}},
		{name: "negative temperature", frame: "0cfe0000000000000080bf", want: []float64{-5, 0, 0, -1}},
		{name: "trailing bytes ignored", frame: "66082d00018a8800006040ffff", want: []float64{21.5, 45, 1010, 3.5}},
		{name: "short frame", frame: "66082d00018a88", wantErr: "field V needs bytes 7 to 10"},
		{name: "empty frame", frame: "", wantErr: "frame too short: 0 bytes"},
		{name: "NaN battery", frame: "66082d00018a880000c07f", wantErr: "not a finite number"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ms, err := c.Decode(mustHex(tc.frame))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(ms) != len(tc.want) {
				t.Fatalf("%d measurements", len(ms))
			}
			for i, w := range tc.want {
				if math.Abs(ms[i].Value-w) > 1e-9 {
					t.Errorf("%s = %v, want %v", ms[i].Series, ms[i].Value, w)
				}
			}
			if ms[3].Fragment != "c8y_Power" || ms[0].Unit != "C" || ms[0].Type != "c8y_Temperature" {
				t.Errorf("names %+v", ms)
			}
		})
	}
}

func TestEveryTypeAndOrder(t *testing.T) {
	tests := []struct {
		typ, endian, frame string
		want               float64
	}{
		{"int8", "", "ff", -1},
		{"uint8", "", "ff", 255},
		{"int16", "big", "fffe", -2},
		{"uint16", "little", "0100", 1},
		{"int32", "little", "feffffff", -2},
		{"uint32", "big", "00000100", 256},
		{"float32", "big", "3fc00000", 1.5},
		{"float64", "little", "000000000000f83f", 1.5},
	}
	for _, tc := range tests {
		t.Run(tc.typ+"/"+tc.endian, func(t *testing.T) {
			c := frame.Config{Exact: true, Fields: []frame.Field{{Measurement: "m", Series: "s", Type: tc.typ, Endian: tc.endian, Scale: 2, Add: 1}}}
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			ms, err := c.Decode(mustHex(tc.frame))
			if err != nil {
				t.Fatal(err)
			}
			if ms[0].Value != tc.want*2+1 {
				t.Errorf("got %v, want %v", ms[0].Value, tc.want*2+1)
			}
			if _, err := c.Decode(append(mustHex(tc.frame), 0)); err == nil {
				t.Error("exact layout took a longer frame")
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	_, err := frame.ParseConfig([]byte(`{"fields":[{"series":"a","type":"int24","offset":-1,"endian":"middle"},{"measurement":"m","series":"b","type":""}]}`))
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range []string{"fields[0] (a): measurement and series are needed", `type "int24"`, "offset -1", `endian "middle"`, "fields[1]"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not say %q: %v", w, err)
		}
	}
	if _, err := frame.ParseConfig([]byte(`{"fields":[]}`)); err == nil {
		t.Error("a layout without fields was accepted")
	}
}

// Through the SDK's gRPC harness, as the agent calls it.
func TestDecoderOverGRPC(t *testing.T) {
	c, _ := frame.ParseConfig([]byte(layout))
	d, err := frame.NewDecoder(c)
	if err != nil {
		t.Fatal(err)
	}
	client := sdktest.Decoder(t, d)
	t0 := time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC)
	res, err := client.Decode(context.Background(), sdk.DecodeRequest{ResourcePath: "/19/0/0", Value: mustHex("66082d00018a8800006040"), Time: t0})
	if err != nil || !res.Success || len(res.Measurements) != 4 || !res.Measurements[0].Time.Equal(t0) {
		t.Fatalf("%+v, %v", res, err)
	}
	res, err = client.Decode(context.Background(), sdk.DecodeRequest{ResourcePath: "/19/0/0", Value: []byte{1}})
	if err != nil || res.Success || !strings.Contains(res.Message, "decode /19/0/0: frame too short") {
		t.Fatalf("short frame: %+v, %v", res, err)
	}
}

func FuzzDecode(f *testing.F) {
	c, err := frame.ParseConfig([]byte(layout))
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"66082d00018a8800006040", "0cfe0000000000000080bf", "", "ff"} {
		f.Add(mustHex(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ms, err := c.Decode(b)
		if err != nil {
			return
		}
		if len(b) < 11 || len(ms) != 4 {
			t.Fatalf("%d bytes decoded to %d measurements", len(b), len(ms))
		}
		for _, m := range ms {
			if math.IsNaN(m.Value) || math.IsInf(m.Value, 0) {
				t.Fatalf("non-finite %v", m)
			}
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	c, _ := frame.ParseConfig([]byte(layout))
	in := mustHex("66082d00018a8800006040")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Decode(in); err != nil {
			b.Fatal(err)
		}
	}
}
