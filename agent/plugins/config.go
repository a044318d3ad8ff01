package plugins

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/sdk"
)

// Config is the plugins file of the agent (--plugins-config):
//
//	{"plugins": [
//	  {"name": "frame", "kind": "decoder", "path": "/usr/lib/lwm2m-agent/frame-decoder",
//	   "args": ["--config", "/etc/lwm2m-agent/frame.json"], "timeout": "2s"},
//	  {"name": "remote", "kind": "decoder", "address": "decoders.local:7000"},
//	  {"name": "legacy", "kind": "decoder", "url": "http://c8y-decoder:8080/decode"}
//	]}
type Config struct {
	Plugins []Spec `json:"plugins"`
}

// Spec declares one plugin: exactly one of Path (an executable the agent
// starts and supervises), Address (a gRPC service it dials) or URL (an
// HTTP decoder with the Cumulocity decoder interface, decoders only).
type Spec struct {
	// Name is how device protocols and callers refer to the plugin.
	Name string `json:"name"`
	// Kind is mapping, customaction or decoder.
	Kind    string   `json:"kind"`
	Path    string   `json:"path,omitempty"`
	Args    []string `json:"args,omitempty"`
	Address string   `json:"address,omitempty"`
	URL     string   `json:"url,omitempty"`
	// Timeout bounds one call (default 2s).
	Timeout Duration `json:"timeout,omitzero"`
	// MinBackoff and MaxBackoff bound the wait before restarting a plugin
	// process that crashed or hung; the wait doubles on each failure in a
	// row (defaults 100ms and 30s).
	MinBackoff Duration `json:"minBackoff,omitzero"`
	MaxBackoff Duration `json:"maxBackoff,omitzero"`
	// HungAfter is how many calls in a row may time out before the process
	// is taken for hung and restarted (default 3).
	HungAfter int `json:"hungAfter,omitempty"`
	// Bundled marks one of the agent's own plugins (plugins/bundled),
	// which the agent declares itself: it is called through MapBundled
	// and RunBundled only, and device protocols cannot name it.
	Bundled bool `json:"-"`
}

// Duration is a time.Duration written as "2s" in JSON.
type Duration time.Duration

// UnmarshalJSON reads "2s" (or a number of nanoseconds).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if err2 := json.Unmarshal(b, &n); err2 != nil {
			return fmt.Errorf("duration %s is not a string like \"2s\"", b)
		}
		*d = Duration(n)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes "2s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Defaults of a Spec.
const (
	DefaultTimeout    = 2 * time.Second
	DefaultMinBackoff = 100 * time.Millisecond
	DefaultMaxBackoff = 30 * time.Second
	DefaultHungAfter  = 3
)

// LoadConfig reads and validates a plugins file. An empty path is no
// plugins.
func LoadConfig(path string) (Config, error) {
	if path == "" {
		return Config{}, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("plugins config: %w", err)
	}
	return ParseConfig(b)
}

// ParseConfig parses and validates the JSON of a plugins file; unknown
// fields are errors, so a typo does not silently drop a setting.
func ParseConfig(b []byte) (Config, error) {
	var c Config
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("plugins config: %w", err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Validate checks every plugin and reports all problems together, each
// prefixed with its place ("plugins[1] (frame): ...").
func (c *Config) Validate() error {
	var errs []error
	seen := map[string]bool{}
	bundled := map[string]bool{}
	for i := range c.Plugins {
		s := &c.Plugins[i]
		at := fmt.Sprintf("plugins[%d] (%s)", i, s.Name)
		fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(at+": "+format, a...)) }
		switch {
		case s.Name == "":
			fail("name is missing")
		case bundled[s.Name]:
			fail("name is the agent's bundled plugin's; choose another")
		case seen[s.Name]:
			fail("name is used twice")
		}
		seen[s.Name] = true
		if s.Bundled {
			bundled[s.Name] = true
			if s.Path == "" {
				fail("a bundled plugin is started from a path")
			}
		}
		switch s.Kind {
		case sdk.KindMapping, sdk.KindCustomAction, sdk.KindDecoder:
		default:
			fail("kind %q is not mapping, customaction or decoder", s.Kind)
		}
		n := 0
		for _, v := range []string{s.Path, s.Address, s.URL} {
			if v != "" {
				n++
			}
		}
		if n != 1 {
			fail("exactly one of path, address and url must be set")
		}
		if s.Path != "" {
			if st, err := os.Stat(s.Path); err != nil {
				fail("path: %v", err)
			} else if st.IsDir() || st.Mode()&0o111 == 0 {
				fail("path %s is not an executable file", s.Path)
			}
		}
		if s.Address != "" {
			if _, _, err := net.SplitHostPort(s.Address); err != nil {
				fail("address %q: %v", s.Address, err)
			}
		}
		if s.URL != "" {
			if s.Kind != sdk.KindDecoder {
				fail("url is for decoders only")
			}
			if u, err := url.Parse(s.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				fail("url %q is not an http(s) URL", s.URL)
			}
		}
		if len(s.Args) > 0 && s.Path == "" {
			fail("args are for plugins started from a path")
		}
		if s.Timeout < 0 || s.MinBackoff < 0 || s.MaxBackoff < 0 || s.HungAfter < 0 {
			fail("timeout, minBackoff, maxBackoff and hungAfter must not be negative")
		}
		if s.Timeout == 0 {
			s.Timeout = Duration(DefaultTimeout)
		}
		if s.MinBackoff == 0 {
			s.MinBackoff = Duration(DefaultMinBackoff)
		}
		if s.MaxBackoff == 0 {
			s.MaxBackoff = Duration(DefaultMaxBackoff)
		}
		if s.MaxBackoff < s.MinBackoff {
			fail("maxBackoff %v is below minBackoff %v", time.Duration(s.MaxBackoff), time.Duration(s.MinBackoff))
		}
		if s.HungAfter == 0 {
			s.HungAfter = DefaultHungAfter
		}
	}
	return errors.Join(errs...)
}
