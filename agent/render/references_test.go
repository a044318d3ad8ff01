package render_test

import (
	"context"
	"fmt"
	"reflect"
	"sync/atomic"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/render"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/sqlite"
)

// counted passes the reads of references to the embedded engine and
// counts them: what a rendering costs the store.
type counted struct {
	store.References
	reads atomic.Int64
}

func (c *counted) ListChildren(ctx context.Context, tenant, kind, parent string, p store.Page) ([]store.ManagedObject, int64, error) {
	c.reads.Add(1)
	return c.References.ListChildren(ctx, tenant, kind, parent, p)
}

func (c *counted) ParentsOf(ctx context.Context, tenant, kind, child string, limit int) ([]string, error) {
	c.reads.Add(1)
	return c.References.ParentsOf(ctx, tenant, kind, child, limit)
}

func (c *counted) AllReferences(ctx context.Context, tenant, id string, limit int) (store.ObjectReferences, error) {
	c.reads.Add(1)
	return c.References.AllReferences(ctx, tenant, id, limit)
}

// refsFixture is an embedded engine holding a group with children of
// two kinds, one of them a device that is also a child of a second
// group, and a device without references.
type refsFixture struct {
	st                  store.Engine
	group, member, lone string
}

func newRefsFixture(tb testing.TB, children int) refsFixture {
	tb.Helper()
	ctx := context.Background()
	st, err := sqlite.OpenEngine(ctx, sqlite.Config{Dir: tb.TempDir()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close(ctx) })
	mo := func(name, typ string) string {
		o, err := st.CreateManagedObject(ctx, "a", store.ManagedObject{Name: name, Type: typ})
		if err != nil {
			tb.Fatal(err)
		}
		return o.ID
	}
	ref := func(kind, parent, child string) {
		if err := st.AddChildReference(ctx, "a", kind, parent, child); err != nil {
			tb.Fatal(err)
		}
	}
	f := refsFixture{st: st, group: mo("group", store.GroupType), member: mo("member", "thing"), lone: mo("lone", "thing")}
	other := mo("other", store.GroupType)
	ref(store.ChildAssets, f.group, f.member)
	ref(store.ChildDevices, other, f.member)
	for i := range children {
		ref(store.ChildAssets, f.group, mo(fmt.Sprintf("k%d", i), "thing"))
	}
	ref(store.ChildAdditions, f.group, mo("addition", "thing"))
	return f
}

// perKind is an object's references as the API lists them kind by kind
// (GET .../childAssets, .../assetParents, ...), which its rendering
// must show.
func perKind(t *testing.T, st store.References, base, id string) map[string]any {
	t.Helper()
	ctx := context.Background()
	path := "/inventory/managedObjects/" + id + "/"
	out := map[string]any{}
	for _, kind := range store.ReferenceKinds {
		kids, _, err := st.ListChildren(ctx, "a", kind, id, store.Page{Size: render.ReferencesShown})
		if err != nil {
			t.Fatal(err)
		}
		refs := []map[string]any{}
		for _, k := range kids {
			refs = append(refs, render.Reference(base, kind, id, map[string]any{"id": k.ID, "name": k.Name, "self": base + "/inventory/managedObjects/" + k.ID}))
		}
		out[kind] = map[string]any{"self": base + path + kind, "references": refs}
		parents, err := st.ParentsOf(ctx, "a", kind, id, render.ReferencesShown)
		if err != nil {
			t.Fatal(err)
		}
		prefs := []map[string]any{}
		for _, p := range parents {
			prefs = append(prefs, map[string]any{"managedObject": map[string]any{"id": p, "self": base + "/inventory/managedObjects/" + p}})
		}
		out[store.ParentsName(kind)] = map[string]any{"self": base + path + store.ParentsName(kind), "references": prefs}
	}
	return out
}

// An object's rendering shows its references of every kind, both ways,
// bounded per kind, and reads them from the store once.
func TestWithReferencesOneRead(t *testing.T) {
	const base = "http://h"
	f := newRefsFixture(t, render.ReferencesShown+5)
	for _, tc := range []struct {
		name string
		id   func() string
	}{
		{"group of more than shown", func() string { return f.group }},
		{"member of two", func() string { return f.member }},
		{"without references", func() string { return f.lone }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := tc.id()
			c := &counted{References: f.st}
			got := map[string]any{"id": id}
			if err := render.WithReferences(context.Background(), base, c, "a", got); err != nil {
				t.Fatal(err)
			}
			if n := c.reads.Load(); n != 1 {
				t.Errorf("%d reads of the store, want 1", n)
			}
			want := perKind(t, f.st, base, id)
			want["id"] = id
			if !reflect.DeepEqual(got, want) {
				t.Errorf("rendering\n%v\nwant\n%v", got, want)
			}
		})
	}
}

// BenchmarkWithReferences is the references part of rendering an object
// for a realtime notification or a GET: reads/op is the store reads
// per rendering.
func BenchmarkWithReferences(b *testing.B) {
	f := newRefsFixture(b, 200)
	for _, bc := range []struct{ name, id string }{
		{"device without references", f.lone},
		{"device in two groups", f.member},
		{"group of 202", f.group},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c := &counted{References: f.st}
			b.ReportAllocs()
			for b.Loop() {
				if err := render.WithReferences(context.Background(), "http://h", c, "a", map[string]any{"id": bc.id}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(c.reads.Load())/float64(b.N), "reads/op")
		})
	}
}
