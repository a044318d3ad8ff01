package cli

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/ferrettest"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/mongo"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/sqlite"
)

// runStore runs `lwm2m-agent store ARGS` and returns its standard
// output, standard error and the exit status Main would return.
func runStore(t *testing.T, stdin []byte, args ...string) (string, string, int) {
	t.Helper()
	cmd := storeCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetIn(bytes.NewReader(stdin))
	cmd.SetArgs(args)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code := 0
	if err := cmd.ExecuteContext(ctx); err != nil {
		errOut.WriteString("lwm2m-agent: " + err.Error() + "\n")
		code = exitCode(err)
	}
	return out.String(), errOut.String(), code
}

// newEmbedded fills the embedded store of a fresh data directory with a
// tenant, its users and a device with a PSK key, and closes it.
func newEmbedded(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	e, err := sqlite.OpenEngine(ctx, sqlite.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(ctx)
	steps := []func() error{
		func() error { _, err := e.EnsureManagement(ctx, "Mgmt-pass-1234!"); return err },
		func() error { _, err := e.CreateTenant(ctx, "acme", "admin", "Acme-pass-1234!"); return err },
		func() error {
			mo, err := e.CreateManagedObject(ctx, "acme", store.ManagedObject{Name: "d1", Type: store.DeviceType})
			if err != nil {
				return err
			}
			if err := e.BindPSKIdentity(ctx, store.PSKServer, "d1-identity", "acme", mo.ID); err != nil {
				return err
			}
			return e.SaveDeviceRegistration(ctx, "acme", mo.ID, store.DeviceRegistration{
				Params: map[string]any{store.ParamEndpointID: "d1", "lwm2mPskId": "d1-identity"}, PSKKey: []byte("d1-secret-key"),
			})
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// checkStore finds in s what newEmbedded wrote: the tenant's admin logs
// in with its password, and the device authenticates with its identity.
func checkStore(t *testing.T, s store.Engine) {
	t.Helper()
	ctx := context.Background()
	if err := s.Authenticate(ctx, "acme", "admin", "Acme-pass-1234!"); err != nil {
		t.Errorf("acme/admin: %v", err)
	}
	tenant, id, err := s.DeviceByPSKIdentity(ctx, store.PSKServer, "d1-identity")
	if err != nil {
		t.Fatalf("identity: %v", err)
	}
	if r, err := s.DeviceRegistrationOf(ctx, tenant, id); err != nil || string(r.PSKKey) != "d1-secret-key" {
		t.Errorf("key of the device: %q %v", r.PSKKey, err)
	}
}

func openEmbedded(t *testing.T, dir string) store.Engine {
	t.Helper()
	e, err := sqlite.OpenEngine(context.Background(), sqlite.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(context.Background()) })
	return e
}

// The commands as operators run them: export to a file and to standard
// output, import into an empty data directory, refusals with their exit
// status, copy between engines.
func TestStoreCommands(t *testing.T) {
	src := newEmbedded(t)
	dump := filepath.Join(t.TempDir(), "backup.jsonl")

	t.Run("export", func(t *testing.T) {
		out, errOut, code := runStore(t, nil, "export", "--data-dir", src, "-o", dump)
		if code != 0 || out != "" || !strings.Contains(errOut, "exported 8 records of the embedded store in "+src) ||
			!strings.Contains(errOut, "tenant 2, user 2, counter 1, managedObject 1, pskIdentity 1, registration 1") {
			t.Fatalf("status %d\nstdout %q\nstderr %s", code, out, errOut)
		}
		st, err := os.Stat(dump)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("dump file: %v, mode %v, want 0600", err, st.Mode())
		}
		if strings.Contains(errOut, "d1-identity") || strings.Contains(errOut, "secret") {
			t.Errorf("a secret on stderr: %s", errOut)
		}
		b, _ := os.ReadFile(dump)
		first, _, _ := strings.Cut(string(b), "\n")
		if !strings.Contains(first, `"format":"lwm2m-agent-store","version":2`) || !strings.Contains(first, `"engine":"embedded"`) {
			t.Errorf("header %s", first)
		}
		// the same records to standard output
		out, _, code = runStore(t, nil, "export", "--data-dir", src)
		_, records, _ := strings.Cut(out, "\n")
		if code != 0 || records != string(b[len(first)+1:]) {
			t.Errorf("export to stdout: status %d\n%s\nthe file's:\n%s", code, out, b)
		}
	})

	t.Run("import", func(t *testing.T) {
		dst := t.TempDir()
		_, errOut, code := runStore(t, nil, "import", "--data-dir", dst, dump)
		if code != 0 || !strings.Contains(errOut, "imported 8 records into the embedded store in "+dst) {
			t.Fatalf("status %d\n%s", code, errOut)
		}
		// again: the store holds data now
		_, errOut, code = runStore(t, nil, "import", "--data-dir", dst, dump)
		if code != exitFailed || !strings.Contains(errOut, "store is not empty: it holds tenant acme") || !strings.Contains(errOut, "nothing was imported") {
			t.Fatalf("import into a store with data: status %d\n%s", code, errOut)
		}
		checkStore(t, openEmbedded(t, dst))
	})

	t.Run("import from stdin, truncated", func(t *testing.T) {
		b, _ := os.ReadFile(dump)
		lines := strings.SplitAfter(string(b), "\n")
		cut := []byte(strings.Join(lines[:len(lines)-2], "")) // without the end line
		dst := t.TempDir()
		_, errOut, code := runStore(t, cut, "import", "--data-dir", dst, "-")
		if code != exitFailed || !strings.Contains(errOut, "line 9: invalid dump: the dump ends after line 9 without its end line: it is truncated") {
			t.Fatalf("status %d\n%s", code, errOut)
		}
		// a file is read whole before anything is written
		file := filepath.Join(t.TempDir(), "cut.jsonl")
		if err := os.WriteFile(file, cut, 0o600); err != nil {
			t.Fatal(err)
		}
		_, errOut, code = runStore(t, nil, "import", "--data-dir", dst, file)
		if code != exitFailed || !strings.Contains(errOut, "truncated; nothing was imported") {
			t.Fatalf("truncated file: status %d\n%s", code, errOut)
		}
	})

	t.Run("partial import", func(t *testing.T) {
		// a bad line after more than a batch of records: the batches
		// before it stay, and the exit status says so
		var buf bytes.Buffer
		w, err := store.NewDumpWriter(&buf, store.DumpHeader{})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 5001 {
			if err := w.Write(&store.TenantRecord{ID: "t" + strconv.Itoa(i), Domain: "d"}); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		lines := strings.SplitAfter(strings.TrimSuffix(buf.String(), "\n"), "\n")
		stdin := []byte(strings.Join(lines[:len(lines)-1], "") + "not json\n") // in place of the end line
		_, errOut, code := runStore(t, stdin, "import", "--data-dir", t.TempDir(), "-")
		if code != exitPartial || !strings.Contains(errOut, "line 5003") || !strings.Contains(errOut, "5000 records of the batches before it were imported") {
			t.Fatalf("status %d\n%s", code, errOut)
		}
	})

	t.Run("refusals", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			args []string
			want string
		}{
			{"no store named", []string{"export", "-o", dump}, "name the store: --data-dir DIR or --mongo-uri URI"},
			{"two stores named", []string{"export", "--data-dir", src, "--mongo-uri", "mongodb://x", "-o", dump}, "not both"},
			{"no store there", []string{"export", "--data-dir", t.TempDir(), "-o", dump}, "no embedded store in"},
			{"not a dump", []string{"import", "--data-dir", t.TempDir(), "/dev/null"}, "empty input, not a dump"},
			{"bad location", []string{"copy", "--from", src, "--to", "dir:" + t.TempDir()}, "use dir:DATA_DIR for the embedded store"},
			{"same store", []string{"copy", "--from", "dir:" + src, "--to", "dir:" + src}, "the same store"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Setenv("LWM2M_AGENT_DATA_DIR", "")
				t.Setenv("LWM2M_AGENT_MONGO_URI", "")
				_, errOut, code := runStore(t, nil, tc.args...)
				if code != exitFailed || !strings.Contains(errOut, tc.want) {
					t.Fatalf("status %d, want 1 and %q:\n%s", code, tc.want, errOut)
				}
			})
		}
		if _, err := os.Stat(dump); err != nil {
			t.Errorf("a failed export removed the earlier dump: %v", err)
		}
	})

	t.Run("copy to MongoDB and back", func(t *testing.T) {
		uri := testMongoURI(t)
		_, errOut, code := runStore(t, nil, "copy", "--from", "dir:"+src, "--to", uri)
		if code != 0 || !strings.Contains(errOut, "copied 8 records from the embedded store in "+src+" into MongoDB") {
			t.Fatalf("status %d\n%s", code, errOut)
		}
		m, err := mongo.Open(context.Background(), mongo.Config{URI: uri})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close(context.Background())
		checkStore(t, m)
		// the MongoDB store exported by URI, imported into a data directory
		out, _, code := runStore(t, nil, "export", "--mongo-uri", uri)
		if code != 0 || !strings.Contains(out, `"engine":"mongodb"`) {
			t.Fatalf("export of MongoDB: status %d", code)
		}
		back := t.TempDir()
		if _, errOut, code := runStore(t, []byte(out), "import", "--data-dir", back, "-"); code != 0 {
			t.Fatalf("import of MongoDB's dump: status %d\n%s", code, errOut)
		}
		checkStore(t, openEmbedded(t, back))
	})
}

