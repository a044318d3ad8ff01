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
		name := joinName(bn, r.n)
		p, err := node.ParsePath(name)
		if err != nil {
			return nil, malformed("senml record %d: name %q: %v", i, name, err)
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
