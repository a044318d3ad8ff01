package lwm2m

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/codec"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// DefaultLifetime is the lifetime of a registration that gives none
// (Core TS, Register operation: "lt" defaults to 86400 s).
const DefaultLifetime = 86400 * time.Second

// ObjectLink is one entry of the object list a device sends in Register or
// Update ("</3/0>", "</3303>;ver=1.1").
type ObjectLink struct {
	Path    node.Path
	Version string // the ver= attribute, empty when absent
}

// Registration is the live state of one registered device as the Server
// knows it. Values are copies: changing one changes nothing in the Server.
type Registration struct {
	ID            string        // registration ID, the Location path /rd/{ID}
	Endpoint      string        // ep
	Version       string        // "1.0", "1.1" or "1.2" (lwm2m=; absent means "1.0")
	Lifetime      time.Duration // lt, DefaultLifetime when absent
	Binding       string        // b, "U" when absent
	Queue         bool          // binding contains Q (1.0) or the Q parameter is present (1.1+)
	SMS           string        // sms
	AwakeTime     time.Duration // at, in milliseconds on the wire
	HasAwakeTime  bool          // whether at was sent
	ContentFormat codec.Format  // ct= of the </>;rt="oma.lwm2m" link, 0 when absent
	RootPath      string        // alternate path, "/" by default
	Objects       []ObjectLink
	Address       string // peer ip:port of the last Register or Update
	Tenant        string // from Hooks.Authorize
	DeviceID      string // from Hooks.Authorize
	RegisteredAt  time.Time
	UpdatedAt     time.Time
}

// Identity is what Hooks.Authorize says about a device allowed to register.
type Identity struct {
	Tenant   string
	DeviceID string
}

// errBadRequest marks a Register or Update that is malformed (4.00).
var errBadRequest = errors.New("bad request")

// errVersion marks a Register with an LwM2M version this server does not
// speak (4.12 Precondition Failed).
var errVersion = errors.New("unsupported lwm2m version")

// registerParams are the query parameters of Register and Update. The
// has* fields tell which were present, as an Update changes only those.
type registerParams struct {
	endpoint    string
	version     string
	lifetime    time.Duration
	hasLifetime bool
	binding     string
	hasBinding  bool
	sms         string
	hasSMS      bool
	queue       bool // the Q parameter
	awake       time.Duration
	hasAwake    bool
}

// parseRegisterQuery parses the URI-Query options of Register or Update.
// Unknown parameters are ignored: later versions add some (e.g. "d"), and
// refusing them would lock out devices for no gain.
func parseRegisterQuery(queries []string) (registerParams, error) {
	var p registerParams
	for _, q := range queries {
		k, v, hasValue := strings.Cut(q, "=")
		switch k {
		case "ep":
			p.endpoint = v
		case "lwm2m":
			p.version = v
		case "lt":
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil || n == 0 {
				return p, fmt.Errorf("%w: lifetime %q is not a positive number of seconds", errBadRequest, v)
			}
			p.lifetime = time.Duration(n) * time.Second
			p.hasLifetime = true
		case "b":
			p.binding = v
			p.hasBinding = true
		case "sms":
			p.sms = v
			p.hasSMS = true
		case "Q":
			if hasValue && v != "" {
				return p, fmt.Errorf("%w: Q takes no value", errBadRequest)
			}
			p.queue = true
		case "at":
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				return p, fmt.Errorf("%w: awake time %q is not a number of milliseconds", errBadRequest, v)
			}
			p.awake = time.Duration(n) * time.Millisecond
			p.hasAwake = true
		}
	}
	return p, nil
}

// checkVersion accepts the LwM2M versions this server speaks and returns
// the normalized version string.
func checkVersion(v string) (string, error) {
	switch v {
	case "":
		return "1.0", nil
	case "1.0", "1.1", "1.2":
		return v, nil
	}
	return "", fmt.Errorf("%w %q (1.0, 1.1 and 1.2 are supported)", errVersion, v)
}

// objectList is what the link-format payload of Register or Update says.
type objectList struct {
	root          string
	contentFormat codec.Format
	objects       []ObjectLink
}

// maxObjectLinks bounds how many object links one payload may carry; a
// real device has a few dozen, and each costs memory for the whole
// lifetime of its registration.
const maxObjectLinks = 4096

