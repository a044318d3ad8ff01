package bootstrap

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/lwm2m-agent/lwm2m-agent/agent/codec"
)

// Bounds of a Bootstrap-Request.
const (
	maxEndpointLen = 255 // bytes of ep
	maxQueries     = 16  // URI-Query options
)

// errBadRequest marks a malformed Bootstrap-Request (4.00).
var errBadRequest = errors.New("bad bootstrap request")

// request is a parsed Bootstrap-Request query.
type request struct {
	endpoint string
	pct      codec.Format // preferred content format, when hasPCT
	hasPCT   bool
}

// parseRequest reads the URI-Query options of POST /bs: ep (required) and
// pct (LwM2M 1.1 and later). Other parameters are ignored, as the spec
// asks of unknown ones. Either of the two given twice is refused, so that
// nothing in front of this server can read one copy while the server
// acts on the other.
func parseRequest(queries []string) (request, error) {
	if len(queries) > maxQueries {
		return request{}, fmt.Errorf("%w: %d query options, at most %d", errBadRequest, len(queries), maxQueries)
	}
	var r request
	var seenEP, seenPCT bool
	for _, q := range queries {
		k, v, _ := strings.Cut(q, "=")
		switch k {
		case "ep":
			if seenEP {
				return request{}, fmt.Errorf("%w: parameter \"ep\" given twice", errBadRequest)
			}
			seenEP = true
			if v == "" || len(v) > maxEndpointLen || !utf8.ValidString(v) || strings.ContainsFunc(v, isControl) {
				return request{}, fmt.Errorf("%w: endpoint name must be 1 to %d bytes of printable UTF-8", errBadRequest, maxEndpointLen)
			}
			r.endpoint = v
		case "pct":
			if seenPCT {
				return request{}, fmt.Errorf("%w: parameter \"pct\" given twice", errBadRequest)
			}
			seenPCT = true
			n, err := strconv.ParseUint(v, 10, 16)
			if err != nil {
				return request{}, fmt.Errorf("%w: pct %q is not a content format", errBadRequest, v)
			}
			r.pct, r.hasPCT = codec.Format(n), true
		}
	}
	if !seenEP {
		return request{}, fmt.Errorf("%w: missing endpoint name (ep)", errBadRequest)
	}
	return r, nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// discovery is what a Bootstrap-Discover of "/" told about the client.
type discovery struct {
	version   string   // lwm2m= of the "/" link, "" when absent
	security  []uint16 // every Security (/0) instance, ascending
	bootstrap []uint16 // Security instances without ssid: bootstrap accounts
}

// parseDiscovery reads a Bootstrap-Discover answer (Core TS 1.1 5.2.7.1):
// a link-format document such as
//
//	</>;lwm2m=1.1,</0/0>,</0/1>;ssid=101;uri="coaps://server",</1/0>;ssid=101,</3/0>
//
// where Security instances of LwM2M servers carry ssid and the bootstrap
// server's own instance does not. Some clients write the version as a
// leading bare parameter (lwm2m="1.1",</0/0>...), which is accepted too.
func parseDiscovery(b []byte) (discovery, error) {
	var d discovery
	trimmed := bytes.TrimLeft(b, " \t\r\n")
	if len(trimmed) > 0 && trimmed[0] != '<' {
		head, rest, _ := bytes.Cut(trimmed, []byte(","))
		if k, v, ok := bytes.Cut(bytes.TrimLeft(head, ";"), []byte("=")); ok && string(bytes.TrimSpace(k)) == "lwm2m" {
			d.version = strings.Trim(string(bytes.TrimSpace(v)), `"`)
		}
		b = rest
	}
	links, err := codec.ParseLinks(b)
	if err != nil {
		return discovery{}, fmt.Errorf("parse discover answer: %w", err)
	}
	for _, l := range links {
		if l.Target == "/" {
			if v, ok := l.Attr("lwm2m"); ok {
				d.version = v
			}
			continue
		}
		p, err := l.Path("")
		if err != nil || p.Object != 0 || p.Depth != 2 {
			continue
		}
		if !slices.Contains(d.security, p.Instance) {
			d.security = append(d.security, p.Instance)
		}
		if _, ok := l.Attr("ssid"); !ok && !slices.Contains(d.bootstrap, p.Instance) {
			d.bootstrap = append(d.bootstrap, p.Instance)
		}
	}
	slices.Sort(d.security)
	slices.Sort(d.bootstrap)
	return d, nil
}

// writeFormat chooses the content format of the writes: the client's
// preferred one (pct) when it can carry an instance and the codec writes
// it, else TLV for LwM2M 1.0 (its mandatory format) and SenML CBOR for
// later versions.
func writeFormat(r request, version string) codec.Format {
	if r.hasPCT {
		switch r.pct {
		case codec.TLV, codec.OldTLV, codec.SenMLCBOR, codec.SenMLJSON, codec.LwM2MJSON, codec.OldJSON:
			return r.pct
		}
	}
	return codec.Preferred(version, 0)
}

// fallbackFormat is the other mandatory format, tried once when a client
// answers 4.15 Unsupported Content-Format to a write.
func fallbackFormat(f codec.Format) codec.Format {
	if f == codec.TLV || f == codec.OldTLV {
		return codec.SenMLCBOR
	}
	return codec.TLV
}
