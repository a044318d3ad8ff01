package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

var deviceCases = []suiteCase{
	{"ManagedObjects", testManagedObjects},
	{"ManagedObjectErrors", testManagedObjectErrors},
	{"DevicesAndExternalIDs", testDevicesAndExternalIDs},
	{"IncompleteDevice", testIncompleteDevice},
	{"AdoptNoSecDevice", testAdoptNoSecDevice},
	{"UpdateFieldsMany", testUpdateFieldsMany},
	{"ConcurrentEndpointClaim", testConcurrentEndpointClaim},
	{"ConcurrentDevicesAndBulkUpdates", testConcurrentDevicesAndBulkUpdates},
	{"ConcurrentUpdatesOfOneObject", testConcurrentUpdatesOfOneObject},
	{"InventoryQueries", testInventoryQueries},
	{"DeviceTenantIsolation", testDeviceTenantIsolation},
	{"DocumentLimit", testDocumentLimit},
}

// An object beyond what the engine's documents hold (MongoDB: 16 MiB,
// the embedded engine alike; the MongoDB-wire test server: 48 MiB) is
// refused whole, created or grown by an update; what was stored stays as
// it was.
func testDocumentLimit(t *testing.T, s store.Engine) {
	huge := strings.Repeat("x", 60<<20)
	if _, err := s.CreateManagedObject(ctx, "acme", store.ManagedObject{Name: huge, Type: "t"}); err == nil {
		t.Fatal("an object of 60 MiB was created")
	}
	if mos := must2(s.ListManagedObjects(ctx, "acme", store.ManagedObjectFilter{})); len(mos) != 0 {
		t.Fatalf("%d objects after the refused creation", len(mos))
	}
	mo := must(s.CreateManagedObject(ctx, "acme", store.ManagedObject{Name: "small", Type: "t", Fragments: map[string]any{"a": "1"}}))
	if err := s.UpdateFragments(ctx, "acme", mo.ID, map[string]any{"b": huge}); err == nil {
		t.Fatal("an update grew an object to 60 MiB")
	}
	got := must(s.GetManagedObject(ctx, "acme", mo.ID))
	if _, grown := got.Fragments["b"]; grown || got.Fragments["a"] != "1" {
		t.Fatalf("object after the refused update: %v", got.Fragments)
	}
}

func names(mos []store.ManagedObject) []string {
	var out []string
	for _, m := range mos {
		out = append(out, m.Name)
	}
	return out
}

func testManagedObjects(t *testing.T, s store.Engine) {
	var ids []string
	for i, n := range []string{"alpha", "beta", "gamma", "delta", "epsilon"} {
		f := map[string]any{"c8y_Level": map[string]any{"value": int64(i)}}
		if i%2 == 0 {
			f["c8y_IsDevice"] = map[string]any{}
		}
		mo := must(s.CreateManagedObject(ctx, "a", store.ManagedObject{Name: n, Type: []string{"t1", "t2"}[i%2], Fragments: f}))
		ids = append(ids, mo.ID)
	}
	must(s.CreateManagedObject(ctx, "b", store.ManagedObject{Name: "alpha", Type: "t1"}))

	got := must(s.GetManagedObject(ctx, "a", ids[0]))
	if got.Name != "alpha" || got.Type != "t1" || got.CreationTime.IsZero() || got.Fragments["c8y_IsDevice"] == nil {
		t.Fatalf("get: %+v", got)
	}

	upd := must(s.UpdateManagedObject(ctx, "a", ids[0], map[string]any{
		"name": "alpha2", "c8y_New": map[string]any{"x": "y"}, "c8y_Level": nil, "id": "999",
	}))
	if upd.Name != "alpha2" || upd.ID != ids[0] || upd.Fragments["c8y_Level"] != nil || upd.Fragments["c8y_IsDevice"] == nil {
		t.Fatalf("update did not merge: %+v", upd)
	}
	if upd.LastUpdated.Before(got.LastUpdated) {
		t.Fatalf("lastUpdated went back: %v -> %v", got.LastUpdated, upd.LastUpdated)
	}

	tests := []struct {
		name string
		f    store.ManagedObjectFilter
		want []string
	}{
		{"all", store.ManagedObjectFilter{Page: store.Page{Size: 10}}, []string{"alpha2", "beta", "gamma", "delta", "epsilon"}},
		{"type", store.ManagedObjectFilter{Type: "t2"}, []string{"beta", "delta"}},
		{"fragmentType", store.ManagedObjectFilter{FragmentType: "c8y_IsDevice"}, []string{"alpha2", "gamma", "epsilon"}},
		{"query eq", store.ManagedObjectFilter{Query: "name eq 'gamma'"}, []string{"gamma"}},
		{"query wildcard", store.ManagedObjectFilter{Query: "name eq '*ta'"}, []string{"beta", "delta"}},
		{"query and has", store.ManagedObjectFilter{Query: "has(c8y_IsDevice) and type eq 't1'"}, []string{"alpha2", "gamma", "epsilon"}},
		{"query or", store.ManagedObjectFilter{Query: "name eq 'beta' or name eq 'delta'"}, []string{"beta", "delta"}},
		{"query not", store.ManagedObjectFilter{Query: "not(has(c8y_IsDevice))"}, []string{"beta", "delta"}},
		{"query nested number", store.ManagedObjectFilter{Query: "c8y_Level.value ge 3"}, []string{"delta", "epsilon"}},
		{"query filter orderby", store.ManagedObjectFilter{Query: "$filter=(type eq 't1') $orderby=name desc"}, []string{"gamma", "epsilon", "alpha2"}},
		{"page 1", store.ManagedObjectFilter{Page: store.Page{Size: 2, Current: 1}}, []string{"alpha2", "beta"}},
		{"page 2", store.ManagedObjectFilter{Page: store.Page{Size: 2, Current: 2}}, []string{"gamma", "delta"}},
		{"last page", store.ManagedObjectFilter{Page: store.Page{Size: 2, Current: 3}}, []string{"epsilon"}},
		{"page past end", store.ManagedObjectFilter{Page: store.Page{Size: 2, Current: 4}}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mos, _, err := s.ListManagedObjects(ctx, "a", tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(names(mos), tc.want) {
				t.Fatalf("got %v, want %v", names(mos), tc.want)
			}
		})
	}
	_, total, err := s.ListManagedObjects(ctx, "a", store.ManagedObjectFilter{Page: store.Page{Size: 2, WithTotal: true}})
	if err != nil || total != 5 || store.TotalPages(total, 2) != 3 {
		t.Fatalf("total %d (%v), want 5 in 3 pages", total, err)
	}
	if _, total, _ := s.ListManagedObjects(ctx, "a", store.ManagedObjectFilter{}); total != -1 {
		t.Fatalf("total %d without WithTotal, want -1", total)
	}

	if _, err := s.DeleteManagedObject(ctx, "a", ids[1]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetManagedObject(ctx, "a", ids[1]); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted object: %v", err)
	}
}

