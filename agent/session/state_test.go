package session

import (
	"context"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/storetest"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// Changes of one device in one batch merge fragment by fragment, later
// over earlier; every lifecycle event is kept, and a device deleted in
// the meantime does not stop the others.
func TestStateWriterMergesAndKeepsEvents(t *testing.T) {
	st := storetest.OpenTest(t)
	ctx := context.Background()
	dev, err := st.CreateDevice(ctx, "management", "ep-1")
	if err != nil {
		t.Fatal(err)
	}
	gone, err := st.CreateDevice(ctx, "management", "ep-2")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.DeleteManagedObject(ctx, "management", gone); err != nil {
		t.Fatal(err)
	}
	w := NewStateWriter(st, 16, time.Hour, nil) // only the drain writes
	wctx, cancel := context.WithCancel(ctx)
	go w.Run(wctx)
	now := time.Now().UTC()
	w.Add(ctx, stateChange{tenant: "management", device: dev, fragments: bson.M{"c8y_Availability": bson.M{"status": "AVAILABLE"}, "lwm2m": bson.M{"lifetime": 60}},
		event: store.Event{Source: dev, Type: EventRegistration, Text: "registered", Time: now}})
	w.Add(ctx, stateChange{tenant: "management", device: gone, fragments: bson.M{"c8y_Availability": bson.M{"status": "AVAILABLE"}},
		event: store.Event{Source: gone, Type: EventRegistration, Text: "registered", Time: now}})
	w.Add(ctx, stateChange{tenant: "management", device: dev, fragments: bson.M{"c8y_Availability": bson.M{"status": "UNAVAILABLE"}},
		event: store.Event{Source: dev, Type: EventDeregistration, Text: "gone", Time: now.Add(time.Second)}})
	cancel()
	<-w.Done()

	mo, err := st.GetManagedObject(ctx, "management", dev)
	if err != nil {
		t.Fatal(err)
	}
	if got := mo.Fragments["c8y_Availability"].(map[string]any)["status"]; got != "UNAVAILABLE" {
		t.Errorf("availability %v, want the later UNAVAILABLE", got)
	}
	if _, ok := mo.Fragments["lwm2m"]; !ok {
		t.Error("the earlier lwm2m fragment was lost in the merge")
	}
	evs, _, err := st.ListEvents(ctx, "management", store.EventFilter{Source: dev, Page: store.Page{Size: 10, Current: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 {
		t.Errorf("%d events of the device, want both", len(evs))
	}
	if w.Events() != 3 || w.Failed() != 0 {
		t.Errorf("events %d failed %d, want 3 and 0", w.Events(), w.Failed())
	}
}
