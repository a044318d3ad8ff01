package sqlite

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/testbound"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// latencies collects how long each call of a parallel benchmark took,
// for its 99th percentile.
type latencies struct {
	mu  sync.Mutex
	all []time.Duration
}

// cpuTime is the processor time the process has used: on a machine
// shared with other work, the cost of an item is better told by it than
// by the time it took.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// parallel runs call from b.RunParallel's goroutines, i counting calls
// across them, and reports the p99 of their durations, per: items a
// call handles per second of the benchmark, and the processor time
// used per item.
func parallel(b *testing.B, items int, per string, call func(i int) error) {
	var (
		l    latencies
		next atomic.Int64
	)
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime(b)
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			start := time.Now()
			if err := call(int(next.Add(1) - 1)); err != nil {
				b.Error(err)
				return
			}
			mine = append(mine, time.Since(start))
		}
		l.mu.Lock()
		l.all = append(l.all, mine...)
		l.mu.Unlock()
	})
	b.StopTimer()
	b.ReportMetric(float64((cpuTime(b)-cpu).Microseconds())/float64(b.N*items), "cpu-µs/item")
	b.ReportMetric(float64(b.N*items)/b.Elapsed().Seconds(), per)
	if len(l.all) > 0 {
		slices.Sort(l.all)
		b.ReportMetric(float64(l.all[len(l.all)*99/100].Microseconds())/1000, "p99-ms")
	}
}

func temperature(src string, at time.Time, v float64) store.Measurement {
	return store.Measurement{Source: src, Type: "c8y_Temperature", Time: at,
		Fragments: map[string]any{"c8y_Temperature": map[string]any{"T": store.SeriesValue(v, "C")}}}
}

// BenchmarkAddMeasurements stores batches of 100 measurements, each of
// another of 1,000 sources, from parallel callers, as the mapping
// pipeline's writers hand them over; the writer commits their batches
// in groups.
func BenchmarkAddMeasurements(b *testing.B) {
	const batch, sources = 100, 1000
	s := newStore(b)
	t0 := time.Now()
	b.SetParallelism(4)
	parallel(b, batch, "measurements/s", func(i int) error {
		ms := make([]store.Measurement, batch)
		for j := range ms {
			ms[j] = temperature(fmt.Sprint((i*batch+j)%sources), t0.Add(time.Duration(i)*time.Millisecond), float64(j))
		}
		_, err := s.AddMeasurements(context.Background(), "acme", ms)
		return err
	})
}

