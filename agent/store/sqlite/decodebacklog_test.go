package sqlite

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// Every query of the decode backlog is served by the index meant for
// it, without sorting.
func TestDecodeBacklogQueryPlans(t *testing.T) {
	checkPlans(t, openEngine(t, Config{Dir: t.TempDir()}).db, []planCase{
		{"due groups", literal(sqlDueGroups, "'frame'", "5", "5", "64"), "SEARCH decode_groups USING INDEX decode_groups_due (decoder=? AND next_try<?)"},
		{"group head", literal(sqlGroupHead, "'acme'", "'7'", "'frame'", "64"), "SEARCH decode_values USING INDEX decode_values_group (tenant=? AND device=? AND decoder=?)"},
		{"expired", literal(sqlExpired, "'frame'", "5", "5", "64"), "SEARCH v USING INDEX decode_values_decoder (decoder=? AND queued<?)"},
		{"statistics", "SELECT decoder, count(*), min(queued) FROM decode_values GROUP BY decoder ORDER BY decoder",
			"SCAN decode_values USING COVERING INDEX decode_values_decoder"},
		{"resume", "SELECT 1 FROM decode_groups WHERE decoder = 'frame' AND next_try > 5 AND lease_until <= 5",
			"SEARCH decode_groups USING INDEX decode_groups_due (decoder=? AND next_try>?)"},
	})
}

// The one process that opens the file is the only taker: the leases a
// killed run left end when the file is opened again, and its values are
// taken at once rather than when the leases would have run out.
func TestOpenEndsDecodeLeases(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	e, err := OpenEngine(ctx, Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	v := store.DecodeValue{Tenant: "acme", Device: "7", Decoder: "frame", Path: "/19/0/0", Type: "OPAQUE", Value: []byte{1}, Time: time.Now()}
	if _, err := e.AppendDecodes(ctx, "acme", []store.DecodeValue{v}, 10); err != nil {
		t.Fatal(err)
	}
	if got, err := e.TakeDecodes(ctx, "frame", time.Now(), time.Hour, 10); err != nil || len(got) != 1 {
		t.Fatalf("take: %+v, %v", got, err)
	}
	if err := e.Close(ctx); err != nil {
		t.Fatal(err)
	}
	e = openEngine(t, Config{Dir: dir})
	if got, err := e.TakeDecodes(ctx, "frame", time.Now(), time.Hour, 10); err != nil || len(got) != 1 {
		t.Fatalf("take after reopening: %+v, %v; want the value whose lease the earlier run held", got, err)
	}
}

// literal puts values in the places of a query's parameters, in order,
// for EXPLAIN QUERY PLAN, which plans for the values it is given.
func literal(query string, values ...string) string {
	for _, v := range values {
		query = strings.Replace(query, "?", v, 1)
	}
	return query
}

// BenchmarkDecodeBacklogAppend measures the hot path of a decoder value:
// one append of one value from each of many devices at once, as their
// exchanges submit them, each durable before it returns.
func BenchmarkDecodeBacklogAppend(b *testing.B) {
	e := openEngine(b, Config{Dir: b.TempDir()})
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := next.Add(1)
			v := store.DecodeValue{Tenant: "acme", Device: fmt.Sprint(n % 1000), Decoder: "frame", Path: "/10268/0/6029", Type: "OPAQUE",
				Value: make([]byte, 32), Time: time.Now()}
			if _, err := e.AppendDecodes(context.Background(), "acme", []store.DecodeValue{v}, 1<<30); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "values/s")
}

// BenchmarkDecodeBacklogTakeSettle measures a worker's round over the
// backlog without the call: take a batch of 64 values of 64 devices,
// settle them decoded.
func BenchmarkDecodeBacklogTakeSettle(b *testing.B) {
	e := openEngine(b, Config{Dir: b.TempDir()})
	ctx := context.Background()
	const devices = 1000
	fill := func(n int) {
		vals := make([]store.DecodeValue, n)
		for i := range vals {
			vals[i] = store.DecodeValue{Tenant: "acme", Device: fmt.Sprint(i % devices), Decoder: "frame", Path: "/10268/0/6029",
				Type: "OPAQUE", Value: make([]byte, 32), Time: time.Now()}
		}
		if _, err := e.AppendDecodes(ctx, "acme", vals, 1<<30); err != nil {
			b.Fatal(err)
		}
	}
	fill(b.N*64 + 64)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		now := time.Now()
		vals, err := e.TakeDecodes(ctx, "frame", now, time.Minute, 64)
		if err != nil || len(vals) == 0 {
			b.Fatalf("take: %d values, %v", len(vals), err)
		}
		if err := e.SettleDecodes(ctx, vals, nil, now, now); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*64)/b.Elapsed().Seconds(), "values/s")
}