func testManagedObjectErrors(t *testing.T, s store.Engine) {
	id := must(s.CreateManagedObject(ctx, "a", store.ManagedObject{Name: "x", Type: "t"})).ID
	tests := []struct {
		name string
		do   func() error
		want error
	}{
		{"create with a dotted fragment", func() error {
			_, err := s.CreateManagedObject(ctx, "a", store.ManagedObject{Name: "y", Fragments: map[string]any{"bad.name": 1}})
			return err
		}, store.ErrInvalid},
		{"update with a dotted fragment", func() error {
			_, err := s.UpdateManagedObject(ctx, "a", id, map[string]any{"bad.name": 1})
			return err
		}, store.ErrInvalid},
		{"update of a missing object", func() error {
			_, err := s.UpdateManagedObject(ctx, "a", "no-such-id", map[string]any{"x": 1})
			return err
		}, store.ErrNotFound},
		{"fragments of a missing object", func() error {
			return s.UpdateFragments(ctx, "a", "no-such-id", map[string]any{"x": 1})
		}, store.ErrNotFound},
		{"get of a missing object", func() error { _, err := s.GetManagedObject(ctx, "a", "no-such-id"); return err }, store.ErrNotFound},
		{"delete of a missing object", func() error { _, err := s.DeleteManagedObject(ctx, "a", "no-such-id"); return err }, store.ErrNotFound},
		{"bad query", func() error {
			_, _, err := s.ListManagedObjects(ctx, "a", store.ManagedObjectFilter{Query: "name like 'x'"})
			return err
		}, store.ErrInvalid},
		{"missing external id", func() error { _, err := s.GetExternalID(ctx, "a", "c8y_Serial", "none"); return err }, store.ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.do(); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	missing := must(s.UpdateFragmentsMany(ctx, "a", map[string]map[string]any{id: {"c8y_A": map[string]any{}}, "gone": {"c8y_A": map[string]any{}}}))
	if !slices.Equal(missing, []string{"gone"}) {
		t.Fatalf("UpdateFragmentsMany missing %v, want [gone]", missing)
	}
	if mo := must(s.GetManagedObject(ctx, "a", id)); mo.Fragments["c8y_A"] == nil {
		t.Fatalf("the existing object of a batch with a missing one was not updated: %+v", mo)
	}
}

func testDevicesAndExternalIDs(t *testing.T, s store.Engine) {
	idA := must(s.CreateDevice(ctx, "a", "urn:imei:1"))
	dev := must(s.GetManagedObject(ctx, "a", idA))
	if dev.Name != "urn:imei:1" || dev.Type != store.DeviceType || dev.Fragments["c8y_IsDevice"] == nil {
		t.Fatalf("device: %+v", dev)
	}
	if ops, _ := dev.Fragments["c8y_SupportedOperations"].([]any); !slices.Equal(ops, []any{"c8y_Command"}) {
		t.Fatalf("c8y_SupportedOperations = %v", dev.Fragments["c8y_SupportedOperations"])
	}
	again, err := s.CreateDevice(ctx, "a", "urn:imei:1")
	if !errors.Is(err, store.ErrConflict) || again != idA {
		t.Fatalf("duplicate device: %q %v, want %q and ErrConflict", again, err, idA)
	}
	idB := must(s.CreateDevice(ctx, "b", "urn:imei:1"))
	tenant, id, err := s.DeviceByEndpoint(ctx, "urn:imei:1")
	if err != nil || tenant != "a" || id != idA {
		t.Fatalf("binding: %s %s %v, want the first tenant's device", tenant, id, err)
	}
	x := must(s.GetExternalID(ctx, "b", store.ExternalIDDevice, "urn:imei:1"))
	if x.ManagedObjectID != idB {
		t.Fatalf("b's external id points to %s", x.ManagedObjectID)
	}
	check(t, s.CreateExternalID(ctx, "a", store.ExternalID{Type: "c8y_Serial", ExternalID: "s/1", ManagedObjectID: idA}))
	if err := s.CreateExternalID(ctx, "a", store.ExternalID{Type: "c8y_Serial", ExternalID: "s/1", ManagedObjectID: idA}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("taken external id: %v, want ErrConflict", err)
	}
	if err := s.CreateExternalID(ctx, "b", store.ExternalID{Type: "c8y_Serial", ExternalID: "s/1", ManagedObjectID: idA}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("external id for another tenant's object: %v", err)
	}
	xs := must(s.ExternalIDsOf(ctx, "a", idA))
	if len(xs) != 2 || xs[0].Type != "c8y_Id" || xs[1].ExternalID != "s/1" {
		t.Fatalf("external ids: %+v", xs)
	}
	if _, _, err := s.DeviceByEndpoint(ctx, "urn:imei:2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown endpoint: %v", err)
	}
	check(t, s.CreateExternalID(ctx, "a", store.ExternalID{Type: "c8y_Serial", ExternalID: "s/2", ManagedObjectID: idA}))
	check(t, s.DeleteExternalID(ctx, "a", "c8y_Serial", "s/2"))
	if err := s.DeleteExternalID(ctx, "a", "c8y_Serial", "s/2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete of an external id: %v, want ErrNotFound", err)
	}
	// Deleting the bound device frees the endpoint and its external IDs.
	if _, err := s.DeleteManagedObject(ctx, "a", idA); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.DeviceByEndpoint(ctx, "urn:imei:1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("binding after delete: %v", err)
	}
	if _, err := s.GetExternalID(ctx, "a", "c8y_Serial", "s/1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("external id after delete: %v", err)
	}
}

