package firmware

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Source is where a package comes from: an agent binary or an external
// URL.
type Source struct {
	BinaryID string
	URL      string
}

func (s Source) String() string {
	if s.BinaryID != "" {
		return "binary:" + s.BinaryID
	}
	return redact(s.URL)
}

// binariesPath is the API path of the agent's binaries: a URL whose path
// ends in it names one of them, whatever its host (the agent may be
// reached by many names).
const binariesPath = "/inventory/binaries/"

// ParseSource takes "binary:<id>", a URL ending in /inventory/binaries/<id>
// (any host: the agent's own binaries), or an external http(s)/coap(s)
// URL. Anything else is an error a person understands.
func ParseSource(s string) (Source, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Source{}, errors.New("firmware source: empty: give binary:<id>, the URL of an agent binary, or an http(s) or coap(s) URL")
	}
	if id, ok := strings.CutPrefix(s, "binary:"); ok {
		if !validID(id) {
			return Source{}, fmt.Errorf("firmware source %q: binary id must be digits", s)
		}
		return Source{BinaryID: id}, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return Source{}, fmt.Errorf("firmware source: %q is not a URL: give binary:<id>, the URL of an agent binary, or an http(s) or coap(s) URL", redact(s))
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https", "coap", "coaps":
	case "":
		return Source{}, fmt.Errorf("firmware source %q: no scheme: give binary:<id>, the URL of an agent binary, or an http(s) or coap(s) URL", redact(s))
	default:
		return Source{}, fmt.Errorf("firmware source %q: scheme %s is not one of http, https, coap, coaps", redact(s), u.Scheme)
	}
	if u.Host == "" {
		return Source{}, fmt.Errorf("firmware source %q: no host", redact(s))
	}
	if i := strings.LastIndex(u.Path, binariesPath); i >= 0 && strings.HasPrefix(u.Scheme, "http") {
		id := u.Path[i+len(binariesPath):]
		if validID(id) {
			return Source{BinaryID: id}, nil
		}
	}
	return Source{URL: s}, nil
}

// validID tells an agent id: digits, as the store makes them.
func validID(id string) bool {
	if id == "" || len(id) > 20 {
		return false
	}
	for _, c := range id {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// redact hides the user information of a URL, which may hold a
// password: it is never logged nor answered.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		if err != nil && strings.Contains(s, "@") {
			return "(a URL that does not parse)"
		}
		return s
	}
	u.User = url.User("xxx")
	return u.String()
}
