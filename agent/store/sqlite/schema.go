package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// migrations are the schema's steps, in order: migrations[i] takes the
// store from version i to i+1, the version kept in PRAGMA user_version.
// A step is never edited once released, only followed by another, so
// that every store reaches the same schema whichever version made it.
var migrations = []string{
	// 1: what the store says of itself, such as the version that made
	// it; the contract's collections come in the steps after.
	`CREATE TABLE meta (
		key   TEXT PRIMARY KEY,
		value TEXT NOT NULL
	) STRICT, WITHOUT ROWID`,

	// 2: tenants and their users, the bindings of endpoints and PSK
	// identities that a device's exchange starts with, the devices'
	// registration records, and the id counter.
	//
	// Every table is STRICT, so that a value of the wrong type is an
	// error rather than stored as something no query finds, and WITHOUT
	// ROWID where the primary key is the lookup: the row is in the key's
	// b-tree and a point read is one descent.
	//
	// Users name their tenant without a foreign key, as in the MongoDB
	// engine, whose CreateUser does not look the tenant up: both engines
	// answer the same. Device ids are TEXT, as the contract passes them.
	// An endpoint and a PSK identity belong to one device across tenants
	// (a handshake carries no tenant), hence their keys without the
	// tenant; the (tenant, device) indexes serve the removal of a
	// device's bindings. Registration records keep what the agent filters
	// on in columns (the pending markers) and what it only hands back in
	// JSON (params, the identities to release). The partial index holds
	// only records of an unfinished change, which the start scans for.
	//
	// Ids come from a counter row, not from AUTOINCREMENT: the agent's
	// ids are one sequence shared by managed objects, operations, events,
	// alarms and measurements (as in the MongoDB engine), and
	// AUTOINCREMENT numbers each table apart.
	`CREATE TABLE tenants (
		id      TEXT PRIMARY KEY,
		domain  TEXT NOT NULL,
		created INTEGER NOT NULL -- Unix milliseconds
	) STRICT, WITHOUT ROWID;
	CREATE TABLE users (
		tenant TEXT NOT NULL,
		name   TEXT NOT NULL,
		hash   BLOB NOT NULL,
		roles  TEXT NOT NULL, -- JSON array
		PRIMARY KEY (tenant, name)
	) STRICT, WITHOUT ROWID;
	CREATE TABLE endpoints (
		endpoint TEXT PRIMARY KEY,
		tenant   TEXT NOT NULL,
		device   TEXT NOT NULL
	) STRICT, WITHOUT ROWID;
	CREATE INDEX endpoints_device ON endpoints (tenant, device);
	CREATE TABLE psk_identities (
		kind     TEXT NOT NULL,
		identity TEXT NOT NULL,
		tenant   TEXT NOT NULL,
		device   TEXT NOT NULL,
		PRIMARY KEY (kind, identity)
	) STRICT, WITHOUT ROWID;
	CREATE INDEX psk_identities_device ON psk_identities (tenant, device);
	CREATE TABLE registrations (
		tenant            TEXT NOT NULL,
		device            TEXT NOT NULL,
		params            TEXT,    -- JSON object; NULL for none
		psk_key           BLOB,
		bootstrap_psk_key BLOB,
		credentials_hash  BLOB,
		serialization     TEXT,
		updated           INTEGER, -- Unix milliseconds; NULL if only serialization was set
		pending_create    INTEGER NOT NULL DEFAULT 0,
		pending_delete    INTEGER NOT NULL DEFAULT 0,
		pending_release   TEXT,    -- JSON object, kind to identity; NULL for none
		PRIMARY KEY (tenant, device)
	) STRICT, WITHOUT ROWID;
	CREATE INDEX registrations_pending ON registrations (tenant, device)
		WHERE pending_create OR pending_delete OR pending_release IS NOT NULL;
	CREATE TABLE counters (
		name  TEXT PRIMARY KEY,
		value INTEGER NOT NULL
	) STRICT, WITHOUT ROWID`,

	// 3: managed objects and their external IDs.
	//
	// An object keeps its fixed members in columns and its fragments in
	// one JSON object, so that an update merges fragments in the
	// statement that writes them (json_set, json_remove) and two updates
	// of one object never write back each other's reads. seq is the
	// object's number from the id counter: lists are in its order, as in
	// the MongoDB engine, which a TEXT id would not give ("10" < "9").
	// An external ID names one object of its tenant; the (tenant, device)
	// index serves listing and removing an object's external IDs.
	`CREATE TABLE managed_objects (
		tenant        TEXT NOT NULL,
		id            TEXT NOT NULL,
		seq           INTEGER NOT NULL,
		name          TEXT NOT NULL,
		type          TEXT NOT NULL,
		creation_time INTEGER NOT NULL, -- Unix milliseconds
		last_updated  INTEGER NOT NULL, -- Unix milliseconds
		fragments     TEXT NOT NULL,    -- JSON object
		PRIMARY KEY (tenant, id)
	) STRICT, WITHOUT ROWID;
	CREATE UNIQUE INDEX managed_objects_seq ON managed_objects (tenant, seq);
	CREATE INDEX managed_objects_type ON managed_objects (tenant, type, seq);
	CREATE TABLE external_ids (
		tenant      TEXT NOT NULL,
		type        TEXT NOT NULL,
		external_id TEXT NOT NULL,
		device      TEXT NOT NULL,
		PRIMARY KEY (tenant, type, external_id)
	) STRICT, WITHOUT ROWID;
	CREATE INDEX external_ids_device ON external_ids (tenant, device)`,

	// 4: binaries (binaries.go).
	schemaBinaries,

	// 5: device protocols (protocols.go).
	schemaProtocols,

	// 6: measurements, events, alarms and last known values (telemetry.go).
	schemaTelemetry,

	// 7: operations, their queues and post-registration commands
	// (operations.go).
	schemaOperations,

	// 8: the live registrations' index (liveregs.go).
	schemaLiveRegistrations,

	// 9: the size limit of a managed object (limits.go).
	schemaLimits,

	// 10: expiring finished operations (retention.go).
	schemaRetention,

	// 11: the raw values waiting for their decoders (decodebacklog.go).
	schemaDecodeBacklog,

	// 12: the firmware grants (fwgrants.go).
	schemaFirmwareGrants,
	// 13: child references between managed objects (references.go).
	schemaReferences,

	// 14: bulk operations (bulkops.go).
	schemaBulkOperations,

	// 15: DTLS sessions (dtlssessions.go).
	schemaDTLSSessions,

	// 16: replicas' leases and watch for new operations (replicas.go).
	schemaReplicas,
}

