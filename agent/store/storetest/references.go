package storetest

import (
	"errors"
	"reflect"
	"slices"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

var referenceCases = []suiteCase{
	{"AddListRemove", testReferencesAddListRemove},
	{"Refused", testReferencesRefused},
	{"TenantIsolation", testReferencesIsolation},
	{"DeleteRemovesThem", testReferencesDeleted},
	{"AllInOneRead", testAllReferences},
}

func object(s store.Engine, tenant, name, typ string) string {
	return must(s.CreateManagedObject(ctx, tenant, store.ManagedObject{Name: name, Type: typ})).ID
}

func childNames(t *testing.T, s store.Engine, tenant, kind, parent string, p store.Page) ([]string, int64) {
	t.Helper()
	mos, total, err := s.ListChildren(ctx, tenant, kind, parent, p)
	check(t, err)
	return names(mos), total
}

// Children come in the order they were added, a page at a time; adding
// one again changes nothing; each kind is its own list.
func testReferencesAddListRemove(t *testing.T, s store.Engine) {
	g := object(s, "a", "group", store.GroupType)
	var kids []string
	for _, n := range []string{"k1", "k2", "k3"} {
		kids = append(kids, object(s, "a", n, "thing"))
	}
	for _, k := range []string{kids[2], kids[0], kids[1]} {
		check(t, s.AddChildReference(ctx, "a", store.ChildAssets, g, k))
	}
	check(t, s.AddChildReference(ctx, "a", store.ChildAssets, g, kids[2]))
	check(t, s.AddChildReference(ctx, "a", store.ChildAdditions, g, kids[1]))

	got, total := childNames(t, s, "a", store.ChildAssets, g, store.Page{Size: 2, WithTotal: true})
	if !slices.Equal(got, []string{"k3", "k1"}) || total != 3 {
		t.Errorf("first page %v of %d, want [k3 k1] of 3 (order added; a repeat keeps its place)", got, total)
	}
	if got, _ = childNames(t, s, "a", store.ChildAssets, g, store.Page{Size: 2, Current: 2}); !slices.Equal(got, []string{"k2"}) {
		t.Errorf("second page %v, want [k2]", got)
	}
	if got, _ = childNames(t, s, "a", store.ChildAdditions, g, store.Page{}); !slices.Equal(got, []string{"k2"}) {
		t.Errorf("child additions %v, want [k2]", got)
	}
	if ps := must(s.ParentsOf(ctx, "a", store.ChildAssets, kids[1], 10)); !slices.Equal(ps, []string{g}) {
		t.Errorf("asset parents of k2: %v, want [%s]", ps, g)
	}
	if ps := must(s.ParentsOf(ctx, "a", store.ChildDevices, kids[1], 10)); len(ps) != 0 {
		t.Errorf("device parents of k2: %v, want none", ps)
	}

	check(t, s.RemoveChildReference(ctx, "a", store.ChildAssets, g, kids[0]))
	if got, _ = childNames(t, s, "a", store.ChildAssets, g, store.Page{}); !slices.Equal(got, []string{"k3", "k2"}) {
		t.Errorf("after removing k1: %v, want [k3 k2]", got)
	}
	if err := s.RemoveChildReference(ctx, "a", store.ChildAssets, g, kids[0]); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("removing it again: %v, want ErrNotFound", err)
	}
	if _, err := s.GetManagedObject(ctx, "a", kids[0]); err != nil {
		t.Errorf("the child itself must stay: %v", err)
	}
}

func testReferencesRefused(t *testing.T, s store.Engine) {
	g := object(s, "a", "group", store.GroupType)
	k := object(s, "a", "k", "thing")
	other := object(s, "b", "theirs", "thing")
	for _, c := range []struct {
		name                string
		kind, parent, child string
		want                error
	}{
		{"missing child", store.ChildAssets, g, "999999", store.ErrNotFound},
		{"missing parent", store.ChildAssets, "999999", k, store.ErrNotFound},
		{"other tenant's child", store.ChildAssets, g, other, store.ErrNotFound},
		{"other tenant's parent", store.ChildAssets, other, k, store.ErrNotFound},
		{"itself", store.ChildAssets, g, g, store.ErrInvalid},
		{"unknown kind", "childThings", g, k, store.ErrInvalid},
	} {
		if err := s.AddChildReference(ctx, "a", c.kind, c.parent, c.child); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	if got, _ := childNames(t, s, "a", store.ChildAssets, g, store.Page{}); len(got) != 0 {
		t.Errorf("refused references were stored: %v", got)
	}
}

func testReferencesIsolation(t *testing.T, s store.Engine) {
	g := object(s, "a", "group", store.GroupType)
	k := object(s, "a", "k", "thing")
	check(t, s.AddChildReference(ctx, "a", store.ChildAssets, g, k))
	if got, _ := childNames(t, s, "b", store.ChildAssets, g, store.Page{}); len(got) != 0 {
		t.Errorf("tenant b lists a's children: %v", got)
	}
	if ps := must(s.ParentsOf(ctx, "b", store.ChildAssets, k, 10)); len(ps) != 0 {
		t.Errorf("tenant b lists a's parents: %v", ps)
	}
	if all := must(s.AllReferences(ctx, "b", g, 10)); all.Children != nil || all.Parents != nil {
		t.Errorf("tenant b reads a's group's references: %+v", all)
	}
	if all := must(s.AllReferences(ctx, "b", k, 10)); all.Children != nil || all.Parents != nil {
		t.Errorf("tenant b reads a's child's references: %+v", all)
	}
	if err := s.RemoveChildReference(ctx, "b", store.ChildAssets, g, k); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("tenant b removes a's reference: %v, want ErrNotFound", err)
	}
	if got, _ := childNames(t, s, "a", store.ChildAssets, g, store.Page{}); !slices.Equal(got, []string{"k"}) {
		t.Errorf("a's children after b's tries: %v", got)
	}
}

