package codec

import (
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// noTypes is the Resolver used when the caller passes none.
type noTypes struct{}

func (noTypes) ResourceType(node.Path) (node.Type, bool) { return node.TypeNone, false }

// typeOf asks types for p's type; unknown resources are TypeNone.
func typeOf(types node.Resolver, p node.Path) node.Type {
	t, ok := types.ResourceType(p)
	if !ok {
		return node.TypeNone
	}
	return t
}

// number is a numeric value as the wire gave it, before the resource type
// says what it means.
type number struct {
	kind uint8 // numInt, numUint or numFloat
	i    int64
	u    uint64
	f    float64
}

const (
	numInt = iota
	numUint
	numFloat
)

func intNumber(i int64) number     { return number{kind: numInt, i: i} }
func floatNumber(f float64) number { return number{kind: numFloat, f: f} }

func uintNumber(u uint64) number {
	if u <= math.MaxInt64 {
		return number{kind: numInt, i: int64(u)}
	}
	return number{kind: numUint, u: u}
}

// value is the number as a value of its own kind.
func (n number) value() node.Value {
	switch n.kind {
	case numUint:
		return node.Uint(n.u)
	case numFloat:
		return node.Float(n.f)
	}
	return node.Int(n.i)
}

// float is the number as seconds or a float, whatever its kind.
func (n number) float() float64 {
	switch n.kind {
	case numUint:
		return float64(n.u)
	case numFloat:
		return n.f
	}
	return float64(n.i)
}

// coerce converts v, decoded from a format that carries its own types
// (SenML, LwM2M JSON, CBOR), to the resource type t where that is lossless;
// otherwise v stays as the device sent it, so no value is dropped.
func coerce(v node.Value, t node.Type) node.Value {
	if t == node.TypeNone || t == v.Type {
		return v
	}
	switch t {
	case node.TypeInteger:
		switch v.Type {
		case node.TypeUnsignedInteger:
			if v.Uint <= math.MaxInt64 {
				return node.Int(int64(v.Uint))
			}
		case node.TypeFloat:
			if v.Float == math.Trunc(v.Float) && v.Float >= -(1<<63) && v.Float < (1<<63) {
				return node.Int(int64(v.Float))
			}
		}
	case node.TypeUnsignedInteger:
		switch v.Type {
		case node.TypeInteger:
			if v.Int >= 0 {
				return node.Uint(uint64(v.Int))
			}
		case node.TypeFloat:
			if v.Float == math.Trunc(v.Float) && v.Float >= 0 && v.Float < (1<<64) {
				return node.Uint(uint64(v.Float))
			}
		}
	case node.TypeFloat:
		switch v.Type {
		case node.TypeInteger:
			return node.Float(float64(v.Int))
		case node.TypeUnsignedInteger:
			return node.Float(float64(v.Uint))
		}
	case node.TypeTime:
		var s float64
		switch v.Type {
		case node.TypeInteger:
			return node.TimeValue(time.Unix(v.Int, 0).UTC())
		case node.TypeUnsignedInteger:
			s = float64(v.Uint)
		case node.TypeFloat:
			s = v.Float
		default:
			return v
		}
		if tm, ok := secondsTime(s); ok {
			return node.TimeValue(tm)
		}
	case node.TypeBoolean:
		if v.Type == node.TypeInteger && (v.Int == 0 || v.Int == 1) {
			return node.Bool(v.Int == 1)
		}
	case node.TypeObjlnk:
		if v.Type == node.TypeString {
			if l, ok := parseObjlnk(v.Str); ok {
				return node.Value{Type: node.TypeObjlnk, Link: l}
			}
		}
	case node.TypeCorelnk:
		if v.Type == node.TypeString {
			return node.CoreLink(v.Str)
		}
	case node.TypeString:
		if v.Type == node.TypeCorelnk {
			return node.String(v.Str)
		}
	}
	return v
}

// parseObjlnk parses "O:I".
func parseObjlnk(s string) (node.ObjLink, bool) {
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return node.ObjLink{}, false
	}
	o, err1 := strconv.ParseUint(a, 10, 16)
	i, err2 := strconv.ParseUint(b, 10, 16)
	if err1 != nil || err2 != nil {
		return node.ObjLink{}, false
	}
	return node.ObjLink{Object: uint16(o), Instance: uint16(i)}, true
}

// maxSeconds is the end of year 9999: later times do not fit the stores
// and APIs downstream, so decoders reject them.
const maxSeconds = 253402300799

// secondsTime converts Unix seconds with a fraction to a time.
func secondsTime(s float64) (time.Time, bool) {
	if math.IsNaN(s) || s > maxSeconds || s < -maxSeconds {
		return time.Time{}, false
	}
	sec := math.Floor(s)
	ns := math.Round((s - sec) * 1e9)
	return time.Unix(int64(sec), int64(ns)).UTC(), true
}

// timeSeconds is t as Unix seconds, an integer when t has no fraction.
func timeSeconds(t time.Time) number {
	if t.Nanosecond() == 0 {
		return intNumber(t.Unix())
	}
	return floatNumber(float64(t.Unix()) + float64(t.Nanosecond())/1e9)
}

// relativeLimit is 2^28: SenML (RFC 8428 section 4.5.3) reads times below
// it as relative to now.
const relativeLimit = 1 << 28

// now is the clock for relative times; tests pin it.
var now = time.Now

// senmlTime resolves a SenML base time plus time. Zero means the device
// gave none; values below 2^28 count from now; others are Unix seconds.
// Large negative values are rejected: they would be absolute times before
// 1978 that SenML cannot tell from relative ones.
func senmlTime(s float64) (time.Time, error) {
	if s == 0 {
		return time.Time{}, nil
	}
	if math.IsNaN(s) || s <= -relativeLimit || s > maxSeconds {
		return time.Time{}, malformed("time %v out of range", s)
	}
	if s < relativeLimit {
		return now().Add(time.Duration(s * float64(time.Second))).UTC(), nil
	}
	t, _ := secondsTime(s)
	return t, nil
}

// valueNumber is the numeric form of a numeric value, for formats that
// write numbers (SenML v, LwM2M JSON v).
func valueNumber(v node.Value) (number, bool) {
	switch v.Type {
	case node.TypeInteger:
		return intNumber(v.Int), true
	case node.TypeUnsignedInteger:
		return number{kind: numUint, u: v.Uint}, true
	case node.TypeFloat:
		return floatNumber(v.Float), true
	case node.TypeTime:
		return timeSeconds(v.Time), true
	}
	return number{}, false
}

// secondsNumber is s as an integer when it has no fraction, so times
// travel as integers where they can.
func secondsNumber(s float64) number {
	if s == math.Trunc(s) && s >= -maxSeconds && s <= maxSeconds {
		return intNumber(int64(s))
	}
	return floatNumber(s)
}

func itoa64(i int64) string { return strconv.FormatInt(i, 10) }
