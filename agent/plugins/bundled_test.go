package plugins_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/lwm2m-agent/lwm2m-agent/agent/plugins"
	pmapping "github.com/lwm2m-agent/lwm2m-agent/plugins/mapping"
	"github.com/lwm2m-agent/lwm2m-agent/sdk"
	pb "github.com/lwm2m-agent/lwm2m-agent/sdk/proto/lwm2m/plugin/v1"
)

// The bundled decoders' programs run as plugin processes of the host.
func TestBundledDecoderPrograms(t *testing.T) {
	frameBin := build(t, "frame-decoder", "../..", "./decoders/frame/cmd/frame-decoder")
	cborBin := build(t, "cbor-decoder", "../..", "./decoders/cbor/cmd/cbor-decoder")
	layout := filepath.Join(t.TempDir(), "layout.json")
	if err := os.WriteFile(layout, []byte(`{"fields":[{"measurement":"c8y_Temperature","series":"T","offset":0,"type":"int16","scale":0.01,"unit":"C"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	h := newHost(t,
		plugins.Spec{Name: "frame", Kind: "decoder", Path: frameBin, Args: []string{"--config", layout}},
		plugins.Spec{Name: "cbor", Kind: "decoder", Path: cborBin, Args: []string{"--type", "c8y_Env"}},
	)
	res, err := h.Decode(context.Background(), "frame", plugins.DecodeRequest{Value: frame(-1234)})
	if err != nil || !res.Success || res.Measurements[0].Value != -12.34 || res.Measurements[0].Unit != "C" {
		t.Fatalf("frame: %+v, %v", res, err)
	}
	// {"H": 40, "T": 21.5}
	res, err = h.Decode(context.Background(), "cbor", plugins.DecodeRequest{Value: []byte{0xa2, 0x61, 0x48, 0x18, 0x28, 0x61, 0x54, 0xf9, 0x4d, 0x60}})
	if err != nil || !res.Success || len(res.Measurements) != 2 || res.Measurements[1].Value != 21.5 || res.Measurements[1].Type != "c8y_Env" {
		t.Fatalf("cbor: %+v, %v", res, err)
	}
}

// agentBinary is the agent's executable, whose `plugin` command serves
// the bundled plugins.
func agentBinary(t testing.TB) string {
	return build(t, "lwm2m-agent", "../..", "./agent/cmd/lwm2m-agent")
}

func bundledSpecs(bin string) []plugins.Spec {
	return []plugins.Spec{
		{Name: "mapping", Kind: "mapping", Path: bin, Args: []string{"plugin", "mapping"}, Bundled: true},
		{Name: "customactions", Kind: "customaction", Path: bin, Args: []string{"plugin", "customactions"}, Bundled: true},
	}
}

// mapRequest is n values of /3303/x/5700, all referring to one
// functionality: a measurement and a raiseWhen alarm.
func mapRequest(t testing.TB, n int) *pb.MapRequest {
	tab, err := pmapping.MarshalTable(pmapping.Functionality{
		Measurement: &pmapping.Measurement{Type: "c8y_Temperature", Series: "T", Unit: "C"},
		Alarm:       &pmapping.Alarm{Type: "c8y_Hot", Severity: "MAJOR", Text: "Hot {value}", RaiseWhen: "value > 40"},
	})
	if err != nil {
		t.Fatal(err)
	}
	req := &pb.MapRequest{Functionalities: tab}
	now := timestamppb.Now()
	for i := range n {
		req.Values = append(req.Values, &pb.ResourceValue{Tenant: "acme", DeviceId: "100", Endpoint: "sim-0",
			Path: fmt.Sprintf("/3303/%d/5700", i), Value: sdk.ProtoValue(sdk.Float(20 + float64(i%30))), Time: now})
	}
	return req
}

// The agent's executable in plugin mode serves the bundled plugins to the
// host, which calls them only through MapBundled and RunBundled: device
// protocols and the plugins file cannot reach them by name.
func TestBundledPluginsOfTheAgent(t *testing.T) {
	bin := agentBinary(t)
	h := newHost(t, bundledSpecs(bin)...)
	ctx := context.Background()
	resp, err := h.MapBundled(ctx, "mapping", mapRequest(t, 30))
	if err != nil || len(resp.GetMeasurements()) != 30 || len(resp.GetAlarms()) != 30 {
		t.Fatalf("map: %d measurements, %d alarms, %v", len(resp.GetMeasurements()), len(resp.GetAlarms()), err)
	}
	tab, _ := pmapping.MarshalTable(pmapping.Functionality{CustomAction: "device:updateManufacturer"})
	resp, err = h.RunBundled(ctx, "customactions", &pb.ActionRequest{Functionalities: tab, Values: []*pb.ResourceValue{
		{DeviceId: "100", Path: "/3/0/0", Value: sdk.ProtoValue(sdk.String("ACME"))},
	}})
	if err != nil || len(resp.GetInventoryUpdates()) != 1 || !resp.GetInventoryUpdates()[0].GetNameFromHardware() {
		t.Fatalf("run: %v, %v", resp, err)
	}
	if names := h.Names("mapping"); len(names) != 0 {
		t.Errorf("Names(mapping) = %v, want none of the bundled", names)
	}
	if _, err := h.Map(ctx, "mapping", nil); !errors.Is(err, plugins.ErrUnknownPlugin) {
		t.Errorf("Map of the bundled plugin by name: %v, want ErrUnknownPlugin", err)
	}
	if _, err := h.Run(ctx, "customactions", plugins.ActionRequest{Action: "x"}); !errors.Is(err, plugins.ErrUnknownPlugin) {
		t.Errorf("Run of the bundled plugin by name: %v, want ErrUnknownPlugin", err)
	}
	cfg := plugins.Config{Plugins: append(bundledSpecs(bin), plugins.Spec{Name: "mapping", Kind: "mapping", Path: bin})}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), `plugins[2].name: "mapping" is the agent's bundled plugin's`) {
		t.Errorf("a plugin named as a bundled one: %v", err)
	}
}

// One batch of 64 values to the bundled mapping plugin process (the agent
// re-executed in plugin mode, go-plugin over gRPC on a local socket), the
// round trip every notified value goes through. Reports the latency's p50
// and p99 besides the mean.
func BenchmarkBundledMapping64Process(b *testing.B) {
	h, err := plugins.New(context.Background(), plugins.Config{Plugins: bundledSpecs(agentBinary(b))}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(h.Close)
	req := mapRequest(b, 64)
	ctx := context.Background()
	for range 100 { // warm up the connection and both runtimes
		if _, err := h.MapBundled(ctx, "mapping", req); err != nil {
			b.Fatal(err)
		}
	}
	lat := make([]time.Duration, 0, 1<<16)
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		resp, err := h.MapBundled(ctx, "mapping", req)
		lat = append(lat, time.Since(start))
		if err != nil || len(resp.GetMeasurements()) != 64 {
			b.Fatalf("batch: %d measurements, %v", len(resp.GetMeasurements()), err)
		}
	}
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) }
	b.ReportMetric(q(0.50), "p50-µs")
	b.ReportMetric(q(0.99), "p99-µs")
	b.ReportMetric(64*float64(b.N)/b.Elapsed().Seconds(), "values/s")
}
