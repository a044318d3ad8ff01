package lwm2m

import (
	"errors"
	"fmt"
	"net"
	"slices"
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
	// Serialization, when HasSerialization, is the content format every
	// request to the device uses instead of the one codec.Preferred picks
	// (Server.SetFormat; Identity carries it across a new Register).
	Serialization    codec.Format
	HasSerialization bool
	RootPath         string // alternate path, "/" by default
	Objects          []ObjectLink
	Address          string // peer ip:port of the last Register or Update
	Secure           bool   // registered over DTLS
	PSKIdentity      string // the DTLS session's PSK identity, when Secure
	Tenant           string // from Hooks.Authorize
	DeviceID         string // from Hooks.Authorize
	RegisteredAt     time.Time
	UpdatedAt        time.Time
	// Restored is true for a registration Server.Restore brought back
	// after a restart, until its first Update (whose Hooks.Updated still
	// sees it true): its observations are gone and may be made again.
	Restored bool
	// Replica names the agent holding the registration in a store shared
	// by replicas (Config.Replica of the server that answered its last
	// Register or Update).
	Replica string
	// TakenOver is true, with Restored, for a registration taken over
	// from another replica (Adopter) until its first Update here, whose
	// Hooks.Updated still sees it true; Replica then still names the
	// replica it was taken from.
	TakenOver bool
	// New is true, for the Persist of a Register only, when the device
	// is to be created with its first state (Identity.New).
	New bool
}

// Identity is what Hooks.Authorize says about a device allowed to register.
type Identity struct {
	Tenant   string
	DeviceID string
	// Serialization, when HasSerialization, is the content format set
	// for the device earlier (Registration.Serialization): a device that
	// registers anew keeps what the operator chose.
	Serialization    codec.Format
	HasSerialization bool
	// New says that the device does not exist yet: DeviceID was reserved
	// for it, and Hooks.Persist of the Register creates it with the
	// registration's state (Registration.New).
	New bool
}

// errBadRequest marks a Register or Update that is malformed (4.00).
var errBadRequest = errors.New("bad request")

// errVersion marks a Register with an LwM2M version this server does not
// speak (4.12 Precondition Failed).
var errVersion = errors.New("unsupported lwm2m version")

// registerKeys are the query parameters parseRegisterQuery reads.
var registerKeys = [...]string{"ep", "lwm2m", "lt", "b", "sms", "Q", "at"}

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
// refusing them would lock out devices for no gain. A known parameter
// given twice is refused: which copy wins would otherwise depend on this
// parser, and a proxy or filter in front that reads the other copy (say,
// the first ep) would check a different device than the one registered.
func parseRegisterQuery(queries []string) (registerParams, error) {
	var p registerParams
	var seen [len(registerKeys)]bool
	for _, q := range queries {
		k, v, hasValue := strings.Cut(q, "=")
		if i := slices.Index(registerKeys[:], k); i >= 0 {
			if seen[i] {
				return p, fmt.Errorf("%w: parameter %q given twice", errBadRequest, k)
			}
			seen[i] = true
		}
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
// which may also carry the content formats the device prefers as ct=
// (the first is taken). Links that are not object or instance paths are
// skipped; a payload that is not link format at all is an error.
func parseObjectLinks(payload []byte) (objectList, error) {
	out := objectList{root: "/"}
	links, err := codec.ParseLinks(payload)
	if err != nil {
		return out, fmt.Errorf("%w: %w", errBadRequest, err)
	}
	if len(links) > maxObjectLinks {
		return out, fmt.Errorf("%w: %d links, at most %d", errBadRequest, len(links), maxObjectLinks)
	}
	// The root link may come anywhere in the list, so find it first.
	rootIdx := -1
	for i, l := range links {
		if rt, ok := l.Attr("rt"); ok && rt == "oma.lwm2m" {
			rootIdx = i
			if r := strings.Trim(l.Target, "/"); r != "" {
				out.root = "/" + r + "/"
			}
			if ct, ok := l.Attr("ct"); ok {
				if fs := codec.ParseFormats(ct); len(fs) > 0 {
					out.contentFormat = fs[0]
				}
			}
			break
		}
	}
	for i, l := range links {
		if i == rootIdx {
			continue
		}
		p, err := l.Path(out.root)
		if err != nil || p.Depth == 0 || p.Depth > 2 {
			continue
		}
		ver, _ := l.Attr("ver")
		out.objects = append(out.objects, ObjectLink{Path: p, Version: ver})
	}
	return out, nil
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
