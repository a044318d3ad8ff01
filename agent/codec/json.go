package codec

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// senmlJSONRecord is a SenML JSON record (RFC 8428 section 5, plus the
// LwM2M "vlo"). Pointers tell absent fields from zero ones.
type senmlJSONRecord struct {
	BN  *string      `json:"bn"`
	BT  *json.Number `json:"bt"`
	BV  *json.Number `json:"bv"`
	N   string       `json:"n"`
	T   *json.Number `json:"t"`
	V   *json.Number `json:"v"`
	VS  *string      `json:"vs"`
	VB  *bool        `json:"vb"`
	VD  *string      `json:"vd"`
	VLO *string      `json:"vlo"`
}

// parseNumber keeps integers integers: a JSON number without fraction or
// exponent is an int64 (or a uint64 above its range), anything else a
// float64.
func parseNumber(n json.Number) (number, error) {
	s := string(n)
	if !strings.ContainsAny(s, ".eE") {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return intNumber(i), nil
		}
		if u, err := strconv.ParseUint(s, 10, 64); err == nil {
			return uintNumber(u), nil
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return number{}, malformed("number %q out of range", s)
	}
	return floatNumber(f), nil
}

func parseSeconds(n *json.Number) (float64, error) {
	if n == nil {
		return 0, nil
	}
	x, err := parseNumber(*n)
	return x.float(), err
}

// decodeBase64 accepts the base64 and base64url alphabets, padded or not:
// RFC 8428 asks for unpadded base64url, clients send all four.
func decodeBase64(s string) ([]byte, bool) {
	s = strings.TrimRight(strings.TrimSpace(s), "=")
	if strings.ContainsAny(s, "-_") {
		b, err := base64.RawURLEncoding.DecodeString(s)
		return b, err == nil
	}
	b, err := base64.RawStdEncoding.DecodeString(s)
	return b, err == nil
}

func decodeSenMLJSON(base node.Path, payload []byte, types node.Resolver) ([]node.Record, error) {
	if len(strings.TrimSpace(string(payload))) == 0 {
		return nil, nil
	}
	var in []senmlJSONRecord
	if err := json.Unmarshal(payload, &in); err != nil {
		return nil, malformed("senml json: %v", err)
	}
	if len(in) > MaxRecords {
		return nil, malformed("senml json: %d records, at most %d", len(in), MaxRecords)
	}
	raws := make([]senmlRecord, len(in))
	for i, j := range in {
		s := &raws[i]
		var err error
		if j.BN != nil {
			s.bn, s.hasBN = *j.BN, true
		}
		if j.BT != nil {
			s.hasBT = true
			if s.bt, err = parseSeconds(j.BT); err != nil {
				return nil, err
			}
		}
		if j.BV != nil {
			s.hasBV = true
			if s.bv, err = parseNumber(*j.BV); err != nil {
				return nil, err
			}
		}
		s.n = j.N
		if s.t, err = parseSeconds(j.T); err != nil {
			return nil, err
		}
		switch {
		case j.V != nil:
			s.kind = senmlNum
			if s.num, err = parseNumber(*j.V); err != nil {
				return nil, err
			}
		case j.VS != nil:
			s.kind, s.str = senmlStr, *j.VS
		case j.VB != nil:
			s.kind, s.boolean = senmlBool, *j.VB
		case j.VD != nil:
			b, ok := decodeBase64(*j.VD)
			if !ok {
				return nil, malformed("senml json record %d: vd is not base64", i)
			}
			s.kind, s.data = senmlData, b
		case j.VLO != nil:
			s.kind, s.str = senmlLink, *j.VLO
		}
	}
	return resolveSenML(base, raws, types)
}

// appendJSONString writes s as a JSON string; invalid UTF-8 becomes U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, "\ufffd"...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// appendJSONNumber writes a number; floats always show a fraction or an
// exponent so that they read back as floats.
func appendJSONNumber(b []byte, n number) ([]byte, error) {
	switch n.kind {
	case numInt:
		return strconv.AppendInt(b, n.i, 10), nil
	case numUint:
		return strconv.AppendUint(b, n.u, 10), nil
	}
	if math.IsNaN(n.f) || math.IsInf(n.f, 0) {
		return nil, fmtUnsupported(SenMLJSON, "cannot carry NaN or infinity")
	}
	// The shortest form, in exponent notation only for very small and
	// very large magnitudes, as encoding/json writes floats.
	start := len(b)
	if abs := math.Abs(n.f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		b = strconv.AppendFloat(b, n.f, 'e', -1, 64)
		if k := len(b); k-start >= 4 && b[k-4] == 'e' && b[k-3] == '-' && b[k-2] == '0' {
			b[k-2] = b[k-1] // e-07 becomes e-7
			b = b[:k-1]
		}
		return b, nil
	}
	b = strconv.AppendFloat(b, n.f, 'f', -1, 64)
	if !strings.ContainsRune(string(b[start:]), '.') {
		b = append(b, '.', '0')
	}
	return b, nil
}

