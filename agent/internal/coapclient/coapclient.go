// Package coapclient builds and runs, for interop tests, an LwM2M 1.1
// client written in C on libcoap (Debian's libcoap3 with OpenSSL): a CoAP
// and DTLS stack independent of the agent's go-coap and pion. The client
// has the Server, Device and Firmware Update objects and updates its
// firmware by push (Block1 into /5/0/0) or pull (Package URI over coap://
// or coaps://, Block2). It prints each step as an "event=NAME key=value"
// line, which Client collects so that a test can wait for what the device
// saw. The C source is testdata/client.c; its flags are at its top.
// COAPCLIENT_LOG=1 logs the client's output at the end of passing tests
// too.
package coapclient

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

//go:embed testdata/client.c
var source []byte

// pkgName is libcoap's pkg-config name with the OpenSSL DTLS back end.
const pkgName = "libcoap-3-openssl"

// Build compiles the client into the test's temporary directory and
// returns its path. CI installs gcc and libcoap3-dev; elsewhere the test
// is skipped with a message saying what to install.
func Build(t testing.TB) string {
	t.Helper()
	cc, err := exec.LookPath("cc")
	if err != nil {
		t.Skip("no C compiler (apt-get install gcc libcoap3-dev); CI installs it")
	}
	flags, err := exec.Command("pkg-config", "--cflags", "--libs", pkgName).Output()
	if err != nil {
		t.Skipf("no %s from pkg-config (apt-get install pkg-config libcoap3-dev); CI installs it: %v", pkgName, err)
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "client.c")
	if err := os.WriteFile(src, source, 0o600); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "coapclient")
	args := append([]string{"-std=c99", "-Wall", "-Werror", "-O2", "-o", bin, src}, strings.Fields(string(flags))...)
	out, err := exec.Command(cc, args...).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "coap3/coap.h") {
			t.Skipf("no libcoap headers (apt-get install libcoap3-dev); CI installs it:\n%s", out)
		}
		t.Fatalf("build libcoap client: %v\n%s", err, out)
	}
	return bin
}

// Config is what a client is started with; the zero value of a field
// leaves the client's default.
type Config struct {
	Server     string // coap://HOST:PORT or coaps://HOST:PORT
	Endpoint   string
	Identity   string // PSK identity, for coaps (the server and downloads)
	Key        []byte // PSK key
	Lifetime   time.Duration
	Firmware   string // /3/0/3 at start
	NewVersion string // /3/0/3 after an update, instead of the package's
	// Delivery is /5/0/9: "pull", "push" or "both".
	Delivery string
	// Protocols is /5/0/8: some of "coap", "coaps", "http", "https".
	Protocols []string
	// HTTPRefusal is how an http(s) Package URI is refused: "result"
	// (Update Result 9) or "bad" (4.00 to the write).
	HTTPRefusal string
	MaxPackage  int
	BlockSZX    int // 0..6; 0 leaves the default, 6 (1024-byte blocks)
	// Fail makes every update fail one way: "storage", "ram",
	// "connection", "integrity", "type", "uri", "update" or "protocol".
	Fail            string
	DownloadTimeout time.Duration
	Extra           []string // more flags, as the C source lists them
}

// Args returns the client's command-line flags for c.
func (c Config) Args() []string {
	a := []string{"-server", c.Server, "-ep", c.Endpoint}
	add := func(flag, v string) {
		if v != "" {
			a = append(a, flag, v)
		}
	}
	add("-id", c.Identity)
	if len(c.Key) > 0 {
		add("-key", hex.EncodeToString(c.Key))
	}
	if c.Lifetime > 0 {
		add("-lt", strconv.Itoa(int(c.Lifetime/time.Second)))
	}
	add("-fw", c.Firmware)
	add("-new-version", c.NewVersion)
	add("-delivery", c.Delivery)
	add("-protocols", strings.Join(c.Protocols, ","))
	add("-http-refusal", c.HTTPRefusal)
	if c.MaxPackage > 0 {
		add("-max-package", strconv.Itoa(c.MaxPackage))
	}
	if c.BlockSZX > 0 {
		add("-block-szx", strconv.Itoa(c.BlockSZX))
	}
	add("-fail", c.Fail)
	if c.DownloadTimeout > 0 {
		add("-download-timeout", strconv.Itoa(int(c.DownloadTimeout/time.Second)))
	}
	return append(a, c.Extra...)
}

// Event is one "event=NAME key=value ..." line of the client.
type Event struct {
	Name   string
	Fields map[string]string
	Line   string
}

// ParseEvent parses an event line; ok is false for any other line.
func ParseEvent(line string) (e Event, ok bool) {
	words := strings.Fields(line)
	if len(words) == 0 || !strings.HasPrefix(words[0], "event=") {
		return Event{}, false
	}
	e = Event{Name: strings.TrimPrefix(words[0], "event="), Fields: map[string]string{}, Line: line}
	for _, w := range words[1:] {
		k, v, _ := strings.Cut(w, "=")
		e.Fields[k] = v
	}
	return e, true
}

