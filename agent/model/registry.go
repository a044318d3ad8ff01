package model

import (
	"slices"
	"sync"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// Registry holds object definitions by object ID. It is safe for concurrent
// use; readers never block each other. It implements node.Resolver so the
// codecs can type the values of formats that carry no type.
type Registry struct {
	mu   sync.RWMutex
	objs map[uint16]ObjectDef
}

var _ node.Resolver = (*Registry)(nil)

// NewRegistry returns a registry holding defs; a later definition of the
// same object replaces an earlier one.
func NewRegistry(defs ...ObjectDef) *Registry {
	r := &Registry{objs: make(map[uint16]ObjectDef, len(defs))}
	r.Put(defs...)
	return r
}

// Core returns a new registry holding the built-in definitions: the core
// objects 0 to 7 and IPSO Temperature (3303). Each call returns a registry of
// its own, so a caller's Put never changes what another caller sees.
func Core() *Registry { return NewRegistry(coreObjects...) }

// CoreObjects returns the built-in definitions sorted by object ID.
func CoreObjects() []ObjectDef { return slices.Clone(coreObjects) }

// Object returns the definition of object id.
func (r *Registry) Object(id uint16) (ObjectDef, bool) {
	r.mu.RLock()
	o, ok := r.objs[id]
	r.mu.RUnlock()
	return o, ok
}

// Put adds or replaces definitions. The registry keeps them as given;
// callers must not change them afterwards.
func (r *Registry) Put(defs ...ObjectDef) {
	r.mu.Lock()
	for _, d := range defs {
		r.objs[d.ID] = d
	}
	r.mu.Unlock()
}

// Delete removes the definition of object id and reports whether there was
// one.
func (r *Registry) Delete(id uint16) bool {
	r.mu.Lock()
	_, ok := r.objs[id]
	delete(r.objs, id)
	r.mu.Unlock()
	return ok
}

// All returns every definition sorted by object ID.
func (r *Registry) All() []ObjectDef {
	r.mu.RLock()
	out := make([]ObjectDef, 0, len(r.objs))
	for _, o := range r.objs {
		out = append(out, o)
	}
	r.mu.RUnlock()
	slices.SortFunc(out, func(a, b ObjectDef) int { return int(a.ID) - int(b.ID) })
	return out
}

// Len returns the number of definitions.
func (r *Registry) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.objs)
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
