package console_test

import (
	"context"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lwm2m-agent/lwm2m-agent/agent/api"
	"github.com/lwm2m-agent/lwm2m-agent/agent/console"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/storetest"
)

// server is the API with the console, over a test store.
func server(t *testing.T) (*httptest.Server, *console.Console) {
	t.Helper()
	s := storetest.OpenTest(t)
	if _, err := s.EnsureManagement(context.Background(), "console-test-pass"); err != nil {
		t.Fatal(err)
	}
	c, err := console.New()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(api.Config{Store: s, Console: c, Metrics: prometheus.NewRegistry()}).Handler())
	t.Cleanup(srv.Close)
	return srv, c
}

// The console owns "/", "/index.html" and its versioned assets; every
// other path keeps the API's answers, unknown ones its JSON 404.
func TestServedBesideTheAPI(t *testing.T) {
	srv, c := server(t)
	assets := c.AssetsPath()
	tests := []struct {
		name, method, path string
		header             map[string]string
		code               int
		contentType        string
		cache              string // Cache-Control, "" for not checked
		csp                bool
		body               string // a part of the body
	}{
		{name: "page", path: "/", code: 200, contentType: "text/html; charset=utf-8", cache: "no-cache", csp: true, body: assets + "/app.js"},
		{name: "index.html", path: "/index.html", code: 200, contentType: "text/html; charset=utf-8", cache: "no-cache", csp: true, body: assets + "/style.css"},
		{name: "page unchanged", path: "/", header: map[string]string{"If-None-Match": `"` + c.Version() + `"`}, code: 304},
		{name: "module", path: assets + "/app.js", code: 200, contentType: "text/javascript; charset=utf-8", cache: "public, max-age=31536000, immutable", body: "import"},
		{name: "page module", path: assets + "/pages/login.js", code: 200, contentType: "text/javascript; charset=utf-8", body: "export function render"},
		{name: "style", path: assets + "/style.css", code: 200, contentType: "text/css; charset=utf-8"},
		{name: "icon", path: assets + "/icon.svg", code: 200, contentType: "image/svg+xml"},
		{name: "asset of another version", path: "/console/0123456789ab/app.js", code: 200, cache: "no-store", body: "import"},
		{name: "missing asset", path: assets + "/nothing.js", code: 404, cache: "no-store"},
		{name: "page under assets", path: assets + "/index.html", code: 404},
		{name: "no version", path: "/console/", code: 404},
		{name: "head of the page", method: "HEAD", path: "/", code: 200, contentType: "text/html; charset=utf-8"},
		{name: "post to the page", method: "POST", path: "/", code: 404, contentType: "application/json; charset=utf-8", body: `"general/notFound"`},
		{name: "unknown path", path: "/nothing", code: 404, contentType: "application/json; charset=utf-8", body: `"no resource at /nothing"`},
		{name: "unknown API path", path: "/inventory/nothing", code: 404, contentType: "application/json; charset=utf-8", body: `"general/notFound"`},
		{name: "health", path: "/health", code: 200, body: `{"status":"UP"}`},
		{name: "API without credentials", path: "/inventory/managedObjects", code: 401, body: `"security/Unauthorized"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = "GET"
			}
			req, err := http.NewRequest(method, srv.URL+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.code {
				t.Fatalf("HTTP %d, want %d: %s", resp.StatusCode, tc.code, body)
			}
			if tc.contentType != "" && resp.Header.Get("Content-Type") != tc.contentType {
				t.Errorf("Content-Type %q, want %q", resp.Header.Get("Content-Type"), tc.contentType)
			}
			if tc.cache != "" && resp.Header.Get("Cache-Control") != tc.cache {
				t.Errorf("Cache-Control %q, want %q", resp.Header.Get("Cache-Control"), tc.cache)
			}
			if got := resp.Header.Get("Content-Security-Policy"); tc.csp && got != console.CSP {
				t.Errorf("Content-Security-Policy %q", got)
			}
			if !strings.Contains(string(body), tc.body) {
				t.Errorf("body has no %q: %.300s", tc.body, body)
			}
			if strings.Contains(string(body), "__ASSETS__") {
				t.Errorf("the assets placeholder is left in the page")
			}
		})
	}
}

// The policy names no origin but the agent's own and allows no inline
// code.
func TestPolicyAllowsOnlyOwnOrigin(t *testing.T) {
	for _, d := range strings.Split(console.CSP, ";") {
		f := strings.Fields(d)
		if len(f) == 0 {
			t.Fatalf("empty directive in %q", console.CSP)
		}
		for _, src := range f[1:] {
			if src != "'self'" && src != "'none'" && src != "data:" {
				t.Errorf("directive %q allows %s", f[0], src)
			}
		}
	}
	if !strings.Contains(console.CSP, "default-src 'none'") {
		t.Errorf("no default-src 'none': %s", console.CSP)
	}
}

var (
	importRe = regexp.MustCompile(`(?:from\s+|import\s*\(\s*|import\s+)'(\.{1,2}/[^']+)'`)
	originRe = regexp.MustCompile(`(?i)\b(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	assetRe  = regexp.MustCompile(`__ASSETS__/([a-zA-Z0-9_./-]+)`)
)

// Every module a file imports, and every asset the page names, is
// embedded; no file loads anything from another origin. Without a build
// step, this is what catches a misspelt import before a browser does.
func TestFilesReferToEmbeddedFilesOnly(t *testing.T) {
	files := console.Files()
	n := 0
	err := fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(files, p)
		if err != nil {
			return err
		}
		text := string(b)
		for _, m := range importRe.FindAllStringSubmatch(text, -1) {
			n++
			target := path.Join(path.Dir(p), m[1])
			if _, err := fs.Stat(files, target); err != nil {
				t.Errorf("%s imports %s: no such file (%s)", p, m[1], target)
			}
		}
		for _, m := range assetRe.FindAllStringSubmatch(text, -1) {
			if _, err := fs.Stat(files, m[1]); err != nil {
				t.Errorf("%s names the asset %s: no such file", p, m[1])
			}
		}
		// the SVG namespace (icon.svg's xmlns, the chart's
		// createElementNS) is a name: nothing is loaded from it
		text = strings.ReplaceAll(text, "http://www.w3.org/2000/svg", "")
		for _, line := range strings.Split(text, "\n") {
			if code, _, _ := strings.Cut(line, "// "); originRe.MatchString(code) && !strings.HasPrefix(strings.TrimSpace(line), "*") {
				t.Errorf("%s refers to another origin: %s", p, strings.TrimSpace(line))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 10 {
		t.Fatalf("only %d imports found: the pattern no longer matches the files", n)
	}
}

// The version changes with any file's contents and is the same for the
// same files.
func TestVersionFollowsContents(t *testing.T) {
	a, err := console.New()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := console.New()
	if a.Version() != b.Version() || len(a.Version()) != 12 {
		t.Fatalf("versions %q and %q", a.Version(), b.Version())
	}
	seen := map[string]bool{}
	for _, files := range []map[string]string{
		{"index.html": "<p>__ASSETS__/a.js</p>", "a.js": "1"},
		{"index.html": "<p>__ASSETS__/a.js</p>", "a.js": "2"},
		{"index.html": "<p>__ASSETS__/a.js</p>", "a.js": "2", "b.js": ""},
	} {
		c, err := console.NewFS(mapFS(files))
		if err != nil {
			t.Fatal(err)
		}
		if seen[c.Version()] {
			t.Errorf("version %s repeats for %v", c.Version(), files)
		}
		seen[c.Version()] = true
	}
}

func mapFS(files map[string]string) fs.FS {
	m := fstest.MapFS{}
	for k, v := range files {
		m[k] = &fstest.MapFile{Data: []byte(v)}
	}
	return m
}
