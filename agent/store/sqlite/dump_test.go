package sqlite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/testbound"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// emptyEngine opens the engine over a store of the real schema in a
// fresh directory, closed at the test's end.
func emptyEngine(t testing.TB) store.Engine {
	t.Helper()
	return Engine{newStore(t)}
}

// Records of a kind without a dumper (a concern whose table has not
// come, or has come without its pair) are refused at their line, and
// nothing of their batch is written.
func TestImportRefusesKindsWithoutDumper(t *testing.T) {
	kept := dumpers
	t.Cleanup(func() { dumpers = kept })
	dumpers = slices.DeleteFunc(slices.Clone(dumpers), func(d dumper) bool { return d.kinds[0] == store.KindOperation })

	var buf bytes.Buffer
	w, err := store.NewDumpWriter(&buf, store.DumpHeader{})
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range []store.Record{
		&store.TenantRecord{ID: "acme", Domain: "acme", CreationTime: store.DumpTime(time.Now())},
		&store.OperationRecord{Tenant: "acme", ID: "7", DeviceID: "1", Status: store.OpPending},
	} {
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	s := emptyEngine(t)
	if slices.Contains(s.DumpKinds(), store.KindOperation) {
		t.Fatalf("DumpKinds %v names a kind without a dumper", s.DumpKinds())
	}
	_, err = store.ImportDump(context.Background(), s, &buf, store.ImportOptions{})
	var le *store.LineError
	if !errors.Is(err, errors.ErrUnsupported) || !errors.As(err, &le) || le.Line != 3 || !strings.Contains(err.Error(), "cannot import operation records") {
		t.Fatalf("import of an operation record: %v, want ErrUnsupported at line 3", err)
	}
	if _, err := s.GetTenant(context.Background(), "acme"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the tenant of the refused batch: %v, want it not written", err)
	}
}

// Endpoints, which this engine binds only when it creates a device (not
// through the contract yet), come through a dump as the others.
func TestDumpEndpoints(t *testing.T) {
	ctx := context.Background()
	src := newStore(t)
	bindEndpoint(t, src, "ep-1", "acme", "7")
	bindEndpoint(t, src, "ep-2", "beta", "8")
	var buf bytes.Buffer
	if _, err := store.ExportDump(ctx, src, &buf, store.DumpHeader{}, nil); err != nil {
		t.Fatal(err)
	}
	dst := emptyEngine(t)
	n, err := store.ImportDump(ctx, dst, &buf, store.ImportOptions{})
	if err != nil || n[store.KindEndpoint] != 2 {
		t.Fatalf("imported %v: %v", n, err)
	}
	for ep, want := range map[string][2]string{"ep-1": {"acme", "7"}, "ep-2": {"beta", "8"}} {
		tenant, id, err := dst.DeviceByEndpoint(ctx, ep)
		if err != nil || tenant != want[0] || id != want[1] {
			t.Errorf("endpoint %s: %s/%s %v, want %s/%s", ep, tenant, id, err, want[0], want[1])
		}
	}
}

// ImportReady looks at every table of the schema, those of concerns
// without a dumper included.
func TestImportReadyLooksAtEveryTable(t *testing.T) {
	steps := append(slices.Clone(migrations), `CREATE TABLE gadget_parts (id INTEGER PRIMARY KEY) STRICT`)
	s := New(open(t, t.TempDir(), Config{migrations: steps}))
	if err := s.ImportReady(context.Background()); err != nil {
		t.Fatalf("an empty store: %v", err)
	}
	if err := s.db.Write(context.Background(), func(tx *Tx) error {
		_, err := tx.Exec("INSERT INTO gadget_parts (id) VALUES (1)")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.ImportReady(context.Background()); !errors.Is(err, store.ErrNotEmpty) || !strings.Contains(err.Error(), "gadget parts") {
		t.Fatalf("a store with a row in a table without a dumper: %v, want ErrNotEmpty naming it", err)
	}
}

// An export reads one commit: what is written while it runs is not in
// it, and the writer does not wait for it.
func TestExportIsOneSnapshot(t *testing.T) {
	ctx := context.Background()
	s := emptyEngine(t)
	for _, id := range []string{"a", "b"} {
		if _, err := s.CreateTenant(ctx, id, "admin", "Admin-pass-1234!"); err != nil {
			t.Fatal(err)
		}
	}
	var tenants, users []string
	err := s.Export(ctx, func(r store.Record) error {
		switch x := r.(type) {
		case *store.TenantRecord:
			if len(tenants) == 0 {
				// written and committed while the export has read one row
				wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				if _, err := s.CreateTenant(wctx, "c", "admin", "Admin-pass-1234!"); err != nil {
					return err
				}
			}
			tenants = append(tenants, x.ID)
		case *store.UserRecord:
			users = append(users, x.Tenant)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tenants, []string{"a", "b"}) || !slices.Equal(users, []string{"a", "b"}) {
		t.Fatalf("exported tenants %v and users of %v, want a and b only", tenants, users)
	}
	if _, err := s.GetTenant(ctx, "c"); err != nil {
		t.Fatalf("the tenant written during the export: %v", err)
	}
}

// fillDevices writes n devices as the import of a bulk registration
// file leaves them: an object with its fragments, its c8y_Id, its
// endpoint, its PSK identity and its registration record with a key.
func fillDevices(tb testing.TB, s *Store, n int) {
	tb.Helper()
	const chunk = 5_000
	now := time.Now().UnixMilli()
	for start := 0; start < n; start += chunk {
		err := s.db.Write(context.Background(), func(tx *Tx) error {
			for i := start; i < min(start+chunk, n); i++ {
				id, ep := fmt.Sprint(i+1), fmt.Sprintf("device-%06d", i)
				for _, q := range []struct {
					sql  string
					args []any
				}{
					{`INSERT INTO managed_objects (tenant, id, seq, name, type, creation_time, last_updated, fragments) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
						[]any{"acme", id, i + 1, ep, store.DeviceType, now, now,
							`{"c8y_IsDevice":{},"c8y_SupportedOperations":["c8y_Command"],"c8y_Hardware":{"model":"m1","serialNumber":"` + ep + `"}}`}},
					{`INSERT INTO external_ids (tenant, type, external_id, device) VALUES (?, ?, ?, ?)`, []any{"acme", store.ExternalIDDevice, ep, id}},
					{`INSERT INTO endpoints (endpoint, tenant, device) VALUES (?, ?, ?)`, []any{ep, "acme", id}},
					{`INSERT INTO psk_identities (kind, identity, tenant, device) VALUES (?, ?, ?, ?)`, []any{store.PSKServer, "id-" + ep, "acme", id}},
					{`INSERT INTO registrations (tenant, device, params, psk_key, updated) VALUES (?, ?, ?, ?, ?)`,
						[]any{"acme", id, `{"endpointId":"` + ep + `","securityMode":"PSK","lwm2mPskId":"id-` + ep + `","lwm2mServerUri":"coaps://agent:5784"}`,
							[]byte("0123456789abcdef"), now}},
				} {
					if _, err := tx.Exec(q.sql, q.args...); err != nil {
						return err
					}
				}
			}
			return raiseCounter(tx, store.CounterIDs, int64(n))
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
	if _, err := s.CreateTenant(context.Background(), "acme", "admin", "Admin-pass-1234!"); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkDump100k exports a store of 100,000 devices (500,000
// records: objects, external IDs, endpoints, PSK identities,
// registration records) to a file, and imports that file into an empty
// store. Run it alone: go test ./agent/store/sqlite -run '^$' -bench Dump100k -benchtime 1x
func BenchmarkDump100k(b *testing.B) {
	testbound.Bound(b, 30*time.Minute)
	const devices = 100_000
	ctx := context.Background()
	src := newStore(b)
	fillDevices(b, src, devices)
	file := filepath.Join(b.TempDir(), "store.jsonl")
	export := func(b *testing.B) {
		f, err := os.Create(file)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := store.ExportDump(ctx, src, f, store.DumpHeader{}, nil); err != nil {
			b.Fatal(err)
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
	}
	export(b) // for Import run alone
	b.Run("Export", func(b *testing.B) {
		for range b.N {
			export(b)
		}
		b.ReportMetric(float64(devices)*float64(b.N)/b.Elapsed().Seconds(), "devices/s")
		if st, err := os.Stat(file); err == nil {
			b.ReportMetric(float64(st.Size())/devices, "bytes/device")
		}
	})
	b.Run("Import", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			dst := New(open(b, b.TempDir(), Config{migrations: migrations}))
			f, err := os.Open(file)
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			n, err := store.ImportDump(ctx, dst, f, store.ImportOptions{})
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			f.Close()
			if n[store.KindManagedObject] != devices {
				b.Fatalf("imported %v", n)
			}
			b.StartTimer()
		}
		b.ReportMetric(float64(devices)*float64(b.N)/b.Elapsed().Seconds(), "devices/s")
	})
}
