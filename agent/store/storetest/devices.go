package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
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

// A device without a record, or with one that says nothing of security,
// is adopted as NO_SEC; a device whose record says otherwise is not.
func testAdoptNoSecDevice(t *testing.T, s store.Engine) {
	bare := must(s.CreateManagedObject(ctx, "a", store.ManagedObject{Name: "old-ep", Type: store.DeviceType})).ID
	if !must(s.AdoptNoSecDevice(ctx, "a", bare, "old-ep")) {
		t.Fatal("a device without a record was not adopted")
	}
	if r := must(s.DeviceRegistrationOf(ctx, "a", bare)); r.SecurityMode() != store.SecurityNoSec {
		t.Fatalf("adopted record: %+v", r)
	}
	keyed := must(s.CreateManagedObject(ctx, "a", store.ManagedObject{Name: "psk-ep", Type: store.DeviceType})).ID
	check(t, s.SaveDeviceRegistration(ctx, "a", keyed, store.DeviceRegistration{
		Params: map[string]any{store.ParamSecurityMode: store.SecurityPSK, "lwm2mPskId": "psk-id"}, PSKKey: []byte{1},
	}))
	if must(s.AdoptNoSecDevice(ctx, "a", keyed, "psk-ep")) {
		t.Fatal("a PSK device was adopted as NO_SEC")
	}
	if r := must(s.DeviceRegistrationOf(ctx, "a", keyed)); r.SecurityMode() != store.SecurityPSK {
		t.Fatalf("record of a device not adopted: %+v", r)
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
