package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync/atomic"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// A request's state: the writer takes a queued request and a cancelled
// caller withdraws it, whichever comes first, so that a change is either
// applied and answered or never applied.
const (
	queued int32 = iota
	taken
	withdrawn
)

type request struct {
	fn    func(*Tx) error
	state atomic.Int32
	done  chan result // buffered: the writer never waits for the caller
}

type result struct {
	err      error
	panicked any // a panic of the change, raised again in its caller
	did      bool
}

// Write submits a change and returns once it is committed and durable,
// with the change's own error if it failed (it is then rolled back, and
// only it), or the batch's error if its transaction could not commit.
//
// fn runs on the writer's goroutine inside a savepoint of a transaction
// shared with other callers' changes; it must use only tx, must not keep
// tx, and must not wait on other Writes. It may run once at the most.
//
// If ctx ends before the writer has taken the change, Write returns
// ctx.Err() and the change is never applied. Once the writer has taken
// it, Write waits for its outcome (at the most one batch) and returns
// that, so that a nil error always means the change is durable and an
// error other than ctx's always means it is not.
func (db *DB) Write(ctx context.Context, fn func(tx *Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	req := &request{fn: fn, done: make(chan result, 1)}
	if err := db.submit(ctx, req); err != nil {
		return err
	}
	var res result
	select {
	case res = <-req.done:
	case <-ctx.Done():
		if req.state.CompareAndSwap(queued, withdrawn) {
			return ctx.Err()
		}
		res = <-req.done
	}
	if res.panicked != nil {
		panic(res.panicked)
	}
	return res.err
}

func (db *DB) submit(ctx context.Context, req *request) error {
	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.closed {
		return ErrClosed
	}
	select {
	case db.queue <- req:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run is the writer: it takes what is queued, up to maxBatch changes,
// commits it in one transaction and answers each caller, until Close
// closes the queue and everything in it has been committed. It does not
// wait for a batch to fill: changes queue up while the one before
// commits, so a batch is as large as the load makes it and a lone change
// waits for no one.
func (db *DB) run() {
	defer close(db.done)
	batch := make([]*request, 0, db.maxBatch)
	for {
		req, ok := <-db.queue
		if !ok {
			return
		}
		batch = batch[:0]
		if req.state.CompareAndSwap(queued, taken) {
			batch = append(batch, req)
		}
	fill:
		for len(batch) < db.maxBatch {
			select {
			case req, ok := <-db.queue:
				if !ok {
					break fill
				}
				if req.state.CompareAndSwap(queued, taken) {
					batch = append(batch, req)
				}
			default:
				break fill
			}
		}
		if len(batch) > 0 {
			db.commit(batch)
		}
		clear(batch)
	}
}

// The writer's context: a caller's cancellation must not cut short a
// batch that carries other callers' changes.
var writerCtx = context.Background()

func (db *DB) commit(batch []*request) {
	results := make([]result, len(batch))
	err := db.applyAll(batch, results)
	if err != nil {
		// The transaction may still be open (a failed COMMIT) or
		// already rolled back by SQLite (an I/O error); ROLLBACK's own
		// error then says only that, so it is not reported.
		_, _ = db.wexec("ROLLBACK")
		for i := range results {
			// A change that failed on its own keeps its error; the
			// others were not applied, whatever fn returned.
			if results[i].did {
				results[i] = result{err: err}
			}
		}
	}
	db.batches.Add(1)
	db.changes.Add(uint64(len(batch)))
	for i, req := range batch {
		req.done <- results[i]
	}
}

func (db *DB) applyAll(batch []*request, results []result) error {
	if _, err := db.wexec("BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("sqlite: begin: %w", err)
	}
	for i, req := range batch {
		if err := db.apply(req, &results[i]); err != nil {
			return err
		}
	}
	if _, err := db.wexec("COMMIT"); err != nil {
		return fmt.Errorf("sqlite: commit: %w", err)
	}
	return nil
}

// apply runs one change in its own savepoint. Its return is an error of
// the batch (the savepoint could not be set, released or rolled back);
// the change's own error goes into res.
func (db *DB) apply(req *request, res *result) error {
	if _, err := db.wexec("SAVEPOINT change"); err != nil {
		return fmt.Errorf("sqlite: savepoint: %w", err)
	}
	tx := &Tx{db: db}
	func() {
		defer func() {
			if p := recover(); p != nil {
				res.panicked = p
			}
		}()
		res.err = req.fn(tx)
	}()
	tx.over = true
	tx.closeRows()
	if res.err == nil && res.panicked == nil {
		res.did = true
		if _, err := db.wexec("RELEASE change"); err != nil {
			return fmt.Errorf("sqlite: release savepoint: %w", err)
		}
		return nil
	}
	if _, err := db.wexec("ROLLBACK TO change"); err != nil {
		return fmt.Errorf("sqlite: roll back savepoint: %w", err)
	}
	if _, err := db.wexec("RELEASE change"); err != nil {
		return fmt.Errorf("sqlite: release savepoint: %w", err)
	}
	return nil
}

func (db *DB) wexec(query string, args ...any) (sql.Result, error) {
	stmt, done, err := db.wstmts.get(writerCtx, db.conn, query)
	if err != nil {
		return nil, err
	}
	defer done()
	return stmt.ExecContext(writerCtx, args...)
}

// Tx is a change's view of the writer's transaction. Statements are
// prepared once per SQL text on the writer's connection.
type Tx struct {
	db   *DB
	rows []*sql.Rows
	// over is set once the change has returned: a Tx kept past that
	// would write into another caller's savepoint.
	over bool
}

var errTxOver = errors.New("sqlite: Tx used after its change returned")

// Exec runs a statement of the change. A unique or primary key
// violation is reported as store.ErrConflict as well.
func (tx *Tx) Exec(query string, args ...any) (sql.Result, error) {
	if tx.over {
		return nil, errTxOver
	}
	r, err := tx.db.wexec(query, args...)
	return r, conflict(err)
}

// execOne runs a statement that must change a row: none changed is
// store.ErrNotFound (the row the caller named does not exist).
func (tx *Tx) execOne(query string, args ...any) error {
	res, err := tx.Exec(query, args...)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return nil
}

// Query runs a query of the change; rows left open when the change
// returns are closed then.
func (tx *Tx) Query(query string, args ...any) (*sql.Rows, error) {
	if tx.over {
		return nil, errTxOver
	}
	stmt, done, err := tx.db.wstmts.get(writerCtx, tx.db.conn, query)
	if err != nil {
		return nil, err
	}
	defer done()
	rows, err := stmt.QueryContext(writerCtx, args...)
	if err != nil {
		return nil, err
	}
	tx.rows = append(tx.rows, rows)
	return rows, nil
}

// QueryRow runs a query of the change for one row.
func (tx *Tx) QueryRow(query string, args ...any) *Row {
	rows, err := tx.Query(query, args...)
	return &Row{rows: rows, err: err}
}

func (tx *Tx) closeRows() {
	for _, r := range tx.rows {
		r.Close()
	}
	tx.rows = nil
}

// Row is the result of Tx.QueryRow, like sql.Row.
type Row struct {
	rows *sql.Rows
	err  error
}

// Scan copies the row's columns into dest; with no row it returns
// sql.ErrNoRows.
func (r *Row) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return sql.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	return r.rows.Close()
}

func conflict(err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return fmt.Errorf("%w: %w", store.ErrConflict, err)
		case sqlite3.SQLITE_CONSTRAINT_TRIGGER:
			// the triggers of schemaLimits
			return fmt.Errorf("%w: %w", store.ErrInvalid, err)
		}
	}
	return err
}