// An import line is all or nothing: a device given up before
// CompleteDevice leaves nothing behind, and a completed one is no
// leftover to remove.
func testIncompleteDevice(t *testing.T, s store.Engine) {
	d := store.NewDevice{Endpoint: "imp-1", ExternalIDs: []store.ExternalID{{Type: "c8y_Serial", ExternalID: "imp-serial"}}}
	id := must(s.CreateIncompleteDevice(ctx, "a", d))
	check(t, s.RemoveIncompleteDevice(ctx, "a", id))
	if _, err := s.GetManagedObject(ctx, "a", id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("removed device: %v, want ErrNotFound", err)
	}
	if _, _, err := s.DeviceByEndpoint(ctx, "imp-1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("endpoint of a removed device: %v, want ErrNotFound", err)
	}
	if _, err := s.GetExternalID(ctx, "a", "c8y_Serial", "imp-serial"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("external id of a removed device: %v, want ErrNotFound", err)
	}

	id = must(s.CreateIncompleteDevice(ctx, "a", d))
	check(t, s.CompleteDevice(ctx, "a", id))
	if tenant, got, err := s.DeviceByEndpoint(ctx, "imp-1"); err != nil || tenant != "a" || got != id {
		t.Fatalf("completed device's endpoint: %s %s %v", tenant, got, err)
	}
	if err := s.RemoveIncompleteDevice(ctx, "a", id); err == nil {
		t.Fatal("a completed device was removed as incomplete")
	}
	again, err := s.CreateIncompleteDevice(ctx, "a", d)
	if !errors.Is(err, store.ErrConflict) || again != id {
		t.Fatalf("second import of the endpoint: %q %v, want %q and ErrConflict", again, err, id)
	}
}

