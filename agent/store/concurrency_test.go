package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/storetest"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// A registration burst: many devices created at once while registration
// state of hundreds of devices is written in bulk. On the embedded store a
// long bulk update used to hold a database connection per statement until
// every request waited forever; here everything must complete.
func TestConcurrentDevicesAndBulkUpdates(t *testing.T) {
	st := storetest.OpenTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const workers, each = 32, 20
	ids := make(chan string, workers*each)
	var wg sync.WaitGroup
	for g := 0; g < workers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				id, err := st.CreateDevice(ctx, "management", fmt.Sprintf("burst-%d-%d", g, i))
				if err != nil {
					t.Error(err)
					return
				}
				ids <- id
			}
		}()
	}
	wg.Wait()
	close(ids)
	updates := map[string]map[string]any{}
	var events []store.Event
	for id := range ids {
		updates[id] = bson.M{"c8y_Availability": bson.M{"status": "AVAILABLE"}}
		events = append(events, store.Event{Source: id, Type: "c8y_LWM2MDeviceRegistration", Text: "registered", Time: time.Now()})
	}
	// several bulks at once, each far longer than the connection pool
	var bw sync.WaitGroup
	for k := 0; k < 4; k++ {
		bw.Add(1)
		go func() {
			defer bw.Done()
			missing, err := st.UpdateFragmentsMany(ctx, "management", updates)
			if err != nil || len(missing) != 0 {
				t.Errorf("bulk update of %d: missing %v, %v", len(updates), missing, err)
			}
		}()
	}
	bw.Wait()
	if _, err := st.CreateEvents(ctx, "management", events); err != nil {
		t.Fatal(err)
	}
	mos, total, err := st.ListManagedObjects(ctx, "management", store.ManagedObjectFilter{FragmentType: "c8y_Availability", Page: store.Page{Size: 1, Current: 1, WithTotal: true}})
	if err != nil || len(mos) != 1 || total != workers*each {
		t.Errorf("%d devices with availability (%v), want %d", total, err, workers*each)
	}
}