func encodeSenMLJSON(base node.Path, recs []node.Record) ([]byte, error) {
	raws, err := toSenML(base, recs)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, 32*len(raws)+2)
	b = append(b, '[')
	for i := range raws {
		s := &raws[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		sep := false
		field := func(name string) {
			if sep {
				b = append(b, ',')
			}
			sep = true
			b = append(b, '"')
			b = append(b, name...)
			b = append(b, '"', ':')
		}
		if s.hasBN {
			field("bn")
			b = appendJSONString(b, s.bn)
		}
		if s.n != "" {
			field("n")
			b = appendJSONString(b, s.n)
		}
		switch s.kind {
		case senmlNum:
			field("v")
			if b, err = appendJSONNumber(b, s.num); err != nil {
				return nil, err
			}
		case senmlStr:
			field("vs")
			b = appendJSONString(b, s.str)
		case senmlBool:
			field("vb")
			b = strconv.AppendBool(b, s.boolean)
		case senmlData:
			field("vd")
			b = append(b, '"')
			b = base64.RawURLEncoding.AppendEncode(b, s.data)
			b = append(b, '"')
		case senmlLink:
			field("vlo")
			b = appendJSONString(b, s.str)
		}
		if s.t != 0 {
			field("t")
			if b, err = appendJSONNumber(b, secondsNumber(s.t)); err != nil {
				return nil, err
			}
		}
		b = append(b, '}')
	}
	return append(b, ']'), nil
}

// LwM2M JSON (application/vnd.oma.lwm2m+json, Core TS 1.0 section 6.4.4).

type lwm2mJSON struct {
	BN *string           `json:"bn"`
	BT *json.Number      `json:"bt"`
	E  *[]lwm2mJSONEntry `json:"e"`
}

type lwm2mJSONEntry struct {
	N  string       `json:"n"`
	V  *json.Number `json:"v"`
	SV *string      `json:"sv"`
	BV *bool        `json:"bv"`
	OV *string      `json:"ov"`
	T  *json.Number `json:"t"`
}

// decodeLwM2MJSON reads the 1.0 JSON format. Times: with a base time, bt+t
// is Unix seconds (the specification's own example uses a small bt); with
// none, t follows the SenML rule, relative to now when below 2^28.
func decodeLwM2MJSON(base node.Path, payload []byte, types node.Resolver) ([]node.Record, error) {
	if len(strings.TrimSpace(string(payload))) == 0 {
		return nil, nil
	}
	var in lwm2mJSON
	if err := json.Unmarshal(payload, &in); err != nil {
		return nil, malformed("lwm2m json: %v", err)
	}
	if in.E == nil {
		return nil, malformed(`lwm2m json: no "e" array`)
	}
	entries := *in.E
	if len(entries) > MaxRecords {
		return nil, malformed("lwm2m json: %d records, at most %d", len(entries), MaxRecords)
	}
	bn := ""
	if in.BN != nil {
		bn = *in.BN
	}
	bt, err := parseSeconds(in.BT)
	if err != nil {
		return nil, err
	}
	out := make([]node.Record, 0, len(entries))
	for i, e := range entries {
		p, err := namePath(bn, e.N)
		if in.BN == nil && e.N != "" && e.N[0] != '/' && (err != nil || !base.Contains(p)) {
			// Without a base name, some clients name entries relative to
			// the requested path ("14" answering a Read of /3/0).
			if q, qerr := namePath(base.String(), e.N); qerr == nil {
				p, err = q, nil
			}
		}
		if err != nil {
			return nil, malformed("lwm2m json entry %d: name %q: %v", i, joinName(bn, e.N), err)
		}
		if p.Depth < 3 {
			return nil, malformed("lwm2m json entry %d: %v is not a resource", i, p)
		}
		if !base.Contains(p) {
			return nil, malformed("lwm2m json entry %d: %v lies outside %v", i, p, base)
		}
		t := typeOf(types, p)
		var v node.Value
		switch {
		case e.V != nil:
			n, err := parseNumber(*e.V)
			if err != nil {
				return nil, err
			}
			v = n.value()
		case e.SV != nil:
			v = node.String(*e.SV)
			if t == node.TypeOpaque {
				if b, ok := decodeBase64(*e.SV); ok {
					v = node.Opaque(b)
				}
			}
		case e.BV != nil:
			v = node.Bool(*e.BV)
		case e.OV != nil:
			l, ok := parseObjlnk(*e.OV)
			if !ok {
				return nil, malformed("lwm2m json entry %d: ov %q is not O:I", i, *e.OV)
			}
			v = node.Value{Type: node.TypeObjlnk, Link: l}
		default:
			continue
		}
		v = coerce(v, t)
		ts, err := parseSeconds(e.T)
		if err != nil {
			return nil, err
		}
		var rec node.Record
		rec.Path, rec.Value = p, v
		switch s := bt + ts; {
		case s == 0:
		case in.BT != nil:
			tm, ok := secondsTime(s)
			if !ok {
				return nil, malformed("lwm2m json entry %d: time %v out of range", i, s)
			}
			rec.Time = tm
		default:
			if rec.Time, err = senmlTime(s); err != nil {
				return nil, err
			}
		}
		out = append(out, rec)
	}
	return out, nil
}

