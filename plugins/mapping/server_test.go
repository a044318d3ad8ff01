package mapping_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/plugins/mapping"
	"github.com/lwm2m-agent/lwm2m-agent/sdk"
	pb "github.com/lwm2m-agent/lwm2m-agent/sdk/proto/lwm2m/plugin/v1"
	"github.com/lwm2m-agent/lwm2m-agent/sdk/sdktest"
)

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// client serves the mapping plugin over a real gRPC connection.
func client(t testing.TB) pb.MappingClient {
	return pb.NewMappingClient(sdktest.Conn(t, func(s *grpc.Server) { pb.RegisterMappingServer(s, mapping.Server{}) }))
}

// value is the i-th value of device 42 at /3303/0/5700 (or path), one
// second after the one before.
func value(i int, v node.Value, fn uint32, path ...string) *pb.ResourceValue {
	p := "/3303/0/5700"
	if len(path) > 0 {
		p = path[0]
	}
	return &pb.ResourceValue{Tenant: "acme", DeviceId: "42", Endpoint: "urn:imei:1", Path: p, Value: sdk.ProtoValue(v),
		Time: timestamppb.New(t0.Add(time.Duration(i) * time.Second)), Functionality: fn}
}

// summary writes an answer one line per item, in the answer's order.
func summary(r *pb.MapResponse) []string {
	var s []string
	for _, m := range r.GetMeasurements() {
		s = append(s, fmt.Sprintf("M %s.%s=%s %s @%d %s", m.GetType(), m.GetSeries(), strconv.FormatFloat(m.GetValue(), 'g', -1, 64), m.GetUnit(),
			m.GetTime().AsTime().Sub(t0)/time.Second, m.GetSource()))
	}
	for _, e := range r.GetEvents() {
		s = append(s, "E "+e.GetType()+": "+e.GetText())
	}
	for _, a := range r.GetAlarms() {
		s = append(s, fmt.Sprintf("A %s %s %s: %s", a.GetStatus(), a.GetType(), a.GetSeverity(), a.GetText()))
	}
	for _, e := range r.GetErrors() {
		s = append(s, fmt.Sprintf("ERR %d %s: %s", e.GetIndex(), e.GetPath(), e.GetMessage()))
	}
	return s
}

