package sqlite

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
)

// BenchmarkWriteGroup measures Write under many concurrent writers, each
// change one insert, as the agent's sessions would submit them.
func BenchmarkWriteGroup(b *testing.B) {
	for _, normal := range []bool{false, true} {
		b.Run(syncName(normal), func(b *testing.B) {
			db := open(b, b.TempDir(), Config{SyncNormal: normal})
			var next atomic.Int64
			batches, changes := db.batches.Load(), db.changes.Load()
			b.ReportAllocs()
			b.SetParallelism(32) // writers per GOMAXPROCS
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := db.Write(context.Background(), insert(int(next.Add(1)))); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "changes/s")
			if n := db.batches.Load() - batches; n > 0 {
				b.ReportMetric(float64(db.changes.Load()-changes)/float64(n), "changes/batch")
			}
		})
	}
}

// BenchmarkPointRead measures a lookup by a unique index on the read
// pool, from parallel readers.
func BenchmarkPointRead(b *testing.B) {
	db := open(b, b.TempDir(), Config{})
	const rows = 10_000
	if err := db.Write(context.Background(), func(tx *Tx) error {
		for i := range rows {
			if err := insert(i)(tx); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	keys := make([]string, rows)
	for i := range keys {
		keys[i] = fmt.Sprint("v", i)
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var id int
		for pb.Next() {
			k := keys[next.Add(1)%rows]
			if err := db.QueryRow(context.Background(), "SELECT id FROM t WHERE v = ?", k).Scan(&id); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
