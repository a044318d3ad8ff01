package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// Store is the embedded engine of the storage contract over a DB.
type Store struct {
	db   *DB
	auth *store.LoginCache
	ids  idBlock // device ids reserved ahead (NewDeviceID)
}

var (
	_ store.Tenants         = (*Store)(nil)
	_ store.Devices         = (*Store)(nil)
	_ store.Identities      = (*Store)(nil)
	_ store.Registrations   = (*Store)(nil)
	_ store.Binaries        = (*Store)(nil)
	_ store.ProtocolRecords = (*Store)(nil)
	_ store.Operations      = (*Store)(nil)
)

// New returns the engine over db. The caller keeps db and closes it.
func New(db *DB) *Store {
	return &Store{db: db, auth: store.NewLoginCache()}
}

// scanner is a row of the read pool (*sql.Row) or of a change (*Row),
// so that one function decodes a table's row wherever it was read.
type scanner interface {
	Scan(dest ...any) error
}

// notFound turns a missing row into the contract's ErrNotFound, with
// what was looked for; other errors get the same context.
func notFound(err error, what string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", what, err)
	}
	return nil
}

// blob is a key for a nullable BLOB column: the MongoDB engine stores
// no field for an empty key, and reads it back as nil.
func blob(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// Engine is the embedded engine with its database: Close closes both.
type Engine struct {
	*Store
}

var _ store.Engine = Engine{}

// OpenEngine opens the database in cfg.Dir and the engine over it, and
// finishes what a crash left half done: binaries whose upload or
// deletion was under way are removed, the device changes a stop cut
// short are finished (repairDevices), and the leases of the decode
// backlog, all of an earlier run, end.
func OpenEngine(ctx context.Context, cfg Config) (Engine, error) {
	db, err := Open(ctx, cfg)
	if err != nil {
		return Engine{}, err
	}
	s := New(db)
	if err := s.removeUnfinishedBinaries(ctx); err != nil {
		db.Close()
		return Engine{}, fmt.Errorf("sqlite: open: %w", err)
	}
	if err := s.repairDevices(ctx); err != nil {
		db.Close()
		return Engine{}, fmt.Errorf("sqlite: open: %w", err)
	}
	if err := s.releaseDecodeLeases(ctx); err != nil {
		db.Close()
		return Engine{}, fmt.Errorf("sqlite: open: %w", err)
	}
	return Engine{s}, nil
}

// Close commits what is submitted and closes the database.
func (e Engine) Close(ctx context.Context) error { return e.db.Close() }
