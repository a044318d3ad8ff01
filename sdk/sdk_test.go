package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/lwm2m-agent/lwm2m-agent/sdk"
	pb "github.com/lwm2m-agent/lwm2m-agent/sdk/proto/lwm2m/plugin/v1"
	"github.com/lwm2m-agent/lwm2m-agent/sdk/sdktest"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// Every value type crosses the wire unchanged, in one batch.
func TestMapValuesRoundTrip(t *testing.T) {
	values := []sdk.ResourceValue{
		{Tenant: "t1", DeviceID: "100", Endpoint: "ep", Path: sdk.MustParsePath("/3303/0/5700"), Value: sdk.Float(21.5), Time: t0},
		{Path: sdk.MustParsePath("/3/0/9"), Value: sdk.Int(-80)},
		{Path: sdk.MustParsePath("/3/0/21"), Value: sdk.Uint(math.MaxUint64)},
		{Path: sdk.MustParsePath("/3/0/0"), Value: sdk.String("ACME")},
		{Path: sdk.MustParsePath("/3/0/13"), Value: sdk.Time(t0)},
		{Path: sdk.MustParsePath("/3341/0/5527"), Value: sdk.Bool(true)},
		{Path: sdk.MustParsePath("/19/0/0/0"), Value: sdk.Opaque([]byte{0, 1, 0xff})},
		{Path: sdk.MustParsePath("/3/0/22"), Value: sdk.Link(3, 0)},
		{Path: sdk.MustParsePath("/3/0/23"), Value: sdk.CoreLink("</3/0>")},
		{Path: sdk.MustParsePath("/3/0/4"), Value: sdk.Value{}},
	}
	var got []sdk.ResourceValue
	m := sdktest.Mapper(t, sdk.MapperFunc(func(_ context.Context, vs []sdk.ResourceValue) (sdk.Result, error) {
		got = vs
		return sdk.Result{}, nil
	}))
	if _, err := m.Map(context.Background(), values); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(values) {
		t.Fatalf("plugin got %d values, want %d", len(got), len(values))
	}
	for i := range values {
		w, g := values[i], got[i]
		if g.Path != w.Path || !g.Value.Equal(w.Value) || !g.Time.Equal(w.Time) || g.Tenant != w.Tenant || g.DeviceID != w.DeviceID || g.Endpoint != w.Endpoint {
			t.Errorf("value %d: got %+v, want %+v", i, g, w)
		}
	}
}

// What a plugin answers reaches the agent whole, with per-value errors.
func TestMapResultRoundTrip(t *testing.T) {
	want := sdk.Result{
		Measurements:     []sdk.Measurement{{Type: "c8y_Temperature", Series: "T", Value: 21.5, Unit: "C", Time: t0, Source: "100"}},
		Events:           []sdk.Event{{Type: "c8y_Door", Text: "opened", Time: t0, Fragments: sdk.Fragments{"count": "3"}}},
		Alarms:           []sdk.Alarm{{Type: "c8y_Hot", Severity: sdk.SeverityCritical, Text: "too hot", Status: sdk.StatusActive, Time: t0}},
		InventoryUpdates: []sdk.InventoryUpdate{{Device: "100", Fragments: sdk.Fragments{"c8y_Hardware": map[string]any{"model": "X"}}}},
		Operations:       []sdk.Operation{{Description: "reboot", Fragments: sdk.Fragments{"c8y_Restart": map[string]any{}}}},
		Errors:           []sdk.ValueError{{Index: 1, Path: "/3/0/9", Message: "not mapped"}},
	}
	m := sdktest.Mapper(t, sdk.MapperFunc(func(_ context.Context, vs []sdk.ResourceValue) (sdk.Result, error) {
		return want, nil
	}))
	got, err := m.Map(context.Background(), []sdk.ResourceValue{
		{Path: sdk.MustParsePath("/3303/0/5700"), Value: sdk.Float(21.5)},
		{Path: sdk.MustParsePath("/3/0/9"), Value: sdk.Int(1)},
	})
	if err != nil {
		t.Fatal(err)
	}
	// JSON strings stay strings; nested objects come back as maps
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

// An answer the agent would refuse fails the value it was for, with the
// reason, instead of the batch.
func TestAnswersBreakingTheContract(t *testing.T) {
	one := []sdk.ResourceValue{{Path: sdk.MustParsePath("/3/0/9"), Value: sdk.Int(1)}}
	tests := []struct {
		name string
		res  sdk.Result
		want string
	}{
		{"measurement without series", sdk.Result{Measurements: []sdk.Measurement{{Type: "t"}}}, "no series"},
		{"measurement without type", sdk.Result{Measurements: []sdk.Measurement{{Series: "s"}}}, "neither type nor fragment"},
		{"measurement NaN", sdk.Result{Measurements: []sdk.Measurement{{Type: "t", Series: "s", Value: math.NaN()}}}, "not a finite number"},
		{"unknown severity", sdk.Result{Alarms: []sdk.Alarm{{Type: "a", Severity: "HUGE"}}}, "severity"},
		{"unknown status", sdk.Result{Alarms: []sdk.Alarm{{Type: "a", Status: "GONE"}}}, "status"},
		{"event without type", sdk.Result{Events: []sdk.Event{{Text: "x"}}}, "no type"},
		{"error index outside batch", sdk.Result{Errors: []sdk.ValueError{{Index: 5}}}, "outside the batch"},
		{"empty inventory update", sdk.Result{InventoryUpdates: []sdk.InventoryUpdate{{Device: "1"}}}, "no fragments"},
		{"fragments not JSON", sdk.Result{Events: []sdk.Event{{Type: "e", Fragments: sdk.Fragments{"f": func() {}}}}}, "fragments"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := sdktest.Mapper(t, sdk.MapperFunc(func(context.Context, []sdk.ResourceValue) (sdk.Result, error) { return tc.res, nil }))
			res, err := m.Map(context.Background(), one)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Errors) != 1 || res.Errors[0].Index != 0 || res.Errors[0].Path != "/3/0/9" ||
				!strings.Contains(res.Errors[0].Message, "answer breaks the contract") || !strings.Contains(res.Errors[0].Message, tc.want) {
				t.Fatalf("errors %+v, want value 0 failed with %q", res.Errors, tc.want)
			}
			if len(res.Measurements)+len(res.Events)+len(res.Alarms)+len(res.InventoryUpdates) != 0 {
				t.Errorf("the refused answer came through: %+v", res)
			}
		})
	}
}

