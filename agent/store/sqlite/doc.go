// Package sqlite is the agent's embedded storage engine: one SQLite file,
// DataDir/store/agent.db, reached through modernc.org/sqlite. It is the
// default engine behind the store's contract (agent/store), beside
// MongoDB; it may use the contract's package, never the reverse.
//
// # Driver
//
// modernc.org/sqlite is pure Go, so the agent stays one static binary
// with no C toolchain and no WebAssembly runtime; it is already a
// dependency (FerretDB's). Measured against ncruces/go-sqlite3 v0.37 on
// the agent's shapes of work, the two are equal: about 4.6 µs an insert
// in a transaction of 64 and 3.7 µs a point lookup by a unique index.
//
// # One writer, committing in groups
//
// SQLite takes one writer at a time, and a commit costs far more than
// the change in it (the WAL's fsync, the lock). So every change goes to
// one goroutine that owns the one writer connection: Write queues a
// function, the writer takes everything queued (up to Config.MaxBatch),
// runs it in one transaction and commits once, and only then answers
// each caller. It never waits for a batch to fill: under load changes
// queue while the previous batch commits, so batches grow with the load
// and a lone change commits at once. The queue is bounded
// (Config.QueueSize): when it is full Write blocks, which is the
// back-pressure on callers, and gives up with its context.
//
// Each change runs inside a SAVEPOINT of the batch's transaction. A
// change that returns an error (or panics) is rolled back to its
// savepoint and answered with its own error (the panic is raised again
// in its caller), while the changes beside it commit. Only an error of
// the batch itself (BEGIN, a savepoint, COMMIT: a full disk, an I/O
// error) fails every change of the batch, none of which is then applied.
// A change whose context ends while it is queued is withdrawn and never
// runs; once the writer has taken it, Write returns its outcome, so a
// nil error always means durable and another error always means not
// applied.
//
// Statements are kept per SQL text, on the writer connection for
// changes and on the read pool for reads (database/sql prepares a pool
// statement again on each connection that runs it); both caches are
// bounded. The driver is modernc.org/sqlite v1.62 or later: v1.32
// compiled the SQL text again on each execution, and with v1.62 the
// package's benchmarks run three to four times faster (writes) and twice
// as fast (point reads).
//
// # WAL and durability
//
// The file is in WAL mode, so readers never wait for the writer nor it
// for them, and a commit appends to the WAL instead of rewriting pages.
// synchronous is FULL: COMMIT returns only after the WAL is fsynced, so
// an acknowledged change survives kill -9, an OS crash and power loss.
// NORMAL (Config.SyncNormal) would survive kill -9 as well, since the
// WAL is written before COMMIT returns, but may lose the last commits on
// power loss; FULL is the default because group commit pays its fsync
// once per batch, not per change. A test kills a writing process with
// SIGKILL and finds every acknowledged change in the reopened file.
//
// # Reads
//
// Query and QueryRow run on a pool of connections (Config.Readers) set
// query_only, so that every write goes through the writer. A read sees
// the last commit made before it began.
//
// # Schema
//
// The schema is a list of migrations, applied in order, each in its own
// transaction together with PRAGMA user_version, the version it brings
// the file to. Open applies those the file lacks; it refuses a file
// whose version is beyond what the binary knows (ErrNewerSchema), since
// an older binary would misread or damage it.
//
// # Fragments
//
// A managed object's fragments are one JSON object, merged in place by
// the statements that update them. JSON has no time, so a time.Time is
// kept as {"$date": <Unix milliseconds>} and read back as a time.Time,
// as the MongoDB engine gives back its dates (jsondates.go); decodeJSON
// reads the engine's JSON into the values that engine answers. The
// inventory query language is rendered in SQL over that JSON with
// MongoDB's semantics (query.go).
//
// # The old format
//
// Before this engine, the embedded store was FerretDB over SQLite, with
// its files in DataDir/db (<database>.sqlite, with a
// _ferretdb_collections table). This engine cannot read them, and
// starting empty beside them would look like a lost inventory. So Open
// on a data directory that holds them and no store of this engine fails
// with ErrOldFormat, saying what to do, before it creates anything.
package sqlite
