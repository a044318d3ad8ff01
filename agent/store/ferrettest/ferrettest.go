// Package ferrettest runs a MongoDB-wire server for tests: FerretDB over
// SQLite, in the test's temporary directory. The MongoDB engine of the
// store is tested against it; the agent itself never links it.
package ferrettest

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// Start runs a server over a fresh directory until the test ends and
// returns its URI.
func Start(t testing.TB) string {
	t.Helper()
	return StartIn(t, t.TempDir())
}

// StartIn runs a server over dir (kept between runs, to test restarts)
// until the test ends and returns its URI.
func StartIn(t testing.TB, dir string) string {
	t.Helper()
	uri, stop, err := Run(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return uri
}

// Run starts a server on a loopback port over dir and returns its URI
// and the function that stops it; log nil discards its logs. For
// benchmarks and tools that outlive one test.
func Run(dir string, log *slog.Logger) (uri string, stop func(), err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", nil, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", nil, err
	}
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: "127.0.0.1:0"},
		Handler:   "sqlite",
		SQLiteURL: "file:" + abs + "/?_pragma=synchronous(normal)",
		Logger:    log,
	})
	if err != nil {
		return "", nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = f.Run(ctx)
	}()
	// MongoDBURI waits for the listener Run sets up.
	return f.MongoDBURI(), func() { cancel(); <-done }, nil
}