// testMongoURI is the URI of a MongoDB-wire server for the test.
func testMongoURI(t *testing.T) string {
	t.Helper()
	return ferrettest.Start(t)
}

// A data directory of the old embedded format (FerretDB's files in
// DATA_DIR/db) is refused with the way out, and that way works: FerretDB
// serving the old files, `store copy` from it into a new data directory.
func TestCopyOutOfTheOldEmbeddedFormat(t *testing.T) {
	old := t.TempDir()
	// what the agent's embedded FerretDB kept: its SQLite files in old/db
	uri, stop, err := ferrettest.Run(filepath.Join(old, "db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	src := newEmbedded(t)
	if _, errOut, code := runStore(t, nil, "copy", "--from", "dir:"+src, "--to", uri); code != 0 {
		stop()
		t.Fatalf("fill the old store: status %d\n%s", code, errOut)
	}
	stop()

	_, errOut, code := runStore(t, nil, "export", "--data-dir", old, "-o", filepath.Join(t.TempDir(), "dump"))
	if code == 0 || !strings.Contains(errOut, "old embedded format") || !strings.Contains(errOut, "store copy --from mongodb://") {
		t.Fatalf("export of an old data directory: status %d\n%s", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(old, "store")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the refusal created a store beside the old files: %v", err)
	}
	// FerretDB serving the old files again, as the message says
	uri = ferrettest.StartIn(t, filepath.Join(old, "db"))
	moved := t.TempDir()
	if _, errOut, code := runStore(t, nil, "copy", "--from", uri, "--to", "dir:"+moved); code != 0 {
		t.Fatalf("copy out of the old store: status %d\n%s", code, errOut)
	}
	checkStore(t, openEmbedded(t, moved))
}
