// Package codec encodes and decodes the LwM2M content formats: text/plain,
// opaque, CoRE link format, TLV, LwM2M JSON, SenML JSON, SenML CBOR and
// CBOR. It is pure: bytes in, records out, no I/O. Every decoder bounds what
// it allocates by the size of its input, so hostile lengths cannot exhaust
// memory.
package codec

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

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
// in formats that carry none (TLV, text) come from types, which may be
// nil; values of unknown resources decode as their raw bytes in a value of
// type node.TypeNone, which Encode writes back unchanged. Formats that
// carry types (SenML, LwM2M JSON, CBOR) keep what the device sent where it
// does not convert losslessly to the resource's type. Records come in
// payload order, several for one path when the payload holds a time
// series; Record.Time is set when the payload gives a time. An empty
// payload, or one with no values, decodes to an empty slice. Errors wrap
// ErrMalformed for bad payloads and ErrUnsupported for a format that
// cannot answer base (text for an instance).
func Decode(f Format, base node.Path, payload []byte, types node.Resolver) ([]node.Record, error) {
	return decode(f, base, payload, types)
}

// Encode encodes records for a Write or Create on base (or, at the root, a
// composite operation) in format f. Records must lie at or below base and
// name resources or resource instances. Text, opaque and CBOR carry one
// record at base; TLV groups records by instance and resource and carries
// no times; SenML and LwM2M JSON keep record order and times.
func Encode(f Format, base node.Path, recs []node.Record) ([]byte, error) {
	return encode(f, base, recs)
}

// EncodeCreate encodes the payload of a Create on the object of inst.
// inst is the new instance (/O/I) when the server picks its ID, or the
// object (/O) when the device is to pick it; recs lie in that instance.
// Every format that can carry an instance gives a valid payload also
// without records, so that "create /O" with no values is a real Create:
//
//   - TLV: the resources wrapped in an Object Instance TLV that names the
//     ID (Core TS 1.0.2 section 6.4.3 and 5.4.5; the same in 1.1 and
//     1.2), an empty one (00 II) for an instance without values; for /O
//     the resources alone, and no payload without any.
//   - SenML JSON and CBOR: the records named under the object ("bn"
//     "/O/", names "I/R"); without records an empty pack ([], 0x80),
//     which SenML allows and which asks the device for an instance with
//     its defaults and an ID of its choosing (the ID travels only with
//     a value).
//   - LwM2M JSON: entries named under "/O/" ("I/R"); without records
//     {"bn":"/O/","e":[]}.
//
// Text, opaque, CBOR and link format cannot carry an instance:
// ErrUnsupported.
func EncodeCreate(f Format, inst node.Path, recs []node.Record) ([]byte, error) {
	if inst.Depth < 1 || inst.Depth > 2 {
		return nil, fmt.Errorf("encode create %v as %v: %w: not an object or instance path", inst, f, ErrUnsupported)
	}
	obj := node.ObjectPath(inst.Object)
	switch f {
	case TLV, OldTLV:
		if inst.Depth == 2 {
			for _, r := range recs {
				if !inst.Contains(r.Path) {
					return nil, fmt.Errorf("encode create %v as %v: %w: record %v lies outside", inst, f, ErrUnsupported, r.Path)
				}
			}
			if len(recs) == 0 {
				b, err := appendTLV(nil, tlvObjectInstance, inst.Instance, nil)
				if err != nil {
					return nil, fmt.Errorf("encode create %v as %v: %w", inst, f, err)
				}
				return b, nil
			}
		}
	case SenMLJSON, SenMLCBOR, LwM2MJSON, OldJSON:
	default:
		return nil, fmt.Errorf("encode create %v as %v: %w", inst, f, fmtUnsupported(f, "cannot carry an object instance"))
	}
	return encode(f, obj, recs)
}

// Bounds that keep a hostile payload from costing more than its size.
const (
	// MaxRecords is the most records one payload may decode to.
	MaxRecords = 10000
	// maxNesting bounds CBOR and JSON nesting inside a SenML record.
	maxNesting = 8
)

func decode(f Format, base node.Path, payload []byte, types node.Resolver) ([]node.Record, error) {
	if types == nil {
		types = noTypes{}
	}
	var (
		recs []node.Record
		err  error
	)
	switch f {
	case Text:
		recs, err = decodeText(base, payload, types)
	case Opaque:
		recs, err = decodeOpaque(base, payload)
	case LinkFmt:
		recs, err = decodeLinkValue(base, payload)
	case TLV, OldTLV:
		recs, err = decodeTLV(base, payload, types)
	case SenMLJSON:
		recs, err = decodeSenMLJSON(base, payload, types)
	case SenMLCBOR:
		recs, err = decodeSenMLCBOR(base, payload, types)
	case LwM2MJSON, OldJSON:
		recs, err = decodeLwM2MJSON(base, payload, types)
	case CBOR:
		recs, err = decodeCBOR(base, payload, types)
	default:
		return nil, fmt.Errorf("decode %v: %w", base, unsupported(f))
	}
	if err != nil {
		return nil, fmt.Errorf("decode %v as %v: %w", base, f, err)
	}
	if recs == nil {
		recs = []node.Record{}
	}
	return recs, nil
}

