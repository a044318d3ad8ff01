// Package node is the LwM2M data model that the agent and its plugins
// share: paths, resource data types and typed values. It lives in the SDK
// so that a plugin and the agent agree on every type of the object model
// without a plugin depending on the agent. It has no I/O and no
// dependencies beyond the standard library.
package node

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MaxID is the largest object, instance or resource ID; 65535 is reserved
// by the specification (it means "no instance" in object links).
const MaxID = 65534

// Path names a node of the LwM2M tree: the root, an object, an object
// instance, a resource or a resource instance. Depth says how many of the
// IDs are set; the unused ones are zero, so Paths compare with == and can be
// map keys.
type Path struct {
	Object           uint16
	Instance         uint16
	Resource         uint16
	ResourceInstance uint16
	Depth            uint8 // 0 root, 1 object, 2 instance, 3 resource, 4 resource instance
}

// ErrBadPath is returned for a path that is not /O[/I[/R[/RI]]] with IDs
// from 0 to MaxID.
var ErrBadPath = errors.New("bad path")

// Root is the path "/".
var Root = Path{}

// ObjectPath returns /o.
func ObjectPath(o uint16) Path { return Path{Object: o, Depth: 1} }

// InstancePath returns /o/i.
func InstancePath(o, i uint16) Path { return Path{Object: o, Instance: i, Depth: 2} }

// ResourcePath returns /o/i/r.
func ResourcePath(o, i, r uint16) Path { return Path{Object: o, Instance: i, Resource: r, Depth: 3} }

// ResourceInstancePath returns /o/i/r/ri.
func ResourceInstancePath(o, i, r, ri uint16) Path {
	return Path{Object: o, Instance: i, Resource: r, ResourceInstance: ri, Depth: 4}
}

// ParsePath parses "/3/0/1", "3/0/1", "/3" or "/" (a trailing slash is
// tolerated, as some clients send one).
func ParsePath(s string) (Path, error) {
	t := strings.Trim(s, "/")
	if t == "" {
		if s == "" {
			return Path{}, fmt.Errorf("%w: empty", ErrBadPath)
		}
		return Root, nil
	}
	parts := strings.Split(t, "/")
	if len(parts) > 4 {
		return Path{}, fmt.Errorf("%w %q: more than 4 levels", ErrBadPath, s)
	}
	var ids [4]uint16
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n > MaxID || (len(p) > 1 && p[0] == '0') {
			return Path{}, fmt.Errorf("%w %q: %q is not an ID from 0 to %d", ErrBadPath, s, p, MaxID)
		}
		ids[i] = uint16(n)
	}
	return Path{Object: ids[0], Instance: ids[1], Resource: ids[2], ResourceInstance: ids[3], Depth: uint8(len(parts))}, nil
}

// MustParsePath is ParsePath for constants in code and tests.
func MustParsePath(s string) Path {
	p, err := ParsePath(s)
	if err != nil {
		panic(err)
	}
	return p
}

// String formats the path as "/3/0/1"; the root is "/".
func (p Path) String() string {
	if p.Depth == 0 {
		return "/"
	}
	var b strings.Builder
	b.Grow(20)
	ids := p.IDs()
	for _, id := range ids {
		b.WriteByte('/')
		b.WriteString(strconv.FormatUint(uint64(id), 10))
	}
	return b.String()
}

// IDs returns the set IDs, outermost first.
func (p Path) IDs() []uint16 {
	all := [4]uint16{p.Object, p.Instance, p.Resource, p.ResourceInstance}
	return all[:p.Depth]
}

// Parent returns the path one level up; the root's parent is the root.
func (p Path) Parent() Path {
	if p.Depth == 0 {
		return p
	}
	q := p
	switch p.Depth {
	case 4:
		q.ResourceInstance = 0
	case 3:
		q.Resource = 0
	case 2:
		q.Instance = 0
	case 1:
		q.Object = 0
	}
	q.Depth--
	return q
}

// Child returns the path one level down with the given ID. It panics on a
// resource-instance path, which has no children.
func (p Path) Child(id uint16) Path {
	q := p
	switch p.Depth {
	case 0:
		q.Object = id
	case 1:
		q.Instance = id
	case 2:
		q.Resource = id
	case 3:
		q.ResourceInstance = id
	default:
		panic("node: resource instance has no children")
	}
	q.Depth++
	return q
}

// Contains reports whether q is p or lies below it.
func (p Path) Contains(q Path) bool {
	if q.Depth < p.Depth {
		return false
	}
	a, b := p.IDs(), q.IDs()
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// ResourcePath returns the resource that p is or lies in; p must have
// depth 3 or 4.
func (p Path) ResourceOf() Path {
	return Path{Object: p.Object, Instance: p.Instance, Resource: p.Resource, Depth: 3}
}

// IsObject, IsInstance, IsResource and IsResourceInstance tell the depth.
func (p Path) IsObject() bool           { return p.Depth == 1 }
func (p Path) IsInstance() bool         { return p.Depth == 2 }
func (p Path) IsResource() bool         { return p.Depth == 3 }
func (p Path) IsResourceInstance() bool { return p.Depth == 4 }
