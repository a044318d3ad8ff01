package mongo_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/ferrettest"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/mongo"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/storetest"
)

// Agents sharing one database each open their own store: their locks
// are not shared, and of them sending one operation at once one does.
func TestReplicasSendOnce(t *testing.T) {
	uri := ferrettest.Start(t)
	a, b := storetest.OpenMongoAt(t, uri), storetest.OpenMongoAt(t, uri)
	ctx := context.Background()
	dev, err := a.CreateDevice(ctx, "acme", "ep")
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		op, err := b.CreateOperation(ctx, "acme", store.Operation{DeviceID: dev, HasCommand: true, Text: "execute /3/0/4"})
		if err != nil {
			t.Fatal(err)
		}
		storetest.RaceSend(t, []store.Engine{a, b}, "acme", op, 6)
	}
}

// Of agents taking one free lease at once, one gets it.
func TestReplicasLeaseOnce(t *testing.T) {
	uri := ferrettest.Start(t)
	stores := []*mongo.Store{storetest.OpenMongoAt(t, uri), storetest.OpenMongoAt(t, uri)}
	ctx := context.Background()
	for i := range 5 {
		name := fmt.Sprint("lease", i)
		got := make([]bool, 4)
		errs := make([]error, 4)
		var wg sync.WaitGroup
		at := time.Now().UTC()
		for j := range got {
			wg.Go(func() {
				got[j], errs[j] = stores[j%2].AcquireLease(ctx, name, fmt.Sprint("replica", j), at, time.Minute)
			})
		}
		wg.Wait()
		n := 0
		for j := range got {
			if errs[j] != nil {
				t.Fatal(errs[j])
			}
			if got[j] {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("lease %s: %d holders, want 1", name, n)
		}
	}
}