// BenchmarkPipelineMeasurements stores measurements as the pipeline's
// writer does at 20,000 values/s from 2,000 devices: one caller, one
// measurement of each device per batch, in a store that already holds
// 200,000 of them (ten seconds of that load), so that a batch touches a
// leaf of every device's place in the per-source index. The batch is
// what the writer gathers between flushes: 1,000 every 50 ms, 2,000
// every 100 ms, 4,000 every 200 ms.
func BenchmarkPipelineMeasurements(b *testing.B) {
	const sources, prefill = 2000, 200_000
	for _, batch := range []int{1000, 2000, 4000} {
		b.Run(fmt.Sprint("batch=", batch), func(b *testing.B) {
			ctx := context.Background()
			s := newStore(b)
			t0 := time.Now()
			n := 0
			write := func() error {
				ms := make([]store.Measurement, batch)
				for j := range ms {
					ms[j] = temperature(fmt.Sprint("dev-", n%sources), t0.Add(time.Duration(n/sources)*100*time.Millisecond), float64(j))
					n++
				}
				_, err := s.AddMeasurements(ctx, "acme", ms)
				return err
			}
			for n < prefill {
				if err := write(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			cpu := cpuTime(b)
			for b.Loop() {
				if err := write(); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64((cpuTime(b)-cpu).Microseconds())/float64(b.N*batch), "cpu-µs/item")
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "measurements/s")
		})
	}
}

// BenchmarkListMeasurements reads one source's last 100 measurements of
// a time range from a store of 1,000,000 (1,000 sources, 1,000 each),
// from parallel readers.
func BenchmarkListMeasurements(b *testing.B) {
	testbound.Bound(b, 10*time.Minute)
	const sources, each, batch = 1000, 1000, 2000
	ctx := context.Background()
	s := newStore(b)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	start := time.Now()
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range 4 {
		wg.Go(func() {
			for {
				k := int(next.Add(1) - 1)
				if k*batch >= sources*each {
					return
				}
				ms := make([]store.Measurement, batch)
				for j := range ms {
					n := k*batch + j
					ms[j] = temperature(fmt.Sprint(n%sources), t0.Add(time.Duration(n/sources)*time.Second), float64(n))
				}
				if _, err := s.AddMeasurements(ctx, "acme", ms); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.Logf("stored %d measurements in %v", sources*each, time.Since(start).Round(time.Millisecond))
	for _, withTotal := range []bool{false, true} {
		b.Run(fmt.Sprintf("total=%v", withTotal), func(b *testing.B) {
			f := store.MeasurementFilter{DateFrom: t0.Add(200 * time.Second), DateTo: t0.Add(800 * time.Second), Revert: true,
				Page: store.Page{Size: 100, WithTotal: withTotal}}
			parallel(b, 100, "measurements/s", func(i int) error {
				f := f
				f.Source = fmt.Sprint(rand.IntN(sources))
				ms, total, err := s.ListMeasurements(ctx, "acme", f)
				if err == nil && (len(ms) != 100 || withTotal && total != 600 || !ms[0].Time.Equal(t0.Add(799*time.Second))) {
					err = fmt.Errorf("%d measurements (total %d) from %v", len(ms), total, ms[0].Time)
				}
				return err
			})
		})
	}
}

// BenchmarkRaiseAlarm repeats one alarm from parallel callers: each a
// single upsert, which the writer commits in groups.
func BenchmarkRaiseAlarm(b *testing.B) {
	ctx := context.Background()
	s := newStore(b)
	b.SetParallelism(8)
	parallel(b, 1, "raises/s", func(int) error {
		_, err := s.RaiseAlarm(ctx, "acme", store.Alarm{Source: "1", Type: "c8y_Storm", Text: "again"})
		return err
	})
	as, _, err := s.ListAlarms(ctx, "acme", store.AlarmFilter{})
	if err != nil || len(as) != 1 || as[0].Count != int64(b.N) {
		b.Fatalf("alarms %+v (%v), want one with count %d", as, err, b.N)
	}
}

// BenchmarkSaveValues saves 20 values of one of 1,000 devices a call,
// from parallel callers, as the session's value writer flushes them.
func BenchmarkSaveValues(b *testing.B) {
	const devices, each = 1000, 20
	ctx := context.Background()
	s := newStore(b)
	paths := make([]string, each)
	for i := range paths {
		paths[i] = fmt.Sprintf("/3303/%d/5700", i)
	}
	b.SetParallelism(4)
	parallel(b, each, "values/s", func(i int) error {
		vals := make([]store.ResourceValue, each)
		now := time.Now()
		for j := range vals {
			vals[j] = store.ResourceValue{Path: paths[j], Value: float64(i), Type: "FLOAT", Time: now}
		}
		return s.SaveValues(ctx, "acme", fmt.Sprint(i%devices), vals)
	})
}

// BenchmarkSustained offers the store 20,000 values a second for b.N
// seconds, as the agent's pipelines would: half as measurements
// (AddMeasurements of 100, each of another of 1,000 sources), half as
// last known values (SaveValues of 20 of one of 1,000 devices). Calls
// start on schedule whether or not the ones before have returned, so a
// store that falls behind shows in the latency, measured from each
// call's scheduled start, and in the rate it achieved.
func BenchmarkSustained(b *testing.B) {
	const (
		rate          = 20_000
		batch, values = 100, 20
		sources       = 1000
	)
	ctx := context.Background()
	s := newStore(b)
	type stream struct {
		every time.Duration
		call  func(i int) error
	}
	streams := []stream{
		{time.Second / (rate / 2 / batch), func(i int) error {
			ms := make([]store.Measurement, batch)
			now := time.Now()
			for j := range ms {
				ms[j] = temperature(fmt.Sprint((i*batch+j)%sources), now, float64(j))
			}
			_, err := s.AddMeasurements(ctx, "acme", ms)
			return err
		}},
		{time.Second / (rate / 2 / values), func(i int) error {
			vals := make([]store.ResourceValue, values)
			now := time.Now()
			for j := range vals {
				vals[j] = store.ResourceValue{Path: fmt.Sprintf("/3303/%d/5700", j), Value: float64(i), Type: "FLOAT", Time: now}
			}
			return s.SaveValues(ctx, "acme", fmt.Sprint(i%sources), vals)
		}},
	}
	var (
		l    latencies
		wg   sync.WaitGroup
		done atomic.Int64
	)
	b.ResetTimer()
	cpu := cpuTime(b)
	start := time.Now()
	end := start.Add(time.Duration(b.N) * time.Second)
	for k, st := range streams {
		items := []int{batch, values}[k]
		wg.Go(func() {
			for i := 0; ; i++ {
				at := start.Add(time.Duration(i) * st.every)
				if !at.Before(end) {
					return
				}
				time.Sleep(time.Until(at))
				wg.Go(func() {
					if err := st.call(i); err != nil {
						b.Error(err)
						return
					}
					d := time.Since(at)
					done.Add(int64(items))
					l.mu.Lock()
					l.all = append(l.all, d)
					l.mu.Unlock()
				})
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	elapsed := time.Since(start)
	slices.Sort(l.all)
	b.ReportMetric(float64(done.Load())/elapsed.Seconds(), "values/s")
	b.ReportMetric(float64((cpuTime(b)-cpu).Microseconds())/float64(done.Load()), "cpu-µs/item")
	b.ReportMetric(float64(l.all[len(l.all)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(l.all[len(l.all)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(l.all[len(l.all)-1].Microseconds())/1000, "max-ms")
}
