package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Errors of Open and Write, beside those of SQLite and the caller's
// context.
var (
	// ErrOldFormat says the data directory holds the store of the old
	// embedded format (FerretDB over SQLite), which this engine cannot
	// read and must not start empty beside.
	ErrOldFormat = errors.New("sqlite: data directory holds a store of the old embedded format (FerretDB)")
	// ErrNewerSchema says the store was written by a binary that knows
	// more schema versions than this one.
	ErrNewerSchema = errors.New("sqlite: store has a newer schema than this binary knows")
	// ErrClosed is returned by Write once Close has begun.
	ErrClosed = errors.New("sqlite: store is closed")
)

// Where the engine keeps its file, relative to the data directory. It is
// a folder of its own so that the WAL and shared-memory files beside the
// database stay apart from anything else in the data directory, and it
// is never oldDir, which FerretDB's files own.
const (
	storeDir = "store"
	fileName = "agent.db"
	oldDir   = "db"
)

// FilePath is the database file of the store in the data directory
// dataDir, whether it exists or not.
func FilePath(dataDir string) string { return filepath.Join(dataDir, storeDir, fileName) }

// Config says where the store lives and how it is run. Only Dir is
// required; every zero field takes its default.
type Config struct {
	// Dir is the agent's data directory (--data-dir); the database is
	// Dir/store/agent.db.
	Dir    string
	Logger *slog.Logger
	// Readers is how many read connections the read pool holds
	// (default 4). Readers never wait for the writer in WAL mode.
	Readers int
	// QueueSize bounds the changes submitted and not yet taken by the
	// writer (default 1024); Write blocks while it is full.
	QueueSize int
	// MaxBatch bounds the changes committed in one transaction
	// (default 256), which bounds how long a change waits behind others.
	MaxBatch int
	// BusyTimeout is how long a connection waits for a lock held by
	// another process on the file, such as a backup (default 5 s).
	BusyTimeout time.Duration
	// SyncNormal trades durability on power loss for commit latency:
	// see the package documentation. The default is synchronous=FULL.
	SyncNormal bool

	// migrations replaces the schema's migrations, for tests.
	migrations []string
}

// DB is the embedded store's database: one writer connection, owned by
// a goroutine that commits submitted changes in groups, and a pool of
// read-only connections.
type DB struct {
	path string
	log  *slog.Logger

	writer *sql.DB
	conn   *sql.Conn // the writer's one connection, used only by run
	wstmts stmtCache // on conn; used only by run

	readers *sql.DB
	rstmts  lockedStmtCache

	maxBatch int
	queue    chan *request
	// mu orders Write's sends before Close's close(queue): a Write holds
	// it shared while it sends, Close holds it to set closed.
	mu     sync.RWMutex
	closed bool
	done   chan struct{} // closed when run has returned

	closeOnce sync.Once
	closeErr  error

	lock *os.File // the directory's lock, held until Close

	batches atomic.Uint64
	changes atomic.Uint64
}

