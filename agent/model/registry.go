package model

import (
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// Registry holds object definitions by object ID. It is safe for concurrent
// use. Lookups, which the codecs make for every value, read an immutable
// map without locking; Put and Delete, which are rare, copy it.
// It implements node.Resolver so the codecs can type the values of formats
// that carry no type.
type Registry struct {
	mu   sync.Mutex // serializes writers
	objs atomic.Pointer[map[uint16]ObjectDef]
}

var _ node.Resolver = (*Registry)(nil)

// NewRegistry returns a registry holding defs; a later definition of the
// same object replaces an earlier one.
func NewRegistry(defs ...ObjectDef) *Registry {
	m := make(map[uint16]ObjectDef, len(defs))
	for _, d := range defs {
		m[d.ID] = d
	}
	r := &Registry{}
	r.objs.Store(&m)
	return r
}

// Core returns a new registry holding the built-in definitions: the core
// objects 0 to 7 and IPSO Temperature (3303). Each call returns a registry of
// its own, so a caller's Put never changes what another caller sees.
func Core() *Registry { return NewRegistry(coreObjects...) }

// CoreObjects returns the built-in definitions sorted by object ID.
func CoreObjects() []ObjectDef { return slices.Clone(coreObjects) }

// load returns the current map; a zero Registry is empty.
func (r *Registry) load() map[uint16]ObjectDef {
	if m := r.objs.Load(); m != nil {
		return *m
	}
	return nil
}

// Object returns the definition of object id.
func (r *Registry) Object(id uint16) (ObjectDef, bool) {
	o, ok := (r.load())[id]
	return o, ok
}

// Put adds or replaces definitions. The registry keeps them as given;
// callers must not change them afterwards. Each call copies the table, so
// put many definitions in one call rather than one by one.
func (r *Registry) Put(defs ...ObjectDef) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := maps.Clone(r.load())
	if m == nil {
		m = make(map[uint16]ObjectDef, len(defs))
	}
	for _, d := range defs {
		m[d.ID] = d
	}
	r.objs.Store(&m)
}

// Delete removes the definition of object id and reports whether there was
// one.
func (r *Registry) Delete(id uint16) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.load()
	if _, ok := old[id]; !ok {
		return false
	}
	m := maps.Clone(old)
	delete(m, id)
	r.objs.Store(&m)
	return true
}

// All returns every definition sorted by object ID.
func (r *Registry) All() []ObjectDef {
	out := slices.Collect(maps.Values(r.load()))
	slices.SortFunc(out, func(a, b ObjectDef) int { return int(a.ID) - int(b.ID) })
	return out
}

// Len returns the number of definitions.
func (r *Registry) Len() int {
	return len(r.load())
}

// Resource returns the definition of the resource that p (depth 3 or 4)
// names or lies in.
func (r *Registry) Resource(p node.Path) (ResourceDef, bool) {
	if p.Depth < 3 {
		return ResourceDef{}, false
	}
	o, ok := r.Object(p.Object)
	if !ok {
		return ResourceDef{}, false
	}
	return o.Resource(p.Resource)
}

// ResourceType returns the type of the resource at p (depth 3 or 4); it is
// false for shallower paths and for unknown objects or resources.
func (r *Registry) ResourceType(p node.Path) (node.Type, bool) {
	d, ok := r.Resource(p)
	if !ok {
		return node.TypeNone, false
	}
	return d.Type, true
}

// ObjectFor is Object for any tenant: the registry's definitions are the
// same for all.
func (r *Registry) ObjectFor(_ string, id uint16) (ObjectDef, bool) { return r.Object(id) }
