package plugins_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/plugins"
)

func TestParseConfig(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	notExec := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(notExec, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		json string
	}{
		{name: "every way to reach a plugin", json: `{"plugins":[
			{"name":"p","kind":"decoder","path":"` + exe + `","args":["--x"],"timeout":"500ms"},
			{"name":"g","kind":"mapping","address":"127.0.0.1:7000"},
			{"name":"h","kind":"decoder","url":"http://127.0.0.1:8080/decode"}]}`},
		{name: "no plugins", json: `{}`},
		{name: "null plugins", json: `{"plugins":null}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := plugins.ParseConfig([]byte(tc.json))
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range c.Plugins {
				if s.Timeout <= 0 || s.MinBackoff != plugins.Duration(plugins.DefaultMinBackoff) || s.HungAfter != plugins.DefaultHungAfter {
					t.Errorf("defaults not applied: %+v", s)
				}
			}
			if len(c.Plugins) > 0 && time.Duration(c.Plugins[0].Timeout) != 500*time.Millisecond {
				t.Errorf("timeout %v", time.Duration(c.Plugins[0].Timeout))
			}
		})
	}

	// Each bad input and every line of the one error it gets, in order.
	good := `"name":"ok","kind":"decoder","address":"127.0.0.1:7000"`
	tests := []struct {
		name string
		json string
		want []string
	}{
		{"bad duration", `{"plugins":[{` + good + `},{"name":"a","kind":"decoder","address":"x:1","timeout":"fast"}]}`,
			[]string{`plugins[1].timeout: invalid duration "fast" (a number with a unit: "500ms", "2s", "1m")`}},
		{"duration of the wrong type", `{"plugins":[{"name":"a","kind":"decoder","address":"x:1","maxBackoff":true}]}`,
			[]string{`plugins[0].maxBackoff: true is not a duration like "2s"`}},
		{"negative durations", `{"plugins":[{"name":"a","kind":"decoder","address":"x:1","timeout":"-1s","minBackoff":"-2s","hungAfter":-1}]}`,
			[]string{"plugins[0].timeout: -1s is negative", "plugins[0].minBackoff: -2s is negative", "plugins[0].hungAfter: -1 is negative"}},
		{"unknown field", `{"plugins":[{"name":"a","kind":"decoder","adress":"x:1"}]}`,
			[]string{`plugins[0]: unknown field "adress" (did you mean "address"?)`, "plugins[0]: none of path, address and url is set: exactly one must be"}},
		{"unknown field far from any", `{"plugins":[{` + good + `,"colour":"red"}]}`,
			[]string{`plugins[0]: unknown field "colour"`}},
		{"unknown top-level field", `{"plugin":[]}`,
			[]string{`unknown field "plugin" (did you mean "plugins"?) (the file has one member, "plugins")`}},
		{"wrong types", `{"plugins":[{"name":7,"kind":"decoder","address":"x:1","args":"--x","hungAfter":"3"}]}`,
			[]string{"plugins[0].args: is a string, want a list of strings", "plugins[0].hungAfter: is a string, want a whole number",
				"plugins[0].name: is a number, want a string"}},
		{"plugins not a list", `{"plugins":{"name":"a"}}`, []string{"plugins: is an object, want a list of plugin entries"}},
		{"entry not an object", `{"plugins":["frame",{` + good + `}]}`, []string{"plugins[0]: is a string, want an object"}},
		{"not JSON", "{\"plugins\": [\n  {\"name\": \"a\",}\n]}", []string{"line 2, column 16: invalid character '}' looking for beginning of object key string"}},
		{"missing name and kind", `{"plugins":[{"address":"x:1"}]}`,
			[]string{"plugins[0].name: missing", "plugins[0].kind: missing: mapping, customaction or decoder"}},
		{"duplicate names", `{"plugins":[{` + good + `},{"name":"b","kind":"decoder","address":"x:1"},{"name":"ok","kind":"mapping","address":"x:2"}]}`,
			[]string{`plugins[2].name: "ok" is the name of plugins[0] too`}},
		{"bundled names", `{"plugins":[{"name":"mapping","kind":"mapping","address":"x:1"},{"name":"customactions","kind":"customaction","address":"x:2"}]}`,
			[]string{`plugins[0].name: "mapping" is the agent's bundled plugin's; choose another`, `plugins[1].name: "customactions" is the agent's bundled plugin's; choose another`}},
		{"bad kind", `{"plugins":[{"name":"a","kind":"mapper","address":"x:1"}]}`,
			[]string{`plugins[0].kind: "mapper" is not mapping, customaction or decoder`}},
		{"two ways to reach", `{"plugins":[{"name":"a","kind":"decoder","path":"` + exe + `","address":"x:1","url":"http://x/decode"}]}`,
			[]string{"plugins[0]: path, address, url are all set: exactly one of path, address and url must be"}},
		{"bad paths", `{"plugins":[{"name":"a","kind":"decoder","path":"` + notExec + `"},{"name":"b","kind":"decoder","path":"/no/such/file"},{"name":"c","kind":"decoder","path":"` + dir + `"}]}`,
			[]string{"plugins[0].path: " + notExec + " is not an executable file", "plugins[1].path: /no/such/file does not exist", "plugins[2].path: " + dir + " is not an executable file"}},
		{"bad addresses", `{"plugins":[{"name":"a","kind":"decoder","address":"nohostport"},{"name":"b","kind":"decoder","address":"x:"}]}`,
			[]string{`plugins[0].address: "nohostport" is not host:port (missing port in address)`, `plugins[1].address: "x:" has no port`}},
		{"bad urls", `{"plugins":[{"name":"a","kind":"mapping","url":"http://x/decode"},{"name":"b","kind":"decoder","url":"ftp://x/decode"}]}`,
			[]string{"plugins[0].url: is for decoders only, not kind mapping", `plugins[1].url: "ftp://x/decode" is not an http:// or https:// URL`}},
		{"backoffs the wrong way round", `{"plugins":[{"name":"a","kind":"decoder","address":"x:1","minBackoff":"2s","maxBackoff":"1s"}]}`,
			[]string{"plugins[0].maxBackoff: 1s is below minBackoff 2s"}},
		{"every problem at once, by entry", `{"plugins":[
			{"name":"a","kind":"decoder","address":"x:1","timeout":"fast"},
			{"name":"a","kind":"mapper","address":"x:1"},
			{"kind":"decoder","adress":"x:1"},
			{"name":"e","kind":"decoder","address":"nohostport","args":["x"]}]}`,
			[]string{`plugins[0].timeout: invalid duration "fast" (a number with a unit: "500ms", "2s", "1m")`,
				`plugins[1].name: "a" is the name of plugins[0] too`, `plugins[1].kind: "mapper" is not mapping, customaction or decoder`,
				`plugins[2]: unknown field "adress" (did you mean "address"?)`, "plugins[2].name: missing",
				"plugins[2]: none of path, address and url is set: exactly one must be",
				`plugins[3].address: "nohostport" is not host:port (missing port in address)`, "plugins[3].args: are for plugins started from a path"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := plugins.ParseConfig([]byte(tc.json))
			var ce *plugins.ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v, want a *ConfigError", err)
			}
			if !slices.Equal(ce.Problems, tc.want) {
				t.Errorf("problems:\n\t%s\nwant:\n\t%s", strings.Join(ce.Problems, "\n\t"), strings.Join(tc.want, "\n\t"))
			}
			want := "plugins config: " + tc.want[0]
			if len(tc.want) > 1 {
				want = fmt.Sprintf("plugins config: %d problems:\n\t%s", len(tc.want), strings.Join(tc.want, "\n\t"))
			}
			if err.Error() != want {
				t.Errorf("message:\n%s\nwant:\n%s", err, want)
			}
		})
	}
}