// UpdateFieldsMany sets the fields it names and leaves the fragment's
// other fields as they are, creates a fragment that is not there, and
// refuses keys that are not fragment.field.
func testUpdateFieldsMany(t *testing.T, s store.Engine) {
	id := must(s.CreateDevice(ctx, "a", "ep"))
	check(t, settled(s.UpdateFragmentsMany(ctx, "a", map[string]map[string]any{id: {"c8y_Hardware": map[string]any{"model": "m1", "serialNumber": "s1"}}})))
	check(t, settled(s.UpdateFieldsMany(ctx, "a", map[string]map[string]any{id: {"c8y_Hardware.model": "m2", "c8y_Mobile.cellId": "42"}})))
	mo := must(s.GetManagedObject(ctx, "a", id))
	hw, _ := mo.Fragments["c8y_Hardware"].(map[string]any)
	if hw["model"] != "m2" || hw["serialNumber"] != "s1" {
		t.Errorf("c8y_Hardware after setting its model: %v", hw)
	}
	if mobile, _ := mo.Fragments["c8y_Mobile"].(map[string]any); mobile["cellId"] != "42" {
		t.Errorf("c8y_Mobile created by a field: %v", mo.Fragments["c8y_Mobile"])
	}
	for _, k := range []string{"c8y_Hardware.", "c8y_Hardware.a.b", "c8y_Hardware.$x", "$set.x", ".x"} {
		if _, err := s.UpdateFieldsMany(ctx, "a", map[string]map[string]any{id: {k: 1}}); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("key %q: %v, want ErrInvalid", k, err)
		}
	}
}

// Devices created at once for one endpoint: exactly one creation wins,
// the others are ErrConflict and name the winner.
func testConcurrentEndpointClaim(t *testing.T, s store.Engine) {
	const n = 8
	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { ids[i], errs[i] = s.CreateDevice(ctx, "a", "contested") })
	}
	wg.Wait()
	winner := ""
	for i, err := range errs {
		switch {
		case err == nil && winner == "":
			winner = ids[i]
		case err == nil:
			t.Fatalf("two creations won: %s and %s", winner, ids[i])
		case !errors.Is(err, store.ErrConflict):
			t.Fatalf("a losing creation: %v, want ErrConflict", err)
		}
	}
	if winner == "" {
		t.Fatal("no creation won")
	}
	for i, err := range errs {
		if err != nil && ids[i] != winner {
			t.Errorf("a loser named %q, want the winner %q", ids[i], winner)
		}
	}
	if _, id, err := s.DeviceByEndpoint(ctx, "contested"); err != nil || id != winner {
		t.Fatalf("endpoint bound to %q (%v), want %q", id, err, winner)
	}
	if _, total, _ := s.ListManagedObjects(ctx, "a", store.ManagedObjectFilter{Page: store.Page{WithTotal: true}}); total != 1 {
		t.Fatalf("%d managed objects, want the winner's alone", total)
	}
}

// A registration burst: many devices created at once while registration
// state of hundreds of devices is written in bulk; everything completes.
func testConcurrentDevicesAndBulkUpdates(t *testing.T, s store.Engine) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	const workers, each = 16, 20
	ids := make(chan string, workers*each)
	var wg sync.WaitGroup
	for g := range workers {
		wg.Go(func() {
			for i := range each {
				id, err := s.CreateDevice(ctx, "management", fmt.Sprintf("burst-%d-%d", g, i))
				if err != nil {
					t.Error(err)
					return
				}
				ids <- id
			}
		})
	}
	wg.Wait()
	close(ids)
	updates := map[string]map[string]any{}
	var events []store.Event
	for id := range ids {
		updates[id] = map[string]any{"c8y_Availability": map[string]any{"status": "AVAILABLE"}}
		events = append(events, store.Event{Source: id, Type: "c8y_LWM2MDeviceRegistration", Text: "registered", Time: time.Now()})
	}
	var bw sync.WaitGroup
	for range 4 {
		bw.Go(func() {
			if err := settled(s.UpdateFragmentsMany(ctx, "management", updates)); err != nil {
				t.Errorf("bulk update of %d: %v", len(updates), err)
			}
		})
	}
	bw.Wait()
	if _, err := s.CreateEvents(ctx, "management", events); err != nil {
		t.Fatal(err)
	}
	mos, total, err := s.ListManagedObjects(ctx, "management", store.ManagedObjectFilter{FragmentType: "c8y_Availability", Page: store.Page{Size: 1, Current: 1, WithTotal: true}})
	if err != nil || len(mos) != 1 || total != workers*each {
		t.Errorf("%d devices with availability (%v), want %d", total, err, workers*each)
	}
}