func encode(f Format, base node.Path, recs []node.Record) ([]byte, error) {
	for _, r := range recs {
		if !base.Contains(r.Path) {
			return nil, fmt.Errorf("encode %v as %v: %w: record %v lies outside", base, f, ErrUnsupported, r.Path)
		}
		if r.Path.Depth < 3 {
			return nil, fmt.Errorf("encode %v as %v: %w: record %v is not a resource", base, f, ErrUnsupported, r.Path)
		}
	}
	if len(recs) > MaxRecords {
		return nil, fmt.Errorf("encode %v as %v: %w: %d records, at most %d", base, f, ErrUnsupported, len(recs), MaxRecords)
	}
	var (
		b   []byte
		err error
	)
	switch f {
	case Text:
		b, err = encodeText(base, recs)
	case Opaque:
		b, err = encodeOpaque(base, recs)
	case LinkFmt:
		b, err = encodeLinkValue(base, recs)
	case TLV, OldTLV:
		b, err = encodeTLV(base, recs)
	case SenMLJSON:
		b, err = encodeSenMLJSON(base, recs)
	case SenMLCBOR:
		b, err = encodeSenMLCBOR(base, recs)
	case LwM2MJSON, OldJSON:
		b, err = encodeLwM2MJSON(base, recs)
	case CBOR:
		b, err = encodeCBOR(base, recs)
	default:
		return nil, fmt.Errorf("encode %v: %w", base, unsupported(f))
	}
	if err != nil {
		return nil, fmt.Errorf("encode %v as %v: %w", base, f, err)
	}
	return b, nil
}

func unsupported(f Format) error { return fmt.Errorf("%w: %v", ErrUnsupported, f) }

// malformed builds an error that wraps ErrMalformed.
func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// Supports reports whether Decode and Encode handle f.
func Supports(f Format) bool {
	switch f {
	case Text, Opaque, LinkFmt, TLV, OldTLV, SenMLJSON, SenMLCBOR, LwM2MJSON, OldJSON, CBOR:
		return true
	}
	return false
}

// Preferred returns the format to ask a device in for reads of instances
// and objects. declared is the content format the device named with ct= in
// its registration (0 when it named none: text cannot carry an instance, so
// it is never a preference); version is its lwm2m= value ("1.0", "1.1",
// "1.2", empty for 1.0). A 1.0 device gets TLV, which 1.0 makes mandatory;
// a later one gets SenML CBOR, the compact format 1.1 introduced.
func Preferred(version string, declared Format) Format {
	if declared != Text && declared != Opaque && declared != LinkFmt && declared != CBOR && Supports(declared) {
		return declared
	}
	if isV10(version) {
		return TLV
	}
	return SenMLCBOR
}

// PreferredWrite returns the format of Writes and Creates to a device for
// which no format was chosen; version and declared are as for Preferred.
// An LwM2M 1.0 device gets TLV whatever it declared: 1.0 makes TLV
// mandatory for clients (TS 1.0.2 section 6.4) while its JSON format is
// optional and read differently by different clients, so a client that
// declares JSON for its answers still takes TLV for the values it is
// sent. Reads keep asking for the declared format. Later devices get what
// Preferred gives.
func PreferredWrite(version string, declared Format) Format {
	if isV10(version) {
		return TLV
	}
	return Preferred(version, declared)
}

// CarriesInstance reports whether f can carry the values of an object
// instance (a Create, or a Write of an instance).
func CarriesInstance(f Format) bool {
	switch f {
	case TLV, OldTLV, SenMLJSON, SenMLCBOR, LwM2MJSON, OldJSON:
		return true
	}
	return false
}

func isV10(version string) bool {
	v := strings.TrimSpace(version)
	return v == "" || v == "1.0" || strings.HasPrefix(v, "1.0.")
}

// ParseFormats reads the value of a ct= link attribute: one number, or
// several separated by spaces as LwM2M 1.1 registrations send them
// (ct="60 110 112 11543"). Numbers that are not content formats are skipped.
func ParseFormats(ct string) []Format {
	var out []Format
	for _, f := range strings.Fields(strings.Trim(ct, `"`)) {
		n, err := strconv.ParseUint(f, 10, 16)
		if err != nil {
			continue
		}
		out = append(out, Format(n))
	}
	return out
}

// ParseFormatName maps the serialization names of the API (TLV, JSON,
// CBOR, TEXT, OPAQUE, SENML_JSON, SENML_CBOR, LINK) and decimal content
// format numbers to a Format.
func ParseFormatName(s string) (Format, error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "TLV":
		return TLV, nil
	case "JSON":
		return LwM2MJSON, nil
	case "CBOR":
		return CBOR, nil
	case "TEXT":
		return Text, nil
	case "OPAQUE":
		return Opaque, nil
	case "SENML_JSON":
		return SenMLJSON, nil
	case "SENML_CBOR":
		return SenMLCBOR, nil
	case "LINK", "LINK_FORMAT":
		return LinkFmt, nil
	}
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 16)
	if err != nil || !Supports(Format(n)) {
		return 0, fmt.Errorf("%w: %q", ErrUnsupported, s)
	}
	return Format(n), nil
}

func fmtUnsupported(f Format, why string) error {
	return fmt.Errorf("%w: %v %s", ErrUnsupported, f, why)
}