// Open opens the store in cfg.Dir, creating it if it does not exist and
// migrating its schema to the version this binary knows. It refuses a
// data directory that holds the old embedded format and a store whose
// schema is newer than this binary's.
func Open(ctx context.Context, cfg Config) (*DB, error) {
	if cfg.Dir == "" {
		return nil, errors.New("sqlite: no data directory")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Readers <= 0 {
		cfg.Readers = 4
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 1024
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 256
	}
	if cfg.BusyTimeout <= 0 {
		cfg.BusyTimeout = 5 * time.Second
	}
	if cfg.migrations == nil {
		cfg.migrations = migrations
	}
	path := FilePath(cfg.Dir)
	dir := filepath.Dir(path)
	// The check comes before anything is created, so that a refused
	// directory is left as it was found.
	if err := checkOldFormat(ctx, cfg.Dir, path); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("sqlite: create %s: %w", dir, err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}

	db := &DB{
		path:     path,
		log:      cfg.Logger,
		maxBatch: cfg.MaxBatch,
		queue:    make(chan *request, cfg.QueueSize),
		done:     make(chan struct{}),
		wstmts:   stmtCache{m: map[string]*sql.Stmt{}},
		rstmts:   lockedStmtCache{c: stmtCache{m: map[string]*sql.Stmt{}}},
		lock:     lock,
	}
	if err := db.openWriter(ctx, cfg); err != nil {
		db.closeConns()
		return nil, err
	}
	if err := db.migrate(ctx, cfg.migrations); err != nil {
		db.closeConns()
		return nil, err
	}
	if err := db.openReaders(ctx, cfg); err != nil {
		db.closeConns()
		return nil, err
	}
	go db.run()
	return db, nil
}

// dsn builds the driver's name for the file with pragmas the driver
// runs on every new connection, so that a connection database/sql opens
// again later is set up like the first.
func dsn(path string, pragmas ...string) string {
	q := url.Values{}
	for _, p := range pragmas {
		q.Add("_pragma", p)
	}
	return "file:" + path + "?" + q.Encode()
}

// writerCacheKiB is the page cache of the writer's connection.
const writerCacheKiB = 64 << 10

func (db *DB) openWriter(ctx context.Context, cfg Config) error {
	// synchronous=FULL makes each COMMIT wait for the WAL's fsync, so an
	// acknowledged change survives an OS crash or power loss as well as
	// kill -9 of the process. NORMAL would survive kill -9 too (the WAL
	// is written before COMMIT returns; only its fsync is deferred to
	// checkpoints) but may lose the last commits on power loss. Group
	// commit pays FULL's fsync once per batch, not once per change,
	// which is why it is the default.
	sync := "synchronous(FULL)"
	if cfg.SyncNormal {
		sync = "synchronous(NORMAL)"
	}
	w, err := sql.Open("sqlite", dsn(db.path,
		"busy_timeout("+strconv.FormatInt(cfg.BusyTimeout.Milliseconds(), 10)+")",
		"journal_mode(WAL)",
		sync,
		"foreign_keys(1)",
		// Each change runs in a savepoint, whose journal keeps the
		// pages the change modifies as they were; past 64 KiB SQLite
		// spills it to a temporary file, a write system call per page,
		// which a batch of a few hundred measurements exceeds. In
		// memory it costs what the change modifies, once.
		"temp_store(MEMORY)",
		// A batch of measurements touches a leaf of each device's
		// place in the per-source index: a few thousand pages, beyond
		// SQLite's default cache of 2 MiB, which then spills dirty pages
		// to the WAL in the middle of the transaction and reads them
		// back (a third of the writer's time at 16,000 measurements/s).
		// The writer's cache is one per store, bounded here.
		"cache_size(-"+strconv.Itoa(writerCacheKiB)+")",
	))
	if err != nil {
		return fmt.Errorf("sqlite: open %s: %w", db.path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	db.writer = w
	conn, err := w.Conn(ctx)
	if err != nil {
		return fmt.Errorf("sqlite: open %s: %w", db.path, err)
	}
	db.conn = conn
	var mode string
	if err := conn.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("sqlite: open %s: journal mode: %w", db.path, err)
	}
	if mode != "wal" {
		return fmt.Errorf("sqlite: open %s: journal mode is %q, not wal", db.path, mode)
	}
	return nil
}

func (db *DB) openReaders(ctx context.Context, cfg Config) error {
	r, err := sql.Open("sqlite", dsn(db.path,
		"busy_timeout("+strconv.FormatInt(cfg.BusyTimeout.Milliseconds(), 10)+")",
		// A read connection that cannot write keeps every write on the
		// one writer, whose batches are the only transactions that
		// take the file's write lock.
		"query_only(1)",
	))
	if err != nil {
		return fmt.Errorf("sqlite: open readers of %s: %w", db.path, err)
	}
	r.SetMaxOpenConns(cfg.Readers)
	r.SetMaxIdleConns(cfg.Readers)
	r.SetConnMaxLifetime(0)
	r.SetConnMaxIdleTime(0)
	db.readers = r
	if err := r.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: open readers of %s: %w", db.path, err)
	}
	return nil
}

// Path is the database file's path.
func (db *DB) Path() string { return db.path }

// Close stops accepting changes, commits every change already submitted,
// answers its caller, then closes the connections.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		db.mu.Lock()
		db.closed = true
		db.mu.Unlock()
		close(db.queue)
		<-db.done
		db.closeErr = db.closeConns()
	})
	return db.closeErr
}

func (db *DB) closeConns() error {
	var errs []error
	db.wstmts.close()
	db.rstmts.close()
	if db.conn != nil {
		errs = append(errs, db.conn.Close())
	}
	if db.writer != nil {
		errs = append(errs, db.writer.Close())
	}
	if db.readers != nil {
		errs = append(errs, db.readers.Close())
	}
	// after the connections, so that the next holder finds them closed
	if db.lock != nil {
		errs = append(errs, db.lock.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlite: close %s: %w", db.path, err)
	}
	return nil
}
