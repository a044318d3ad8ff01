// Package node holds the LwM2M data model shared by every layer of the
// agent: paths, resource types, typed values and the flat records that
// codecs produce and consume. Paths, types and values are the SDK's
// (github.com/lwm2m-agent/lwm2m-agent/sdk/node), named here again, so that
// the agent and its plugins share one definition while the SDK depends on
// nothing of the agent. It has no I/O.
package node

import (
	"time"

	sdknode "github.com/lwm2m-agent/lwm2m-agent/sdk/node"
)

// MaxID is the largest object, instance or resource ID.
const MaxID = sdknode.MaxID

// Path names a node of the LwM2M tree.
type Path = sdknode.Path

// ErrBadPath is returned for a path that is not /O[/I[/R[/RI]]].
var ErrBadPath = sdknode.ErrBadPath

// Root is the path "/".
var Root = sdknode.Root

// ObjectPath returns /o.
func ObjectPath(o uint16) Path { return sdknode.ObjectPath(o) }

// InstancePath returns /o/i.
func InstancePath(o, i uint16) Path { return sdknode.InstancePath(o, i) }

// ResourcePath returns /o/i/r.
func ResourcePath(o, i, r uint16) Path { return sdknode.ResourcePath(o, i, r) }

// ResourceInstancePath returns /o/i/r/ri.
func ResourceInstancePath(o, i, r, ri uint16) Path {
	return sdknode.ResourceInstancePath(o, i, r, ri)
}

// ParsePath parses "/3/0/1", "3/0/1", "/3" or "/".
func ParsePath(s string) (Path, error) { return sdknode.ParsePath(s) }

// MustParsePath is ParsePath for constants in code and tests.
func MustParsePath(s string) Path { return sdknode.MustParsePath(s) }

// Type is a resource data type of the LwM2M object model.
type Type = sdknode.Type

// The resource data types.
const (
	TypeNone            = sdknode.TypeNone
	TypeString          = sdknode.TypeString
	TypeInteger         = sdknode.TypeInteger
	TypeUnsignedInteger = sdknode.TypeUnsignedInteger
	TypeFloat           = sdknode.TypeFloat
	TypeBoolean         = sdknode.TypeBoolean
	TypeOpaque          = sdknode.TypeOpaque
	TypeTime            = sdknode.TypeTime
	TypeObjlnk          = sdknode.TypeObjlnk
	TypeCorelnk         = sdknode.TypeCorelnk
)

// ParseType accepts the DDF spellings and the API's upper-case names.
func ParseType(s string) (Type, error) { return sdknode.ParseType(s) }

// ObjLink is an object link value.
type ObjLink = sdknode.ObjLink

// Value is one typed resource value.
type Value = sdknode.Value

// Constructors for each type.
func String(s string) Value       { return sdknode.String(s) }
func Int(i int64) Value           { return sdknode.Int(i) }
func Uint(u uint64) Value         { return sdknode.Uint(u) }
func Float(f float64) Value       { return sdknode.Float(f) }
func Bool(b bool) Value           { return sdknode.Bool(b) }
func Opaque(b []byte) Value       { return sdknode.Opaque(b) }
func TimeValue(t time.Time) Value { return sdknode.TimeValue(t) }
func Link(o, i uint16) Value      { return sdknode.Link(o, i) }
func CoreLink(s string) Value     { return sdknode.CoreLink(s) }

// ParseText parses s as a value of type t, the way the text/plain content
// format and the shell's write command spell values.
func ParseText(t Type, s string) (Value, error) { return sdknode.ParseText(t, s) }

// Record is one resource or resource-instance value at a path, with the
// time the device gave it (zero when it gave none). Codecs decode payloads
// into records and encode records into payloads.
type Record struct {
	Path  Path
	Value Value
	Time  time.Time
}

// Resolver tells the type of the resource at a path (depth 3 or 4) and
// whether it is known; codecs whose wire format carries no type (TLV, text,
// CBOR) use it, and decode values of unknown resources as opaque bytes.
type Resolver interface {
	ResourceType(p Path) (Type, bool)
}

// ResolverFunc adapts a function to Resolver.
type ResolverFunc func(p Path) (Type, bool)

// ResourceType calls f.
func (f ResolverFunc) ResourceType(p Path) (Type, bool) { return f(p) }
