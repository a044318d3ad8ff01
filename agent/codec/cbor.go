package codec

import (
	"math"
	"math/big"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// cborDec decodes the single data item of the CBOR content format. The
// limits are the smallest the library allows: a resource value is never a
// container, so anything nested is rejected early and cheaply.
var cborDec = func() cbor.DecMode {
	dm, err := cbor.DecOptions{
		MaxNestedLevels:  4,
		MaxArrayElements: 16,
		MaxMapPairs:      16,
		IndefLength:      cbor.IndefLengthAllowed,
		UTF8:             cbor.UTF8RejectInvalid,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return dm
}()

// decodeCBOR reads the value of the resource (instance) at base from a
// single CBOR data item (Core TS 1.2 section 7.4.6). Integers, floats,
// booleans, text, byte strings and tag-1 epoch times are typed by types;
// a null is no value.
func decodeCBOR(base node.Path, payload []byte, types node.Resolver) ([]node.Record, error) {
	if len(payload) == 0 {
		return nil, nil
	}
	if base.Depth < 3 {
		return nil, fmtUnsupported(CBOR, "cannot carry "+base.String())
	}
	var item any
	if err := cborDec.Unmarshal(payload, &item); err != nil {
		return nil, malformed("cbor: %v", err)
	}
	var v node.Value
	switch x := item.(type) {
	case nil:
		return nil, nil
	case uint64:
		v = uintNumber(x).value()
	case int64:
		v = node.Int(x)
	case float64:
		v = node.Float(x)
	case bool:
		v = node.Bool(x)
	case string:
		v = node.String(x)
	case []byte:
		v = node.Opaque(x)
	case time.Time:
		// A tag-1 time means a time only for a TIME resource, and only
		// within the years a time value holds (as for a plain number);
		// otherwise it is the number it wraps, as the encoder writes it
		// back.
		if u := x.Unix(); typeOf(types, base) == node.TypeTime && u <= maxSeconds && u >= -maxSeconds {
			v = node.TimeValue(x.UTC())
		} else {
			v = timeSeconds(x).value()
		}
	case big.Int:
		switch {
		case x.IsInt64():
			v = node.Int(x.Int64())
		case x.IsUint64():
			v = node.Uint(x.Uint64())
		default:
			return nil, malformed("cbor: integer out of range")
		}
	default:
		return nil, malformed("cbor: a %T is not a resource value", item)
	}
	v = coerce(v, typeOf(types, base))
	return []node.Record{{Path: base, Value: v}}, nil
}

// encodeCBOR writes one value as a CBOR data item: times as integer
// seconds (a fraction makes them floats), object links as "O:I" text.
func encodeCBOR(base node.Path, recs []node.Record) ([]byte, error) {
	r, ok, err := single(base, recs, CBOR)
	if err != nil || !ok {
		return nil, err
	}
	v := r.Value
	switch v.Type {
	case node.TypeString, node.TypeCorelnk:
		return appendCBORText(nil, v.Str), nil
	case node.TypeObjlnk:
		return appendCBORText(nil, v.Link.String()), nil
	case node.TypeBoolean:
		if v.Bool {
			return []byte{0xf5}, nil
		}
		return []byte{0xf4}, nil
	case node.TypeOpaque, node.TypeNone:
		return append(appendCBORHead(nil, cborBytes, uint64(len(v.Bytes))), v.Bytes...), nil
	}
	n, ok := valueNumber(v)
	if !ok {
		return nil, fmtUnsupported(CBOR, "cannot carry a "+v.Type.String()+" value")
	}
	if n.kind == numFloat && math.IsNaN(n.f) {
		return []byte{0xf9, 0x7e, 0x00}, nil
	}
	return appendCBORNumber(nil, n), nil
}