// Matches reports whether e is named name and has every "key=value" of kv.
func (e Event) Matches(name string, kv ...string) bool {
	if e.Name != name {
		return false
	}
	for _, f := range kv {
		k, v, _ := strings.Cut(f, "=")
		if got, ok := e.Fields[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// Client is a running client process, owned by the test that started it.
type Client struct {
	cmd *exec.Cmd

	mu      sync.Mutex
	events  []Event
	output  bytes.Buffer // stdout and stderr, for failure messages
	changed chan struct{}
	done    chan struct{} // closed once the process has exited
	err     error         // its exit status, once done
}

// Start runs bin with args. The client stops (SIGTERM, so it deregisters)
// at the test's end, and its output is logged when the test failed.
func Start(t testing.TB, bin string, args ...string) *Client {
	t.Helper()
	cmd := exec.Command(bin, args...)
	c := &Client{cmd: cmd, changed: make(chan struct{}), done: make(chan struct{})}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = lockedWriter{c}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start libcoap client: %v", err)
	}
	go c.read(stdout)
	t.Cleanup(func() {
		// an exit status is the business of tests that call Stop; one
		// that had to be killed is everyone's
		if err := c.Stop(); errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("libcoap client: %v", err)
		}
		if t.Failed() || os.Getenv("COAPCLIENT_LOG") != "" {
			t.Logf("libcoap client output:\n%s", c.Output())
		}
	})
	return c
}

// StartDevice builds the client, starts it with cfg and waits until it
// has registered.
func StartDevice(t testing.TB, cfg Config) *Client {
	t.Helper()
	c := Start(t, Build(t), cfg.Args()...)
	c.Wait(t, 20*time.Second, "registered")
	return c
}

type lockedWriter struct{ c *Client }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.c.mu.Lock()
	defer w.c.mu.Unlock()
	return w.c.output.Write(p)
}

// read collects stdout until the process closes it, then reaps it.
func (c *Client) read(r interface{ Read([]byte) (int, error) }) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		c.mu.Lock()
		c.output.WriteString(line + "\n")
		if e, ok := ParseEvent(line); ok {
			c.events = append(c.events, e)
			close(c.changed)
			c.changed = make(chan struct{})
		}
		c.mu.Unlock()
	}
	err := c.cmd.Wait()
	c.mu.Lock()
	c.err = err
	c.mu.Unlock()
	close(c.done)
}

// Output returns everything the client printed so far.
func (c *Client) Output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.output.String()
}

// Events returns the events so far, oldest first.
func (c *Client) Events() []Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Event(nil), c.events...)
}

// Mark is the number of events so far: WaitAfter(mark, ...) then sees
// only later ones.
func (c *Client) Mark() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.events)
}

// Wait waits up to d for an event named name with every "key=value" of
// kv, among all events since the start, and returns the first such.
func (c *Client) Wait(t testing.TB, d time.Duration, name string, kv ...string) Event {
	t.Helper()
	return c.WaitAfter(t, 0, d, name, kv...)
}

// WaitAfter is Wait among the events after the first mark ones.
func (c *Client) WaitAfter(t testing.TB, mark int, d time.Duration, name string, kv ...string) Event {
	t.Helper()
	e, err := c.waitAfter(mark, d, name, kv...)
	if err != nil {
		t.Fatalf("libcoap client: %v\noutput:\n%s", err, c.Output())
	}
	return e
}

func (c *Client) waitAfter(mark int, d time.Duration, name string, kv ...string) (Event, error) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		e, found, changed := c.findAfter(mark, name, kv...)
		if found {
			return e, nil
		}
		select {
		case <-changed:
		case <-c.done:
			// every line was read before done was closed
			if e, found, _ := c.findAfter(mark, name, kv...); found {
				return e, nil
			}
			return Event{}, fmt.Errorf("exited (%v) without event=%s %s", c.exitErr(), name, strings.Join(kv, " "))
		case <-timer.C:
			return Event{}, fmt.Errorf("no event=%s %s within %v", name, strings.Join(kv, " "), d)
		}
	}
}

// findAfter looks for the event among those after mark; changed is
// closed when the next event comes.
func (c *Client) findAfter(mark int, name string, kv ...string) (e Event, found bool, changed <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.events[min(mark, len(c.events)):] {
		if e.Matches(name, kv...) {
			return e, true, nil
		}
	}
	return Event{}, false, c.changed
}

func (c *Client) exitErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Done is closed once the process has exited.
func (c *Client) Done() <-chan struct{} { return c.done }

// Stop sends SIGTERM, which makes the client deregister, and waits for it
// to exit (killing it after 10 s). It returns the exit error, nil for a
// clean exit; stopping a stopped client returns the same.
func (c *Client) Stop() error {
	select {
	case <-c.done:
		return c.exitErr()
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	select {
	case <-c.done:
		return c.exitErr()
	case <-ctx.Done():
		_ = c.cmd.Process.Kill()
		<-c.done
		return fmt.Errorf("did not exit within 10 s of SIGTERM: %w", ctx.Err())
	}
}
