package sqlite_test

import (
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/storetest"
)

// The embedded engine keeps the storage contract.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Engine { return storetest.OpenEmbedded(t) })
}

// A store goes from this engine to MongoDB and back whole, for every
// kind both engines have.
func TestDumpCrossEngine(t *testing.T) {
	storetest.RunCrossEngine(t,
		func(t *testing.T) store.Engine { return storetest.OpenEmbedded(t) },
		func(t *testing.T) store.Engine { return storetest.OpenMongo(t) })
}
