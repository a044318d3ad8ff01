package node

import (
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Type is a resource data type of the LwM2M object model.
type Type uint8

// The resource data types; TypeNone is an executable resource or an unknown
// type (values then travel as opaque bytes).
const (
	TypeNone Type = iota
	TypeString
	TypeInteger
	TypeUnsignedInteger
	TypeFloat
	TypeBoolean
	TypeOpaque
	TypeTime
	TypeObjlnk
	TypeCorelnk
)

var typeNames = [...]string{"NONE", "STRING", "INTEGER", "UNSIGNED_INTEGER", "FLOAT", "BOOLEAN", "OPAQUE", "TIME", "OBJLNK", "CORELNK"}

// String returns the upper-case name used in the API ("UNSIGNED_INTEGER").
func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return fmt.Sprintf("TYPE(%d)", t)
}

// ParseType accepts the DDF spellings ("Unsigned Integer", "Objlnk", ...)
// and the API's upper-case names. An empty string is TypeNone.
func ParseType(s string) (Type, error) {
	k := strings.ToUpper(strings.NewReplacer(" ", "", "_", "").Replace(strings.TrimSpace(s)))
	switch k {
	case "", "NONE":
		return TypeNone, nil
	case "STRING":
		return TypeString, nil
	case "INTEGER":
		return TypeInteger, nil
	case "UNSIGNEDINTEGER":
		return TypeUnsignedInteger, nil
	case "FLOAT":
		return TypeFloat, nil
	case "BOOLEAN":
		return TypeBoolean, nil
	case "OPAQUE":
		return TypeOpaque, nil
	case "TIME":
		return TypeTime, nil
	case "OBJLNK":
		return TypeObjlnk, nil
	case "CORELNK":
		return TypeCorelnk, nil
	}
	return TypeNone, fmt.Errorf("unknown resource type %q", s)
}

// ObjLink is an object link value: an object ID and an instance ID.
type ObjLink struct {
	Object   uint16
	Instance uint16
}

// String formats the link as "3:0".
func (l ObjLink) String() string {
	return strconv.FormatUint(uint64(l.Object), 10) + ":" + strconv.FormatUint(uint64(l.Instance), 10)
}

// Value is one typed resource value. Type says which field holds it: Str
// for STRING and CORELNK, Int for INTEGER, Uint for UNSIGNED_INTEGER, Float
// for FLOAT, Bool for BOOLEAN, Bytes for OPAQUE (and for values of unknown
// type, kept raw), Time for TIME, Link for OBJLNK.
type Value struct {
	Type  Type
	Str   string
	Int   int64
	Uint  uint64
	Float float64
	Bool  bool
	Bytes []byte
	Time  time.Time
	Link  ObjLink
}

// Constructors for each type.
func String(s string) Value       { return Value{Type: TypeString, Str: s} }
func Int(i int64) Value           { return Value{Type: TypeInteger, Int: i} }
func Uint(u uint64) Value         { return Value{Type: TypeUnsignedInteger, Uint: u} }
func Float(f float64) Value       { return Value{Type: TypeFloat, Float: f} }
func Bool(b bool) Value           { return Value{Type: TypeBoolean, Bool: b} }
func Opaque(b []byte) Value       { return Value{Type: TypeOpaque, Bytes: b} }
func TimeValue(t time.Time) Value { return Value{Type: TypeTime, Time: t} }
func Link(o, i uint16) Value      { return Value{Type: TypeObjlnk, Link: ObjLink{o, i}} }
func CoreLink(s string) Value     { return Value{Type: TypeCorelnk, Str: s} }