// parseObjectLinks parses the CoRE link-format payload of Register and
// Update (Core TS 6.2.1 / 6.2.2): object and instance links, optionally
// under an alternate root path announced by a link with rt="oma.lwm2m",
// which may also carry the preferred content format as ct=. Links that are
// not object paths are skipped; a payload that is not link format at all is
// an error.
func parseObjectLinks(payload []byte) (objectList, error) {
	out := objectList{root: "/"}
	links, err := splitLinks(string(payload))
	if err != nil {
		return out, err
	}
	if len(links) > maxObjectLinks {
		return out, fmt.Errorf("%w: %d links, at most %d", errBadRequest, len(links), maxObjectLinks)
	}
	// The root link may come anywhere in the list, so find it first.
	for _, l := range links {
		if rt, ok := l.param("rt"); ok && rt == "oma.lwm2m" {
			out.root = "/" + strings.Trim(l.target, "/")
			if out.root != "/" {
				out.root += "/"
			}
			if ct, ok := l.param("ct"); ok {
				// ct may list several formats ("60 110"); the first is preferred.
				first, _, _ := strings.Cut(strings.TrimSpace(ct), " ")
				if n, err := strconv.ParseUint(first, 10, 16); err == nil {
					out.contentFormat = codec.Format(n)
				}
			}
		}
	}
	for _, l := range links {
		if rt, ok := l.param("rt"); ok && rt == "oma.lwm2m" {
			continue
		}
		t := "/" + strings.TrimLeft(l.target, "/")
		if out.root != "/" {
			rest, ok := strings.CutPrefix(t, out.root)
			if !ok {
				continue
			}
			t = "/" + rest
		}
		p, err := node.ParsePath(t)
		if err != nil || p.Depth == 0 || p.Depth > 2 {
			continue
		}
		ver, _ := l.param("ver")
		out.objects = append(out.objects, ObjectLink{Path: p, Version: ver})
	}
	return out, nil
}

// rawLink is one link of a link-format payload before interpretation.
type rawLink struct {
	target string
	params []string // "key" or "key=value" with quotes removed
}

func (l rawLink) param(key string) (string, bool) {
	for _, p := range l.params {
		k, v, _ := strings.Cut(p, "=")
		if k == key {
			return v, true
		}
	}
	return "", false
}

// splitLinks splits link format (RFC 6690) into links, honouring quoted
// parameter values that may contain ',' or ';'.
func splitLinks(s string) ([]rawLink, error) {
	var links []rawLink
	i := 0
	skipSpace := func() {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n') {
			i++
		}
	}
	for {
		skipSpace()
		if i >= len(s) {
			return links, nil
		}
		if s[i] != '<' {
			return nil, fmt.Errorf("%w: link format: expected '<' at offset %d", errBadRequest, i)
		}
		end := strings.IndexByte(s[i:], '>')
		if end < 0 {
			return nil, fmt.Errorf("%w: link format: unterminated '<' at offset %d", errBadRequest, i)
		}
		l := rawLink{target: s[i+1 : i+end]}
		i += end + 1
		for {
			skipSpace()
			if i >= len(s) || s[i] == ',' {
				break
			}
			if s[i] != ';' {
				return nil, fmt.Errorf("%w: link format: unexpected %q at offset %d", errBadRequest, s[i], i)
			}
			i++
			skipSpace()
			var b strings.Builder
			for i < len(s) && s[i] != ';' && s[i] != ',' {
				if s[i] == '"' {
					closeQ := strings.IndexByte(s[i+1:], '"')
					if closeQ < 0 {
						return nil, fmt.Errorf("%w: link format: unterminated quote at offset %d", errBadRequest, i)
					}
					b.WriteString(s[i+1 : i+1+closeQ])
					i += closeQ + 2
					continue
				}
				b.WriteByte(s[i])
				i++
			}
			if p := strings.TrimSpace(b.String()); p != "" {
				l.params = append(l.params, p)
			}
		}
		links = append(links, l)
		if i < len(s) {
			i++ // the ','
		}
	}
}

// queueMode tells whether binding b or the Q flag put the device in queue
// mode. LwM2M 1.0 writes it in the binding ("UQ"), 1.1 as a parameter;
// both are accepted from any version.
func queueMode(binding string, q bool) bool {
	return q || strings.Contains(binding, "Q")
}

// objectPaths formats the object list for logs and callers ("/3/0").
func objectPaths(objs []ObjectLink) []string {
	out := make([]string, len(objs))
	for i, o := range objs {
		out[i] = o.Path.String()
	}
	return out
}

// Paths returns the registered object and instance paths as strings, the
// form the API shows ("/3/0").
func (r Registration) Paths() []string { return objectPaths(r.Objects) }

// addrString is the map key of a peer address.
func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}
