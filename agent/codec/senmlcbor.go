package codec

import (
	"encoding/binary"
	"fmt"
	"math"
	"unicode/utf8"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// SenML CBOR labels (RFC 8428 section 6).
const (
	labelBver = -1
	labelBN   = -2
	labelBT   = -3
	labelBU   = -4
	labelBV   = -5
	labelBS   = -6
	labelN    = 0
	labelU    = 1
	labelV    = 2
	labelVS   = 3
	labelVB   = 4
	labelS    = 5
	labelT    = 6
	labelUT   = 7
	labelVD   = 8
)

// CBOR major types.
const (
	cborUint   = 0
	cborNeg    = 1
	cborBytes  = 2
	cborText   = 3
	cborArray  = 4
	cborMap    = 5
	cborTag    = 6
	cborSimple = 7
)

// cborReader is a small, allocation-light reader for the CBOR subset SenML
// uses. It is written for the notification path, where a general CBOR
// decoder into maps costs several allocations per value. Every length is
// checked against the bytes left before use.
type cborReader struct {
	b     []byte
	depth int
}

const cborIndefinite = math.MaxUint64

// head reads an initial byte and its argument; indefinite lengths return
// cborIndefinite.
func (r *cborReader) head() (major uint8, arg uint64, err error) {
	if len(r.b) == 0 {
		return 0, 0, malformed("cbor: unexpected end")
	}
	c := r.b[0]
	major, info := c>>5, c&0x1f
	r.b = r.b[1:]
	switch {
	case info < 24:
		return major, uint64(info), nil
	case info <= 27:
		n := 1 << (info - 24)
		if len(r.b) < n {
			return 0, 0, malformed("cbor: truncated argument")
		}
		for _, x := range r.b[:n] {
			arg = arg<<8 | uint64(x)
		}
		r.b = r.b[n:]
		return major, arg, nil
	case info == 31 && (major == cborBytes || major == cborText || major == cborArray || major == cborMap):
		return major, cborIndefinite, nil
	case info == 31 && major == cborSimple:
		return major, cborIndefinite, nil // break
	}
	return 0, 0, malformed("cbor: reserved additional information %d", info)
}

// isBreak reports and consumes a break byte.
func (r *cborReader) isBreak() bool {
	if len(r.b) > 0 && r.b[0] == 0xff {
		r.b = r.b[1:]
		return true
	}
	return false
}

// skipTags skips tag heads: SenML gives no tag a meaning, and ignoring
// them costs nothing.
func (r *cborReader) skipTags() error {
	for len(r.b) > 0 && r.b[0]>>5 == cborTag {
		if _, _, err := r.head(); err != nil {
			return err
		}
	}
	return nil
}

// str reads a byte or text string (major must be cborBytes or cborText),
// joining the chunks of an indefinite one.
func (r *cborReader) str(major uint8, arg uint64) ([]byte, error) {
	if arg != cborIndefinite {
		if arg > uint64(len(r.b)) {
			return nil, malformed("cbor: string of %d bytes, %d left", arg, len(r.b))
		}
		s := r.b[:arg:arg]
		r.b = r.b[arg:]
		return s, nil
	}
	var out []byte
	for !r.isBreak() {
		m, a, err := r.head()
		if err != nil {
			return nil, err
		}
		if m != major || a == cborIndefinite {
			return nil, malformed("cbor: bad chunk in indefinite string")
		}
		if a > uint64(len(r.b)) {
			return nil, malformed("cbor: chunk of %d bytes, %d left", a, len(r.b))
		}
		out = append(out, r.b[:a]...)
		r.b = r.b[a:]
	}
	if out == nil {
		out = []byte{}
	}
	return out, nil
}

func (r *cborReader) text() (string, error) {
	if err := r.skipTags(); err != nil {
		return "", err
	}
	m, a, err := r.head()
	if err != nil {
		return "", err
	}
	if m != cborText {
		return "", malformed("cbor: expected text, got major type %d", m)
	}
	s, err := r.str(m, a)
	if err != nil {
		return "", err
	}
	if !utf8.Valid(s) {
		return "", malformed("cbor: text is not UTF-8")
	}
	return string(s), nil
}

func (r *cborReader) bytes() ([]byte, error) {
	if err := r.skipTags(); err != nil {
		return nil, err
	}
	m, a, err := r.head()
	if err != nil {
		return nil, err
	}
	if m != cborBytes {
		return nil, malformed("cbor: expected bytes, got major type %d", m)
	}
	s, err := r.str(m, a)
	if err != nil {
		return nil, err
	}
	return append([]byte{}, s...), nil
}

func (r *cborReader) number() (number, error) {
	if err := r.skipTags(); err != nil {
		return number{}, err
	}
	if len(r.b) == 0 {
		return number{}, malformed("cbor: unexpected end")
	}
	c := r.b[0]
	if c>>5 == cborSimple {
		switch c & 0x1f {
		case 25:
			if len(r.b) < 3 {
				return number{}, malformed("cbor: truncated float")
			}
			f := halfToFloat(binary.BigEndian.Uint16(r.b[1:]))
			r.b = r.b[3:]
			return floatNumber(f), nil
		case 26:
			if len(r.b) < 5 {
				return number{}, malformed("cbor: truncated float")
			}
			f := float64(math.Float32frombits(binary.BigEndian.Uint32(r.b[1:])))
			r.b = r.b[5:]
			return floatNumber(f), nil
		case 27:
			if len(r.b) < 9 {
				return number{}, malformed("cbor: truncated float")
			}
			f := math.Float64frombits(binary.BigEndian.Uint64(r.b[1:]))
			r.b = r.b[9:]
			return floatNumber(f), nil
		}
		return number{}, malformed("cbor: expected a number")
	}
	m, a, err := r.head()
	if err != nil {
		return number{}, err
	}
	switch m {
	case cborUint:
		return uintNumber(a), nil
	case cborNeg:
		if a > math.MaxInt64 {
			return number{}, malformed("cbor: negative integer out of range")
		}
		return intNumber(-1 - int64(a)), nil
	}
	return number{}, malformed("cbor: expected a number, got major type %d", m)
}

func (r *cborReader) boolean() (bool, error) {
	if err := r.skipTags(); err != nil {
		return false, err
	}
	if len(r.b) == 0 {
		return false, malformed("cbor: unexpected end")
	}
	switch r.b[0] {
	case 0xf4:
		r.b = r.b[1:]
		return false, nil
	case 0xf5:
		r.b = r.b[1:]
		return true, nil
	}
	return false, malformed("cbor: expected a boolean")
}

// skip skips one data item of any type, bounded in nesting.
func (r *cborReader) skip() error {
	r.depth++
	defer func() { r.depth-- }()
	if r.depth > maxNesting {
		return malformed("cbor: nested deeper than %d", maxNesting)
	}
	m, a, err := r.head()
	if err != nil {
		return err
	}
	switch m {
	case cborUint, cborNeg:
		return nil
	case cborBytes, cborText:
		_, err := r.str(m, a)
		return err
	case cborTag:
		return r.skip()
	case cborArray, cborMap:
		per := uint64(1)
		if m == cborMap {
			per = 2
		}
		if a == cborIndefinite {
			for !r.isBreak() {
				for range per {
					if err := r.skip(); err != nil {
						return err
					}
				}
			}
			return nil
		}
		if a > uint64(len(r.b)) {
			return malformed("cbor: %d items, %d bytes left", a, len(r.b))
		}
		for i := uint64(0); i < a*per; i++ {
			if err := r.skip(); err != nil {
				return err
			}
		}
		return nil
	case cborSimple:
		if a == cborIndefinite {
			return malformed("cbor: unexpected break")
		}
		return nil // simple values and floats: head already consumed the argument
	}
	return malformed("cbor: unknown major type %d", m)
}

// halfToFloat converts an IEEE 754 half-precision float.
func halfToFloat(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp := int(h>>10) & 0x1f
	mant := float64(h & 0x3ff)
	switch exp {
	case 0:
		return sign * math.Ldexp(mant, -24)
	case 31:
		if mant == 0 {
			return math.Inf(int(sign))
		}
		return math.NaN()
	}
	return sign * math.Ldexp(mant+1024, exp-25)
}

func decodeSenMLCBOR(base node.Path, payload []byte, types node.Resolver) ([]node.Record, error) {
	if len(payload) == 0 {
		return nil, nil
	}
	r := cborReader{b: payload}
	if err := r.skipTags(); err != nil {
		return nil, err
	}
	m, n, err := r.head()
	if err != nil {
		return nil, err
	}
	if m != cborArray {
		return nil, malformed("senml cbor: payload is not an array")
	}
	if n != cborIndefinite && n > uint64(len(r.b)) {
		return nil, malformed("senml cbor: %d records in %d bytes", n, len(r.b))
	}
	if n != cborIndefinite && n > MaxRecords {
		return nil, malformed("senml cbor: %d records, at most %d", n, MaxRecords)
	}
	capHint := n
	if n == cborIndefinite {
		capHint = 8
	}
	raws := make([]senmlRecord, 0, capHint)
	for i := uint64(0); n == cborIndefinite || i < n; i++ {
		if n == cborIndefinite && r.isBreak() {
			break
		}
		if len(raws) >= MaxRecords {
			return nil, malformed("senml cbor: more than %d records", MaxRecords)
		}
		rec, err := r.record()
		if err != nil {
			return nil, fmt.Errorf("senml cbor record %d: %w", i, err)
		}
		raws = append(raws, rec)
	}
	if len(r.b) != 0 {
		return nil, malformed("senml cbor: %d bytes after the array", len(r.b))
	}
	return resolveSenML(base, raws, types)
}

// record reads one SenML record map.
func (r *cborReader) record() (senmlRecord, error) {
	var s senmlRecord
	if err := r.skipTags(); err != nil {
		return s, err
	}
	m, n, err := r.head()
	if err != nil {
		return s, err
	}
	if m != cborMap {
		return s, malformed("record is not a map")
	}
	if n != cborIndefinite && n > uint64(len(r.b)) {
		return s, malformed("%d pairs in %d bytes", n, len(r.b))
	}
	for i := uint64(0); n == cborIndefinite || i < n; i++ {
		if n == cborIndefinite && r.isBreak() {
			break
		}
		label, ok, err := r.label()
		if err != nil {
			return s, err
		}
		if !ok {
			if err := r.skip(); err != nil {
				return s, err
			}
			continue
		}
		switch label {
		case labelBN:
			s.bn, err = r.text()
			s.hasBN = true
		case labelBT:
			var x number
			x, err = r.number()
			s.bt, s.hasBT = x.float(), true
		case labelBV:
			s.bv, err = r.number()
			s.hasBV = true
		case labelN:
			s.n, err = r.text()
		case labelT:
			var x number
			x, err = r.number()
			s.t = x.float()
		case labelV:
			s.num, err = r.number()
			s.kind = senmlNum
		case labelVS:
			s.str, err = r.text()
			s.kind = senmlStr
		case labelVB:
			s.boolean, err = r.boolean()
			s.kind = senmlBool
		case labelVD:
			s.data, err = r.bytes()
			s.kind = senmlData
		case labelVLO:
			s.str, err = r.text()
			s.kind = senmlLink
		default:
			err = r.skip()
		}
		if err != nil {
			return s, err
		}
	}
	return s, nil
}

// labelVLO stands for the "vlo" text label in the switch of record.
const labelVLO = 1000

// senmlTextLabels maps the text labels some clients send in CBOR too.
var senmlTextLabels = map[string]int{
	"bn": labelBN, "bt": labelBT, "bv": labelBV, "n": labelN, "t": labelT,
	"v": labelV, "vs": labelVS, "vb": labelVB, "vd": labelVD, "vlo": labelVLO,
}

// label reads a map key; ok is false for labels this package ignores.
func (r *cborReader) label() (int, bool, error) {
	if len(r.b) == 0 {
		return 0, false, malformed("cbor: unexpected end")
	}
	switch r.b[0] >> 5 {
	case cborUint, cborNeg:
		x, err := r.number()
		if err != nil {
			return 0, false, err
		}
		if x.kind != numInt || x.i < -6 || x.i > 8 {
			return 0, false, nil
		}
		return int(x.i), true, nil
	case cborText:
		m, a, err := r.head()
		if err != nil {
			return 0, false, err
		}
		s, err := r.str(m, a)
		if err != nil {
			return 0, false, err
		}
		l, ok := senmlTextLabels[string(s)]
		return l, ok, nil
	}
	// Any other key: skip it here, and its value in the caller.
	return 0, false, r.skip()
}

// CBOR writing.

func appendCBORHead(dst []byte, major uint8, arg uint64) []byte {
	m := major << 5
	switch {
	case arg < 24:
		return append(dst, m|byte(arg))
	case arg <= math.MaxUint8:
		return append(dst, m|24, byte(arg))
	case arg <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(dst, m|25), uint16(arg))
	case arg <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(dst, m|26), uint32(arg))
	}
	return binary.BigEndian.AppendUint64(append(dst, m|27), arg)
}

