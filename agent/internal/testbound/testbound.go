// Package testbound bounds how long one test may run. A test stuck on a
// lock or a receive otherwise sits until go test's -timeout (20 minutes
// in the Makefile) ends the whole binary, long after the moment worth
// seeing. Here a test past its bound ends the binary at once, with the
// test's name and every goroutine's stack on stderr.
//
// A package's TestMain calls Run (or Main) with the bound of its tests;
// a test that needs another bound, longer or shorter, calls Bound.
package testbound

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Main runs the package's tests with each bounded by d, then exits with
// their status.
func Main(m *testing.M, d time.Duration) {
	os.Exit(Run(m, d))
}

// Run runs the package's tests with each bounded by d and returns m.Run's
// status, for a TestMain with work of its own after the tests.
//
// Which test runs is read from the goroutines' stacks: a test runs on its
// own goroutine under testing.tRunner, so this needs nothing of the tests
// themselves and covers every run of every test, -count included.
func Run(m *testing.M, d time.Duration) int {
	w := newWatch(d)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.loop(stop)
	}()
	code := m.Run()
	close(stop)
	<-done
	return code
}

// Bound ends the test binary, with every goroutine's stack, if t has not
// ended within d. It also lifts Run's bound for t's top-level test while
// t runs, so a long test can ask for more time than its package's tests.
func Bound(t testing.TB, d time.Duration) {
	t.Helper()
	top, _, _ := strings.Cut(t.Name(), "/")
	extend(top, time.Now().Add(d))
	timer := time.AfterFunc(d, func() {
		expired(fmt.Sprintf("%s has not ended within its bound of %v", t.Name(), d))
	})
	t.Cleanup(func() {
		timer.Stop()
		// The rest of the top-level test gets the package's bound again
		// from here, not from its start.
		if w := current(); w != nil {
			extend(top, time.Now().Add(w.bound))
		}
	})
}

// Both are replaced in the package's own tests, which cannot exit.
var (
	stderr io.Writer = os.Stderr
	exit             = os.Exit
)

var (
	mu       sync.Mutex
	watching *watch
	// notBefore holds, by top-level test name, the time before which Run's
	// bound does not end that test (Bound).
	notBefore = map[string]time.Time{}
)

func current() *watch {
	mu.Lock()
	defer mu.Unlock()
	return watching
}

func extend(top string, until time.Time) {
	mu.Lock()
	defer mu.Unlock()
	if until.After(notBefore[top]) {
		notBefore[top] = until
	}
}

// expired writes why and all goroutines' stacks to stderr and ends the
// test binary, as go test's own -timeout does, but naming the test.
func expired(why string) {
	buf := stacks()
	fmt.Fprintf(stderr, "testbound: %s; all goroutines follow\n\n%s\n", why, buf)
	fmt.Fprintf(stderr, "testbound: %s\n", why)
	exit(2)
}

// stackSize is the size of the buffer the last dump needed: a package
// with thousands of goroutines (simulated devices) would otherwise stop
// the world for a few dumps too small each time it samples.
var stackSize atomic.Int64

// stacks returns every goroutine's stack, growing its buffer until the
// dump fits.
func stacks() []byte {
	buf := make([]byte, max(stackSize.Load(), 1<<20))
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			stackSize.Store(int64(len(buf)))
			return buf[:n]
		}
		buf = make([]byte, 2*len(buf))
	}
}

// watch samples the running tests and ends the binary when one of them
// has run past the bound.
type watch struct {
	bound time.Duration
	every time.Duration
	// since is when a test goroutine was first seen running, keyed by
	// goroutine ID and test function.
	since map[string]time.Time
}

func newWatch(d time.Duration) *watch {
	// A full stack dump stops the world; sampling at a tenth of the bound
	// (at most every 10 s) ends a stuck test soon after its bound at a
	// cost the tests do not feel.
	every := min(d/10, 10*time.Second)
	every = max(every, 10*time.Millisecond)
	w := &watch{bound: d, every: every, since: map[string]time.Time{}}
	mu.Lock()
	watching = w
	mu.Unlock()
	return w
}