// Auto-registration gives a new device a complete NO_SEC record, and
// AdoptNoSecDevice gives the same one to a device without a record, or
// with one that says nothing of its security (keeping what it says),
// unless the record names a security mode (of whatever value), holds a
// key, or has a change under way; a record it does not adopt is left
// as it was.
func testAdoptNoSecDevice(t *testing.T, s store.Engine) {
	id := must(s.CreateDevice(ctx, "a", "auto"))
	if r := must(s.DeviceRegistrationOf(ctx, "a", id)); r.Incomplete || r.SecurityMode() != store.SecurityNoSec || r.Params[store.ParamEndpointID] != "auto" {
		t.Fatalf("record of an auto-registered device: %+v", r)
	}
	save := func(r store.DeviceRegistration) func(id string) {
		return func(id string) { check(t, s.SaveDeviceRegistration(ctx, "a", id, r)) }
	}
	for _, tc := range []struct {
		name  string
		setup func(id string)
		want  bool
	}{
		{"no record", func(string) {}, true},
		{"only a serialization", func(id string) { check(t, s.SetDeviceSerialization(ctx, "a", id, "TLV")) }, true},
		{"an awake time", save(store.DeviceRegistration{Params: map[string]any{"awakeTimeRegistrationParameter": int64(0)}}), true},
		{"PSK", save(store.DeviceRegistration{
			Params: map[string]any{store.ParamSecurityMode: store.SecurityPSK, "lwm2mPskId": "psk-id"}, PSKKey: []byte{1},
		}), false},
		{"a key without a mode", save(store.DeviceRegistration{Params: map[string]any{}, PSKKey: []byte{1}}), false},
		{"a mode that is no string", save(store.DeviceRegistration{Params: map[string]any{store.ParamSecurityMode: nil}}), false},
		{"being written", save(store.DeviceRegistration{Params: map[string]any{}, Incomplete: true}), false},
		{"identities to release", save(store.DeviceRegistration{Params: map[string]any{}, Release: map[string]string{store.PSKServer: "old"}}), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ep := strings.ReplaceAll(tc.name, " ", "-")
			id := must(s.CreateManagedObject(ctx, "a", store.ManagedObject{Name: ep, Type: store.DeviceType})).ID
			tc.setup(id)
			before, _ := s.DeviceSettings(ctx, "a", id)
			adopted, err := s.AdoptNoSecDevice(ctx, "a", id, ep)
			if err != nil || adopted != tc.want {
				t.Fatalf("adopted %v %v, want %v", adopted, err, tc.want)
			}
			after, err := s.DeviceSettings(ctx, "a", id)
			switch {
			case tc.want && (err != nil || after.SecurityMode() != store.SecurityNoSec || after.Params[store.ParamEndpointID] != ep || after.Serialization != before.Serialization):
				t.Errorf("record after adoption: %+v %v", after, err)
			case tc.want && before.Params != nil && after.Params["awakeTimeRegistrationParameter"] != before.Params["awakeTimeRegistrationParameter"]:
				t.Errorf("adoption lost a parameter: %+v, was %+v", after.Params, before.Params)
			case !tc.want && (err != nil || !reflect.DeepEqual(after, before)):
				t.Errorf("record changed: %+v %v, was %+v", after, err, before)
			}
		})
	}
}

