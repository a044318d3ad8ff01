package model

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

func TestResourceOperations(t *testing.T) {
	tests := []struct {
		ops                     string
		read, write, executable bool
	}{
		{"R", true, false, false},
		{"W", false, true, false},
		{"RW", true, true, false},
		{"E", false, false, true},
		{"", false, false, false},
	}
	for _, tc := range tests {
		t.Run("ops="+tc.ops, func(t *testing.T) {
			r := ResourceDef{Operations: tc.ops}
			if r.Readable() != tc.read || r.Writable() != tc.write || r.Executable() != tc.executable {
				t.Errorf("got readable=%v writable=%v executable=%v", r.Readable(), r.Writable(), r.Executable())
			}
		})
	}
}

func TestValidate(t *testing.T) {
	ok := func(mod func(*ObjectDef)) ObjectDef {
		d := ObjectDef{ID: 10, Name: "X", Resources: []ResourceDef{{ID: 0, Name: "a", Operations: "R", Type: node.TypeString}, {ID: 5, Name: "b", Operations: "E"}}}
		if mod != nil {
			mod(&d)
		}
		return d
	}
	tests := []struct {
		name string
		def  ObjectDef
		want string // "" for valid
	}{
		{"valid", ok(nil), ""},
		{"no resources", ObjectDef{ID: 1, Name: "X"}, ""},
		{"object ID 65535", ok(func(d *ObjectDef) { d.ID = 65535 }), "object ID 65535 is above 65534"},
		{"no name", ok(func(d *ObjectDef) { d.Name = " " }), "object 10 has no name"},
		{"unsorted", ok(func(d *ObjectDef) { d.Resources[0].ID = 7 }), "not sorted by ID (5 after 7)"},
		{"duplicate", ok(func(d *ObjectDef) { d.Resources[1].ID = 0 }), "resource 0 is defined twice"},
		{"resource without name", ok(func(d *ObjectDef) { d.Resources[1].Name = "" }), "/10/x/5 has no name"},
		{"bad operations", ok(func(d *ObjectDef) { d.Resources[0].Operations = "X" }), `operations "X" is not one of`},
		{"bad type", ok(func(d *ObjectDef) { d.Resources[0].Type = 99 }), "unknown type 99"},
		{"resource ID 65535", ok(func(d *ObjectDef) { d.Resources[1].ID = 65535 }), "resource ID 65535 is above"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.def.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrInvalidDef) {
				t.Fatalf("got %v, want an ErrInvalidDef with %q", err, tc.want)
			}
		})
	}
}

func TestSortResources(t *testing.T) {
	d := ObjectDef{ID: 1, Name: "X", Resources: []ResourceDef{{ID: 9, Name: "c"}, {ID: 1, Name: "a"}, {ID: 4, Name: "b"}}}
	d.SortResources()
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, id := range []uint16{1, 4, 9} {
		if _, ok := d.Resource(id); !ok {
			t.Errorf("resource %d not found after sorting", id)
		}
	}
	if _, ok := d.Resource(2); ok {
		t.Error("resource 2 found, it does not exist")
	}
}

func TestRegistryResourceType(t *testing.T) {
	r := Core()
	tests := []struct {
		path string
		typ  node.Type
		ok   bool
	}{
		{"/3/0/0", node.TypeString, true},
		{"/3/0/7/1", node.TypeInteger, true},
		{"/3/0/4", node.TypeNone, true},
		{"/3/0/13", node.TypeTime, true},
		{"/1/0/1", node.TypeInteger, true},
		{"/1/0/7", node.TypeString, true},
		{"/3303/0/5700", node.TypeFloat, true},
		{"/3303/1/5701", node.TypeString, true},
		{"/5/0/1", node.TypeString, true},
		{"/5/0/0", node.TypeOpaque, true},
		{"/6/0/0", node.TypeFloat, true},
		{"/4/0/0", node.TypeInteger, true},
		{"/0/0/2", node.TypeInteger, true},
		{"/2/0/2/1", node.TypeInteger, true},
		{"/3/0/999", node.TypeNone, false},
		{"/3304/0/5700", node.TypeNone, false},
		{"/3/0", node.TypeNone, false},
		{"/3", node.TypeNone, false},
		{"/", node.TypeNone, false},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			typ, ok := r.ResourceType(node.MustParsePath(tc.path))
			if typ != tc.typ || ok != tc.ok {
				t.Errorf("got %v %v, want %v %v", typ, ok, tc.typ, tc.ok)
			}
		})
	}
}

func TestRegistryPutDelete(t *testing.T) {
	a, b := Core(), Core()
	if a.Len() != 9 {
		t.Fatalf("core registry holds %d objects, want 9", a.Len())
	}
	custom := ObjectDef{ID: 3303, Name: "My Temperature", Resources: []ResourceDef{{ID: 5700, Name: "v", Operations: "R", Type: node.TypeInteger}}}
	a.Put(custom)
	if typ, _ := a.ResourceType(node.MustParsePath("/3303/0/5700")); typ != node.TypeInteger {
		t.Errorf("after Put: type %v, want INTEGER", typ)
	}
	if typ, _ := b.ResourceType(node.MustParsePath("/3303/0/5700")); typ != node.TypeFloat {
		t.Errorf("another Core() registry changed: type %v, want FLOAT", typ)
	}
	if o, _ := Core().Object(3303); o.Name != "Temperature" {
		t.Errorf("the built-ins changed: %q", o.Name)
	}
	if !a.Delete(3303) || a.Delete(3303) {
		t.Error("Delete should report true once, then false")
	}
	if _, ok := a.Object(3303); ok {
		t.Error("object 3303 still there after Delete")
	}
	all := b.All()
	for i := 1; i < len(all); i++ {
		if all[i-1].ID >= all[i].ID {
			t.Fatalf("All is not sorted: %d before %d", all[i-1].ID, all[i].ID)
		}
	}
	r := NewRegistry(ObjectDef{ID: 1, Name: "first"}, ObjectDef{ID: 1, Name: "second"})
	if o, _ := r.Object(1); o.Name != "second" || r.Len() != 1 {
		t.Errorf("a later definition should replace an earlier one; got %q, %d objects", o.Name, r.Len())
	}
}

func TestZeroRegistry(t *testing.T) {
	var r Registry
	if _, ok := r.Object(3); ok || r.Len() != 0 || len(r.All()) != 0 || r.Delete(3) {
		t.Fatal("a zero Registry should be empty")
	}
	r.Put(ObjectDef{ID: 3, Name: "Device"})
	if o, ok := r.Object(3); !ok || o.Name != "Device" {
		t.Fatalf("after Put: %+v %v", o, ok)
	}
}

// TestRegistryConcurrent is meant for -race: readers and writers at once.
func TestRegistryConcurrent(t *testing.T) {
	r := Core()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 500 {
				id := uint16(30000 + g*1000 + i%50)
				r.Put(ObjectDef{ID: id, Name: "x", Resources: []ResourceDef{{ID: 1, Name: "v", Operations: "R", Type: node.TypeBoolean}}})
				if typ, ok := r.ResourceType(node.ResourcePath(id, 0, 1)); !ok || typ != node.TypeBoolean {
					t.Errorf("object %d: got %v %v right after Put", id, typ, ok)
					return
				}
				_ = r.All()
				if i%7 == 0 {
					r.Delete(id)
				}
			}
		})
	}
	wg.Wait()
}

func BenchmarkRegistryResourceType(b *testing.B) {
	r := Core()
	p := node.MustParsePath("/3303/0/5700")
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := r.ResourceType(p); !ok {
			b.Fatal("not found")
		}
	}
}