// fiftyValues are the values 0..49 of one device, as a batch.
func fiftyValues() []sdk.ResourceValue {
	values := make([]sdk.ResourceValue, 50)
	for i := range values {
		values[i] = sdk.ResourceValue{DeviceID: fmt.Sprint(100 + i%5), Path: sdk.MustParsePath(fmt.Sprintf("/3303/%d/5700", i)), Value: sdk.Int(int64(i))}
	}
	return values
}

// mapFifty maps each value to a measurement of its number, panics on 13
// and answers a NaN for 31: the mapper of a plugin with two bugs.
func mapFifty(_ context.Context, vs []sdk.ResourceValue) (sdk.Result, error) {
	var r sdk.Result
	for _, v := range vs {
		n, _ := sdk.Number(v.Value)
		switch n {
		case 13:
			panic(fmt.Sprintf("no rule for %v", n))
		case 31:
			n = math.NaN()
		}
		r.Measurements = append(r.Measurements, sdk.Measurement{Type: "t", Series: "s", Value: n, Source: v.DeviceID})
	}
	return r, nil
}

// checkFifty checks that mapFifty's answer to fiftyValues lost only the
// two values at fault, each with its reason.
func checkFifty(t *testing.T, res sdk.Result) {
	t.Helper()
	got := map[float64]bool{}
	for _, m := range res.Measurements {
		if got[m.Value] {
			t.Errorf("value %v mapped twice", m.Value)
		}
		got[m.Value] = true
	}
	for i := range 50 {
		if want := i != 13 && i != 31; got[float64(i)] != want {
			t.Errorf("value %d mapped: %v, want %v", i, got[float64(i)], want)
		}
	}
	if len(res.Errors) != 2 {
		t.Fatalf("errors %+v, want values 13 and 31", res.Errors)
	}
	if e := res.Errors[0]; e.Index != 13 || e.Path != "/3303/13/5700" || !strings.Contains(e.Message, "plugin panicked") {
		t.Errorf("first error %+v, want value 13 with the panic", e)
	}
	if e := res.Errors[1]; e.Index != 31 || e.Path != "/3303/31/5700" || !strings.Contains(e.Message, "not a finite number") {
		t.Errorf("second error %+v, want value 31 with the NaN", e)
	}
}

// A mapper that panics on one value of a batch, or answers nonsense for
// another, fails those values only: the batch is split until the values at
// fault are alone.
func TestMapFailsOnlyTheValuesAtFault(t *testing.T) {
	m := sdktest.Mapper(t, sdk.MapperFunc(mapFifty))
	res, err := m.Map(context.Background(), fiftyValues())
	if err != nil {
		t.Fatal(err)
	}
	checkFifty(t, res)
}

