package plugins

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/nearest"
	"github.com/lwm2m-agent/lwm2m-agent/plugins/bundled"
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
			return fmt.Errorf("%s is not a duration like \"2s\"", b)
		}
		*d = Duration(n)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q (a number with a unit: \"500ms\", \"2s\", \"1m\")", s)
	}
	*d = Duration(v)
	return nil
}

// Defaults of a Spec.
const (
	DefaultTimeout    = 2 * time.Second
	DefaultMinBackoff = 100 * time.Millisecond
	DefaultMaxBackoff = 30 * time.Second
	DefaultHungAfter  = 3
)

// ConfigError lists every problem of a plugins file, each with its
// place: "plugins[1].timeout: invalid duration \"fast\"", or
// "plugins[2]: ..." for a problem of a whole entry. An operator fixes
// them all in one go instead of one per restart.
type ConfigError struct {
	// File is the plugins file, when the configuration came from one.
	File     string
	Problems []string
}

func (e *ConfigError) Error() string {
	head := "plugins config"
	if e.File != "" {
		head += " " + e.File
	}
	if len(e.Problems) == 1 {
		return head + ": " + e.Problems[0]
	}
	return fmt.Sprintf("%s: %d problems:\n\t%s", head, len(e.Problems), strings.Join(e.Problems, "\n\t"))
}

// LoadConfig reads and validates a plugins file. An empty path is no
// plugins. A file that cannot be used fails with a *ConfigError naming
// the file and every problem.
func LoadConfig(path string) (Config, error) {
	if path == "" {
		return Config{}, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("plugins config: %w", err)
	}
	c, err := ParseConfig(b)
	if ce := (*ConfigError)(nil); errors.As(err, &ce) {
		ce.File = path
	}
	return c, err
}

// ParseConfig parses and validates the JSON of a plugins file. Each
// member of each entry is read on its own, so that one error does not
// hide the next: unknown members (a typo must not silently drop a
// setting), values of the wrong type and what Validate finds all come
// back together in one *ConfigError.
func ParseConfig(b []byte) (Config, error) {
	var c Config
	var problems []string
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return Config{}, &ConfigError{Problems: []string{jsonProblem(b, err)}}
	}
	for _, k := range slices.Sorted(maps.Keys(top)) {
		if k != "plugins" {
			problems = append(problems, fmt.Sprintf("unknown field %q%s (the file has one member, \"plugins\")", k, suggest(k, []string{"plugins"})))
		}
	}
	var entries []json.RawMessage
	if raw, ok := top["plugins"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &entries); err != nil {
			problems = append(problems, "plugins: "+typeProblem(err, "a list of plugin entries"))
		}
	}
	c.Plugins = make([]Spec, len(entries))
	// what could not be read is reported once, not again as missing
	unread := map[string]bool{}
	fields := specFields()
	names := slices.Sorted(maps.Keys(fields))
	for i, raw := range entries {
		at := fmt.Sprintf("plugins[%d]", i)
		var members map[string]json.RawMessage
		if err := json.Unmarshal(raw, &members); err != nil {
			problems = append(problems, at+": "+typeProblem(err, "an object"))
			unread[at] = true
			continue
		}
		v := reflect.ValueOf(&c.Plugins[i]).Elem()
		for _, k := range slices.Sorted(maps.Keys(members)) {
			idx, ok := fields[k]
			if !ok {
				problems = append(problems, fmt.Sprintf("%s: unknown field %q%s", at, k, suggest(k, names)))
				continue
			}
			f := v.Field(idx)
			if err := json.Unmarshal(members[k], f.Addr().Interface()); err != nil {
				problems = append(problems, fmt.Sprintf("%s.%s: %s", at, k, typeProblem(err, kindName(f.Type()))))
				unread[at+"."+k] = true
			}
		}
	}
	if err := c.Validate(); err != nil {
		var ce *ConfigError
		if !errors.As(err, &ce) {
			return Config{}, err
		}
		for _, p := range ce.Problems {
			place, _, _ := strings.Cut(p, ":")
			entry, _, _ := strings.Cut(place, ".")
			if !unread[place] && !unread[entry] {
				problems = append(problems, p)
			}
		}
	}
	if len(problems) > 0 {
		// by entry, in the order of the file, whoever found them
		slices.SortStableFunc(problems, func(a, b string) int { return cmp.Compare(entryOf(a), entryOf(b)) })
		return Config{}, &ConfigError{Problems: problems}
	}
	return c, nil
}

// specFields maps the JSON names of Spec's members to their field index.
func specFields() map[string]int {
	out := map[string]int{}
	t := reflect.TypeFor[Spec]()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out[name] = i
		}
	}
	return out
}

// entryOf is the entry index a problem begins with, -1 for the file's
// own members.
func entryOf(problem string) int {
	rest, ok := strings.CutPrefix(problem, "plugins[")
	if !ok {
		return -1
	}
	end := strings.IndexByte(rest, ']')
	if end < 0 {
		return -1
	}
	n, err := strconv.Atoi(rest[:end])
	if err != nil {
		return -1
	}
	return n
}

// jsonProblem describes a file that is not JSON, with the line and column.
func jsonProblem(b []byte, err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line, col := position(b, se.Offset)
		return fmt.Sprintf("line %d, column %d: %s", line, col, strings.TrimPrefix(se.Error(), "json: "))
	}
	return "the file is not a JSON object: " + typeProblem(err, "an object")
}