// testConcurrentUpdatesOfOneObject: writers that change different
// fragments and fields of one object at once (the state writer, the
// inventory writer, an API PUT) must all be kept; an engine that applies
// an update by reading and writing back the document loses some.
func testConcurrentUpdatesOfOneObject(t *testing.T, s store.Engine) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	mo := must(s.CreateManagedObject(ctx, "a", store.ManagedObject{Name: "shared"}))
	const rounds = 20
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range rounds {
			if _, err := s.UpdateFieldsMany(ctx, "a", map[string]map[string]any{mo.ID: {fmt.Sprintf("c8y_Fields.f%d", i): int64(i)}}); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Go(func() {
		for i := range rounds {
			if err := s.UpdateFragments(ctx, "a", mo.ID, map[string]any{fmt.Sprintf("c8y_Frag%d", i): map[string]any{"i": int64(i)}}); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Go(func() {
		for i := range rounds {
			if _, err := s.UpdateFragmentsMany(ctx, "a", map[string]map[string]any{mo.ID: {fmt.Sprintf("c8y_Many%d", i): map[string]any{"i": int64(i)}}}); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Go(func() {
		for i := range rounds {
			if _, err := s.UpdateManagedObject(ctx, "a", mo.ID, map[string]any{fmt.Sprintf("c8y_Put%d", i): map[string]any{"i": int64(i)}}); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Wait()
	got := must(s.GetManagedObject(ctx, "a", mo.ID))
	fields, _ := got.Fragments["c8y_Fields"].(map[string]any)
	var lost []string
	for i := range rounds {
		if _, ok := fields[fmt.Sprintf("f%d", i)]; !ok {
			lost = append(lost, fmt.Sprintf("c8y_Fields.f%d", i))
		}
		for _, f := range []string{"c8y_Frag%d", "c8y_Many%d", "c8y_Put%d"} {
			if got.Fragments[fmt.Sprintf(f, i)] == nil {
				lost = append(lost, fmt.Sprintf(f, i))
			}
		}
	}
	if len(lost) > 0 {
		t.Fatalf("%d of %d concurrent updates lost: %v", len(lost), 4*rounds, lost)
	}
}

// testInventoryQueries holds every construct of the inventory query
// language (store.ParseQuery) to the MongoDB engine's answers: fields at
// the top, in fragments and in the columns of an object; each operator on
// numbers (integers and floats alike), strings, booleans and null, with
// values of another type never matching; arrays, whose elements match,
// whether the path ends at one, goes through one or names an element by
// position; has(), not(), and/or with and binding tighter, wildcards,
// keywords in any case, $filter= and $orderby (missing values first,
// types in MongoDB's order, several keys, desc), paging and totals of a
// query, and another tenant's objects.
func testInventoryQueries(t *testing.T, s store.Engine) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	objects := []struct {
		name, typ string
		frags     map[string]any
	}{
		{"o1", "tA", map[string]any{
			"c8y_IsDevice": map[string]any{}, "c8y_Level": map[string]any{"value": int64(1), "unit": "C"},
			"tags": []any{"x", "y"}, "flag": true, "score": 1.5, "when": at, "big": int64(9007199254740993),
		}},
		{"o2", "tB", map[string]any{
			"c8y_IsDevice": map[string]any{}, "c8y_Level": map[string]any{"value": 2.5, "unit": "F"},
			"tags": []any{"y"}, "flag": false, "nullable": nil,
			"list": []any{map[string]any{"k": "a", "n": int64(1)}, map[string]any{"k": "b"}},
		}},
		{"o3", "tA", map[string]any{
			"c8y_Level": map[string]any{"value": "3"}, "tags": []any{}, "nullable": "set", "quote": "it's",
			"list":   []any{map[string]any{"k": "c", "n": int64(3)}},
			"nested": map[string]any{"a": map[string]any{"b": map[string]any{"c": int64(7)}}},
		}},
		{"o4", "tB", map[string]any{"flag": "true", "tags": "x", "arr": []any{int64(5), int64(10), int64(15)}}},
		{"we?rd[1]", "t*", nil},
		{"o6", "tC", map[string]any{"c8y_Level": map[string]any{"value": int64(-4), "unit": "K"}}},
	}
	ids := map[string]string{}
	for _, o := range objects {
		ids[o.name] = must(s.CreateManagedObject(ctx, "q", store.ManagedObject{Name: o.name, Type: o.typ, Fragments: o.frags})).ID
	}
	// another tenant's object that would match most queries
	must(s.CreateManagedObject(ctx, "other", store.ManagedObject{Name: "o1", Type: "tA", Fragments: objects[0].frags}))
	const o5 = "we?rd[1]"
	all := []string{"o1", "o2", "o3", "o4", o5, "o6"}
	tests := []struct {
		query string
		want  []string
	}{
		{"name eq 'o3'", []string{"o3"}},
		{"name gt 'o3'", []string{"o4", o5, "o6"}},
		{"name le 'o2'", []string{"o1", "o2"}},
		{"c8y_Level.value eq 1", []string{"o1"}},
		{"c8y_Level.value eq 1.0", []string{"o1"}},
		{"c8y_Level.value eq 1e0", []string{"o1"}},
		{"c8y_Level.value eq 2.5", []string{"o2"}},
		{"c8y_Level.value eq '3'", []string{"o3"}},
		{"c8y_Level.value eq 3", nil},
		{"c8y_Level.value gt 0", []string{"o1", "o2"}},
		{"c8y_Level.value ge 1", []string{"o1", "o2"}},
		{"c8y_Level.value lt 1", []string{"o6"}},
		{"c8y_Level.value le 1", []string{"o1", "o6"}},
		{"c8y_Level.value lt 'z'", []string{"o3"}},
		{"c8y_Level.value ne 1", []string{"o2", "o3", "o4", o5, "o6"}},
		{"c8y_Level.value gt -inf", []string{"o1", "o2", "o6"}},
		{"score gt 1", []string{"o1"}},
		{"big eq 9007199254740993", []string{"o1"}},
		{"big eq 9007199254740992", nil},
		{"flag eq true", []string{"o1"}},
		{"flag eq false", []string{"o2"}},
		{"flag ne true", []string{"o2", "o3", "o4", o5, "o6"}},
		{"flag gt false", []string{"o1"}},
		{"flag lt true", []string{"o2"}},
		{"nullable eq null", []string{"o1", "o2", "o4", o5, "o6"}},
		{"nullable ge null", []string{"o1", "o2", "o4", o5, "o6"}},
		{"nullable le null", []string{"o1", "o2", "o4", o5, "o6"}},
		{"nullable ne null", []string{"o3"}},
		{"nullable gt null", nil},
		{"nullable lt null", nil},
		{"has(nullable)", []string{"o2", "o3"}},
		{"c8y_Level eq null", []string{"o4", o5}},
		{"c8y_Level.unit eq null", []string{"o3", "o4", o5}},
		{"has(c8y_Level.unit)", []string{"o1", "o2", "o6"}},
		{"c8y_IsDevice eq null", []string{"o3", "o4", o5, "o6"}},
		{"c8y_IsDevice ne 1", all},
		{"tags eq 'y'", []string{"o1", "o2"}},
		{"tags eq 'x'", []string{"o1", "o4"}},
		{"tags ne 'y'", []string{"o3", "o4", o5, "o6"}},
		{"has(tags)", []string{"o1", "o2", "o3", "o4"}},
		{"arr eq 10", []string{"o4"}},
		{"arr gt 12", []string{"o4"}},
		{"arr lt 6", []string{"o4"}},
		{"arr gt 15", nil},
		{"list.k eq 'b'", []string{"o2"}},
		{"list.n eq 1", []string{"o2"}},
		{"list.n gt 2", []string{"o3"}},
		{"arr.1 eq 10", []string{"o4"}},
		{"list.0.k eq 'a'", []string{"o2"}},
		{"list.1.k eq 'b'", []string{"o2"}},
		{"list.1.k eq 'c'", nil},
		{"nested.a.b.c eq 7", []string{"o3"}},
		{"nested.a.b.c ge 7", []string{"o3"}},
		{"nested.a.b eq null", []string{"o1", "o2", "o4", o5, "o6"}},
		{"has(nested.a)", []string{"o3"}},
		{"name eq 'o*'", []string{"o1", "o2", "o3", "o4", "o6"}},
		{"name eq '*3'", []string{"o3"}},
		{"name eq '*'", all},
		{"name eq 'o'", nil},
		{"name ne 'o*'", []string{o5}},
		{"name eq 'we?rd[*'", []string{o5}},
		{"tags eq 'x*'", []string{"o1", "o4"}},
		{"c8y_Level.unit eq '*'", []string{"o1", "o2", "o6"}},
		{"c8y_Level.unit ne '*'", []string{"o3", "o4", o5}},
		{"quote eq 'it''s'", []string{"o3"}},
		{"type eq 't*'", all},
		{"type eq 'tA'", []string{"o1", "o3"}},
		{"id eq '" + ids["o2"] + "'", []string{"o2"}},
		{"id le '" + ids["o2"] + "'", []string{"o1", "o2"}},
		{"id gt " + ids["o4"], []string{o5, "o6"}},
		{"id eq 0.5", nil},
		{"has(id)", all},
		{"creationTime gt '2000'", nil},
		{"creationTime ne 'x'", all},
		{"creationTime eq null", nil},
		{"has(creationTime)", all},
		{"lastUpdated lt 99999999999999", nil},
		{"name.x eq null", all},
		{"has(name.x)", nil},
		{"when gt '2000'", nil},
		{"has(when)", []string{"o1"}},
		{"when eq null", []string{"o2", "o3", "o4", o5, "o6"}},
		{"tenant eq 'q'", all},
		{"tenant eq 'other'", nil},
		{"not(has(c8y_Level))", []string{"o4", o5}},
		{"not(tags eq 'y' or flag eq true)", []string{"o3", "o4", o5, "o6"}},
		{"flag eq true or flag eq false and type eq 'tB'", []string{"o1", "o2"}},
		{"flag eq true or flag eq false and type eq 'tA'", []string{"o1"}},
		{"(flag eq true or flag eq false) and type eq 'tB'", []string{"o2"}},
		{"name EQ 'o1' OR name Eq 'o2'", []string{"o1", "o2"}},
		{"NOT(HAS(c8y_Level)) AnD type EQ 'tB'", []string{"o4"}},
		{"$filter=(name eq 'o1')", []string{"o1"}},
		{"$orderby=name desc", []string{o5, "o6", "o4", "o3", "o2", "o1"}},
		{"$orderby=id desc", []string{"o6", o5, "o4", "o3", "o2", "o1"}},
		{"$orderby=type asc, name desc", []string{o5, "o3", "o1", "o4", "o2", "o6"}},
		{"$orderby=c8y_Level.value", []string{"o4", o5, "o6", "o1", "o2", "o3"}},
		{"$orderby=c8y_Level.value desc", []string{"o3", "o2", "o1", "o6", "o4", o5}},
		// With a filter: the MongoDB engine's shortcut through the
		// embedded FerretDB's SQLite file, which serves a list without
		// one, orders booleans as numbers.
		{"name ne 'x' $orderby=flag", []string{"o3", o5, "o6", "o4", "o2", "o1"}},
		{"name ne 'x' $orderby=flag desc", []string{"o1", "o2", "o4", "o3", o5, "o6"}},
		{"$orderby=when", []string{"o2", "o3", "o4", o5, "o6", "o1"}},
		{"tags ne 1 $orderby=tags", []string{"o3", o5, "o6", "o1", "o4", "o2"}},
		{"tags ne 1 $orderby=tags desc", []string{"o1", "o2", "o4", o5, "o6", "o3"}},
		{"list.k eq null", []string{"o1", "o4", o5, "o6"}},
		{"$filter=(has(c8y_Level)) $orderby=c8y_Level.value desc", []string{"o3", "o2", "o1", "o6"}},
		{"name ne 'x' $orderby=nested.a.b.c desc", []string{"o3", "o1", "o2", "o4", o5, "o6"}},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			mos, total, err := s.ListManagedObjects(ctx, "q", store.ManagedObjectFilter{Query: tc.query, Page: store.Page{Size: 10, WithTotal: true}})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(names(mos), tc.want) || total != int64(len(tc.want)) {
				t.Fatalf("got %v (total %d), want %v", names(mos), total, tc.want)
			}
		})
	}

	// a query's pages and total, with the type and fragment filters
	mos, total, err := s.ListManagedObjects(ctx, "q", store.ManagedObjectFilter{
		Query: "has(c8y_Level) $orderby=name desc", Page: store.Page{Size: 2, Current: 2, WithTotal: true},
	})
	if err != nil || !slices.Equal(names(mos), []string{"o2", "o1"}) || total != 4 {
		t.Errorf("second page of a query: %v (total %d, %v), want [o2 o1] of 4", names(mos), total, err)
	}
	mos, total, err = s.ListManagedObjects(ctx, "q", store.ManagedObjectFilter{
		Type: "tA", FragmentType: "c8y_Level", Query: "c8y_Level.value ne 2.5", Page: store.Page{WithTotal: true},
	})
	if err != nil || !slices.Equal(names(mos), []string{"o1", "o3"}) || total != 2 {
		t.Errorf("a query with type and fragment filters: %v (total %d, %v), want [o1 o3]", names(mos), total, err)
	}
	if _, _, err := s.ListManagedObjects(ctx, "q", store.ManagedObjectFilter{Query: "id eq 'x'"}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("an id that is no number: %v, want ErrInvalid", err)
	}
}

// testDeviceTenantIsolation: another tenant can neither delete, remove,
// complete nor release a tenant's device, nor reach it by an endpoint of
// its own, and its queries never list it; the device is whole after.
func testDeviceTenantIsolation(t *testing.T, s store.Engine) {
	dev := must(s.CreateIncompleteDevice(ctx, "a", store.NewDevice{
		Endpoint: "iso", ExternalIDs: []store.ExternalID{{Type: "c8y_Serial", ExternalID: "iso-1"}},
		Registration: store.DeviceRegistration{Params: map[string]any{store.ParamEndpointID: "iso"}},
	}))
	check(t, s.BindPSKIdentity(ctx, store.PSKServer, "iso-id", "a", dev))
	for _, tc := range []struct {
		name string
		do   func() error
		want error
	}{
		{"delete", func() error { _, err := s.DeleteManagedObject(ctx, "b", dev); return err }, store.ErrNotFound},
		{"remove incomplete", func() error { return s.RemoveIncompleteDevice(ctx, "b", dev) }, store.ErrComplete},
		{"complete", func() error { return s.CompleteDevice(ctx, "b", dev) }, store.ErrNotFound},
		{"release identities", func() error { return s.ReleasePendingIdentities(ctx, "b", dev) }, store.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.do(); !errors.Is(err, tc.want) {
				t.Fatalf("%v, want %v", err, tc.want)
			}
		})
	}
	if r := must(s.DeviceSettings(ctx, "a", dev)); !r.Incomplete {
		t.Errorf("a's device completed by b: %+v", r)
	}
	// b's device for the same endpoint leaves a's binding as it is
	mine := must(s.CreateDevice(ctx, "b", "iso"))
	if tenant, id, err := s.DeviceByEndpoint(ctx, "iso"); err != nil || tenant != "a" || id != dev {
		t.Errorf("endpoint bound to %s/%s (%v), want a's device", tenant, id, err)
	}
	if mos, _, err := s.ListManagedObjects(ctx, "b", store.ManagedObjectFilter{Query: "name eq 'iso' or has(c8y_IsDevice)"}); err != nil || len(mos) != 1 || mos[0].ID != mine {
		t.Errorf("b's query lists %+v (%v), want its own device alone", mos, err)
	}
	// b's deletion of its own device leaves a's bindings
	if gone := must(s.DeleteManagedObject(ctx, "b", mine)); !slices.Equal(gone.Endpoints, []string{"iso"}) {
		t.Errorf("b's deletion named %+v", gone)
	}
	check(t, s.CompleteDevice(ctx, "a", dev))
	if tenant, id, err := s.DeviceByEndpoint(ctx, "iso"); err != nil || tenant != "a" || id != dev {
		t.Errorf("endpoint after b's deletion: %s/%s (%v), want a's device", tenant, id, err)
	}
	if _, id, err := s.DeviceByPSKIdentity(ctx, store.PSKServer, "iso-id"); err != nil || id != dev {
		t.Errorf("identity after b's deletion: %s (%v), want a's device", id, err)
	}
	if x, err := s.GetExternalID(ctx, "a", "c8y_Serial", "iso-1"); err != nil || x.ManagedObjectID != dev {
		t.Errorf("a's external id: %+v (%v)", x, err)
	}
}
