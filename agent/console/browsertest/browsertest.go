// Package browsertest runs the console in a real browser against a real
// agent: Debian's Chromium, driven over the DevTools protocol (chromedp),
// an agent with its embedded store in a temporary directory, and
// simulated devices on loopback. Tests of console pages use it with a few
// lines:
//
//	a := browsertest.StartAgent(t)
//	sim := a.Simulate(1, "dev", nil)
//	b := browsertest.NewBrowser(t, a)
//	b.Login("management", "admin", browsertest.AdminPassword)
//	b.Open("/devices/" + a.DeviceID(sim.Endpoints()[0]) + "/objects")
//	b.WaitText(".instance", "Manufacturer")
//	b.Screenshot("objects")
//
// Without Chromium the tests skip, saying how to install it, except under
// CI=true, where they fail. Screenshots go to docs/console/ with
// UPDATE_SCREENSHOTS=1, else to a temporary directory.
package browsertest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/lwm2m-agent/lwm2m-agent/agent/app"
	"github.com/lwm2m-agent/lwm2m-agent/agent/config"
	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/apitest"
	"github.com/lwm2m-agent/lwm2m-agent/agent/simulator"
)

// AdminPassword is the password of management/admin of the agents the
// tests start.
const AdminPassword = "browser-Admin-pass-1!"

// Wait bounds every wait of a Browser for a condition: long enough for a
// loaded two-core machine, short enough that a broken page fails soon.
var Wait = 20 * time.Second

// Agent is an agent on loopback with a fresh embedded store.
type Agent struct {
	T   testing.TB
	App *app.Agent
	// URL is the agent's HTTP address, http://127.0.0.1:PORT.
	URL string
}

// StartAgent starts an agent for the test: every port on loopback and
// picked free, auto-registration on, the bundled plugins in its process.
// mods change the configuration first. It stops when the test ends.
func StartAgent(t testing.TB, mods ...func(*config.Config)) *Agent {
	t.Helper()
	cfg := config.Default()
	cfg.CoAPAddr, cfg.CoAPSAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.BootstrapAddr, cfg.BootstrapSAddr = "", ""
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.AdminPassword = AdminPassword
	cfg.AutoRegister = true
	cfg.RequestTimeout = 5 * time.Second
	cfg.BundledPlugins = config.BundledInProcess
	for _, m := range mods {
		m(&cfg)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithCancel(context.Background())
	a, wait, err := app.Start(ctx, cfg, log)
	if err != nil {
		cancel()
		t.Fatalf("start agent: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := wait(); err != nil {
			t.Errorf("agent stopped with: %v", err)
		}
	})
	return &Agent{T: t, App: a, URL: "http://" + a.HTTPAddr.String()}
}

// Simulate starts n simulated devices named prefix-0, prefix-1, ... and
// waits until all have registered; they stop when the test ends.
func (a *Agent) Simulate(n int, prefix string, mod func(*simulator.Config)) *simulator.Simulator {
	a.T.Helper()
	cfg := simulator.Config{
		Server:         a.App.CoAPAddr.String(),
		Count:          n,
		Prefix:         prefix,
		Version:        "1.1",
		Lifetime:       60 * time.Second,
		NotifyInterval: time.Second,
		Logger:         slog.New(slog.DiscardHandler),
	}
	if mod != nil {
		mod(&cfg)
	}
	sim, err := simulator.New(cfg)
	if err != nil {
		a.T.Fatalf("simulator: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sim.Run(ctx) }()
	a.T.Cleanup(func() {
		cancel()
		<-done
	})
	Eventually(a.T, Wait, func() error {
		if got := sim.Registered(); got != n {
			return fmt.Errorf("%d of %d simulated devices registered", got, n)
		}
		return nil
	})
	return sim
}

// Call makes an API request as user ("tenant/user") with a JSON body
// (nil for none), decodes the answer into out (nil to skip) and answers
// the status.
func (a *Agent) Call(user, pass, method, path string, body, out any) int {
	a.T.Helper()
	code, data := apitest.Send(a.T, a.URL, user, pass, method, path, body)
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			a.T.Fatalf("%s %s: HTTP %d: decode %.200q: %v", method, path, code, data, err)
		}
	}
	return code
}

// Admin makes an API request as management/admin.
func (a *Agent) Admin(method, path string, body, out any) int {
	a.T.Helper()
	return a.Call("management/admin", AdminPassword, method, path, body, out)
}