func table(t testing.TB, fns ...mapping.Functionality) [][]byte {
	b, err := mapping.MarshalTable(fns...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestServerMap(t *testing.T) {
	temp := mapping.Functionality{Measurement: &mapping.Measurement{Type: "c8y_Temperature", Series: "T", Unit: "C"}}
	hot := mapping.Functionality{Alarm: &mapping.Alarm{Type: "c8y_Hot", Severity: "MAJOR", Text: "Hot: {value} at {path}", RaiseWhen: "value > 40"}}
	tests := []struct {
		name   string
		table  [][]byte
		values []*pb.ResourceValue
		want   []string
	}{
		{"measurements of numbers, booleans and strings holding numbers", table(t, temp),
			[]*pb.ResourceValue{value(0, node.Float(21.5), 0), value(1, node.Int(-3), 0), value(2, node.Bool(true), 0), value(3, node.String("0x1F"), 0)},
			[]string{"M c8y_Temperature.T=21.5 C @0 42", "M c8y_Temperature.T=-3 C @1 42", "M c8y_Temperature.T=1 C @2 42", "M c8y_Temperature.T=31 C @3 42"}},
		{"not a number is an error of that value only", table(t, temp),
			[]*pb.ResourceValue{value(0, node.String("warm"), 0), value(1, node.Float(20), 0)},
			[]string{"M c8y_Temperature.T=20 C @1 42", "ERR 0 /3303/0/5700: measurement c8y_Temperature.T needs a number"}},
		{"event texts from templates", table(t, mapping.Functionality{Event: &mapping.Event{Type: "c8y_Door", Text: "Door is {value} at {path} of {endpoint} ({device}) {time}"}}),
			[]*pb.ResourceValue{value(0, node.Bool(false), 0, "/3303/1/5700")},
			[]string{"E c8y_Door: Door is false at /3303/1/5700 of urn:imei:1 (42) 2026-03-04T05:06:07Z"}},
		{"alarm without raiseWhen raises every value", table(t, mapping.Functionality{Alarm: &mapping.Alarm{Type: "c8y_Fault", Severity: "MINOR", Text: "Fault {value}"}}),
			[]*pb.ResourceValue{value(0, node.Int(1), 0), value(1, node.Int(2), 0)},
			[]string{"A  c8y_Fault MINOR: Fault 1", "A  c8y_Fault MINOR: Fault 2"}},
		{"raiseWhen raises while it holds and clears every value for which it does not", table(t, hot),
			[]*pb.ResourceValue{value(0, node.Float(30), 0), value(1, node.Float(45), 0), value(2, node.Float(50), 0), value(3, node.Float(20), 0)},
			[]string{"A CLEARED c8y_Hot : ", "A  c8y_Hot MAJOR: Hot: 45 at /3303/0/5700", "A  c8y_Hot MAJOR: Hot: 50 at /3303/0/5700", "A CLEARED c8y_Hot : "}},
		{"a raiseWhen that does not parse", table(t, mapping.Functionality{Alarm: &mapping.Alarm{Type: "c8y_Hot", Severity: "MAJOR", Text: "x", RaiseWhen: "value >"}}),
			[]*pb.ResourceValue{value(0, node.Int(1), 0)},
			[]string{`ERR 0 /3303/0/5700: alarm c8y_Hot: raiseWhen "value >": expression ends too early`}},
		{"acknowledged alarms keep their status", table(t, mapping.Functionality{Alarm: &mapping.Alarm{Type: "c8y_Info", Severity: "WARNING", Status: "ACKNOWLEDGED", Text: "v={value}"}}),
			[]*pb.ResourceValue{value(0, node.Int(7), 0)}, []string{"A ACKNOWLEDGED c8y_Info WARNING: v=7"}},
		{"ignoreEmptyValues", table(t, mapping.Functionality{IgnoreEmptyValues: true, Measurement: temp.Measurement, Event: &mapping.Event{Type: "c8y_E", Text: "{value}"}}),
			[]*pb.ResourceValue{value(0, node.String(" "), 0), value(1, node.Opaque(nil), 0)}, nil},
		{"each value by its own functionality", table(t, temp, mapping.Functionality{Event: &mapping.Event{Type: "c8y_Units", Text: "units {value}"}}),
			[]*pb.ResourceValue{value(0, node.Float(20), 0), value(1, node.String("Cel"), 1, "/3303/0/5701")},
			[]string{"M c8y_Temperature.T=20 C @0 42", "E c8y_Units: units Cel"}},
		{"a custom action is not the mapping plugin's", table(t, mapping.Functionality{CustomAction: "connectivity:updateRssi"}),
			[]*pb.ResourceValue{value(0, node.Int(-80), 0, "/4/0/2")}, nil},
		{"values breaking the contract", [][]byte{[]byte(`{"measurement":`), table(t, temp)[0]},
			[]*pb.ResourceValue{value(0, node.Float(1), 0), value(1, node.Float(2), 5), {Path: "/x", Functionality: 1}, value(3, node.Float(4), 1)},
			[]string{"M c8y_Temperature.T=4 C @3 42",
				"ERR 0 /3303/0/5700: functionality 0: unexpected end of JSON input",
				"ERR 1 /3303/0/5700: functionality 5 of a table of 2",
				`ERR 2 /x: value: bad path "/x": "x" is not an ID from 0 to 65534`}},
	}
	c := client(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := c.Map(context.Background(), &pb.MapRequest{Values: tc.values, Functionalities: tc.table})
			if err != nil {
				t.Fatal(err)
			}
			if got := summary(resp); !slices.Equal(got, tc.want) {
				t.Errorf("got\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(tc.want, "\n\t"))
			}
		})
	}
}

// A batch of 512 values of one resource carries its functionality once.
func TestServerMapLargeBatch(t *testing.T) {
	tab := table(t, mapping.Functionality{Measurement: &mapping.Measurement{Type: "c8y_Temperature", Series: "T", Unit: "C"}})
	req := &pb.MapRequest{Functionalities: tab}
	for i := range 512 {
		req.Values = append(req.Values, value(i, node.Float(float64(i)), 0))
	}
	resp, err := client(t).Map(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetMeasurements()) != 512 || len(resp.GetErrors()) != 0 {
		t.Fatalf("%d measurements, %d errors for 512 values", len(resp.GetMeasurements()), len(resp.GetErrors()))
	}
	for i, m := range resp.GetMeasurements() {
		if m.GetValue() != float64(i) {
			t.Fatalf("measurement %d has value %v: reordered", i, m.GetValue())
		}
	}
}

// BenchmarkMapBatch64 is one batch of 64 values through the mapping
// plugin over a real gRPC connection (in memory: the process hop is in
// agent/plugins' BenchmarkBundledMapping64).
func BenchmarkMapBatch64(b *testing.B) {
	tab := table(b, mapping.Functionality{Measurement: &mapping.Measurement{Type: "c8y_Temperature", Series: "T", Unit: "C"},
		Alarm: &mapping.Alarm{Type: "c8y_Hot", Severity: "MAJOR", Text: "Hot {value}", RaiseWhen: "value > 40"}})
	req := &pb.MapRequest{Functionalities: tab}
	for i := range 64 {
		req.Values = append(req.Values, value(i, node.Float(20+float64(i%30)), 0))
	}
	c := client(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Map(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*64)/b.Elapsed().Seconds(), "values/s")
}