func appendCBORInt(dst []byte, i int64) []byte {
	if i >= 0 {
		return appendCBORHead(dst, cborUint, uint64(i))
	}
	return appendCBORHead(dst, cborNeg, uint64(-1-i))
}

func appendCBORText(dst []byte, s string) []byte {
	return append(appendCBORHead(dst, cborText, uint64(len(s))), s...)
}

// appendCBORNumber writes integers as integers and floats in four bytes
// when that loses nothing, else eight.
func appendCBORNumber(dst []byte, n number) []byte {
	switch n.kind {
	case numInt:
		return appendCBORInt(dst, n.i)
	case numUint:
		return appendCBORHead(dst, cborUint, n.u)
	}
	if f32 := float32(n.f); float64(f32) == n.f {
		return binary.BigEndian.AppendUint32(append(dst, 0xfa), math.Float32bits(f32))
	}
	return binary.BigEndian.AppendUint64(append(dst, 0xfb), math.Float64bits(n.f))
}

func encodeSenMLCBOR(base node.Path, recs []node.Record) ([]byte, error) {
	raws, err := toSenML(base, recs)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, 16*len(raws)+16)
	out = appendCBORHead(out, cborArray, uint64(len(raws)))
	for i := range raws {
		s := &raws[i]
		pairs := uint64(0)
		if s.hasBN {
			pairs++
		}
		if s.n != "" {
			pairs++
		}
		if s.kind != senmlNoValue {
			pairs++
		}
		if s.t != 0 {
			pairs++
		}
		out = appendCBORHead(out, cborMap, pairs)
		if s.hasBN {
			out = appendCBORInt(out, labelBN)
			out = appendCBORText(out, s.bn)
		}
		if s.n != "" {
			out = appendCBORInt(out, labelN)
			out = appendCBORText(out, s.n)
		}
		switch s.kind {
		case senmlNum:
			out = appendCBORInt(out, labelV)
			out = appendCBORNumber(out, s.num)
		case senmlStr:
			out = appendCBORInt(out, labelVS)
			out = appendCBORText(out, s.str)
		case senmlBool:
			out = appendCBORInt(out, labelVB)
			if s.boolean {
				out = append(out, 0xf5)
			} else {
				out = append(out, 0xf4)
			}
		case senmlData:
			out = appendCBORInt(out, labelVD)
			out = append(appendCBORHead(out, cborBytes, uint64(len(s.data))), s.data...)
		case senmlLink:
			out = appendCBORText(out, "vlo")
			out = appendCBORText(out, s.str)
		}
		if s.t != 0 {
			out = appendCBORInt(out, labelT)
			out = appendCBORNumber(out, secondsNumber(s.t))
		}
	}
	return out, nil
}
