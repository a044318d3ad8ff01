package testbound

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// stuckEnv makes TestStuck block, in a test binary started by
// TestStuckTestEndsBinary with a short bound.
const stuckEnv = "TESTBOUND_STUCK"

func TestMain(m *testing.M) {
	bound := time.Minute
	if os.Getenv(stuckEnv) != "" {
		bound = 300 * time.Millisecond
	}
	Main(m, bound)
}

func TestStuck(t *testing.T) {
	if os.Getenv(stuckEnv) == "" {
		t.Skip("runs only in the binary TestStuckTestEndsBinary starts")
	}
	<-make(chan struct{})
}

// TestStuckTestEndsBinary runs a test that never ends under Main: the
// binary must end soon after the bound, naming the test, with the stacks.
func TestStuckTestEndsBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the test binary again")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestStuck$", "-test.timeout=1m")
	cmd.Env = append(os.Environ(), stuckEnv+"=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("stuck test binary: %v, want exit status 2; stderr:\n%s", err, stderr.String())
	}
	if ctx.Err() != nil {
		t.Fatalf("the stuck binary was ended by the test's deadline after %v", time.Since(start))
	}
	out := stderr.String()
	for _, want := range []string{"testbound: TestStuck (goroutine ", "testbound.TestStuck(", "testing.tRunner("} {
		if !strings.Contains(out, want) {
			t.Errorf("stderr lacks %q:\n%s", want, out)
		}
	}
}

func TestRunning(t *testing.T) {
	self := running(stacks())
	if !slices.ContainsFunc(self, func(r runningTest) bool { return r.fn == "TestRunning" }) {
		t.Fatalf("running = %+v, want TestRunning", self)
	}
	t.Run("sub", func(t *testing.T) {
		got := running(stacks())
		for _, want := range []string{"TestRunning", "TestRunning.func2"} {
			if !slices.ContainsFunc(got, func(r runningTest) bool { return r.fn == want }) {
				t.Errorf("running = %+v, want %s", got, want)
			}
		}
	})
}

func TestRunningSkipsWaitingParallel(t *testing.T) {
	dump := []byte(`goroutine 7 [chan receive]:
testing.(*T).Parallel(0xc000104340)
	/go/src/testing/testing.go:1600 +0x1f5
example.com/x/agent/p.TestWaits(0xc000104340)
	/x/p_test.go:10 +0x1a
testing.tRunner(0xc000104340, 0x5c2d08)
	/go/src/testing/testing.go:1690 +0xf4
created by testing.(*T).Run in goroutine 1
	/go/src/testing/testing.go:1743 +0x390

goroutine 9 [select, 3 minutes]:
example.com/x/agent/p.(*client).request(0xc0000a2000)
	/x/client_test.go:117 +0x2b0
example.com/x/agent/p.TestRuns.func1(0xc000104680)
	/x/p_test.go:20 +0x45
testing.tRunner(0xc000104680, 0xc0000b6060)
	/go/src/testing/testing.go:1690 +0xf4
created by testing.(*T).Run in goroutine 8
	/go/src/testing/testing.go:1743 +0x390

goroutine 10 [chan receive]:
runtime.gopark(0x0?, 0x0?, 0x0?, 0x0?, 0x0?)
	/go/src/runtime/proc.go:435 +0xce
example.com/x/agent/p.startServer.func2()
	/x/server_test.go:50 +0x45
testing.(*common).Cleanup.func1()
	/go/src/testing/testing.go:1211 +0x163
testing.(*common).runCleanup(0xc000104820, 0x0)
	/go/src/testing/testing.go:1443 +0x1d7
testing.tRunner.func2()
	/go/src/testing/testing.go:1655 +0x25
testing.tRunner(0xc000104820, 0x5c2d10)
	/go/src/testing/testing.go:1696 +0x104
created by testing.(*T).Run in goroutine 1
	/go/src/testing/testing.go:1743 +0x390

goroutine 11 [chan receive]:
testing.tRunner.func1()
	/go/src/testing/testing.go:1625 +0x3ea
testing.tRunner(0xc000104b60, 0x5c2d18)
	/go/src/testing/testing.go:1696 +0x104
created by testing.(*T).Run in goroutine 1
	/go/src/testing/testing.go:1743 +0x390
`)
	got := running(dump)
	want := []runningTest{{goroutine: "9", fn: "TestRuns.func1"}, {goroutine: "10", fn: "cleanup startServer.func2"}}
	if !slices.Equal(got, want) {
		t.Fatalf("running = %+v, want %+v", got, want)
	}
}

func TestCheck(t *testing.T) {
	t0 := time.Now()
	r := runningTest{goroutine: "42", fn: "TestCheckTarget.func1"}
	tests := []struct {
		name   string
		lift   time.Duration // Bound's lift for TestCheckTarget from t0; 0 for none
		at     time.Duration // the second sample, after the first at t0
		expire bool
	}{
		{"within the bound", 0, 900 * time.Millisecond, false},
		{"past the bound", 0, 1100 * time.Millisecond, true},
		{"past the bound, lifted by Bound", 5 * time.Second, 1100 * time.Millisecond, false},
		{"past the lift", 5 * time.Second, 6 * time.Second, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			delete(notBefore, "TestCheckTarget")
			mu.Unlock()
			if tt.lift > 0 {
				extend("TestCheckTarget", t0.Add(tt.lift))
			}
			w := &watch{bound: time.Second, since: map[string]time.Time{}}
			if why := w.check(t0, []runningTest{r}); why != "" {
				t.Fatalf("first sample: %s", why)
			}
			why := w.check(t0.Add(tt.at), []runningTest{r})
			if got := why != ""; got != tt.expire {
				t.Fatalf("expired %v (%q), want %v", got, why, tt.expire)
			}
			if tt.expire && !strings.Contains(why, "TestCheckTarget.func1 (goroutine 42)") {
				t.Errorf("why %q does not name the test", why)
			}
		})
	}
	// A test seen once no more is forgotten: the next one on the same
	// goroutine starts afresh.
	w := &watch{bound: time.Second, since: map[string]time.Time{}}
	w.check(t0, []runningTest{r})
	w.check(t0.Add(500*time.Millisecond), nil)
	if why := w.check(t0.Add(1100*time.Millisecond), []runningTest{r}); why != "" {
		t.Errorf("a test seen again after it ended: %s", why)
	}
}

// TestBoundExpires checks Bound's own deadline with the exit replaced.
func TestBoundExpires(t *testing.T) {
	var mu sync.Mutex
	var out bytes.Buffer
	exited := make(chan int, 1)
	stderr, exit = lockedWriter{&mu, &out}, func(code int) { exited <- code }
	t.Cleanup(func() { stderr, exit = os.Stderr, os.Exit })

	t.Run("slow", func(t *testing.T) {
		Bound(t, 20*time.Millisecond)
		select {
		case code := <-exited:
			if code != 2 {
				t.Errorf("exit code %d, want 2", code)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the bound did not expire")
		}
	})
	mu.Lock()
	defer mu.Unlock()
	for _, want := range []string{"testbound: TestBoundExpires/slow has not ended within its bound of 20ms", "testbound.TestBoundExpires.func"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, out.String())
		}
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