// Deleting an object removes the references to it and from it.
func testReferencesDeleted(t *testing.T, s store.Engine) {
	g := object(s, "a", "group", store.GroupType)
	sub := object(s, "a", "sub", store.GroupType)
	dev := must(s.CreateDevice(ctx, "a", "ep"))
	keep := object(s, "a", "keep", "thing")
	check(t, s.AddChildReference(ctx, "a", store.ChildAssets, g, sub))
	check(t, s.AddChildReference(ctx, "a", store.ChildAssets, g, dev))
	check(t, s.AddChildReference(ctx, "a", store.ChildAssets, g, keep))
	check(t, s.AddChildReference(ctx, "a", store.ChildAssets, sub, keep))
	must(s.DeleteManagedObject(ctx, "a", dev))
	if got, total := childNames(t, s, "a", store.ChildAssets, g, store.Page{WithTotal: true}); !slices.Equal(got, []string{"sub", "keep"}) || total != 2 {
		t.Errorf("after deleting the device: %v of %d, want [sub keep] of 2", got, total)
	}
	must(s.DeleteManagedObject(ctx, "a", sub))
	if ps := must(s.ParentsOf(ctx, "a", store.ChildAssets, keep, 10)); !slices.Equal(ps, []string{g}) {
		t.Errorf("after deleting the subgroup, keep's parents: %v, want [%s]", ps, g)
	}
}

// byKind is AllReferences read kind by kind through ListChildren and
// ParentsOf, which it must equal.
func byKind(t *testing.T, s store.Engine, tenant, id string, limit int) store.ObjectReferences {
	t.Helper()
	var out store.ObjectReferences
	for _, kind := range store.ReferenceKinds {
		kids, _, err := s.ListChildren(ctx, tenant, kind, id, store.Page{Size: limit})
		check(t, err)
		for _, k := range kids {
			out.AddChild(kind, store.ReferencedObject{ID: k.ID, Name: k.Name})
		}
		for _, p := range must(s.ParentsOf(ctx, tenant, kind, id, limit)) {
			out.AddParent(kind, p)
		}
	}
	return out
}

// AllReferences answers what the reads per kind answer, in their order
// and bounded per kind, whether the object has few references or more
// than limit of every kind together.
func testAllReferences(t *testing.T, s store.Engine) {
	mid := object(s, "a", "mid", store.GroupType)
	var kids, parents []string
	for _, n := range []string{"k1", "k2", "k3", "k4"} {
		kids = append(kids, object(s, "a", n, "thing"))
	}
	for _, n := range []string{"p1", "p2", "p3"} {
		parents = append(parents, object(s, "a", n, store.GroupType))
	}
	for _, k := range []string{kids[3], kids[0], kids[2]} {
		check(t, s.AddChildReference(ctx, "a", store.ChildAssets, mid, k))
	}
	check(t, s.AddChildReference(ctx, "a", store.ChildAdditions, mid, kids[1]))
	check(t, s.AddChildReference(ctx, "a", store.ChildAssets, parents[2], mid))
	check(t, s.AddChildReference(ctx, "a", store.ChildAssets, parents[0], mid))
	check(t, s.AddChildReference(ctx, "a", store.ChildDevices, parents[1], mid))
	lone := object(s, "a", "lone", "thing")

	want := store.ObjectReferences{
		Children: map[string][]store.ReferencedObject{
			store.ChildAssets:    {{ID: kids[3], Name: "k4"}, {ID: kids[0], Name: "k1"}, {ID: kids[2], Name: "k3"}},
			store.ChildAdditions: {{ID: kids[1], Name: "k2"}},
		},
		Parents: map[string][]string{store.ChildAssets: {parents[2], parents[0]}, store.ChildDevices: {parents[1]}},
	}
	for _, c := range []struct {
		name  string
		id    string
		limit int
		want  *store.ObjectReferences
	}{
		{"few", mid, 10, &want},
		{"unbounded", mid, 0, &want},
		// 7 references, more than 1 of each of 6 lists together
		{"more than the limit", mid, 1, nil},
		{"more than the limit of one kind", mid, 2, nil},
		{"a child's", kids[0], 10, nil},
		{"none", lone, 10, &store.ObjectReferences{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := must(s.AllReferences(ctx, "a", c.id, c.limit))
			w := byKind(t, s, "a", c.id, c.limit)
			if c.want != nil && !reflect.DeepEqual(w, *c.want) {
				t.Fatalf("the reads per kind: %+v, want %+v", w, *c.want)
			}
			if !reflect.DeepEqual(got, w) {
				t.Errorf("AllReferences(%s, %d) = %+v, want %+v", c.id, c.limit, got, w)
			}
		})
	}

	// a deleted child is gone from its parent's references
	must(s.DeleteManagedObject(ctx, "a", kids[0]))
	got := must(s.AllReferences(ctx, "a", mid, 10))
	if ids := got.Children[store.ChildAssets]; len(ids) != 2 || ids[0].ID != kids[3] || ids[1].ID != kids[2] {
		t.Errorf("after deleting k1: %+v, want [k4 k3]", ids)
	}
}