// Text is the value as the text/plain content format writes it (opaque as
// base64 is left to the codec; here it is hex, for people).
func (v Value) Text() string {
	switch v.Type {
	case TypeString, TypeCorelnk:
		return v.Str
	case TypeInteger:
		return strconv.FormatInt(v.Int, 10)
	case TypeUnsignedInteger:
		return strconv.FormatUint(v.Uint, 10)
	case TypeFloat:
		return strconv.FormatFloat(v.Float, 'g', -1, 64)
	case TypeBoolean:
		if v.Bool {
			return "1"
		}
		return "0"
	case TypeTime:
		return strconv.FormatInt(v.Time.Unix(), 10)
	case TypeObjlnk:
		return v.Link.String()
	case TypeOpaque, TypeNone:
		return hex.EncodeToString(v.Bytes)
	}
	return ""
}

// Interface returns the value as a plain Go value for JSON and BSON:
// string, int64, uint64, float64, bool, time.Time, "O:I" for links and hex
// for opaque bytes.
func (v Value) Interface() any {
	switch v.Type {
	case TypeString, TypeCorelnk:
		return v.Str
	case TypeInteger:
		return v.Int
	case TypeUnsignedInteger:
		return v.Uint
	case TypeFloat:
		if math.IsNaN(v.Float) || math.IsInf(v.Float, 0) {
			return v.Text()
		}
		return v.Float
	case TypeBoolean:
		return v.Bool
	case TypeTime:
		return v.Time.UTC()
	case TypeObjlnk:
		return v.Link.String()
	}
	return hex.EncodeToString(v.Bytes)
}

// Equal reports whether two values have the same type and content.
func (v Value) Equal(w Value) bool {
	if v.Type != w.Type {
		return false
	}
	switch v.Type {
	case TypeTime:
		return v.Time.Equal(w.Time)
	case TypeFloat:
		return v.Float == w.Float || (math.IsNaN(v.Float) && math.IsNaN(w.Float))
	case TypeOpaque, TypeNone:
		return string(v.Bytes) == string(w.Bytes)
	}
	return v.Text() == w.Text()
}

// ParseText parses s as a value of type t, the way the text/plain content
// format and the shell's write command spell values.
func ParseText(t Type, s string) (Value, error) {
	switch t {
	case TypeString:
		return String(s), nil
	case TypeCorelnk:
		return CoreLink(s), nil
	case TypeInteger:
		i, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return Value{}, fmt.Errorf("%q is not an integer", s)
		}
		return Int(i), nil
	case TypeUnsignedInteger:
		u, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return Value{}, fmt.Errorf("%q is not an unsigned integer", s)
		}
		return Uint(u), nil
	case TypeFloat:
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return Value{}, fmt.Errorf("%q is not a float", s)
		}
		return Float(f), nil
	case TypeBoolean:
		switch strings.ToLower(strings.TrimSpace(s)) {
		case "1", "true":
			return Bool(true), nil
		case "0", "false":
			return Bool(false), nil
		}
		return Value{}, fmt.Errorf("%q is not a boolean (0, 1, true or false)", s)
	case TypeTime:
		st := strings.TrimSpace(s)
		if i, err := strconv.ParseInt(st, 10, 64); err == nil {
			return TimeValue(time.Unix(i, 0).UTC()), nil
		}
		if tm, err := time.Parse(time.RFC3339, st); err == nil {
			return TimeValue(tm.UTC()), nil
		}
		return Value{}, fmt.Errorf("%q is not a time (Unix seconds or RFC 3339)", s)
	case TypeObjlnk:
		a, b, ok := strings.Cut(strings.TrimSpace(s), ":")
		o, err1 := strconv.ParseUint(a, 10, 16)
		i, err2 := strconv.ParseUint(b, 10, 16)
		if !ok || err1 != nil || err2 != nil {
			return Value{}, fmt.Errorf("%q is not an object link (O:I)", s)
		}
		return Link(uint16(o), uint16(i)), nil
	case TypeOpaque, TypeNone:
		b, err := hex.DecodeString(strings.TrimSpace(s))
		if err != nil {
			return Value{}, fmt.Errorf("%q is not hex", s)
		}
		return Opaque(b), nil
	}
	return Value{}, fmt.Errorf("cannot parse type %v", t)
}
