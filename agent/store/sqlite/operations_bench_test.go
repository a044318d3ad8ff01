package sqlite

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// The agent must take 2,000 operations a second from the API's POST to
// SUCCESSFUL. The benchmarks call the store from many goroutines at
// once, as the API's requests and the runner's workers do, so that the
// writer commits their changes in groups; each reports its rate and the
// changes committed per batch.

// benchParallelism is the callers per GOMAXPROCS: the API and the
// runner wait on the store far more than they compute.
const benchParallelism = 32

// BenchmarkCreateOperation measures the API's POST of an operation: one
// change each, for devices in turn.
func BenchmarkCreateOperation(b *testing.B) {
	benchOperations(b, 1000, false, func(ctx context.Context, s *Store, dev string) error {
		op := store.Operation{DeviceID: dev, HasCommand: true, Text: "read /3/0/0",
			Fragments: map[string]any{"description": "read the manufacturer"}}
		_, err := s.CreateOperation(ctx, "acme", op)
		return err
	})
}

// BenchmarkOperationLifecycle measures an operation's whole way through
// the store: created (the API's POST), taken from its device's queue,
// EXECUTING, then SUCCESSFUL with its result (the runner), each caller
// with a device of its own, as the runner works one operation of a
// device at a time. Three changes and one read an operation.
func BenchmarkOperationLifecycle(b *testing.B) {
	benchOperations(b, 4096, true, lifecycle)
}

// benchOperations runs do from parallel callers on a store of devices
// objects, under each synchronous mode, and reports operations/s. Each
// call gets the next device in turn, or with own each caller keeps one.
func benchOperations(b *testing.B, devices int, own bool, do func(ctx context.Context, s *Store, dev string) error) {
	for _, normal := range []bool{false, true} {
		b.Run(syncName(normal), func(b *testing.B) {
			s := New(open(b, b.TempDir(), Config{SyncNormal: normal, migrations: migrations}))
			devs := manyDevices(b, s, "acme", devices)
			var next atomic.Int64
			pick := func() string { return devs[next.Add(1)%int64(len(devs))] }
			batches, changes := s.db.batches.Load(), s.db.changes.Load()
			b.ReportAllocs()
			b.SetParallelism(benchParallelism)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				dev := pick()
				for pb.Next() {
					if !own {
						dev = pick()
					}
					if err := do(ctx, s, dev); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "operations/s")
			if n := s.db.batches.Load() - batches; n > 0 {
				b.ReportMetric(float64(s.db.changes.Load()-changes)/float64(n), "changes/batch")
			}
		})
	}
}

func lifecycle(ctx context.Context, s *Store, dev string) error {
	if _, err := s.CreateOperation(ctx, "acme", store.Operation{DeviceID: dev, HasCommand: true, Text: "read /3/0/0"}); err != nil {
		return err
	}
	ops, err := s.Pending(ctx, "acme", dev, 1)
	if err != nil {
		return err
	}
	if len(ops) != 1 {
		return fmt.Errorf("device %s: %d operations pending, want 1", dev, len(ops))
	}
	op := ops[0]
	if err := s.Transition(ctx, "acme", op, store.OpExecuting, "", ""); err != nil {
		return err
	}
	op.Status = store.OpExecuting
	return s.Transition(ctx, "acme", op, store.OpSuccessful, "/3/0/0 = acme", "")
}

// BenchmarkPending measures the read of a device's queue head that
// every Register and Update of a device with work makes, on a store of
// 100,000 PENDING operations across 10,000 devices, beside as many
// ended ones.
func BenchmarkPending(b *testing.B) {
	const devices, each = 10_000, 10
	s := newStore(b)
	devs := manyDevices(b, s, "acme", devices)
	ctx := context.Background()
	for round := range 2 * each {
		ops := make([]store.Operation, devices)
		for i, dev := range devs {
			ops[i] = store.Operation{DeviceID: dev, HasCommand: true, Text: fmt.Sprint("read /3/0/", round)}
		}
		created, err := s.CreateOperations(ctx, "acme", ops)
		if err != nil {
			b.Fatal(err)
		}
		if round%2 == 1 {
			continue
		}
		// Every other round ends, so that the history interleaves with
		// the queues.
		if err := s.db.Write(ctx, func(tx *Tx) error {
			_, err := tx.Exec("UPDATE operations SET status = 'SUCCESSFUL' WHERE seq BETWEEN ? AND ?",
				created[0].ID, created[len(created)-1].ID)
			return err
		}); err != nil {
			b.Fatal(err)
		}
	}
	if n, err := s.PendingCount(ctx, "acme", devs[0]); err != nil || n != each {
		b.Fatalf("%d pending, want %d (%v)", n, each, err)
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(benchParallelism)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			ops, err := s.Pending(ctx, "acme", devs[next.Add(1)%devices], 5)
			if err != nil || len(ops) != 5 {
				b.Errorf("%d pending (%v), want 5", len(ops), err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reads/s")
}
