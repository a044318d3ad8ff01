package storetest

import (
	"errors"
	"reflect"
	"slices"
	"sync"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// Devices created with their first state (SaveNewStates), as a Register
// of a new endpoint creates them.
var newStateCases = []suiteCase{
	{"CreatedWithState", testCreatedWithState},
	{"CreationConflict", testCreationConflict},
	{"ConcurrentCreationsOfOneEndpoint", testConcurrentNewStates},
	{"EndpointOfAnotherTenant", testNewStateOtherTenant},
	{"ReservedIDs", testReservedIDs},
	{"InvalidWritesNothing", testNewStateInvalid},
}

func eventsOf(t *testing.T, s store.Engine, tenant, source string) []store.Event {
	t.Helper()
	evs, _, err := s.ListEvents(ctx, tenant, store.EventFilter{Source: source})
	check(t, err)
	return evs
}

// A created device is what CreateDevice makes, with the batch's
// fragments and events; the batch's other devices change as SaveStates
// changes them.
func testCreatedWithState(t *testing.T, s store.Engine) {
	known := must(s.CreateDevice(ctx, "a", "known"))
	id := must(s.NewDeviceID(ctx, "a"))
	available := map[string]any{"status": "AVAILABLE"}
	missing, conflicts, stored, err := s.SaveNewStates(ctx, "a",
		[]store.NewEndpoint{{ID: id, Endpoint: "fresh"}},
		map[string]map[string]any{
			id:    {"c8y_Availability": available, "lwm2m": map[string]any{"endpoint": "fresh", "lifetime": int64(60)}},
			known: {"c8y_Availability": available},
		},
		[]store.Event{{Source: id, Type: "c8y_Registration", Text: "new"}, {Source: known, Type: "c8y_Registration", Text: "again"}})
	check(t, err)
	if missing != nil || conflicts != nil || len(stored) != 2 || stored[0].ID == "" || stored[0].Text != "new" {
		t.Fatalf("missing %v, conflicts %v, stored %+v", missing, conflicts, stored)
	}
	mo := must(s.GetManagedObject(ctx, "a", id))
	if mo.Name != "fresh" || mo.Type != store.DeviceType || mo.Fragments["c8y_IsDevice"] == nil ||
		!reflect.DeepEqual(mo.Fragments["c8y_SupportedOperations"], []any{"c8y_Command"}) ||
		!reflect.DeepEqual(mo.Fragments["c8y_Availability"], available) {
		t.Fatalf("created device %+v", mo)
	}
	if lw, _ := mo.Fragments["lwm2m"].(map[string]any); lw["lifetime"] != int64(60) {
		t.Fatalf("lwm2m fragment %v, want lifetime 60", mo.Fragments["lwm2m"])
	}
	if tenant, got, err := s.DeviceByEndpoint(ctx, "fresh"); err != nil || tenant != "a" || got != id {
		t.Fatalf("endpoint bound to %s/%s (%v), want a/%s", tenant, got, err, id)
	}
	if x, err := s.GetExternalID(ctx, "a", store.ExternalIDDevice, "fresh"); err != nil || x.ManagedObjectID != id {
		t.Fatalf("c8y_Id of the endpoint: %+v (%v)", x, err)
	}
	reg := must(s.DeviceRegistrationOf(ctx, "a", id))
	if a := reg.Access(); a.SecurityMode != store.SecurityNoSec || a.Incomplete || a.Keyed {
		t.Fatalf("record of the created device: %+v", a)
	}
	if evs := eventsOf(t, s, "a", id); len(evs) != 1 || evs[0].Text != "new" {
		t.Fatalf("events of the created device: %+v", evs)
	}
	if mo := must(s.GetManagedObject(ctx, "a", known)); !reflect.DeepEqual(mo.Fragments["c8y_Availability"], available) {
		t.Fatalf("known device %+v", mo.Fragments)
	}
	if evs := eventsOf(t, s, "a", known); len(evs) != 1 || evs[0].Text != "again" {
		t.Fatalf("events of the known device: %+v", evs)
	}
}

// A creation for an endpoint the tenant has a device for writes nothing
// of its own; the rest of the batch is written.
func testCreationConflict(t *testing.T, s store.Engine) {
	holder := must(s.CreateDevice(ctx, "a", "taken"))
	lost, won := must(s.NewDeviceID(ctx, "a")), must(s.NewDeviceID(ctx, "a"))
	up := map[string]any{"status": "AVAILABLE"}
	missing, conflicts, stored, err := s.SaveNewStates(ctx, "a",
		[]store.NewEndpoint{{ID: lost, Endpoint: "taken"}, {ID: won, Endpoint: "free"}},
		map[string]map[string]any{lost: {"c8y_Availability": up}, won: {"c8y_Availability": up}},
		[]store.Event{{Source: lost, Type: "c8y_Registration"}, {Source: won, Type: "c8y_Registration"}})
	check(t, err)
	if missing != nil || !slices.Equal(conflicts, []string{lost}) || len(stored) != 1 || stored[0].Source != won {
		t.Fatalf("missing %v, conflicts %v (want [%s]), stored %+v", missing, conflicts, lost, stored)
	}
	if _, err := s.GetManagedObject(ctx, "a", lost); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the losing creation's object: %v, want ErrNotFound", err)
	}
	if evs := eventsOf(t, s, "a", lost); len(evs) != 0 {
		t.Fatalf("events of the losing creation: %+v", evs)
	}
	if _, id, err := s.DeviceByEndpoint(ctx, "taken"); err != nil || id != holder {
		t.Fatalf("taken endpoint bound to %s (%v), want %s", id, err, holder)
	}
	if mo := must(s.GetManagedObject(ctx, "a", won)); mo.Fragments["c8y_Availability"] == nil {
		t.Fatalf("the winning creation: %+v", mo)
	}
}

