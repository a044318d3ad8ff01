// Package console serves the operators' web console: plain HTML, CSS and
// JavaScript modules embedded in the binary, served by the API's HTTP
// server at "/" (the page) and "/console/{version}/..." (its assets). The
// console talks to the agent only through the public REST API, with the
// credentials the user logged in with, so it can do nothing the user
// could not do with curl.
//
// Nothing is loaded from other origins: the Content-Security-Policy says
// so to the browser, which then refuses inline scripts and styles too.
// Assets are served under a version taken from their contents, so a
// browser may keep them for a year and still never runs a stale mix of
// modules after an upgrade; the page itself is revalidated each time.
package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"slices"
	"strings"
)

//go:embed static
var embedded embed.FS

// assetsPlaceholder stands in index.html for the versioned assets prefix.
const assetsPlaceholder = "__ASSETS__"

// Prefix is the path under which the console's assets are served.
const Prefix = "/console/"

// CSP allows only the agent's own origin: scripts, styles, images, API
// calls and the realtime WebSocket (which 'self' covers for ws: and wss:
// of the same host). Inline code is refused, which is why the console
// sets styles through CSSOM and classes, never style attributes.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"font-src 'self'; connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Console holds the files and their version.
type Console struct {
	files   fs.FS
	version string
	index   []byte
	etag    string
	types   map[string]string // by file name extension
}

// New reads the embedded files.
func New() (*Console, error) {
	sub, err := fs.Sub(embedded, "static")
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	return newFS(sub)
}

// newFS builds the console over files, whose root holds index.html.
func newFS(files fs.FS) (*Console, error) {
	sum := sha256.New()
	var names []string
	err := fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		names = append(names, p)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("console: list files: %w", err)
	}
	slices.Sort(names)
	for _, n := range names {
		b, err := fs.ReadFile(files, n)
		if err != nil {
			return nil, fmt.Errorf("console: read %s: %w", n, err)
		}
		fmt.Fprintf(sum, "%s\x00%d\x00", n, len(b))
		sum.Write(b)
	}
	c := &Console{files: files, version: hex.EncodeToString(sum.Sum(nil))[:12], types: map[string]string{
		".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml",
		".png": "image/png", ".html": "text/html; charset=utf-8", ".json": "application/json",
	}}
	index, err := fs.ReadFile(files, "index.html")
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	c.index = bytes.ReplaceAll(index, []byte(assetsPlaceholder), []byte(c.AssetsPath()))
	c.etag = `"` + c.version + `"`
	return c, nil
}

// Version names the set of files; it changes whenever one of them does.
func (c *Console) Version() string { return c.version }

// AssetsPath is the path prefix of this version's assets, without the
// trailing slash.
func (c *Console) AssetsPath() string { return Prefix + c.version }

// Patterns are the http.ServeMux patterns the console answers; the API
// registers them beside its own routes, so every other path keeps the
// API's JSON 404.
func (c *Console) Patterns() []string {
	return []string{"GET /{$}", "GET /index.html", "GET " + Prefix}
}

// ServeHTTP answers the page at "/" and "/index.html" and the assets under
// Prefix.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	if r.URL.Path == "/" || r.URL.Path == "/index.html" {
		h.Set("Content-Security-Policy", CSP)
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Type", "text/html; charset=utf-8")
		// revalidated at every load, so that a new version's assets are
		// found at once; an unchanged page costs a 304
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", c.etag)
		if match := r.Header.Get("If-None-Match"); match != "" && strings.Contains(match, c.etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		_, _ = w.Write(c.index)
		return
	}
	version, name, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, Prefix), "/")
	name = path.Clean("/" + name)[1:]
	if !ok || name == "" || name == "index.html" {
		c.notFound(w, r)
		return
	}
	b, err := fs.ReadFile(c.files, name)
	if err != nil {
		c.notFound(w, r)
		return
	}
	if version == c.version {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		// a page of an earlier version asks for its assets after an
		// upgrade: it gets today's, which no cache may keep under the
		// old name
		h.Set("Cache-Control", "no-store")
	}
	ct := c.types[path.Ext(name)]
	if ct == "" {
		ct = mime.TypeByExtension(path.Ext(name))
	}
	if ct == "" {
		ct = "application/octet-stream"
	}
	h.Set("Content-Type", ct)
	_, _ = w.Write(b)
}

func (c *Console) notFound(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, "no console file at "+r.URL.Path, http.StatusNotFound)
}