// lwm2mJSONNames returns the base name and the entries' names as the 1.0
// specification's examples write them (TS 1.0.2 section 6.4.4 and its
// appendix): the base name is the object or instance the request is on,
// ending in "/", and every entry names its resource (and resource
// instance) relative to it. Unlike SenML, a resource is never the base
// name itself: 1.0 clients built on that text (wakaama's among them) look
// for the resource in "n" and refuse a write whose base name is the whole
// path. At the root (composite), names are whole paths under "/".
func lwm2mJSONNames(base node.Path, recs []node.Record) (bn string, names []string) {
	keep := int(base.Depth)
	if keep > 2 {
		keep = 2
	}
	var sb strings.Builder
	sb.WriteByte('/')
	for _, id := range base.IDs()[:keep] {
		sb.WriteString(itoa(int(id)))
		sb.WriteByte('/')
	}
	bn = sb.String()
	names = make([]string, len(recs))
	for i, r := range recs {
		sb.Reset()
		for k, id := range r.Path.IDs()[keep:] {
			if k > 0 {
				sb.WriteByte('/')
			}
			sb.WriteString(itoa(int(id)))
		}
		names[i] = sb.String()
	}
	return bn, names
}

func encodeLwM2MJSON(base node.Path, recs []node.Record) ([]byte, error) {
	bn, names := lwm2mJSONNames(base, recs)
	// Times are written absolute; a base time of 0 says so when one of
	// them is too early to be told from a relative time.
	needBT := false
	for _, r := range recs {
		if !r.Time.IsZero() && r.Time.Unix() < relativeLimit {
			needBT = true
		}
	}
	b := make([]byte, 0, 32*len(recs)+16)
	b = append(b, `{"bn":`...)
	b = appendJSONString(b, bn)
	if needBT {
		b = append(b, `,"bt":0`...)
	}
	b = append(b, `,"e":[`...)
	for i, r := range recs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		if names[i] != "" {
			b = append(b, `"n":`...)
			b = appendJSONString(b, names[i])
			b = append(b, ',')
		}
		v := r.Value
		switch v.Type {
		case node.TypeString, node.TypeCorelnk:
			b = append(b, `"sv":`...)
			b = appendJSONString(b, v.Str)
		case node.TypeOpaque, node.TypeNone:
			b = append(b, `"sv":"`...)
			b = base64.StdEncoding.AppendEncode(b, v.Bytes)
			b = append(b, '"')
		case node.TypeBoolean:
			b = append(b, `"bv":`...)
			b = strconv.AppendBool(b, v.Bool)
		case node.TypeObjlnk:
			b = append(b, `"ov":`...)
			b = appendJSONString(b, v.Link.String())
		default:
			n, ok := valueNumber(v)
			if !ok {
				return nil, fmtUnsupported(LwM2MJSON, "cannot carry a "+v.Type.String()+" value")
			}
			b = append(b, `"v":`...)
			var err error
			if b, err = appendJSONNumber(b, n); err != nil {
				return nil, err
			}
		}
		if !r.Time.IsZero() {
			if r.Time.Unix() > maxSeconds || r.Time.Unix() < -maxSeconds {
				return nil, fmtUnsupported(LwM2MJSON, "cannot carry time "+r.Time.String())
			}
			b = append(b, `,"t":`...)
			var err error
			if b, err = appendJSONNumber(b, timeSeconds(r.Time)); err != nil {
				return nil, err
			}
		}
		b = append(b, '}')
	}
	return append(b, "]}"...), nil
}
