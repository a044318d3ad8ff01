package sqlite

import (
	"context"
	"strings"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// SaveStates is one change: when its events cannot be inserted (here a
// trigger refuses them, after the fragments were merged in the same
// change), the fragments are not written either, and the ids it took are
// given back with the rest.
func TestSaveStatesAllOrNothing(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	dev, err := s.CreateDevice(ctx, "acme", "ep-1")
	if err != nil {
		t.Fatal(err)
	}
	err = s.db.Write(ctx, func(tx *Tx) error {
		_, err := tx.Exec(`CREATE TRIGGER refuse_events BEFORE INSERT ON events
			BEGIN SELECT RAISE(ABORT, 'events refused'); END`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var before int64
	if err := s.db.QueryRow(ctx, "SELECT value FROM counters WHERE name = 'ids'").Scan(&before); err != nil {
		t.Fatal(err)
	}
	fragments := map[string]map[string]any{dev: {"c8y_Availability": map[string]any{"status": "AVAILABLE"}}}
	events := []store.Event{{Source: dev, Type: "c8y_Registration", Text: "registered"}}
	if _, _, err := s.SaveStates(ctx, "acme", fragments, events); err == nil || !strings.Contains(err.Error(), "events refused") {
		t.Fatalf("SaveStates with its events refused: %v", err)
	}
	mo, err := s.GetManagedObject(ctx, "acme", dev)
	if err != nil {
		t.Fatal(err)
	}
	if mo.Fragments["c8y_Availability"] != nil {
		t.Fatalf("the fragments were written without their events: %v", mo.Fragments["c8y_Availability"])
	}
	var after int64
	if err := s.db.QueryRow(ctx, "SELECT value FROM counters WHERE name = 'ids'").Scan(&after); err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("the id counter moved from %d to %d", before, after)
	}

	// the same change without the trigger is written whole
	err = s.db.Write(ctx, func(tx *Tx) error {
		_, err := tx.Exec("DROP TRIGGER refuse_events")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if missing, _, err := s.SaveStates(ctx, "acme", fragments, events); err != nil || len(missing) != 0 {
		t.Fatalf("SaveStates: missing %v, %v", missing, err)
	}
	if mo, err = s.GetManagedObject(ctx, "acme", dev); err != nil || mo.Fragments["c8y_Availability"] == nil {
		t.Fatalf("the fragments were not written: %v (%v)", mo.Fragments, err)
	}
	evs, _, err := s.ListEvents(ctx, "acme", store.EventFilter{Source: dev})
	if err != nil || len(evs) != 1 {
		t.Fatalf("%d events (%v), want 1", len(evs), err)
	}
}