func TestCustomActionFailsOnlyTheValuesAtFault(t *testing.T) {
	a := sdktest.CustomAction(t, sdk.CustomActionFunc(func(ctx context.Context, req sdk.ActionRequest) (sdk.Result, error) {
		if req.Action != "act" || req.Argument != "arg" {
			return sdk.Result{}, fmt.Errorf("request %+v", req)
		}
		return mapFifty(ctx, req.Values)
	}))
	res, err := a.Run(context.Background(), sdk.ActionRequest{Action: "act", Argument: "arg", Values: fiftyValues()})
	if err != nil {
		t.Fatal(err)
	}
	checkFifty(t, res)
}

// A decoder that panics on one value of a batch, or answers nonsense for
// another, fails those values only, each with its reason.
func TestDecodeBatchFailsOnlyTheValuesAtFault(t *testing.T) {
	d := sdktest.Decoder(t, sdk.DecoderFunc(func(_ context.Context, r sdk.DecodeRequest) (sdk.DecodeResult, error) {
		switch r.Value[0] {
		case 13:
			panic(fmt.Sprintf("frame %d", r.Value[0]))
		case 31:
			return sdk.DecodeResult{Success: true, Alarms: []sdk.Alarm{{Type: "a", Severity: "HUGE"}}}, nil
		}
		return sdk.DecodeResult{Success: true, Measurements: []sdk.Measurement{{Type: "t", Series: "s", Value: float64(r.Value[0])}}}, nil
	}))
	reqs := make([]sdk.DecodeRequest, 50)
	for i := range reqs {
		reqs[i] = sdk.DecodeRequest{Value: []byte{byte(i)}}
	}
	res, err := d.DecodeBatch(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		switch i {
		case 13:
			if r.Success || !strings.Contains(r.Message, "plugin panicked: frame 13") {
				t.Errorf("value 13: %+v, want failed with the panic", r)
			}
		case 31:
			if r.Success || !strings.Contains(r.Message, "answer breaks the contract") || !strings.Contains(r.Message, "HUGE") {
				t.Errorf("value 31: %+v, want failed with the bad severity", r)
			}
		default:
			if !r.Success || len(r.Measurements) != 1 || r.Measurements[0].Value != float64(i) {
				t.Errorf("value %d: %+v, want decoded", i, r)
			}
		}
	}
}

// The agent's side checks each result of a batch on its own too, for
// plugins that speak the contract without the SDK.
func TestDecodeBatchClientChecksEachResult(t *testing.T) {
	cc := sdktest.Conn(t, func(s *grpc.Server) { pb.RegisterDecoderServer(s, rawDecoder{}) })
	res, err := sdk.NewDecoderClient(cc).DecodeBatch(context.Background(), []sdk.DecodeRequest{{}, {}, {}})
	if err != nil {
		t.Fatal(err)
	}
	if !res[0].Success || res[0].Measurements[0].Value != 1 || !res[2].Success {
		t.Errorf("good results %+v", res)
	}
	if res[1].Success || !strings.Contains(res[1].Message, "not a finite number") {
		t.Errorf("bad result %+v, want failed", res[1])
	}
}

// rawDecoder answers three results, the second with a NaN measurement.
type rawDecoder struct{ pb.UnimplementedDecoderServer }

func (rawDecoder) DecodeBatch(context.Context, *pb.DecodeBatchRequest) (*pb.DecodeBatchResponse, error) {
	ok := &pb.DecodeResult{Success: true, Measurements: []*pb.Measurement{{Type: "t", Series: "s", Value: 1}}}
	bad := &pb.DecodeResult{Success: true, Measurements: []*pb.Measurement{{Type: "t", Series: "s", Value: math.NaN()}}}
	return &pb.DecodeBatchResponse{Results: []*pb.DecodeResult{ok, bad, ok}}, nil
}

