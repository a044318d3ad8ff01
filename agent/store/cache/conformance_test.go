package cache_test

import (
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/testbound"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/cache"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/storetest"
)

// The MongoDB engine behind the cache keeps the storage contract: every
// answer the suite checks after its writes is what the engine alone
// gives. The cache is large enough never to push anything out, so that
// a write that failed to drop an answer shows as a stale read.
func TestConformance(t *testing.T) {
	testbound.Bound(t, 5*time.Minute)
	storetest.Run(t, func(t *testing.T) store.Engine {
		return cache.New(cache.Config{Size: 1000}).Wrap(storetest.OpenTest(t))
	})
}