func position(b []byte, off int64) (line, col int) {
	off = min(max(off, 0), int64(len(b)))
	before := b[:off]
	line = bytes.Count(before, []byte("\n")) + 1
	return line, int(off) - (bytes.LastIndexByte(before, '\n') + 1)
}

// typeProblem describes a value that does not fit, as "is a string, want
// a whole number"; the errors of Duration and others come as they are.
func typeProblem(err error, want string) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		got := te.Value
		switch got {
		case "array":
			got = "a list"
		case "object":
			got = "an object"
		default:
			got = "a " + got
		}
		return fmt.Sprintf("is %s, want %s", got, want)
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// kindName names what a member's Go type takes, for typeProblem.
func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "a whole number"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice:
		return "a list of " + strings.TrimPrefix(strings.TrimPrefix(kindName(t.Elem()), "a "), "an ") + "s"
	}
	return t.String()
}

// suggest names the known field a misspelt one is probably meant to be:
// ` (did you mean "address"?)`.
func suggest(k string, known []string) string {
	if n := nearest.Word(k, known); n != "" {
		return fmt.Sprintf(" (did you mean %q?)", n)
	}
	return ""
}

// Validate checks every plugin, sets the defaults of what is not set, and
// reports all problems together in a *ConfigError, each with its place
// ("plugins[1].kind: ...", "plugins[2]: ..." for the entry as a whole).
func (c *Config) Validate() error {
	var problems []string
	seen := map[string]int{}
	for i := range c.Plugins {
		s := &c.Plugins[i]
		fail := func(field, format string, a ...any) {
			at := fmt.Sprintf("plugins[%d]", i)
			if field != "" {
				at += "." + field
			}
			problems = append(problems, at+": "+fmt.Sprintf(format, a...))
		}
		switch first, dup := seen[s.Name]; {
		case s.Name == "":
			fail("name", "missing")
		case !s.Bundled && slices.Contains(bundled.Names, s.Name):
			fail("name", "%q is the agent's bundled plugin's; choose another", s.Name)
		case dup:
			fail("name", "%q is the name of plugins[%d] too", s.Name, first)
		default:
			seen[s.Name] = i
		}
		if s.Bundled && s.Path == "" {
			fail("path", "a bundled plugin is started from a path")
		}
		switch s.Kind {
		case sdk.KindMapping, sdk.KindCustomAction, sdk.KindDecoder:
		case "":
			fail("kind", "missing: mapping, customaction or decoder")
		default:
			fail("kind", "%q is not mapping, customaction or decoder", s.Kind)
		}
		var set []string
		for _, f := range []struct{ name, v string }{{"path", s.Path}, {"address", s.Address}, {"url", s.URL}} {
			if f.v != "" {
				set = append(set, f.name)
			}
		}
		switch len(set) {
		case 0:
			fail("", "none of path, address and url is set: exactly one must be")
		case 1:
		default:
			fail("", "%s are all set: exactly one of path, address and url must be", strings.Join(set, ", "))
		}
		if s.Path != "" {
			if st, err := os.Stat(s.Path); errors.Is(err, fs.ErrNotExist) {
				fail("path", "%s does not exist", s.Path)
			} else if err != nil {
				fail("path", "%v", err)
			} else if st.IsDir() || st.Mode()&0o111 == 0 {
				fail("path", "%s is not an executable file", s.Path)
			}
		}
		if s.Address != "" {
			if _, port, err := net.SplitHostPort(s.Address); err != nil {
				fail("address", "%q is not host:port (%s)", s.Address, strings.TrimPrefix(err.Error(), "address "+s.Address+": "))
			} else if port == "" {
				fail("address", "%q has no port", s.Address)
			}
		}
		if s.URL != "" {
			if s.Kind != sdk.KindDecoder && s.Kind != "" {
				fail("url", "is for decoders only, not kind %s", s.Kind)
			}
			if u, err := url.Parse(s.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				fail("url", "%q is not an http:// or https:// URL", s.URL)
			}
		}
		if len(s.Args) > 0 && s.Path == "" {
			fail("args", "are for plugins started from a path")
		}
		for _, d := range []struct {
			name string
			v    *Duration
			def  time.Duration
		}{{"timeout", &s.Timeout, DefaultTimeout}, {"minBackoff", &s.MinBackoff, DefaultMinBackoff}, {"maxBackoff", &s.MaxBackoff, DefaultMaxBackoff}} {
			if *d.v < 0 {
				fail(d.name, "%v is negative", time.Duration(*d.v))
			}
			if *d.v <= 0 {
				*d.v = Duration(d.def)
			}
		}
		if s.MaxBackoff < s.MinBackoff {
			fail("maxBackoff", "%v is below minBackoff %v", time.Duration(s.MaxBackoff), time.Duration(s.MinBackoff))
		}
		if s.HungAfter < 0 {
			fail("hungAfter", "%d is negative", s.HungAfter)
		}
		if s.HungAfter <= 0 {
			s.HungAfter = DefaultHungAfter
		}
	}
	if len(problems) > 0 {
		return &ConfigError{Problems: problems}
	}
	return nil
}
