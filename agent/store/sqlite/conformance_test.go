package sqlite_test

import (
	"context"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/sqlite"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/storetest"
)

// The embedded engine keeps the storage contract.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Engine {
		e, err := sqlite.OpenEngine(context.Background(), sqlite.Config{Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := e.Close(context.Background()); err != nil {
				t.Errorf("close: %v", err)
			}
		})
		return e
	})
}
