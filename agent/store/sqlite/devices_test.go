package sqlite

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

func TestManagedObjects(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	mo, err := s.CreateManagedObject(ctx, "acme", store.ManagedObject{
		ID: "ignored", Name: "dev", Type: store.DeviceType,
		Fragments: map[string]any{
			"c8y_IsDevice": map[string]any{},
			"c8y_Firmware": map[string]any{"name": "fw", "version": "1.0", "size": 3, "url": nil},
			"id":           "reserved", "owner": "reserved", "name": "not a fragment",
			"odd[0]": 1.5,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if mo.ID == "ignored" || mo.CreationTime.IsZero() || !mo.LastUpdated.Equal(mo.CreationTime) {
		t.Fatalf("created %+v", mo)
	}
	wantFrags := map[string]any{
		"c8y_IsDevice": map[string]any{},
		"c8y_Firmware": map[string]any{"name": "fw", "version": "1.0", "size": int64(3), "url": nil},
		"odd[0]":       1.5,
	}
	if !reflect.DeepEqual(mo.Fragments, wantFrags) {
		t.Fatalf("created fragments %#v, want %#v", mo.Fragments, wantFrags)
	}
	got, err := s.GetManagedObject(ctx, "acme", mo.ID)
	if err != nil || !reflect.DeepEqual(got, mo) {
		t.Fatalf("GetManagedObject: %+v, %v; want %+v", got, err, mo)
	}

	// Ids are one sequence: the next object's is the one after.
	next, err := s.CreateManagedObject(ctx, "other", store.ManagedObject{Name: "b"})
	if err != nil {
		t.Fatal(err)
	}
	if a, _ := strconv.Atoi(mo.ID); next.ID != strconv.Itoa(a+1) {
		t.Fatalf("ids %s then %s", mo.ID, next.ID)
	}

	up, err := s.UpdateManagedObject(ctx, "acme", mo.ID, map[string]any{
		"name":         "renamed",
		"type":         nil,
		"c8y_IsDevice": nil,
		"c8y_Firmware": map[string]any{"name": "fw2"},
		"c8y_Position": map[string]any{"lat": 1.25},
		"creationTime": "ignored", "id": "ignored",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := mo
	want.Name, want.Type = "renamed", ""
	want.Fragments = map[string]any{
		"c8y_Firmware": map[string]any{"name": "fw2"},
		"c8y_Position": map[string]any{"lat": 1.25},
		"odd[0]":       1.5,
	}
	want.LastUpdated = up.LastUpdated
	if !reflect.DeepEqual(up, want) || up.LastUpdated.Before(mo.LastUpdated) {
		t.Fatalf("updated %+v, want %+v", up, want)
	}
	if got, _ := s.GetManagedObject(ctx, "acme", mo.ID); !reflect.DeepEqual(got, up) {
		t.Fatalf("read back %+v, want %+v", got, up)
	}

	if err := s.UpdateFragments(ctx, "acme", mo.ID, map[string]any{"c8y_Position": nil, "lastUpdated": 5, "c8y_Hw": "x"}); err != nil {
		t.Fatal(err)
	}
	got, _ = s.GetManagedObject(ctx, "acme", mo.ID)
	if v, ok := got.Fragments["c8y_Position"]; !ok || v != nil || got.Fragments["c8y_Hw"] != "x" || got.LastUpdated.Before(up.LastUpdated) {
		t.Fatalf("after UpdateFragments %+v", got)
	}

	for _, c := range []struct {
		name string
		do   func() error
		want error
	}{
		{"get missing", func() error { _, err := s.GetManagedObject(ctx, "acme", "999"); return err }, store.ErrNotFound},
		{"get other tenant's", func() error { _, err := s.GetManagedObject(ctx, "other", mo.ID); return err }, store.ErrNotFound},
		{"update other tenant's", func() error {
			_, err := s.UpdateManagedObject(ctx, "other", mo.ID, map[string]any{"a": 1})
			return err
		}, store.ErrNotFound},
		{"update fragments of other tenant's", func() error {
			return s.UpdateFragments(ctx, "other", mo.ID, map[string]any{"a": 1})
		}, store.ErrNotFound},
		{"dotted fragment", func() error {
			_, err := s.CreateManagedObject(ctx, "acme", store.ManagedObject{Fragments: map[string]any{"a.b": 1}})
			return err
		}, store.ErrInvalid},
		{"dollar fragment", func() error { return s.UpdateFragments(ctx, "acme", mo.ID, map[string]any{"$set": 1}) }, store.ErrInvalid},
		{"unencodable fragment", func() error { return s.UpdateFragments(ctx, "acme", mo.ID, map[string]any{"f": func() {}}) }, store.ErrInvalid},
	} {
		if err := c.do(); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

func TestExternalIDs(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	mo, err := s.CreateManagedObject(ctx, "acme", store.ManagedObject{Name: "dev"})
	if err != nil {
		t.Fatal(err)
	}
	xs := []store.ExternalID{
		{Type: store.ExternalIDDevice, ExternalID: "ep-1", ManagedObjectID: mo.ID},
		{Type: "c8y_Serial", ExternalID: "S1", ManagedObjectID: mo.ID},
	}
	for _, x := range xs {
		if err := s.CreateExternalID(ctx, "acme", x); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.GetExternalID(ctx, "acme", store.ExternalIDDevice, "ep-1")
	if err != nil || got != xs[0] {
		t.Fatalf("GetExternalID: %+v, %v", got, err)
	}
	list, err := s.ExternalIDsOf(ctx, "acme", mo.ID)
	if err != nil || !reflect.DeepEqual(list, xs) {
		t.Fatalf("ExternalIDsOf: %+v, %v", list, err)
	}
	// Another tenant may use the same pair for its own object.
	other, err := s.CreateManagedObject(ctx, "other", store.ManagedObject{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateExternalID(ctx, "other", store.ExternalID{Type: store.ExternalIDDevice, ExternalID: "ep-1", ManagedObjectID: other.ID}); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name string
		do   func() error
		want error
	}{
		{"taken", func() error {
			return s.CreateExternalID(ctx, "acme", store.ExternalID{Type: "c8y_Serial", ExternalID: "S1", ManagedObjectID: mo.ID})
		}, store.ErrConflict},
		{"object missing", func() error {
			return s.CreateExternalID(ctx, "acme", store.ExternalID{Type: "t", ExternalID: "x", ManagedObjectID: "999"})
		}, store.ErrNotFound},
		{"object of other tenant", func() error {
			return s.CreateExternalID(ctx, "acme", store.ExternalID{Type: "t", ExternalID: "x", ManagedObjectID: other.ID})
		}, store.ErrNotFound},
		{"no type", func() error {
			return s.CreateExternalID(ctx, "acme", store.ExternalID{ExternalID: "x", ManagedObjectID: mo.ID})
		}, store.ErrInvalid},
		{"get missing", func() error { _, err := s.GetExternalID(ctx, "acme", "t", "x"); return err }, store.ErrNotFound},
		{"get other tenant's", func() error { _, err := s.GetExternalID(ctx, "third", "c8y_Serial", "S1"); return err }, store.ErrNotFound},
		{"delete other tenant's", func() error { return s.DeleteExternalID(ctx, "third", "c8y_Serial", "S1") }, store.ErrNotFound},
	} {
		if err := c.do(); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}

	if err := s.DeleteExternalID(ctx, "acme", "c8y_Serial", "S1"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteExternalID(ctx, "acme", "c8y_Serial", "S1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if list, err := s.ExternalIDsOf(ctx, "acme", mo.ID); err != nil || !reflect.DeepEqual(list, xs[:1]) {
		t.Fatalf("after delete: %+v, %v", list, err)
	}
	if list, err := s.ExternalIDsOf(ctx, "acme", "999"); err != nil || len(list) != 0 {
		t.Fatalf("of a missing object: %+v, %v", list, err)
	}
}

// Updates of one object's different fragments at once all land: each is
// merged by its statement, not by writing back an earlier read.
func TestUpdateManagedObjectConcurrent(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	mo, err := s.CreateManagedObject(ctx, "acme", store.ManagedObject{Name: "dev"})
	if err != nil {
		t.Fatal(err)
	}
	const writers, rounds = 4, 20
	var wg sync.WaitGroup
	errs := make(chan error, writers*rounds)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				frag := fmt.Sprintf("f%d", w)
				var err error
				if i%2 == 0 {
					_, err = s.UpdateManagedObject(ctx, "acme", mo.ID, map[string]any{frag: map[string]any{"n": i}})
				} else {
					err = s.UpdateFragments(ctx, "acme", mo.ID, map[string]any{frag: map[string]any{"n": i}})
				}
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got, err := s.GetManagedObject(ctx, "acme", mo.ID)
	if err != nil {
		t.Fatal(err)
	}
	for w := range writers {
		if f := got.Fragments[fmt.Sprintf("f%d", w)]; !reflect.DeepEqual(f, map[string]any{"n": int64(rounds - 1)}) {
			t.Errorf("f%d = %#v, want n %d", w, f, rounds-1)
		}
	}
}

func TestUpdateMany(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	a, err := s.CreateManagedObject(ctx, "acme", store.ManagedObject{Fragments: map[string]any{
		"c8y_Firmware": map[string]any{"name": "fw", "url": "u"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.CreateManagedObject(ctx, "acme", store.ManagedObject{})
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.CreateManagedObject(ctx, "other", store.ManagedObject{})
	if err != nil {
		t.Fatal(err)
	}

	missing, err := s.UpdateFragmentsMany(ctx, "acme", map[string]map[string]any{
		a.ID:     {"c8y_Status": "up"},
		b.ID:     {"c8y_Status": "down", "id": "ignored"},
		"999":    {"c8y_Status": "x"},
		other.ID: {"c8y_Status": "x"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{other.ID, "999"}; !reflect.DeepEqual(missing, want) {
		t.Fatalf("missing %v, want %v", missing, want)
	}

	missing, err = s.UpdateFieldsMany(ctx, "acme", map[string]map[string]any{
		a.ID: {"c8y_Firmware.version": "2", "c8y_Mobile.imei": "123"},
		b.ID: {"c8y_Availability": map[string]any{"status": "AVAILABLE"}},
	})
	if err != nil || len(missing) != 0 {
		t.Fatalf("UpdateFieldsMany: %v, %v", missing, err)
	}
	got, err := s.GetManagedObject(ctx, "acme", a.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"c8y_Firmware": map[string]any{"name": "fw", "url": "u", "version": "2"},
		"c8y_Mobile":   map[string]any{"imei": "123"},
		"c8y_Status":   "up",
	}
	if !reflect.DeepEqual(got.Fragments, want) {
		t.Fatalf("fragments of a %#v, want %#v", got.Fragments, want)
	}
	got, _ = s.GetManagedObject(ctx, "acme", b.ID)
	want = map[string]any{"c8y_Status": "down", "c8y_Availability": map[string]any{"status": "AVAILABLE"}}
	if !reflect.DeepEqual(got.Fragments, want) {
		t.Fatalf("fragments of b %#v, want %#v", got.Fragments, want)
	}
	if got, _ := s.GetManagedObject(ctx, "other", other.ID); len(got.Fragments) != 0 {
		t.Fatalf("other tenant's object changed: %#v", got.Fragments)
	}

	for _, bad := range []map[string]any{{"a.b.c": 1}, {"a.": 1}, {"a.$b": 1}} {
		if _, err := s.UpdateFieldsMany(ctx, "acme", map[string]map[string]any{a.ID: bad}); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("UpdateFieldsMany %v: %v, want ErrInvalid", bad, err)
		}
	}
	if _, err := s.UpdateFragmentsMany(ctx, "acme", map[string]map[string]any{a.ID: {"a.b": 1}}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("UpdateFragmentsMany with a dotted name: %v, want ErrInvalid", err)
	}
}

func TestListManagedObjects(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	var devices []store.ManagedObject
	for i := range 12 {
		mo := store.ManagedObject{Name: fmt.Sprint(i), Type: "other"}
		if i%2 == 0 {
			mo.Type = store.DeviceType
			mo.Fragments = map[string]any{"c8y_IsDevice": map[string]any{}}
		}
		if i%3 == 0 {
			mo.Fragments = map[string]any{"c8y_Firmware": map[string]any{"version": "1"}}
		}
		mo, err := s.CreateManagedObject(ctx, "acme", mo)
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			devices = append(devices, mo)
		}
	}
	if _, err := s.CreateManagedObject(ctx, "other", store.ManagedObject{Type: store.DeviceType}); err != nil {
		t.Fatal(err)
	}
	names := func(mos []store.ManagedObject) []string {
		var out []string
		for _, mo := range mos {
			out = append(out, mo.Name)
		}
		return out
	}

	for _, c := range []struct {
		name  string
		f     store.ManagedObjectFilter
		want  []string
		total int64
	}{
		{"first page of all", store.ManagedObjectFilter{Page: store.Page{WithTotal: true}}, []string{"0", "1", "2", "3", "4"}, 12},
		{"third page of all", store.ManagedObjectFilter{Page: store.Page{Current: 3, WithTotal: true}}, []string{"10", "11"}, 12},
		{"past the end", store.ManagedObjectFilter{Page: store.Page{Current: 9}}, nil, -1},
		{"by type", store.ManagedObjectFilter{Type: store.DeviceType, Page: store.Page{Size: 3, Current: 2, WithTotal: true}}, []string{"6", "8", "10"}, 6},
		{"by fragment", store.ManagedObjectFilter{FragmentType: "c8y_IsDevice", Page: store.Page{Size: 100, WithTotal: true}}, []string{"2", "4", "8", "10"}, 4},
		{"by fragment field", store.ManagedObjectFilter{FragmentType: "c8y_Firmware.version", Page: store.Page{Size: 100}}, []string{"0", "3", "6", "9"}, -1},
		{"by type and fragment", store.ManagedObjectFilter{Type: "other", FragmentType: "c8y_Firmware", Page: store.Page{WithTotal: true}}, []string{"3", "9"}, 2},
	} {
		mos, total, err := s.ListManagedObjects(ctx, "acme", c.f)
		if err != nil || !reflect.DeepEqual(names(mos), c.want) || total != c.total {
			t.Errorf("%s: %v total %d, %v; want %v total %d", c.name, names(mos), total, err, c.want, c.total)
		}
	}
	mos, _, err := s.ListManagedObjects(ctx, "acme", store.ManagedObjectFilter{Type: store.DeviceType, Page: store.Page{Size: 100}})
	if err != nil || !reflect.DeepEqual(mos, devices) {
		t.Fatalf("listed %+v, %v; want %+v", mos, err, devices)
	}
	if mos, _, err := s.ListManagedObjects(ctx, "acme", store.ManagedObjectFilter{Query: "name eq '3' or name eq '10'"}); err != nil || !reflect.DeepEqual(names(mos), []string{"3", "10"}) {
		t.Fatalf("a query: %v %v, want [3 10]", names(mos), err)
	}
	if _, _, err := s.ListManagedObjects(ctx, "acme", store.ManagedObjectFilter{Query: "name like 'x'"}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("a query out of the language: %v, want ErrInvalid", err)
	}
}

// The embedded engine's objects hold what a MongoDB document holds:
// 16 MiB of name and fragments, refused as ErrInvalid beyond, whichever
// statement grows them.
func TestDocumentLimit(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	fits := strings.Repeat("x", maxDocument-1024)
	mo, err := s.CreateManagedObject(ctx, "acme", store.ManagedObject{Name: "n", Type: "t", Fragments: map[string]any{"a": fits}})
	if err != nil {
		t.Fatalf("an object just below the limit: %v", err)
	}
	if _, err := s.CreateManagedObject(ctx, "acme", store.ManagedObject{Name: strings.Repeat("x", maxDocument+1), Type: "t"}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("create beyond the limit: %v, want ErrInvalid", err)
	}
	if err := s.UpdateFragments(ctx, "acme", mo.ID, map[string]any{"b": strings.Repeat("y", 2048)}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("update beyond the limit: %v, want ErrInvalid", err)
	}
}
