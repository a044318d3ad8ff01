package sqlite

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
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

// identities fills a store with n endpoints and as many PSK identities,
// as a fleet of devices would, and returns their names.
func identities(b *testing.B, n int) (*Store, []string) {
	s := newStore(b)
	keys := make([]string, n)
	if err := s.db.Write(context.Background(), func(tx *Tx) error {
		for i := range keys {
			keys[i] = fmt.Sprint("urn:dev:", i)
			id := fmt.Sprint(i + 1)
			if _, err := tx.Exec("INSERT INTO endpoints (endpoint, tenant, device) VALUES (?, 'acme', ?)", keys[i], id); err != nil {
				return err
			}
			if err := bindPSK(tx, store.PSKServer, keys[i], "acme", id); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	return s, keys
}

// BenchmarkDeviceByEndpoint measures the lookup every LwM2M request
// starts with, from parallel readers.
func BenchmarkDeviceByEndpoint(b *testing.B) {
	s, keys := identities(b, 10_000)
	lookups(b, keys, func(key string) error {
		_, _, err := s.DeviceByEndpoint(context.Background(), key)
		return err
	})
}

// BenchmarkDeviceByPSKIdentity measures the lookup every DTLS handshake
// starts with, from parallel readers.
func BenchmarkDeviceByPSKIdentity(b *testing.B) {
	s, keys := identities(b, 10_000)
	lookups(b, keys, func(key string) error {
		_, _, err := s.DeviceByPSKIdentity(context.Background(), store.PSKServer, key)
		return err
	})
}

// lookups runs lookup from parallel readers over keys in turn.
func lookups(b *testing.B, keys []string, lookup func(key string) error) {
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := lookup(keys[next.Add(1)%int64(len(keys))]); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
