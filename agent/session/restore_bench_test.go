package session

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/lwm2m-agent/lwm2m-agent/agent/lwm2m"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/sqlite"
)

// BenchmarkRestore measures what an agent's start spends restoring its
// stored registrations: every device's lwm2m fragment read back from the
// embedded store and put into the LwM2M server. RESTORE_BENCH_REGS sets
// how many live registrations the store holds (default 10,000; the
// README's figure is for 100,000); RESTORE_BENCH_DIR keeps the store
// there between runs, as filling it takes far longer than restoring.
func BenchmarkRestore(b *testing.B) {
	n := 10000
	if s := os.Getenv("RESTORE_BENCH_REGS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			b.Fatalf("RESTORE_BENCH_REGS=%q: want a positive number", s)
		}
		n = v
	}
	dir := os.Getenv("RESTORE_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	} else {
		// devices of earlier layouts had no registration record
		dir = filepath.Join(dir, strconv.Itoa(n)+"-nosec")
	}
	ctx := context.Background()
	st, err := sqlite.OpenEngine(ctx, sqlite.Config{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close(context.Background()) })
	fillRegistrations(b, st, n)

	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		hooks := New(Config{Store: st})
		srv, err := lwm2m.NewServer(lwm2m.Config{Addr: "127.0.0.1:0", MaxRegistrations: n + 1}, hooks)
		if err != nil {
			b.Fatal(err)
		}
		stats, err := Restore(ctx, hooks, srv)
		if err != nil {
			b.Fatal(err)
		}
		if stats.Restored != n || stats.Skipped != 0 || stats.Ended != 0 {
			b.Fatalf("restored %d, skipped %d, ended %d of %d", stats.Restored, stats.Skipped, stats.Ended, n)
		}
		b.StopTimer()
		sctx, cancel := context.WithCancel(ctx)
		cancel()
		_ = srv.Serve(sctx) // closes its socket
		b.StartTimer()
	}
	b.ReportMetric(float64(n), "registrations")
}

// fillRegistrations makes the store hold n devices with a live
// registration each, as Register leaves them (the lwm2m fragment that
// Fragment writes) and a complete NO_SEC registration record, which a
// restored plain registration needs, unless it holds them already.
func fillRegistrations(b *testing.B, st store.Engine, n int) {
	b.Helper()
	ctx := context.Background()
	have := 0
	if err := st.LiveRegistrations(ctx, func(store.LiveRegistration) error { have++; return nil }); err != nil {
		b.Fatal(err)
	}
	if have >= n {
		return
	}
	start := time.Now()
	const chunk = 500
	var next atomic.Int64
	next.Store(int64(have))
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			for {
				from := int(next.Add(chunk)) - chunk
				if from >= n {
					return
				}
				updates := map[string]map[string]any{}
				for i := from; i < min(from+chunk, n); i++ {
					ep := fmt.Sprintf("restore-bench-%06d", i)
					mo, err := st.CreateManagedObject(ctx, "management", store.ManagedObject{Name: ep, Type: store.DeviceType,
						Fragments: map[string]any{"c8y_IsDevice": map[string]any{}}})
					if err != nil {
						errs <- err
						return
					}
					if err := st.SaveDeviceRegistration(ctx, "management", mo.ID, store.DeviceRegistration{
						Params: map[string]any{store.ParamEndpointID: ep, store.ParamSecurityMode: store.SecurityNoSec},
					}); err != nil {
						errs <- err
						return
					}
					at := time.Now().Add(-time.Minute)
					updates[mo.ID] = bson.M{"lwm2m": Fragment(lwm2m.Registration{
						ID: "r" + mo.ID, Endpoint: ep, Version: "1.1", Lifetime: time.Hour, Binding: "U",
						Address: fmt.Sprintf("127.0.%d.%d:%d", i/60000%250, i/250%240+1, 10000+i%50000), RegisteredAt: at, UpdatedAt: at,
						Objects: []lwm2m.ObjectLink{{Path: node.Path{Object: 1, Instance: 0, Depth: 2}}, {Path: node.Path{Object: 3, Instance: 0, Depth: 2}}},
					})}
				}
				if _, err := st.UpdateFragmentsMany(ctx, "management", updates); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.Logf("stored %d live registrations in %v", n-have, time.Since(start).Round(time.Second))
}