// DeviceID answers the ID of the device with an endpoint (as management/admin).
func (a *Agent) DeviceID(endpoint string) string {
	a.T.Helper()
	var ext struct {
		ManagedObject struct{ ID string } `json:"managedObject"`
	}
	if code := a.Admin("GET", "/identity/externalIds/c8y_Id/"+endpoint, nil, &ext); code != http.StatusOK {
		a.T.Fatalf("external ID of %s: HTTP %d", endpoint, code)
	}
	return ext.ManagedObject.ID
}

// CreateTenant creates a tenant whose user admin has the password pass.
func (a *Agent) CreateTenant(id, pass string) {
	a.T.Helper()
	if code := a.Admin("POST", "/tenant/tenants", map[string]string{"id": id, "adminName": "admin", "adminPass": pass}, nil); code != http.StatusCreated {
		a.T.Fatalf("create tenant %s: HTTP %d", id, code)
	}
}

// Eventually calls f until it answers nil, failing the test with f's last
// error after d.
func Eventually(t testing.TB, d time.Duration, f func() error) {
	t.Helper()
	apitest.Eventually(t, d, f)
}

// Chromium answers the path of the browser: $CHROMIUM, else the first of
// chromium, chromium-browser, google-chrome on the PATH, else "".
func Chromium() string {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// Browser is one headless Chromium with one tab, at 1280x800.
type Browser struct {
	T     testing.TB
	Agent *Agent
	ctx   context.Context

	mu     sync.Mutex
	errors []string // uncaught exceptions and console errors of the page
}

// NewBrowser starts Chromium for the test; it stops when the test ends,
// which fails if the page threw an exception it did not catch.
func NewBrowser(t testing.TB, a *Agent) *Browser {
	t.Helper()
	path := Chromium()
	if path == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("no Chromium found (CHROMIUM, chromium, chromium-browser, google-chrome): CI must install it (apt-get install chromium)")
		}
		t.Skip("no Chromium found: apt-get install chromium, or set CHROMIUM to a Chrome or Chromium executable")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1280, 800),
		chromedp.UserDataDir(t.TempDir()), chromedp.Flag("lang", "en-US"))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	b := &Browser{T: t, Agent: a, ctx: ctx}
	// reduced motion: no highlight caught half-way in a screenshot
	reduced := chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-reduced-motion", Value: "reduce"}},
		})
		return err
	})
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800), reduced); err != nil {
		cancel()
		cancelAlloc()
		t.Fatalf("start %s: %v", path, err)
	}
	listenCtx, stopListening := context.WithCancel(ctx)
	messages := chromedp.Console(listenCtx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == "error" {
				b.mu.Lock()
				b.errors = append(b.errors, m.String())
				b.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		stopListening()
		<-done
		cancel()
		cancelAlloc()
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, e := range b.errors {
			if !expectedConsoleError(e) {
				t.Errorf("the page logged an error: %s", e)
			}
		}
	})
	return b
}

// expectedConsoleError: the browser logs every failed request, and the
// tests make some on purpose (a wrong password, a refused write); the
// page shows those, so they are not the page's faults.
func expectedConsoleError(msg string) bool {
	return strings.Contains(msg, "Failed to load resource") || strings.Contains(msg, "the server responded with a status of")
}

// Do runs chromedp actions, failing the test with what was being done.
func (b *Browser) Do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.T.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, Wait)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.fail("%s: %v", what, err)
	}
}

