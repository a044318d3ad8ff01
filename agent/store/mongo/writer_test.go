package mongo_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/mongo"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/storetest"
)

func TestMeasurementWriterStoresEverything(t *testing.T) {
	s := storetest.OpenMongo(t)
	w := mongo.NewMeasurementWriter(s, mongo.WriterOptions{MaxBatch: 300, FlushInterval: 20 * time.Millisecond, QueueSize: 100})
	const producers, each = 4, 500
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			for i := range each {
				if err := w.Add(ctx, "a", temp(fmt.Sprint(p), t0.Add(time.Duration(i)*time.Second), float64(i))); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Add(ctx, "a", temp("1", t0, 0)); !errors.Is(err, mongo.ErrClosed) {
		t.Fatalf("Add after Close: %v", err)
	}
	st := w.Stats()
	if st.Written != producers*each || st.Dropped != 0 {
		t.Fatalf("stats %+v", st)
	}
	for p := range producers {
		ms, total, err := s.ListMeasurements(ctx, "a", store.MeasurementFilter{Source: fmt.Sprint(p), Page: store.Page{Size: 2000, WithTotal: true}})
		if err != nil || total != each {
			t.Fatalf("source %d: %d stored (%v), want %d", p, total, err, each)
		}
		for i, m := range ms {
			if value(m) != float64(i) {
				t.Fatalf("source %d: measurement %d has value %v", p, i, value(m))
			}
		}
	}
}

// TestMeasurementWriterOutage: while the database is unreachable, Add
// blocks once the queue is full (back-pressure, no growth), the writer
// retries, and after the outage everything is stored exactly once.
func TestMeasurementWriterOutage(t *testing.T) {
	direct, s, px := storetest.OpenMongoBehindProxy(t)
	w := mongo.NewMeasurementWriter(s, mongo.WriterOptions{MaxBatch: 50, FlushInterval: 10 * time.Millisecond, QueueSize: 50})
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	add := func(from, to int) {
		for i := from; i < to; i++ {
			if err := w.Add(ctx, "a", temp("1", t0.Add(time.Duration(i)*time.Second), float64(i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	add(0, 100)
	px.SetUp(false)
	// Add until the bounded queue is full and Add blocks.
	n := 100
	for ; ; n++ {
		c, cancel := context.WithTimeout(ctx, 700*time.Millisecond)
		err := w.Add(c, "a", temp("1", t0.Add(time.Duration(n)*time.Second), float64(n)))
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		// At most one batch being written and a full queue are held.
		if n > 100+50+50 {
			t.Fatalf("Add accepted %d measurements during the outage: the queue is not bounded", n-100)
		}
	}
	if w.Stats().Retries == 0 {
		t.Fatalf("no retries during the outage: %+v", w.Stats())
	}
	px.SetUp(true)
	add(n, 300)
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if st := w.Stats(); st.Written != 300 || st.Dropped != 0 {
		t.Fatalf("stats after the outage: %+v", st)
	}
	ms, total, err := direct.ListMeasurements(ctx, "a", store.MeasurementFilter{Source: "1", Page: store.Page{Size: 2000, WithTotal: true}})
	if err != nil || total != 300 {
		t.Fatalf("stored %d (%v), want 300 exactly once", total, err)
	}
	for i, m := range ms {
		if value(m) != float64(i) {
			t.Fatalf("measurement %d has value %v", i, value(m))
		}
	}
}

func BenchmarkMeasurementWriter(b *testing.B) {
	s := storetest.OpenMongo(b)
	w := mongo.NewMeasurementWriter(s, mongo.WriterOptions{})
	t0 := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if err := w.Add(ctx, "a", temp(fmt.Sprint(i%1000), t0.Add(time.Duration(i)*time.Millisecond), float64(i))); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "measurements/s")
}

func BenchmarkAddMeasurements(b *testing.B) {
	s := storetest.OpenMongo(b)
	t0 := time.Now()
	batch := make([]store.Measurement, 1000)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		for j := range batch {
			batch[j] = temp(fmt.Sprint(j%100), t0.Add(time.Duration(i*1000+j)*time.Millisecond), float64(j))
		}
		if _, err := s.AddMeasurements(ctx, "a", batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "measurements/s")
}

// BenchmarkNewestMeasurement reads the newest measurement of one device
// (the API's ?source=X&revert=true&pageSize=1) among 20,000 buckets of
// 2,000 devices.
func BenchmarkNewestMeasurement(b *testing.B) {
	s := storetest.OpenMongo(b)
	t0 := time.Now().Add(-time.Hour)
	for round := range 10 {
		batch := make([]store.Measurement, 0, 2000)
		for dev := range 2000 {
			batch = append(batch, temp(fmt.Sprint(dev), t0.Add(time.Duration(round)*time.Second), float64(round)))
		}
		if _, err := s.AddMeasurements(ctx, "a", batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := range b.N {
		ms, _, err := s.ListMeasurements(ctx, "a", store.MeasurementFilter{Source: fmt.Sprint(i % 2000), Revert: true, Page: store.Page{Size: 1}})
		if err != nil {
			b.Fatal(err)
		}
		if len(ms) != 1 || value(ms[0]) != 9 {
			b.Fatalf("newest of %d: %+v", i%2000, ms)
		}
	}
}

// BenchmarkNewestEvents reads the newest page of one device's events
// among 20,000 events of 2,000 devices.
func BenchmarkNewestEvents(b *testing.B) {
	s := storetest.OpenMongo(b)
	t0 := time.Now().Add(-time.Hour)
	for round := range 10 {
		batch := make([]store.Event, 0, 2000)
		for dev := range 2000 {
			batch = append(batch, store.Event{Source: fmt.Sprint(dev), Type: "c8y_Test", Text: fmt.Sprint(round), Time: t0.Add(time.Duration(round) * time.Second)})
		}
		if _, err := s.CreateEvents(ctx, "a", batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := range b.N {
		evs, _, err := s.ListEvents(ctx, "a", store.EventFilter{Source: fmt.Sprint(i % 2000), Page: store.Page{Size: 5}})
		if err != nil {
			b.Fatal(err)
		}
		if len(evs) != 5 || evs[0].Text != "9" {
			b.Fatalf("newest events of %d: %+v", i%2000, evs)
		}
	}
}
