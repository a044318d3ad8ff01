package codec

import (
	"encoding/binary"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// TLV identifier types (Core TS 1.0 section 6.4.3, bits 7-6 of the type
// byte).
const (
	tlvObjectInstance   = 0b00
	tlvResourceInstance = 0b01
	tlvMultipleResource = 0b10
	tlvResource         = 0b11
)

var tlvKindNames = [4]string{"object instance", "resource instance", "multiple resource", "resource"}

type tlvEntry struct {
	kind uint8
	id   uint16
	val  []byte
}

// nextTLV reads one TLV header and slices its value out of b. A length
// larger than what is left is an error, so no length field ever causes an
// allocation.
func nextTLV(b []byte) (tlvEntry, []byte, error) {
	if len(b) < 2 {
		return tlvEntry{}, nil, malformed("tlv: truncated header")
	}
	t := b[0]
	e := tlvEntry{kind: t >> 6}
	i := 1
	if t&0x20 != 0 {
		if len(b) < 3 {
			return tlvEntry{}, nil, malformed("tlv: truncated identifier")
		}
		e.id = binary.BigEndian.Uint16(b[1:3])
		i = 3
	} else {
		e.id = uint16(b[1])
		i = 2
	}
	var n int
	switch lt := (t >> 3) & 0b11; lt {
	case 0:
		n = int(t & 0b111)
	default:
		w := int(lt)
		if len(b) < i+w {
			return tlvEntry{}, nil, malformed("tlv: truncated length")
		}
		for _, c := range b[i : i+w] {
			n = n<<8 | int(c)
		}
		i += w
	}
	if n > len(b)-i {
		return tlvEntry{}, nil, malformed("tlv: %s %d claims %d bytes, %d left", tlvKindNames[e.kind], e.id, n, len(b)-i)
	}
	e.val = b[i : i+n : i+n]
	return e, b[i+n:], nil
}

// tlvDecoder accumulates records and enforces MaxRecords.
type tlvDecoder struct {
	types node.Resolver
	recs  []node.Record
	depth int
}

func decodeTLV(base node.Path, payload []byte, types node.Resolver) ([]node.Record, error) {
	if len(payload) == 0 {
		return nil, nil
	}
	d := tlvDecoder{types: types}
	if err := d.at(base, payload); err != nil {
		return nil, err
	}
	return d.recs, nil
}

// at decodes the TLVs of b as the content of a Read on base. Devices vary
// in how much of the path they repeat, so each level also accepts the
// wrappers of the levels above when their IDs match base.
func (d *tlvDecoder) at(base node.Path, b []byte) error {
	// Wrappers may repeat, but TLV has only three levels of them.
	d.depth++
	defer func() { d.depth-- }()
	if d.depth > 3 {
		return malformed("tlv: nested deeper than an object instance")
	}
	for len(b) > 0 {
		e, rest, err := nextTLV(b)
		if err != nil {
			return err
		}
		b = rest
		switch base.Depth {
		case 0:
			return fmtUnsupported(TLV, "cannot name objects, so cannot answer the root")
		case 1:
			switch e.kind {
			case tlvObjectInstance:
				err = d.instance(base.Child(e.id), e.val)
			default:
				// Resources straight under an object: a single-instance
				// object whose client left out the instance wrapper.
				err = d.entry(base.Child(0), e)
			}
		case 2:
			switch e.kind {
			case tlvObjectInstance:
				if e.id != base.Instance {
					return malformed("tlv: object instance %d in a read of %v", e.id, base)
				}
				err = d.instance(base, e.val)
			default:
				err = d.entry(base, e)
			}
		case 3:
			switch e.kind {
			case tlvObjectInstance:
				if e.id != base.Instance {
					return malformed("tlv: object instance %d in a read of %v", e.id, base)
				}
				err = d.at(base, e.val)
			case tlvResourceInstance:
				err = d.value(base.Child(e.id), e.val)
			default:
				if e.id != base.Resource {
					return malformed("tlv: resource %d in a read of %v", e.id, base)
				}
				err = d.entry(base.Parent(), e)
			}
		case 4:
			switch e.kind {
			case tlvResourceInstance:
				if e.id != base.ResourceInstance {
					return malformed("tlv: resource instance %d in a read of %v", e.id, base)
				}
				err = d.value(base, e.val)
			case tlvMultipleResource:
				if e.id != base.Resource {
					return malformed("tlv: resource %d in a read of %v", e.id, base)
				}
				err = d.at(base, e.val)
			case tlvObjectInstance:
				if e.id != base.Instance {
					return malformed("tlv: object instance %d in a read of %v", e.id, base)
				}
				err = d.at(base, e.val)
			default:
				return malformed("tlv: single resource %d in a read of resource instance %v", e.id, base)
			}
		default:
			return malformed("bad path depth %d", base.Depth)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// instance decodes the body of an object instance TLV.
func (d *tlvDecoder) instance(inst node.Path, b []byte) error {
	for len(b) > 0 {
		e, rest, err := nextTLV(b)
		if err != nil {
			return err
		}
		b = rest
		if err := d.entry(inst, e); err != nil {
			return err
		}
	}
	return nil
}

// entry decodes a resource or multiple resource TLV inside inst.
func (d *tlvDecoder) entry(inst node.Path, e tlvEntry) error {
	res := inst.Child(e.id)
	switch e.kind {
	case tlvResource:
		return d.value(res, e.val)
	case tlvMultipleResource:
		b := e.val
		for len(b) > 0 {
			ri, rest, err := nextTLV(b)
			if err != nil {
				return err
			}
			b = rest
			if ri.kind != tlvResourceInstance {
				return malformed("tlv: %s %d inside multiple resource %v", tlvKindNames[ri.kind], ri.id, res)
			}
			if err := d.value(res.Child(ri.id), ri.val); err != nil {
				return err
			}
		}
		return nil
	}
	return malformed("tlv: %s %d inside object instance %v", tlvKindNames[e.kind], e.id, inst)
}

func (d *tlvDecoder) value(p node.Path, b []byte) error {
	if len(d.recs) >= MaxRecords {
		return malformed("more than %d records", MaxRecords)
	}
	v, err := tlvValue(typeOf(d.types, p), b)
	if err != nil {
		return malformed("tlv %v: %v", p, err)
	}
	d.recs = append(d.recs, node.Record{Path: p, Value: v})
	return nil
}

type tlvError string

func (e tlvError) Error() string { return string(e) }

// tlvValue interprets the bytes of a TLV value as type t (Core TS 1.1
// appendix C).
func tlvValue(t node.Type, b []byte) (node.Value, error) {
	switch t {
	case node.TypeString:
		return node.String(string(b)), nil
	case node.TypeCorelnk:
		return node.CoreLink(string(b)), nil
	case node.TypeInteger, node.TypeTime:
		var i int64
		switch len(b) {
		case 1:
			i = int64(int8(b[0]))
		case 2:
			i = int64(int16(binary.BigEndian.Uint16(b)))
		case 4:
			i = int64(int32(binary.BigEndian.Uint32(b)))
		case 8:
			i = int64(binary.BigEndian.Uint64(b))
		default:
			return node.Value{}, tlvError("integer of " + itoa(len(b)) + " bytes")
		}
		if t == node.TypeTime {
			return node.TimeValue(time.Unix(i, 0).UTC()), nil
		}
		return node.Int(i), nil
	case node.TypeUnsignedInteger:
		switch len(b) {
		case 1, 2, 4, 8:
			var u uint64
			for _, c := range b {
				u = u<<8 | uint64(c)
			}
			return node.Uint(u), nil
		}
		return node.Value{}, tlvError("unsigned integer of " + itoa(len(b)) + " bytes")
	case node.TypeFloat:
		switch len(b) {
		case 4:
			return node.Float(float64(math.Float32frombits(binary.BigEndian.Uint32(b)))), nil
		case 8:
			return node.Float(math.Float64frombits(binary.BigEndian.Uint64(b))), nil
		}
		return node.Value{}, tlvError("float of " + itoa(len(b)) + " bytes")
	case node.TypeOpaque, node.TypeNone:
	case node.TypeBoolean:
		if len(b) != 1 || b[0] > 1 {
			return node.Value{}, tlvError("boolean is not one byte 0 or 1")
		}
		return node.Bool(b[0] == 1), nil
	case node.TypeObjlnk:
		if len(b) != 4 {
			return node.Value{}, tlvError("object link of " + itoa(len(b)) + " bytes")
		}
		return node.Link(binary.BigEndian.Uint16(b), binary.BigEndian.Uint16(b[2:])), nil
	}
	// Opaque, and resources of unknown type (TypeNone): keep the bytes.
	// Copied, so records never alias the caller's buffer.
	if t != node.TypeOpaque {
		t = node.TypeNone
	}
	return node.Value{Type: t, Bytes: append([]byte{}, b...)}, nil
}

func itoa(n int) string { return strconv.Itoa(n) }

// tlvBytes is the value part of a TLV for v; integers take the smallest
// width that holds them.
func tlvBytes(dst []byte, v node.Value) ([]byte, error) {
	switch v.Type {
	case node.TypeString, node.TypeCorelnk:
		return append(dst, v.Str...), nil
	case node.TypeInteger:
		return appendTLVInt(dst, v.Int), nil
	case node.TypeTime:
		return appendTLVInt(dst, v.Time.Unix()), nil
	case node.TypeUnsignedInteger:
		switch {
		case v.Uint <= math.MaxUint8:
			return append(dst, byte(v.Uint)), nil
		case v.Uint <= math.MaxUint16:
			return binary.BigEndian.AppendUint16(dst, uint16(v.Uint)), nil
		case v.Uint <= math.MaxUint32:
			return binary.BigEndian.AppendUint32(dst, uint32(v.Uint)), nil
		}
		return binary.BigEndian.AppendUint64(dst, v.Uint), nil
	case node.TypeFloat:
		// Four bytes when that loses nothing, else eight.
		if f32 := float32(v.Float); float64(f32) == v.Float {
			return binary.BigEndian.AppendUint32(dst, math.Float32bits(f32)), nil
		}
		return binary.BigEndian.AppendUint64(dst, math.Float64bits(v.Float)), nil
	case node.TypeBoolean:
		if v.Bool {
			return append(dst, 1), nil
		}
		return append(dst, 0), nil
	case node.TypeObjlnk:
		dst = binary.BigEndian.AppendUint16(dst, v.Link.Object)
		return binary.BigEndian.AppendUint16(dst, v.Link.Instance), nil
	case node.TypeOpaque, node.TypeNone:
		return append(dst, v.Bytes...), nil
	}
	return nil, tlvError("cannot encode type " + v.Type.String())
}

func appendTLVInt(dst []byte, i int64) []byte {
	switch {
	case i >= math.MinInt8 && i <= math.MaxInt8:
		return append(dst, byte(int8(i)))
	case i >= math.MinInt16 && i <= math.MaxInt16:
		return binary.BigEndian.AppendUint16(dst, uint16(int16(i)))
	case i >= math.MinInt32 && i <= math.MaxInt32:
		return binary.BigEndian.AppendUint32(dst, uint32(int32(i)))
	}
	return binary.BigEndian.AppendUint64(dst, uint64(i))
}

// maxTLVLength is what the 24-bit length field holds.
const maxTLVLength = 1<<24 - 1

// appendTLVHeader writes the type byte, identifier and length.
func appendTLVHeader(dst []byte, kind uint8, id uint16, n int) ([]byte, error) {
	if n > maxTLVLength {
		return nil, tlvError("value of " + itoa(n) + " bytes exceeds the 16 MB TLV limit")
	}
	t := kind << 6
	if id > 0xff {
		t |= 0x20
	}
	switch {
	case n < 8:
		t |= byte(n)
	case n <= 0xff:
		t |= 1 << 3
	case n <= 0xffff:
		t |= 2 << 3
	default:
		t |= 3 << 3
	}
	dst = append(dst, t)
	if id > 0xff {
		dst = binary.BigEndian.AppendUint16(dst, id)
	} else {
		dst = append(dst, byte(id))
	}
	switch {
	case n < 8:
	case n <= 0xff:
		dst = append(dst, byte(n))
	case n <= 0xffff:
		dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	default:
		dst = append(dst, byte(n>>16), byte(n>>8), byte(n))
	}
	return dst, nil
}

// appendTLV writes one complete TLV whose value is body.
func appendTLV(dst []byte, kind uint8, id uint16, body []byte) ([]byte, error) {
	dst, err := appendTLVHeader(dst, kind, id, len(body))
	if err != nil {
		return nil, err
	}
	return append(dst, body...), nil
}

func comparePaths(a, b node.Path) int {
	ai, bi := [4]uint16{a.Object, a.Instance, a.Resource, a.ResourceInstance}, [4]uint16{b.Object, b.Instance, b.Resource, b.ResourceInstance}
	for k := range ai {
		if ai[k] != bi[k] {
			return int(ai[k]) - int(bi[k])
		}
	}
	return int(a.Depth) - int(b.Depth)
}

// encodeTLV writes records for a Write or Create on base: object instance
// TLVs under an object, resources under an instance, a resource (single,
// or multiple with its instances) for a resource, a resource instance for
// a resource instance. TLV carries no times; records' times are dropped.
func encodeTLV(base node.Path, recs []node.Record) ([]byte, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	if base.Depth == 0 {
		return nil, unsupported(TLV)
	}
	sorted := slices.Clone(recs)
	slices.SortStableFunc(sorted, func(a, b node.Record) int { return comparePaths(a.Path, b.Path) })
	var out []byte
	var err error
	switch base.Depth {
	case 1:
		for i := 0; i < len(sorted); {
			j := i
			for j < len(sorted) && sorted[j].Path.Instance == sorted[i].Path.Instance {
				j++
			}
			body, err := tlvResources(nil, sorted[i:j])
			if err != nil {
				return nil, err
			}
			if out, err = appendTLV(out, tlvObjectInstance, sorted[i].Path.Instance, body); err != nil {
				return nil, err
			}
			i = j
		}
	case 2, 3:
		out, err = tlvResources(nil, sorted)
	case 4:
		for _, r := range sorted {
			if out, err = tlvValueTLV(out, tlvResourceInstance, r.Path.ResourceInstance, r.Value); err != nil {
				return nil, err
			}
		}
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// tlvResources writes the resources of sorted records of one instance:
// depth-3 records as resource TLVs, runs of depth-4 records of one
// resource as a multiple resource TLV.
func tlvResources(dst []byte, recs []node.Record) ([]byte, error) {
	var err error
	for i := 0; i < len(recs); {
		r := recs[i]
		if r.Path.Depth == 3 {
			if dst, err = tlvValueTLV(dst, tlvResource, r.Path.Resource, r.Value); err != nil {
				return nil, err
			}
			i++
			continue
		}
		var body []byte
		j := i
		for j < len(recs) && recs[j].Path.Depth == 4 && recs[j].Path.Resource == r.Path.Resource {
			if body, err = tlvValueTLV(body, tlvResourceInstance, recs[j].Path.ResourceInstance, recs[j].Value); err != nil {
				return nil, err
			}
			j++
		}
		if dst, err = appendTLV(dst, tlvMultipleResource, r.Path.Resource, body); err != nil {
			return nil, err
		}
		i = j
	}
	return dst, nil
}

func tlvValueTLV(dst []byte, kind uint8, id uint16, v node.Value) ([]byte, error) {
	var scratch [16]byte
	body, err := tlvBytes(scratch[:0], v)
	if err != nil {
		return nil, err
	}
	return appendTLV(dst, kind, id, body)
}