// fail ends the test with the page's text and a screenshot, so that a
// failure says what the user would have seen.
func (b *Browser) fail(format string, args ...any) {
	b.T.Helper()
	msg := fmt.Sprintf(format, args...)
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	if text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ''`)); err == nil {
		msg += "\n--- the page said:\n" + clip(text, 3000)
	}
	if png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot()); err == nil {
		p := filepath.Join(os.TempDir(), "browsertest-"+strings.NewReplacer("/", "-", " ", "_").Replace(b.T.Name())+".png")
		if os.WriteFile(p, png, 0o644) == nil {
			msg += "\n--- screenshot: " + p
		}
	}
	b.T.Fatal(msg)
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// Open loads the console at a route ("/devices", "/devices/4/objects"): the
// whole page, as a user opening a bookmark.
func (b *Browser) Open(route string) {
	b.T.Helper()
	b.Do("open "+route, chromedp.Navigate(b.Agent.URL+"/#"+route))
}

// Go changes the route inside the loaded page, as a click on a link does.
func (b *Browser) Go(route string) {
	b.T.Helper()
	b.Eval(`location.hash = `+js(route), nil)
}

// Login logs in through the login page and waits for the device list.
func (b *Browser) Login(tenant, user, pass string) {
	b.T.Helper()
	b.Open("/login")
	b.Fill("#main input[name=tenant]", tenant)
	b.Fill("#main input[name=user]", user)
	b.Fill("#main input[name=password]", pass)
	b.Click("#main form button[type=submit]")
	b.WaitText(".topbar .user", tenant+"/"+user)
}

// AdminBrowser is a browser logged in to a's console as the management
// tenant's admin, with route then opened as a whole page (Open); with
// route "" it stays on the device list the login shows.
func AdminBrowser(t testing.TB, a *Agent, route string) *Browser {
	t.Helper()
	b := NewBrowser(t, a)
	b.Login("management", "admin", AdminPassword)
	if route != "" {
		b.Open(route)
	}
	return b
}

// Fill replaces the text of an input with value, typing it as a user does
// (so the page hears every key). Keys go to the focused element, which
// the page itself focuses (the DevTools' copy of the document can lag
// behind a page that changes often).
func (b *Browser) Fill(sel, value string) {
	b.T.Helper()
	b.WaitVisible(sel)
	b.Eval(`(() => { const e = document.querySelector(`+js(sel)+`); e.focus(); e.value = ''; e.dispatchEvent(new Event('input', {bubbles: true})); })()`, nil)
	b.Do("fill "+sel, chromedp.KeyEvent(value))
}

// Keys types keys into an element (chromedp/kb names special keys).
func (b *Browser) Keys(sel, keys string) {
	b.T.Helper()
	b.WaitVisible(sel)
	b.Eval(`(() => { const e = document.querySelector(`+js(sel)+`); if (document.activeElement !== e) e.focus(); })()`, nil)
	b.Do("keys into "+sel, chromedp.KeyEvent(keys))
}

// UploadFiles puts files into a file input, as a user choosing them in
// the browser's dialog (the input hears "change").
func (b *Browser) UploadFiles(sel string, paths ...string) {
	b.T.Helper()
	b.poll("a file input "+sel, `document.querySelector(`+js(sel)+`) !== null`)
	b.Do("upload to "+sel, chromedp.SetUploadFiles(chromedp.CSS(sel), paths))
}

// Select chooses an option of a select element by its value.
func (b *Browser) Select(sel, value string) {
	b.T.Helper()
	b.WaitVisible(sel)
	b.Eval(`(() => { const s = document.querySelector(`+js(sel)+`); s.value = `+js(value)+`; s.dispatchEvent(new Event('change', {bubbles: true})); })()`, nil)
}

// Click clicks the first element matching a CSS selector, once it is
// visible: scrolled into view, then a mouse click at its middle, as a
// user's.
func (b *Browser) Click(sel string) {
	b.T.Helper()
	b.WaitVisible(sel)
	b.clickAt("click "+sel, `document.querySelector(`+js(sel)+`)`)
}

// ClickText clicks the first visible element matching sel whose text
// contains text, waiting for one to appear.
func (b *Browser) ClickText(sel, text string) {
	b.T.Helper()
	find := `[...document.querySelectorAll(` + js(sel) + `)].find((e) => e.innerText.includes(` + js(text) + `) && e.getClientRects().length)`
	b.poll(fmt.Sprintf("an element %s with the text %q", sel, text), `!!(`+find+`)`)
	b.clickAt(fmt.Sprintf("click %s %q", sel, text), find)
}

// clickAt clicks the middle of the element an expression finds. The
// point is taken from the page itself, not from the DevTools' copy of
// the document, which pages that change often leave behind.
func (b *Browser) clickAt(what, element string) {
	b.T.Helper()
	var at []float64
	b.Eval(`(() => { const e = `+element+`; if (!e) return null; e.scrollIntoView({block: 'center', inline: 'center'});
		const r = e.getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2]; })()`, &at)
	if len(at) != 2 {
		b.fail("%s: no such element", what)
	}
	b.Do(what, chromedp.MouseClickXY(at[0], at[1]))
}

// WaitVisible waits until an element matching sel is shown.
func (b *Browser) WaitVisible(sel string) {
	b.T.Helper()
	b.poll("a visible "+sel, `(() => { const e = document.querySelector(`+js(sel)+`); return !!e && e.getClientRects().length > 0; })()`)
}

// WaitGone waits until no element matches sel.
func (b *Browser) WaitGone(sel string) {
	b.T.Helper()
	b.poll("no "+sel, `document.querySelector(`+js(sel)+`) === null`)
}

// WaitText waits until an element matching sel contains text.
func (b *Browser) WaitText(sel, text string) {
	b.T.Helper()
	b.poll(fmt.Sprintf("%s showing %q", sel, text), `[...document.querySelectorAll(`+js(sel)+`)].some((e) => e.innerText.includes(`+js(text)+`))`)
}

// WaitCount waits until exactly n elements match sel.
func (b *Browser) WaitCount(sel string, n int) {
	b.T.Helper()
	b.poll(fmt.Sprintf("%d of %s", n, sel), fmt.Sprintf(`document.querySelectorAll(%s).length === %d`, js(sel), n))
}

// WaitFor waits until a JavaScript expression is true; what says what it
// waits for, for the failure message.
func (b *Browser) WaitFor(what, expr string) {
	b.T.Helper()
	b.poll(what, expr)
}

func (b *Browser) poll(what, expr string) {
	b.T.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, Wait+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(Wait), chromedp.WithPollingInterval(50*time.Millisecond)))
	if err != nil {
		b.fail("waiting %s for %s: %v", Wait, what, err)
	}
}

// Text answers the text of every element matching sel, joined by newlines.
func (b *Browser) Text(sel string) string {
	b.T.Helper()
	var s string
	b.Eval(`[...document.querySelectorAll(`+js(sel)+`)].map((e) => e.innerText).join('\n')`, &s)
	return s
}

// Eval evaluates a JavaScript expression (awaiting a promise) and decodes
// its value into out (nil to skip).
func (b *Browser) Eval(expr string, out any) {
	b.T.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, Wait)
	defer cancel()
	text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(async () => JSON.stringify(await (`+expr+`)) ?? 'null')()`, chromedp.EvalAwaitPromise))
	if err != nil {
		b.fail("evaluate %.80s: %v", expr, err)
	}
	if out == nil {
		return
	}
	if err := json.Unmarshal([]byte(text), out); err != nil {
		b.fail("evaluate %.80s: decode %.200s: %v", expr, text, err)
	}
}

