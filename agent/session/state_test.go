package session

import (
	"context"
	"errors"
	"fmt"
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

// A waited-for change whose caller gave up before the writer took it is
// never written; one taken is answered once stored; after Run returned,
// AddDurable fails at once.
func TestStateWriterAddDurable(t *testing.T) {
	st := storetest.OpenTest(t)
	ctx := context.Background()
	dev, err := st.CreateDevice(ctx, "management", "ep-1")
	if err != nil {
		t.Fatal(err)
	}
	w := NewStateWriter(st, 16, time.Hour, nil)
	change := func(fragment string) stateChange {
		return stateChange{tenant: "management", device: dev, fragments: bson.M{fragment: bson.M{"status": "AVAILABLE"}},
			event: store.Event{Source: dev, Type: EventRegistration, Text: fragment, Time: time.Now().UTC()}}
	}
	// the writer does not run yet: nobody takes the change
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := w.AddDurable(short, change("c8y_Availability")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("AddDurable with nobody writing: %v, want the deadline", err)
	}
	wctx, stop := context.WithCancel(ctx)
	go w.Run(wctx)
	if err := w.AddDurable(ctx, change("c8y_Connection")); err != nil {
		t.Fatal(err)
	}
	mo, err := st.GetManagedObject(ctx, "management", dev)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := mo.Fragments["c8y_Connection"]; !ok {
		t.Error("the change waited for is not stored when AddDurable returns")
	}
	stop()
	<-w.Done()
	if mo, err = st.GetManagedObject(ctx, "management", dev); err != nil {
		t.Fatal(err)
	}
	if _, ok := mo.Fragments["c8y_Availability"]; ok {
		t.Error("the withdrawn change was written")
	}
	if n := len(eventsOf(t, st, "management", dev, EventRegistration)); n != 1 || w.Durable() != 1 || w.Events() != 1 {
		t.Errorf("%d events stored, writer counted %d durable and %d events; want 1 each", n, w.Durable(), w.Events())
	}
	if err := w.AddDurable(ctx, change("c8y_Mobile")); !errors.Is(err, errWriterStopped) {
		t.Errorf("AddDurable after Run returned: %v", err)
	}
}

// failingStates refuses every SaveStates, as a store that cannot take
// the fragments.
type failingStates struct{ store.Engine }

func (failingStates) SaveStates(context.Context, string, map[string]map[string]any, []store.Event) ([]string, []store.Event, error) {
	return nil, nil, store.ErrInvalid
}

// When the state of a batch cannot be stored, the change waited for is
// refused and leaves no event; the event of a change nobody waits for is
// stored all the same.
func TestStateWriterRefusedLeavesNoEvent(t *testing.T) {
	st := storetest.OpenTest(t)
	ctx := context.Background()
	ids := make([]string, 2)
	for i := range ids {
		var err error
		if ids[i], err = st.CreateDevice(ctx, "management", fmt.Sprintf("ep-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	waited, other := ids[0], ids[1]
	w := NewStateWriter(failingStates{st}, 16, time.Hour, nil)
	wctx, stop := context.WithCancel(ctx)
	go w.Run(wctx)
	change := func(dev, typ string) stateChange {
		return stateChange{tenant: "management", device: dev, fragments: bson.M{"c8y_Availability": bson.M{"status": "AVAILABLE"}},
			event: store.Event{Source: dev, Type: typ, Text: typ, Time: time.Now().UTC()}}
	}
	w.Add(ctx, change(other, EventDeregistration))
	if err := w.AddDurable(ctx, change(waited, EventRegistration)); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("AddDurable with the state refused: %v", err)
	}
	stop()
	<-w.Done()
	if n := len(eventsOf(t, st, "management", waited, EventRegistration)); n != 0 {
		t.Errorf("the refused change left %d events", n)
	}
	if n := len(eventsOf(t, st, "management", other, EventDeregistration)); n != 1 {
		t.Errorf("%d events of the change nobody waited for, want 1", n)
	}
	if w.Durable() != 0 || w.Events() != 1 {
		t.Errorf("writer counted %d durable and %d events; want 0 and 1", w.Durable(), w.Events())
	}
}
