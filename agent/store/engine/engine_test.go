package engine_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store/engine"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/ferrettest"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/sqlite"
)

// FerretDB is a test server of the MongoDB engine, never a part of the
// agent: the binary links neither it nor anything of it.
func TestAgentLinksNoFerretDB(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/lwm2m-agent/lwm2m-agent/agent/cmd/lwm2m-agent").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 100 {
		t.Fatalf("go list named %d packages: %s", len(deps), out)
	}
	for _, p := range deps {
		if strings.Contains(strings.ToLower(p), "ferretdb") {
			t.Errorf("the agent links %s", p)
		}
	}
}

// Above the store the agent knows only the contract: no package outside
// agent/store names an engine, so none can depend on what one engine does
// and the other does not.
func TestNoEngineAboveTheStore(t *testing.T) {
	const mod = "github.com/lwm2m-agent/lwm2m-agent/"
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", mod+"...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	engines := map[string]bool{mod + "agent/store/mongo": true, mod + "agent/store/sqlite": true}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 30 {
		t.Fatalf("go list named %d packages: %s", len(lines), out)
	}
	for _, line := range lines {
		f := strings.Fields(line)
		if strings.HasPrefix(f[0], mod+"agent/store/") {
			continue
		}
		for _, imp := range f[1:] {
			if engines[imp] {
				t.Errorf("%s imports the engine %s; use agent/store and agent/store/engine", f[0], imp)
			}
		}
	}
}

// Without a MongoDB URI the agent's store is the embedded engine in the
// data directory, which one process holds at a time; with one, MongoDB.
func TestOpenChoosesTheEngine(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, kind, err := engine.Open(ctx, engine.Config{DataDir: dir})
	if err != nil || kind != engine.Embedded {
		t.Fatalf("open with a data directory: %s, %v; want the embedded engine", kind, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "store", "agent.db")); err != nil {
		t.Errorf("the embedded engine's file: %v", err)
	}
	if _, _, err := engine.Open(ctx, engine.Config{DataDir: dir}); !errors.Is(err, sqlite.ErrLocked) {
		t.Errorf("a second open of the same directory: %v, want ErrLocked", err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}

	m, kind, err := engine.Open(ctx, engine.Config{MongoURI: ferrettest.Start(t), DataDir: dir})
	if err != nil || kind != engine.MongoDB {
		t.Fatalf("open with a MongoDB URI: %s, %v; want MongoDB", kind, err)
	}
	m.Close(ctx)

	if _, _, err := engine.Open(ctx, engine.Config{}); err == nil {
		t.Error("open with neither a URI nor a data directory succeeded")
	}
}
