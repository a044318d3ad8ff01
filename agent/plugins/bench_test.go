package plugins_test

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/plugins"
)

// One batch of 64 values to the SDK's example decoder running as a
// plugin process (go-plugin over gRPC on a local socket), as the agent's
// decoder queue sends them: the round trip a decoded value waits for.
// Reports the latency's p50 and p99 besides the mean.
func BenchmarkDecodeBatch64Process(b *testing.B) {
	bin := examplePlugin(b)
	h, err := plugins.New(context.Background(), plugins.Config{Plugins: []plugins.Spec{
		{Name: "temp", Kind: "decoder", Path: bin, Timeout: plugins.Duration(5 * time.Second)},
	}}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(h.Close)
	reqs := make([]plugins.DecodeRequest, 64)
	now := time.Now()
	for i := range reqs {
		reqs[i] = plugins.DecodeRequest{ResourcePath: "/10268/0/6029", Tenant: "management", DeviceID: "100",
			Endpoint: "sim-0", ServiceKey: "temp", Value: frame(int16(i * 10)), Time: now}
	}
	ctx := context.Background()
	for range 100 { // warm up the connection and both runtimes
		if _, err := h.DecodeBatch(ctx, "temp", reqs); err != nil {
			b.Fatal(err)
		}
	}
	lat := make([]time.Duration, 0, 1<<16)
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		res, err := h.DecodeBatch(ctx, "temp", reqs)
		lat = append(lat, time.Since(start))
		if err != nil || len(res) != len(reqs) || !res[63].Success {
			b.Fatalf("batch: %d results, %v", len(res), err)
		}
	}
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) }
	b.ReportMetric(q(0.50), "p50-µs")
	b.ReportMetric(q(0.99), "p99-µs")
	b.ReportMetric(float64(len(reqs))*float64(b.N)/b.Elapsed().Seconds(), "values/s")
}
