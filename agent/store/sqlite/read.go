package sqlite

import (
	"context"
	"database/sql"
	"sync"
)

// maxStmts bounds a statement cache. The store's SQL texts are constants,
// far fewer than this; a text past the bound is prepared for its one use
// and closed, so that SQL built at run time cannot grow the cache.
const maxStmts = 512

// preparer is a *sql.Conn (statements bound to the writer's connection)
// or a *sql.DB (statements that database/sql prepares again on each
// pooled connection that runs them, once per connection).
type preparer interface {
	PrepareContext(ctx context.Context, query string) (*sql.Stmt, error)
}

type stmtCache struct {
	m map[string]*sql.Stmt
}

// get returns the statement of query and what to call once its use is
// over (closing it, if it is not cached).
func (c *stmtCache) get(ctx context.Context, p preparer, query string) (*sql.Stmt, func(), error) {
	if s, ok := c.m[query]; ok {
		return s, func() {}, nil
	}
	s, err := p.PrepareContext(ctx, query)
	if err != nil {
		return nil, nil, err
	}
	if len(c.m) >= maxStmts {
		return s, func() { s.Close() }, nil
	}
	c.m[query] = s
	return s, func() {}, nil
}

func (c *stmtCache) close() {
	for q, s := range c.m {
		s.Close()
		delete(c.m, q)
	}
}

// lockedStmtCache is the read pool's cache, used by any goroutine.
type lockedStmtCache struct {
	mu sync.Mutex
	c  stmtCache
}

func (c *lockedStmtCache) get(ctx context.Context, p preparer, query string) (*sql.Stmt, func(), error) {
	c.mu.Lock()
	if s, ok := c.c.m[query]; ok {
		c.mu.Unlock()
		return s, func() {}, nil
	}
	c.mu.Unlock()
	// Prepared outside the lock: preparing waits for a free connection.
	s, err := p.PrepareContext(ctx, query)
	if err != nil {
		return nil, nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.c.m[query]; ok {
		s.Close()
		return old, func() {}, nil
	}
	if len(c.c.m) >= maxStmts {
		return s, func() { s.Close() }, nil
	}
	c.c.m[query] = s
	return s, func() {}, nil
}

func (c *lockedStmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.c.close()
}

// Query runs a query on the read pool. Reads see the last commit made
// before they began and never wait for the writer.
func (db *DB) Query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	stmt, done, err := db.rstmts.get(ctx, db.readers, query)
	if err != nil {
		return nil, err
	}
	// Closing an uncached statement here is safe: database/sql finalizes
	// it only once its rows are closed.
	defer done()
	return stmt.QueryContext(ctx, args...)
}

// QueryRow runs a query for one row on the read pool.
func (db *DB) QueryRow(ctx context.Context, query string, args ...any) *sql.Row {
	stmt, done, err := db.rstmts.get(ctx, db.readers, query)
	if err != nil {
		// sql.Row cannot be built with an error outside database/sql;
		// a query without a statement carries it the same way.
		return db.readers.QueryRowContext(ctx, query, args...)
	}
	defer done()
	return stmt.QueryRowContext(ctx, args...)
}

// queryOnce runs on the read pool a query whose text is built at run
// time (a list's filter): it is prepared for this one use, so that such
// texts never take the places of the store's constant statements in the
// cache.
func (db *DB) queryOnce(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return db.readers.QueryContext(ctx, query, args...)
}

// queryRowOnce is queryOnce for one row.
func (db *DB) queryRowOnce(ctx context.Context, query string, args ...any) *sql.Row {
	return db.readers.QueryRowContext(ctx, query, args...)
}

// ReadTx begins a read transaction on the read pool: every query of it
// sees the same commit, the last one made before its first read, however
// long it lasts (the WAL keeps that snapshot), as an export needs.
// The caller must end it with Rollback (or Commit).
func (db *DB) ReadTx(ctx context.Context) (*sql.Tx, error) {
	return db.readers.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
}