// Creations of one endpoint at once, in batches of their own (Registers
// of one endpoint on several replicas): exactly one device.
func testConcurrentNewStates(t *testing.T, s store.Engine) {
	const n = 8
	ids := make([]string, n)
	conflicted := make([]bool, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ids[i] = must(s.NewDeviceID(ctx, "a"))
			_, c, _, err := s.SaveNewStates(ctx, "a", []store.NewEndpoint{{ID: ids[i], Endpoint: "contested"}},
				map[string]map[string]any{ids[i]: {"c8y_Availability": map[string]any{"status": "AVAILABLE"}}},
				[]store.Event{{Source: ids[i], Type: "c8y_Registration"}})
			if err != nil {
				t.Error(err)
			}
			conflicted[i] = slices.Contains(c, ids[i])
		})
	}
	wg.Wait()
	var winners []string
	for i := range n {
		if !conflicted[i] {
			winners = append(winners, ids[i])
		}
	}
	if len(winners) != 1 {
		t.Fatalf("%d creations won (%v), want 1", len(winners), winners)
	}
	if _, id, err := s.DeviceByEndpoint(ctx, "contested"); err != nil || id != winners[0] {
		t.Fatalf("endpoint bound to %q (%v), want %q", id, err, winners[0])
	}
	if _, total, _ := s.ListManagedObjects(ctx, "a", store.ManagedObjectFilter{Page: store.Page{WithTotal: true}}); total != 1 {
		t.Fatalf("%d managed objects, want the winner's alone", total)
	}
	if _, total, _ := s.ListEvents(ctx, "a", store.EventFilter{Page: store.Page{WithTotal: true}}); total != 1 {
		t.Fatalf("%d events, want the winner's alone", total)
	}
}

// An endpoint another tenant's device holds stays bound to it, as with
// CreateDevice; the tenant's own device is created all the same.
func testNewStateOtherTenant(t *testing.T, s store.Engine) {
	theirs := must(s.CreateDevice(ctx, "b", "shared"))
	id := must(s.NewDeviceID(ctx, "a"))
	_, conflicts, _, err := s.SaveNewStates(ctx, "a", []store.NewEndpoint{{ID: id, Endpoint: "shared"}},
		map[string]map[string]any{id: {"c8y_Connection": map[string]any{"status": "CONNECTED"}}}, nil)
	check(t, err)
	if conflicts != nil {
		t.Fatalf("conflicts %v", conflicts)
	}
	if tenant, got, err := s.DeviceByEndpoint(ctx, "shared"); err != nil || tenant != "b" || got != theirs {
		t.Fatalf("endpoint bound to %s/%s (%v), want b/%s", tenant, got, err, theirs)
	}
	must(s.GetManagedObject(ctx, "a", id))
	if _, err := s.GetManagedObject(ctx, "b", id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("tenant b sees a's device: %v", err)
	}
}

// Reserved ids are never handed out twice, nor given to objects created
// afterwards.
func testReservedIDs(t *testing.T, s store.Engine) {
	seen := map[string]bool{}
	for range 300 {
		id := must(s.NewDeviceID(ctx, "a"))
		if seen[id] {
			t.Fatalf("id %s reserved twice", id)
		}
		seen[id] = true
	}
	for range 5 {
		if id := must(s.CreateDevice(ctx, "a", "ep-"+must(s.NewDeviceID(ctx, "a")))); seen[id] {
			t.Fatalf("a created device took the reserved id %s", id)
		}
	}
}

// Input that cannot be stored is ErrInvalid, and no device is created.
func testNewStateInvalid(t *testing.T, s store.Engine) {
	id := must(s.NewDeviceID(ctx, "a"))
	_, _, _, err := s.SaveNewStates(ctx, "a", []store.NewEndpoint{{ID: id, Endpoint: "bad"}},
		map[string]map[string]any{id: {"$bad": 1}}, nil)
	if !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("invalid fragment: %v, want ErrInvalid", err)
	}
	if _, _, err := s.DeviceByEndpoint(ctx, "bad"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("endpoint of the refused creation: %v, want ErrNotFound", err)
	}
}