func TestLoadConfigFile(t *testing.T) {
	if c, err := plugins.LoadConfig(""); err != nil || len(c.Plugins) != 0 {
		t.Fatalf("no file: %+v, %v", c, err)
	}
	if _, err := plugins.LoadConfig(filepath.Join(t.TempDir(), "missing.json")); err == nil || !strings.Contains(err.Error(), "plugins config") {
		t.Fatalf("missing file: %v", err)
	}
	p := filepath.Join(t.TempDir(), "plugins.json")
	if err := os.WriteFile(p, []byte(`{"plugins":[{"name":"a","kind":"decoder","address":"127.0.0.1:9"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := plugins.LoadConfig(p)
	if err != nil || len(c.Plugins) != 1 || c.Plugins[0].Name != "a" {
		t.Fatalf("%+v, %v", c, err)
	}
	// the operator learns which file is wrong
	if err := os.WriteFile(p, []byte(`{"plugins":[{"name":"a","kind":"decoder","address":"127.0.0.1:9","timeout":"fast"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	want := "plugins config " + p + `: plugins[0].timeout: invalid duration "fast" (a number with a unit: "500ms", "2s", "1m")`
	if _, err := plugins.LoadConfig(p); err == nil || err.Error() != want {
		t.Fatalf("bad file: %v\nwant: %s", err, want)
	}
}
