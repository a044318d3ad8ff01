package mongo_test

import (
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/storetest"
)

// The current store, FerretDB over SQLite, keeps the storage contract.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Engine { return storetest.OpenMongo(t) })
}