func TestDecoderErrors(t *testing.T) {
	tests := []struct {
		name          string
		err           error
		wantTemporary bool
		wantFailed    string // an answered failure (Success false)
		wantErr       string
	}{
		{name: "bad bytes are an answer", err: errors.New("frame too short"), wantFailed: "frame too short"},
		{name: "temporary failure is retryable", err: fmt.Errorf("backend: %w", sdk.ErrTemporary), wantTemporary: true, wantErr: "backend"},
		{name: "panic fails the value, the plugin lives on", err: errPanic, wantFailed: "plugin panicked: boom"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := sdktest.Decoder(t, sdk.DecoderFunc(func(context.Context, sdk.DecodeRequest) (sdk.DecodeResult, error) {
				if tc.err == errPanic {
					panic("boom")
				}
				return sdk.DecodeResult{}, tc.err
			}))
			res, err := d.Decode(context.Background(), sdk.DecodeRequest{Value: []byte{1}})
			if tc.wantFailed != "" {
				if err != nil || res.Success || !strings.Contains(res.Message, tc.wantFailed) {
					t.Fatalf("got %+v, %v; want failed result %q", res, err, tc.wantFailed)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			if errors.Is(err, sdk.ErrTemporary) != tc.wantTemporary {
				t.Fatalf("temporary = %v, want %v (%v)", !tc.wantTemporary, tc.wantTemporary, err)
			}
		})
	}
}

var errPanic = errors.New("panic")

func TestDecodeRequestAndBatch(t *testing.T) {
	d := sdktest.Decoder(t, sdk.DecoderFunc(func(_ context.Context, r sdk.DecodeRequest) (sdk.DecodeResult, error) {
		if r.ResourcePath != "/19/0/0" || r.Args["unit"] != "C" || r.ServiceKey != "temp" || r.DeviceID != "100" || r.ContentFormat != 42 || !r.Time.Equal(t0) {
			return sdk.DecodeResult{}, fmt.Errorf("request arrived as %+v", r)
		}
		if len(r.Value) == 0 {
			return sdk.DecodeResult{}, errors.New("empty")
		}
		return sdk.DecodeResult{
			Success:       true,
			Measurements:  []sdk.Measurement{{Type: "c8y_Temperature", Series: "T", Value: float64(r.Value[0]), Unit: r.Args["unit"]}},
			DataFragments: []sdk.DataFragment{{Key: "c8y_Frame.len", Value: len(r.Value)}},
		}, nil
	}))
	req := sdk.DecodeRequest{ResourcePath: "/19/0/0", Args: map[string]string{"unit": "C"}, ServiceKey: "temp", DeviceID: "100", ContentFormat: 42, Time: t0}
	r1, r2 := req, req
	r1.Value = []byte{21}
	res, err := d.DecodeBatch(context.Background(), []sdk.DecodeRequest{r1, r2})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || !res[0].Success || res[0].Measurements[0].Value != 21 || res[0].Measurements[0].Unit != "C" {
		t.Fatalf("first result %+v", res)
	}
	if fmt.Sprint(res[0].DataFragments[0].Value) != "1" {
		t.Errorf("data fragment %+v", res[0].DataFragments)
	}
	if res[1].Success || res[1].Message != "empty" {
		t.Errorf("second result %+v, want failed with empty", res[1])
	}
}

// A decoder's per-resource setting is the functionality's argument, under
// one key whatever else Args holds.
func TestDecodeRequestArgument(t *testing.T) {
	for _, tt := range []struct {
		name string
		args map[string]string
		want string
	}{
		{"none", nil, ""},
		{"argument", map[string]string{sdk.ArgumentKey: "frame-v2"}, "frame-v2"},
		{"other keys only", map[string]string{"type": "c8y_Env"}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := (sdk.DecodeRequest{Args: tt.args}).Argument(); got != tt.want {
				t.Errorf("Argument() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNumber(t *testing.T) {
	tests := []struct {
		name string
		v    sdk.Value
		want float64
		ok   bool
	}{
		{"int", sdk.Int(-3), -3, true},
		{"uint", sdk.Uint(7), 7, true},
		{"float", sdk.Float(1.5), 1.5, true},
		{"bool", sdk.Bool(true), 1, true},
		{"time", sdk.Time(t0), float64(t0.Unix()), true},
		{"NaN", sdk.Float(math.NaN()), 0, false},
		{"string", sdk.String("1"), 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := sdk.Number(tc.v)
			if ok != tc.ok || (ok && got != tc.want) {
				t.Fatalf("Number = %v, %v; want %v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func BenchmarkMapBatch64(b *testing.B) {
	values := make([]sdk.ResourceValue, 64)
	for i := range values {
		values[i] = sdk.ResourceValue{DeviceID: "100", Path: sdk.MustParsePath("/3303/0/5700"), Value: sdk.Float(float64(i)), Time: t0}
	}
	m := sdktest.Mapper(b, sdk.MapperFunc(func(_ context.Context, vs []sdk.ResourceValue) (sdk.Result, error) {
		var r sdk.Result
		for _, v := range vs {
			f, _ := sdk.Number(v.Value)
			r.Measurements = append(r.Measurements, sdk.Measurement{Type: "c8y_Temperature", Series: "T", Value: f})
		}
		return r, nil
	}))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Map(context.Background(), values); err != nil {
			b.Fatal(err)
		}
	}
}