// migrate brings the schema to len(steps), each step in its own
// transaction with the version it sets, so that a step cut short leaves
// the store at the version before it.
func (db *DB) migrate(ctx context.Context, steps []string) error {
	var have int
	if err := db.conn.QueryRowContext(ctx, "PRAGMA user_version").Scan(&have); err != nil {
		return fmt.Errorf("sqlite: read schema version of %s: %w", db.path, err)
	}
	if have > len(steps) {
		return fmt.Errorf("%w: %s has schema version %d and this binary knows versions up to %d; "+
			"it was written by a newer lwm2m-agent, which is the one to run on it", ErrNewerSchema, db.path, have, len(steps))
	}
	for v := have; v < len(steps); v++ {
		if err := db.step(ctx, v+1, steps[v]); err != nil {
			return fmt.Errorf("sqlite: migrate to version %d: %w", v+1, err)
		}
		db.log.Info("store schema migrated", "path", db.path, "version", v+1)
	}
	return nil
}

func (db *DB) step(ctx context.Context, version int, stmt string) (err error) {
	if _, err := db.conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_, _ = db.conn.ExecContext(context.Background(), "ROLLBACK")
		}
	}()
	if _, err := db.conn.ExecContext(ctx, stmt); err != nil {
		return err
	}
	// user_version cannot be a bound parameter; version is an int.
	if _, err := db.conn.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", version)); err != nil {
		return err
	}
	_, err = db.conn.ExecContext(ctx, "COMMIT")
	return err
}

// CheckOldFormat is ErrOldFormat, with the way out, for a data directory
// of the old embedded format without a store of this engine; nil
// otherwise. It creates nothing.
func CheckOldFormat(ctx context.Context, dataDir string) error {
	return checkOldFormat(ctx, dataDir, "")
}

// checkOldFormat refuses a data directory whose db folder holds
// FerretDB's SQLite files while the new store does not exist yet: an
// empty store beside them would look like a lost inventory. FerretDB
// 1.24's SQLite backend keeps a database <name> in <name>.sqlite with a
// _ferretdb_collections table (_ferretdb_database_metadata in some 1.x releases).
func checkOldFormat(ctx context.Context, dataDir, newPath string) error {
	if newPath == "" {
		newPath = FilePath(dataDir)
	}
	if _, err := os.Stat(newPath); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("sqlite: %w", err)
	}
	dir := filepath.Join(dataDir, oldDir)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sqlite: read %s: %w", dir, err)
	}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sqlite") {
			continue
		}
		file := filepath.Join(dir, e.Name())
		old, err := isFerretDB(ctx, file)
		if err != nil {
			return fmt.Errorf("sqlite: check %s for the old embedded format: %w", file, err)
		}
		if old {
			return fmt.Errorf("%w: %s holds FerretDB's files (%s), which this version does not read; "+
				"to move them into this version's store, serve them with FerretDB 1.x "+
				"(ferretdb --handler=sqlite --sqlite-url=file:%s/ --listen-addr=127.0.0.1:27017) and run "+
				"`lwm2m-agent store copy --from mongodb://127.0.0.1:27017/ --to dir:NEW_DATA_DIR`, "+
				"then start the agent on NEW_DATA_DIR (the old files are left as they are)", ErrOldFormat, dataDir, e.Name(), dir)
		}
	}
	return nil
}

func isFerretDB(ctx context.Context, file string) (bool, error) {
	f, err := os.Open(file)
	if err != nil {
		return false, err
	}
	head := make([]byte, 16)
	_, err = io.ReadFull(f, head)
	f.Close()
	if err != nil || !bytes.Equal(head, []byte("SQLite format 3\x00")) {
		// An empty file beside its write-ahead log is a database whose
		// writer never checkpointed (killed): all of it is in the log.
		// Anything else too short or of another kind is no database.
		if fi, serr := os.Stat(file); serr == nil && fi.Size() == 0 {
			if _, werr := os.Stat(file + "-wal"); werr == nil {
				return true, nil
			}
		}
		return false, nil
	}
	// Read-only and without creating anything, so the old store is left
	// as it was.
	db, err := sql.Open("sqlite", "file:"+file+"?mode=ro")
	if err != nil {
		return false, err
	}
	defer db.Close()
	var n int
	err = db.QueryRowContext(ctx,
		"SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('_ferretdb_collections', '_ferretdb_database_metadata')").Scan(&n)
	if err != nil {
		return false, err
	}
	return n > 0, nil
}
