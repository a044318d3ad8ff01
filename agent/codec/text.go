package codec

import (
	"encoding/base64"
	"strings"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// decodeText reads a text/plain value of the resource (instance) at base.
// Opaque values are base64 (Core TS 1.1 section 7.4.1); values of unknown
// resources are kept as the text's bytes, typed TypeNone. An empty payload is an empty
// string or opaque value, and no value for other types.
func decodeText(base node.Path, payload []byte, types node.Resolver) ([]node.Record, error) {
	if base.Depth < 3 {
		if len(payload) == 0 {
			return nil, nil
		}
		return nil, fmtUnsupported(Text, "cannot carry "+base.String())
	}
	t := typeOf(types, base)
	var v node.Value
	switch t {
	case node.TypeNone:
		v = node.Value{Type: node.TypeNone, Bytes: append([]byte{}, payload...)}
	case node.TypeOpaque:
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(payload)))
		if err != nil {
			// Some clients drop the padding.
			b, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(strings.TrimSpace(string(payload)), "="))
			if err != nil {
				return nil, malformed("text: opaque value is not base64")
			}
		}
		v = node.Opaque(b)
	default:
		if len(payload) == 0 && t != node.TypeString && t != node.TypeCorelnk {
			return nil, nil
		}
		var err error
		v, err = node.ParseText(t, string(payload))
		if err != nil {
			return nil, malformed("text: %v", err)
		}
	}
	return []node.Record{{Path: base, Value: v}}, nil
}

func encodeText(base node.Path, recs []node.Record) ([]byte, error) {
	r, ok, err := single(base, recs, Text)
	if err != nil || !ok {
		return nil, err
	}
	switch r.Value.Type {
	case node.TypeOpaque:
		return base64.StdEncoding.AppendEncode(nil, r.Value.Bytes), nil
	case node.TypeNone:
		return append([]byte{}, r.Value.Bytes...), nil
	case node.TypeTime:
		if t := r.Value.Time; t.Nanosecond() != 0 {
			return []byte(t.UTC().Format(time.RFC3339Nano)), nil
		}
		return []byte(itoa64(r.Value.Time.Unix())), nil
	}
	return []byte(r.Value.Text()), nil
}

// decodeOpaque reads the raw bytes of the resource (instance) at base.
func decodeOpaque(base node.Path, payload []byte) ([]node.Record, error) {
	if base.Depth < 3 {
		if len(payload) == 0 {
			return nil, nil
		}
		return nil, fmtUnsupported(Opaque, "cannot carry "+base.String())
	}
	return []node.Record{{Path: base, Value: node.Opaque(append([]byte{}, payload...))}}, nil
}

func encodeOpaque(base node.Path, recs []node.Record) ([]byte, error) {
	r, ok, err := single(base, recs, Opaque)
	if err != nil || !ok {
		return nil, err
	}
	switch r.Value.Type {
	case node.TypeOpaque, node.TypeNone:
		return append([]byte{}, r.Value.Bytes...), nil
	case node.TypeString, node.TypeCorelnk:
		return []byte(r.Value.Str), nil
	}
	return nil, fmtUnsupported(Opaque, "cannot carry a "+r.Value.Type.String()+" value")
}
