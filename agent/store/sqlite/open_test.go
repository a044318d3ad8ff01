package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// testSchema is a schema of the tests' own, so that they do not depend
// on the contract's tables.
var testSchema = []string{
	`CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL) STRICT`,
	`CREATE UNIQUE INDEX t_v ON t (v)`,
}

func open(t testing.TB, dir string, cfg Config) *DB {
	t.Helper()
	cfg.Dir = dir
	if cfg.migrations == nil {
		cfg.migrations = testSchema
	}
	db, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// intOf reads the one integer the query answers, on the read pool.
func intOf(t testing.TB, db *DB, query string, args ...any) int {
	t.Helper()
	var v int
	if err := db.QueryRow(context.Background(), query, args...).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func userVersion(t *testing.T, db *DB) int {
	t.Helper()
	return intOf(t, db, "PRAGMA user_version")
}

func TestOpenCreatesAndMigrates(t *testing.T) {
	dir := t.TempDir()
	db := open(t, dir, Config{migrations: migrations})
	if want := filepath.Join(dir, "store", "agent.db"); db.Path() != want {
		t.Fatalf("path %s, want %s", db.Path(), want)
	}
	if v := userVersion(t, db); v != len(migrations) {
		t.Fatalf("user_version %d, want %d", v, len(migrations))
	}
	var mode, fk, sync, cache string
	ctx := context.Background()
	for q, dst := range map[string]*string{"PRAGMA journal_mode": &mode, "PRAGMA foreign_keys": &fk, "PRAGMA synchronous": &sync, "PRAGMA cache_size": &cache} {
		err := db.Write(ctx, func(tx *Tx) error { return tx.QueryRow(q).Scan(dst) })
		if err != nil {
			t.Fatal(q, err)
		}
	}
	// synchronous 2 is FULL.
	if mode != "wal" || fk != "1" || sync != "2" {
		t.Fatalf("writer: journal_mode %s, foreign_keys %s, synchronous %s", mode, fk, sync)
	}
	// negative: KiB, not pages
	if want := "-" + strconv.Itoa(writerCacheKiB); cache != want {
		t.Fatalf("writer: cache_size %s, want %s", cache, want)
	}
	if _, err := db.Query(ctx, "INSERT INTO meta VALUES ('k', 'v')"); err == nil {
		t.Fatal("a read connection wrote")
	}
}

func TestMigrateUpInSteps(t *testing.T) {
	dir := t.TempDir()
	db := open(t, dir, Config{migrations: testSchema[:1]})
	ctx := context.Background()
	if err := db.Write(ctx, func(tx *Tx) error {
		_, err := tx.Exec("INSERT INTO t (id, v) VALUES (1, 'a'), (2, 'a')")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if v := userVersion(t, db); v != 1 {
		t.Fatalf("user_version %d, want 1", v)
	}
	db.Close()

	// Step 2 cannot apply to these rows: the store stays at version 1.
	_, err := Open(ctx, Config{Dir: dir, migrations: testSchema})
	if err == nil || !strings.Contains(err.Error(), "migrate to version 2") {
		t.Fatalf("Open: %v, want a failure of the migration to version 2", err)
	}
	db = open(t, dir, Config{migrations: testSchema[:1]})
	if v := userVersion(t, db); v != 1 {
		t.Fatalf("user_version after a failed step %d, want 1", v)
	}
	if err := db.Write(ctx, func(tx *Tx) error {
		_, err := tx.Exec("DELETE FROM t WHERE id = 2")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()

	db = open(t, dir, Config{migrations: testSchema})
	if v := userVersion(t, db); v != 2 {
		t.Fatalf("user_version %d, want 2", v)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	dir := t.TempDir()
	open(t, dir, Config{}).Close()
	_, err := Open(context.Background(), Config{Dir: dir, migrations: testSchema[:1]})
	if !errors.Is(err, ErrNewerSchema) {
		t.Fatalf("Open: %v, want ErrNewerSchema", err)
	}
	if !strings.Contains(err.Error(), "schema version 2") || !strings.Contains(err.Error(), "up to 1") {
		t.Fatalf("Open: %v, want both versions named", err)
	}
}

// ferretDB makes dir/db/lwm2m.sqlite as FerretDB 1.24's SQLite backend
// would: a database file with its metadata table.
func ferretDB(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "db"), 0o700); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", filepath.Join(dir, "db", "lwm2m.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE _ferretdb_collections (_jsonb TEXT)`); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRefusesOldFormat(t *testing.T) {
	dir := t.TempDir()
	ferretDB(t, dir)
	_, err := Open(context.Background(), Config{Dir: dir, migrations: testSchema})
	if !errors.Is(err, ErrOldFormat) {
		t.Fatalf("Open: %v, want ErrOldFormat", err)
	}
	if !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "store copy --from mongodb:") {
		t.Fatalf("Open: %v, want the directory and what to do", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "store")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a refused Open made the store's folder: %v", err)
	}
}

func TestOpenOldFormatBesideNewStore(t *testing.T) {
	dir := t.TempDir()
	open(t, dir, Config{}).Close()
	ferretDB(t, dir)
	// The new store exists: the old files are someone's leftovers.
	open(t, dir, Config{}).Close()
}

func TestOpenIgnoresOtherFiles(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "db"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "db", "notes.sqlite"), []byte("not a database"), 0o600); err != nil {
		t.Fatal(err)
	}
	other, err := sql.Open("sqlite", filepath.Join(dir, "db", "other.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Exec(`CREATE TABLE x (a)`); err != nil {
		t.Fatal(err)
	}
	other.Close()
	open(t, dir, Config{}).Close()
}

// A second open of one data directory, while the first holds it, is
// refused with the holder's pid; once the first is closed it succeeds.
func TestSecondOpenRefused(t *testing.T) {
	dir := t.TempDir()
	first, err := Open(context.Background(), Config{Dir: dir, migrations: testSchema})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(context.Background(), Config{Dir: dir, migrations: testSchema})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), strconv.Itoa(os.Getpid())) {
		t.Fatalf("second open: %v, want ErrLocked naming pid %d", err, os.Getpid())
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again := open(t, dir, Config{})
	again.Close()
}