// Viewport sets the size of the page, in CSS pixels (1280x800 at start).
func (b *Browser) Viewport(width, height int64) {
	b.T.Helper()
	b.Do("viewport", chromedp.EmulateViewport(width, height))
}

// Screenshot saves what the page shows as NAME.png: into docs/console/
// of the repository when UPDATE_SCREENSHOTS=1, else into a temporary
// directory (so that test runs leave the tree as it was). It answers the
// file's path.
func (b *Browser) Screenshot(name string) string {
	b.T.Helper()
	// let fonts and the last layout settle: two animation frames
	b.Eval(`new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))`, nil)
	ctx, cancel := context.WithTimeout(b.ctx, Wait)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.fail("screenshot %s: %v", name, err)
	}
	dir := screenshotDir(b.T)
	p := filepath.Join(dir, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.T.Fatalf("screenshot %s: %v", name, err)
	}
	return p
}

var (
	shotsOnce sync.Once
	shotsDir  string
	shotsErr  error
)

func screenshotDir(t testing.TB) string {
	shotsOnce.Do(func() {
		if os.Getenv("UPDATE_SCREENSHOTS") == "" {
			shotsDir, shotsErr = os.MkdirTemp("", "console-screenshots-")
			return
		}
		root, err := repoRoot()
		if err != nil {
			shotsErr = err
			return
		}
		shotsDir = filepath.Join(root, "docs", "console")
		shotsErr = os.MkdirAll(shotsDir, 0o755)
	})
	if shotsErr != nil {
		t.Fatalf("screenshots: %v", shotsErr)
	}
	return shotsDir
}

// repoRoot is the directory of the agent module's go.mod above the
// working directory (a test runs in its package's directory).
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.Contains(b, []byte("module github.com/lwm2m-agent/lwm2m-agent\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod of the agent module above the working directory")
		}
		dir = parent
	}
}

// js quotes a Go string as a JavaScript string literal.
func js(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
