package codec

import (
	"fmt"
	"strings"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// SenML value kinds (RFC 8428 section 4.2, plus "vlo", the object link
// value LwM2M 1.1 adds).
const (
	senmlNoValue = iota
	senmlNum
	senmlStr
	senmlBool
	senmlData
	senmlLink
)

// senmlRecord is one SenML record as either serialization carries it,
// before base names and times are applied.
type senmlRecord struct {
	bn      string
	hasBN   bool
	bt      float64
	hasBT   bool
	bv      number
	hasBV   bool
	n       string
	t       float64
	kind    uint8
	num     number
	str     string
	boolean bool
	data    []byte
}

// joinName concatenates base name and name (RFC 8428 section 4.5.1).
// Clients that drop the slash between them ("/3/0" + "1") are common
// enough to accept.
func joinName(bn, n string) string {
	switch {
	case bn == "":
		return n
	case n == "":
		return bn
	case strings.HasSuffix(bn, "/") && strings.HasPrefix(n, "/"):
		return bn + n[1:]
	case strings.HasSuffix(bn, "/") || strings.HasPrefix(n, "/"):
		return bn + n
	}
	return bn + "/" + n
}

// resolveSenML applies base values to raw records and types the values.
// Records without a value (as in a Read-Composite request) are skipped.
func resolveSenML(base node.Path, raws []senmlRecord, types node.Resolver) ([]node.Record, error) {
	var (
		bn    string
		bt    float64
		bv    number
		hasBV bool
	)
	out := make([]node.Record, 0, len(raws))
	for i := range raws {
		r := &raws[i]
		if r.hasBN {
			bn = r.bn
		}
		if r.hasBT {
			bt = r.bt
		}
		if r.hasBV {
			bv, hasBV = r.bv, true
		}
		if r.kind == senmlNoValue {
			continue
		}
		p, err := namePath(bn, r.n)
		if err != nil {
			return nil, malformed("senml record %d: name %q: %v", i, joinName(bn, r.n), err)
		}
		if p.Depth < 3 {
			return nil, malformed("senml record %d: %v is not a resource", i, p)
		}
		if !base.Contains(p) {
			return nil, malformed("senml record %d: %v lies outside %v", i, p, base)
		}
		var v node.Value
		switch r.kind {
		case senmlNum:
			n := r.num
			if hasBV {
				n = addNumbers(bv, n)
			}
			v = n.value()
		case senmlStr:
			v = node.String(r.str)
		case senmlBool:
			v = node.Bool(r.boolean)
		case senmlData:
			v = node.Opaque(r.data)
		case senmlLink:
			l, ok := parseObjlnk(r.str)
			if !ok {
				return nil, malformed("senml record %d: vlo %q is not O:I", i, r.str)
			}
			v = node.Value{Type: node.TypeObjlnk, Link: l}
		}
		v = coerce(v, typeOf(types, p))
		tm, err := senmlTime(bt + r.t)
		if err != nil {
			return nil, fmt.Errorf("senml record %d: %w", i, err)
		}
		out = append(out, node.Record{Path: p, Value: v, Time: tm})
	}
	return out, nil
}

// addNumbers adds a base value (bv) to a value; integers stay integers
// unless the sum overflows.
func addNumbers(a, b number) number {
	if a.kind == numInt && b.kind == numInt {
		s := a.i + b.i
		if (s > a.i) == (b.i > 0) {
			return intNumber(s)
		}
	}
	return floatNumber(a.float() + b.float())
}

// senmlNames returns the base name of the first record and each record's
// name, so that base name + name is the record's path: one resource alone
// is all base name; records under an object, instance or resource share it
// as a prefix; records at the root (composite) carry full names.
func senmlNames(base node.Path, recs []node.Record) (bn string, names []string) {
	names = make([]string, len(recs))
	if base.Depth == 0 {
		for i, r := range recs {
			names[i] = r.Path.String()
		}
		return "", names
	}
	single := true
	for _, r := range recs {
		if r.Path != base {
			single = false
			break
		}
	}
	if single {
		return base.String(), names
	}
	var sb strings.Builder
	for i, r := range recs {
		sb.Reset()
		for k, id := range r.Path.IDs()[base.Depth:] {
			if k > 0 {
				sb.WriteByte('/')
			}
			sb.WriteString(itoa(int(id)))
		}
		names[i] = sb.String()
	}
	return base.String() + "/", names
}

// toSenML converts records to SenML records for encoding.
func toSenML(base node.Path, recs []node.Record) ([]senmlRecord, error) {
	bn, names := senmlNames(base, recs)
	out := make([]senmlRecord, len(recs))
	for i, r := range recs {
		s := &out[i]
		if i == 0 && bn != "" {
			s.bn, s.hasBN = bn, true
		}
		s.n = names[i]
		if !r.Time.IsZero() {
			sec := r.Time.Unix()
			if sec < relativeLimit || sec > maxSeconds {
				return nil, tlvError("time " + r.Time.String() + " of " + r.Path.String() + " cannot be told from a relative time")
			}
			s.t = timeSeconds(r.Time).float()
		}
		v := r.Value
		switch v.Type {
		case node.TypeString, node.TypeCorelnk:
			s.kind, s.str = senmlStr, v.Str
		case node.TypeBoolean:
			s.kind, s.boolean = senmlBool, v.Bool
		case node.TypeObjlnk:
			s.kind, s.str = senmlLink, v.Link.String()
		case node.TypeOpaque, node.TypeNone:
			s.kind, s.data = senmlData, v.Bytes
		default:
			n, ok := valueNumber(v)
			if !ok {
				return nil, tlvError("cannot encode type " + v.Type.String())
			}
			s.kind, s.num = senmlNum, n
		}
	}
	return out, nil
}

// namePath parses base name + name as a path without building the joined
// string on the way: notifications decode a name per value, and this is
// their hot path. Errors come from node.ParsePath, for its messages.
func namePath(bn, n string) (node.Path, error) {
	var buf [64]byte
	b := buf[:0]
	switch {
	case bn == "":
		b = append(b, n...)
	case n == "":
		b = append(b, bn...)
	default:
		b = append(b, bn...)
		if b[len(b)-1] == '/' && n[0] == '/' {
			b = append(b, n[1:]...)
		} else {
			if b[len(b)-1] != '/' && n[0] != '/' {
				b = append(b, '/')
			}
			b = append(b, n...)
		}
	}
	if p, ok := parsePathBytes(b); ok {
		return p, nil
	}
	return node.ParsePath(string(b))
}

// parsePathBytes accepts exactly what node.ParsePath accepts.
func parsePathBytes(s []byte) (node.Path, bool) {
	i, j := 0, len(s)
	for i < j && s[i] == '/' {
		i++
	}
	for j > i && s[j-1] == '/' {
		j--
	}
	if i == j {
		return node.Root, len(s) > 0
	}
	var ids [4]uint16
	depth := 0
	for k := i; k <= j; {
		e := k
		for e < j && s[e] != '/' {
			e++
		}
		seg := s[k:e]
		if depth == 4 || len(seg) == 0 || len(seg) > 5 || (len(seg) > 1 && seg[0] == '0') {
			return node.Path{}, false
		}
		v := 0
		for _, c := range seg {
			if c < '0' || c > '9' {
				return node.Path{}, false
			}
			v = v*10 + int(c-'0')
		}
		if v > node.MaxID {
			return node.Path{}, false
		}
		ids[depth] = uint16(v)
		depth++
		k = e + 1
	}
	return node.Path{Object: ids[0], Instance: ids[1], Resource: ids[2], ResourceInstance: ids[3], Depth: uint8(depth)}, true
}
