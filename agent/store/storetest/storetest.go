// Package storetest opens real stores for tests: the embedded database in
// a temporary directory, closed when the test ends.
package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// OpenTest opens an embedded store in t.TempDir() and closes it at cleanup.
func OpenTest(t testing.TB) *store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := store.Open(ctx, store.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatalf("open test store: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("close test store: %v", err)
		}
	})
	return s
}