func (w *watch) loop(stop <-chan struct{}) {
	tick := time.NewTicker(w.every)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-tick.C:
			if why := w.check(now, running(stacks())); why != "" {
				expired(why)
				return
			}
		}
	}
}

// check records the tests running now and returns why one of them has run
// too long, or "".
func (w *watch) check(now time.Time, tests []runningTest) string {
	seen := make(map[string]time.Time, len(tests))
	for _, r := range tests {
		key := r.goroutine + "\x00" + r.fn
		start, ok := w.since[key]
		if !ok {
			start = now
		}
		seen[key] = start
		if now.Sub(start) <= w.bound {
			continue
		}
		mu.Lock()
		lifted := now.Before(notBefore[r.top()])
		mu.Unlock()
		if !lifted {
			return fmt.Sprintf("%s (goroutine %s) has run for more than the bound of %v of its package's tests", r.fn, r.goroutine, w.bound)
		}
	}
	w.since = seen
	return ""
}

// runningTest is a test function running on its goroutine.
type runningTest struct {
	goroutine string
	// fn is TestName, TestName.func1 for a subtest, or "cleanup" and the
	// cleanup function under way.
	fn string
}

// top is the name of the top-level test fn belongs to.
func (r runningTest) top() string {
	top, _, _ := strings.Cut(r.fn, ".")
	return top
}

// running finds in a dump of all goroutines' stacks the tests that are
// running: on each goroutine of testing.tRunner not waiting in T.Parallel
// for its turn, the test function tRunner called or, once that returned,
// the cleanup function under way.
func running(dump []byte) []runningTest {
	var out []runningTest
	var g, prev, user string
	waiting, cleanup := false, false
	sc := bufio.NewScanner(bytes.NewReader(dump))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "goroutine "); ok {
			g, _, _ = strings.Cut(rest, " ")
			prev, user, waiting, cleanup = "", "", false, false
			continue
		}
		if line == "" || line[0] == '\t' || strings.HasPrefix(line, "created by ") {
			continue
		}
		fn := line
		if i := strings.LastIndexByte(fn, '('); i > 0 {
			fn = fn[:i]
		}
		switch {
		case fn == "testing.(*T).Parallel":
			waiting = true
		case fn == "testing.(*common).runCleanup":
			cleanup = true
		case fn == "testing.tRunner":
			switch {
			case waiting:
			case prev != "" && !isStd(prev):
				out = append(out, runningTest{goroutine: g, fn: shortName(prev)})
			case user != "" && cleanup:
				out = append(out, runningTest{goroutine: g, fn: "cleanup " + shortName(user)})
			case user != "":
				// A fuzz input runs under tRunner from testing's own code.
				out = append(out, runningTest{goroutine: g, fn: shortName(user)})
			}
		case !isStd(fn):
			user = fn
		}
		prev = fn
	}
	return out
}

// isStd reports whether fn is of the packages a test's goroutine runs in
// without being the test's own code.
func isStd(fn string) bool {
	for _, p := range []string{"testing.", "runtime.", "sync.", "internal/"} {
		if strings.HasPrefix(fn, p) {
			return true
		}
	}
	return false
}

// shortName drops the package path from a function's name:
// "example.com/x/agent/bootstrap.TestWrongKey.func1" becomes
// "TestWrongKey.func1".
func shortName(fn string) string {
	if i := strings.LastIndexByte(fn, '/'); i >= 0 {
		fn = fn[i+1:]
	}
	if _, name, ok := strings.Cut(fn, "."); ok {
		return name
	}
	return fn
}

// Until waits until cond holds, checking every 10 ms, and fails t with
// what it waited for once timeout has passed: a wait for the exact
// condition a test asserts, never for a fixed time.
func Until(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
