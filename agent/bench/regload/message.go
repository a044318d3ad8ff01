package regload

import (
	"encoding/binary"
	"strconv"
	"time"
)

// CoAP, as much of RFC 7252 as a Register and its answer need.
const (
	typeCON = 0
	typeNON = 1
	typeACK = 2
	typeRST = 3

	codePOST    = 0x02
	codeCreated = 0x41 // 2.01

	optURIPath       = 11
	optContentFormat = 12
	optURIQuery      = 15

	formatLinks = 40 // application/link-format

	tokenLen = 8
)

// Body is the link-format payload of every Register: the root link with
// the content format, then the object instances a device of the
// project's simulator registers (the Security object left out).
const Body = `</>;rt="oma.lwm2m";ct=112,</1/0>,</2>,</3/0>,</4/0>,</5/0>,</6/0>,</7>,</3303/0>`

// appendOption appends an option's header: its number's delta from the
// previous option's and its value's length (the value follows).
func appendOption(b []byte, delta, length int) []byte {
	i := len(b)
	b = append(b, 0)
	var nibs [2]byte
	for k, v := range [2]int{delta, length} {
		switch {
		case v < 13:
			nibs[k] = byte(v)
		case v < 269:
			nibs[k] = 13
			b = append(b, byte(v-13))
		default:
			nibs[k] = 14
			b = binary.BigEndian.AppendUint16(b, uint16(v-269))
		}
	}
	b[i] = nibs[0]<<4 | nibs[1]
	return b
}

// template holds what every Register of a run shares: the options before
// the endpoint's name and those after it, with the payload.
type template struct {
	prefix []byte // "ep=" and the name's prefix
	head   []byte // Uri-Path rd, Content-Format
	tail   []byte // the other Uri-Query options, payload marker, body
}

func newTemplate(prefix string, lifetime, awake time.Duration, version string) *template {
	t := &template{prefix: []byte("ep=" + prefix)}
	t.head = appendOption(nil, optURIPath, 2)
	t.head = append(t.head, "rd"...)
	t.head = appendOption(t.head, optContentFormat-optURIPath, 1)
	t.head = append(t.head, formatLinks)
	queries := []string{
		"lt=" + strconv.FormatInt(int64(lifetime/time.Second), 10),
		"lwm2m=" + version,
		"b=U",
	}
	if awake > 0 {
		queries = append(queries, "at="+strconv.FormatInt(awake.Milliseconds(), 10))
	}
	for _, q := range queries {
		t.tail = appendOption(t.tail, 0, len(q))
		t.tail = append(t.tail, q...)
	}
	t.tail = append(t.tail, 0xFF)
	t.tail = append(t.tail, Body...)
	return t
}

// appendRegister appends a CON POST /rd?ep=<prefix><index>&... with the
// message ID and token given. It allocates nothing once b has room.
func (t *template) appendRegister(b []byte, mid uint16, token uint64, index int) []byte {
	b = append(b, 1<<6|typeCON<<4|tokenLen, codePOST, byte(mid>>8), byte(mid))
	b = binary.BigEndian.AppendUint64(b, token)
	b = append(b, t.head...)
	b = appendOption(b, optURIQuery-optContentFormat, len(t.prefix)+digits(index))
	b = append(b, t.prefix...)
	b = strconv.AppendInt(b, int64(index), 10)
	return append(b, t.tail...)
}

func digits(n int) int {
	d := 1
	for n >= 10 {
		n /= 10
		d++
	}
	return d
}

// header is what the generator reads of a datagram it receives.
type header struct {
	typ   byte
	code  byte
	mid   uint16
	token []byte
}

// parseHeader reads a CoAP header; ok is false for what is not CoAP.
func parseHeader(m []byte) (h header, ok bool) {
	if len(m) < 4 || m[0]>>6 != 1 {
		return h, false
	}
	tkl := int(m[0] & 0x0F)
	if tkl > 8 || len(m) < 4+tkl {
		return h, false
	}
	return header{typ: m[0] >> 4 & 3, code: m[1], mid: binary.BigEndian.Uint16(m[2:4]), token: m[4 : 4+tkl]}, true
}

// appendEmpty appends an empty ACK or RST of message mid.
func appendEmpty(b []byte, typ byte, mid uint16) []byte {
	return append(b, 1<<6|typ<<4, 0, byte(mid>>8), byte(mid))
}

// CodeString writes a CoAP code as c.dd.
func CodeString(code byte) string {
	return strconv.Itoa(int(code>>5)) + "." + strconv.Itoa(int(code&0x1F)/10) + strconv.Itoa(int(code&0x1F)%10)
}
