package plugins_test

import (
	"os"
	"path/filepath"
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
	tests := []struct {
		name    string
		json    string
		wantErr []string // each must appear
	}{
		{name: "every way to reach a plugin", json: `{"plugins":[
			{"name":"p","kind":"decoder","path":"` + exe + `","args":["--x"],"timeout":"500ms"},
			{"name":"g","kind":"mapping","address":"127.0.0.1:7000"},
			{"name":"h","kind":"decoder","url":"http://127.0.0.1:8080/decode"}]}`},
		{name: "no plugins", json: `{}`},
		{name: "unknown field", json: `{"plugins":[{"name":"a","kind":"decoder","adress":"x:1"}]}`, wantErr: []string{`unknown field "adress"`}},
		{name: "bad duration", json: `{"plugins":[{"name":"a","kind":"decoder","address":"x:1","timeout":"soon"}]}`, wantErr: []string{`duration "soon"`}},
		{name: "all problems at once", json: `{"plugins":[
			{"name":"a","kind":"decoder","address":"x:1"},
			{"name":"a","kind":"mapper","address":"x:1"},
			{"kind":"decoder"},
			{"name":"b","kind":"mapping","url":"http://x/decode"},
			{"name":"c","kind":"decoder","path":"` + notExec + `"},
			{"name":"d","kind":"decoder","path":"/no/such/file"},
			{"name":"e","kind":"decoder","address":"nohostport","args":["x"]},
			{"name":"f","kind":"decoder","address":"x:1","url":"http://x/"},
			{"name":"g","kind":"decoder","url":"ftp://x/decode"},
			{"name":"h","kind":"decoder","address":"x:1","minBackoff":"2s","maxBackoff":"1s"}]}`,
			wantErr: []string{
				"plugins[1] (a): name is used twice", `plugins[1] (a): kind "mapper"`, "plugins[2] (): name is missing",
				"plugins[2] (): exactly one of path, address and url", "plugins[3] (b): url is for decoders only",
				"plugins[4] (c): path " + notExec + " is not an executable", "plugins[5] (d): path: stat /no/such/file",
				`plugins[6] (e): address "nohostport"`, "plugins[6] (e): args are for plugins started from a path",
				"plugins[7] (f): exactly one", `plugins[8] (g): url "ftp://x/decode"`, "plugins[9] (h): maxBackoff 1s is below minBackoff 2s",
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := plugins.ParseConfig([]byte(tc.json))
			if len(tc.wantErr) == 0 {
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
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q:\n%v", w, err)
				}
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
}
