package plugins_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/testbound"
	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/testproc"
	"github.com/lwm2m-agent/lwm2m-agent/agent/plugins"
)

// stoppable starts the test plugin as decoder "d" with a short timeout,
// and returns its process ID; the process is sure to end with the test,
// stopped or not.
func stoppable(t *testing.T, hungAfter int) (*plugins.Host, int) {
	t.Helper()
	h := newHost(t, plugins.Spec{Name: "d", Kind: "decoder", Path: testPlugin(t), Timeout: plugins.Duration(300 * time.Millisecond),
		HungAfter: hungAfter, MinBackoff: plugins.Duration(50 * time.Millisecond)})
	pid := pidOf(t, h, "d")
	t.Cleanup(func() {
		_ = syscall.Kill(pid, syscall.SIGCONT)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	})
	return h, pid
}

// sigstop stops the process pid and returns once every thread of it is
// stopped.
func sigstop(t *testing.T, pid int) { testproc.Stop(t, pid) }

// A plugin process stopped with SIGSTOP while values flow neither exits
// nor answers, nor can it answer go-plugin's request to exit: its calls
// time out, it is taken for hung, killed and restarted, and every value is
// then decoded, exactly once.
func TestStoppedPluginIsKilledAndRestarted(t *testing.T) {
	h, first := stoppable(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	const n = 40
	var stoppedAt time.Time
	retries := 0
	for i := range n {
		if i == 10 {
			sigstop(t, first)
			stoppedAt = time.Now()
			// the first call after the stop times out, and the plugin
			// shows as down from then on
			if _, err := h.Decode(ctx, "d", plugins.DecodeRequest{Value: []byte{byte(i)}}); !plugins.IsRetryable(err) {
				t.Fatalf("call to the stopped plugin: %v, want retryable", err)
			}
			if s := stats(t, h, "d"); s.Up {
				t.Errorf("stopped plugin shows as up: %+v", s)
			}
		}
		res, r, err := decodeRetrying(ctx, h, "d", plugins.DecodeRequest{Value: []byte{byte(i)}}, nil)
		if err != nil {
			t.Fatalf("value %d: %v", i, err)
		}
		if !res.Success || res.Measurements[0].Value != float64(i) {
			t.Fatalf("value %d decoded as %+v", i, res)
		}
		retries += r
		if i == 10 {
			t.Logf("stopped plugin replaced: value 10 decoded %v after SIGSTOP, after %d retries", time.Since(stoppedAt).Round(time.Millisecond), retries)
		}
	}
	s := stats(t, h, "d")
	if s.RestartsBy[plugins.ReasonHang] != 1 || s.RestartsBy[plugins.ReasonCrash] != 0 || s.PID == first || !s.Up {
		t.Errorf("stats %+v; want one restart for a hang, a new process, up", s)
	}
	// the stopped process is gone (a zombie of it would still take signal 0
	// but go-plugin reaps it)
	testbound.Until(t, 10*time.Second, "the stopped process ends", func() bool { return syscall.Kill(first, 0) != nil })
	t.Logf("%d values sent, %d decoded, 0 lost, %d retried calls", n, n, retries)
}

// A stopped plugin that no value is sent to is found by its health check,
// and replaced before the next value comes.
func TestStoppedIdlePluginIsFoundByHealthCheck(t *testing.T) {
	h, first := stoppable(t, 2)
	sigstop(t, first)
	start := time.Now()
	testbound.Until(t, 20*time.Second, "the stopped plugin is restarted", func() bool {
		s := stats(t, h, "d")
		return s.RestartsBy[plugins.ReasonHang] == 1 && s.Up && s.PID != first
	})
	t.Logf("idle stopped plugin replaced after %v", time.Since(start).Round(time.Millisecond))
	if pid := pidOf(t, h, "d"); pid == first {
		t.Fatalf("still answered by the stopped process %d", pid)
	}
}

// A value that crashes the plugin, panics it or hangs it, in a batch of
// values of several devices, fails alone; every other value is decoded
// exactly once.
func TestDecodeEachIsolatesTheValueAtFault(t *testing.T) {
	bin := testPlugin(t)
	tests := []struct {
		value      string
		wantErr    bool   // the value has an error (else a failed result)
		wantReason string // in the error or message
		restarts   string // the reason of the restarts it causes
	}{
		{"crash", true, "exited during the call", plugins.ReasonCrash},
		{"panic", false, "plugin panicked", ""},
		{"hang", true, "no answer within", ""},
	}
	for _, tc := range tests {
		t.Run(tc.value, func(t *testing.T) {
			h := newHost(t, plugins.Spec{Name: "d", Kind: "decoder", Path: bin, Timeout: plugins.Duration(500 * time.Millisecond),
				MinBackoff: plugins.Duration(20 * time.Millisecond), MaxBackoff: plugins.Duration(200 * time.Millisecond)})
			const n, culprit = 60, 37
			reqs := make([]plugins.DecodeRequest, n)
			for i := range reqs {
				reqs[i] = plugins.DecodeRequest{DeviceID: fmt.Sprint(100 + i%6), ResourcePath: "/19/0/0", Value: []byte{byte(i + 1)}}
			}
			reqs[culprit].Value = []byte(tc.value)
			start := time.Now()
			out := h.DecodeEach(context.Background(), "d", reqs)
			took := time.Since(start)
			decoded := 0
			for i, o := range out {
				if i == culprit {
					continue
				}
				if o.Err != nil || !o.Result.Success || len(o.Result.Measurements) != 1 || o.Result.Measurements[0].Value != float64(i+1) {
					t.Errorf("value %d: %+v", i, o)
					continue
				}
				decoded++
			}
			o := out[culprit]
			if tc.wantErr {
				if !errors.Is(o.Err, plugins.ErrBadValue) || plugins.IsRetryable(o.Err) || !strings.Contains(o.Err.Error(), tc.wantReason) {
					t.Errorf("culprit: %+v; want ErrBadValue with %q", o, tc.wantReason)
				}
			} else if o.Err != nil || o.Result.Success || !strings.Contains(o.Result.Message, tc.wantReason) {
				t.Errorf("culprit: %+v; want a failed result with %q", o, tc.wantReason)
			}
			s := stats(t, h, "d")
			if tc.restarts != "" && s.RestartsBy[tc.restarts] < 2 {
				t.Errorf("restarts %v; want the culprit's crash found alone, a restart for each", s.RestartsBy)
			}
			t.Logf("%s: %d values, %d decoded, 1 failed alone, in %v with %d calls and %d restarts", tc.value, n, decoded, took.Round(time.Millisecond), s.Calls, s.Restarts)
		})
	}
}

// A batch that a stopped plugin leaves unanswered is not blamed on its
// values: they are kept for a retry.
func TestDecodeEachDoesNotBlameAStoppedPlugin(t *testing.T) {
	h, pid := stoppable(t, 5)
	sigstop(t, pid)
	reqs := []plugins.DecodeRequest{{Value: []byte{1}}, {Value: []byte{2}}, {Value: []byte{3}}}
	for i, o := range h.DecodeEach(context.Background(), "d", reqs) {
		if !plugins.IsRetryable(o.Err) {
			t.Errorf("value %d of a stopped plugin: %+v, want a retryable error", i, o)
		}
	}
}

// capture is a slog handler that keeps the records it is given.
type capture struct {
	mu   *sync.Mutex
	recs *[]slog.Record
	with []slog.Attr
}

func newCapture() capture { return capture{mu: &sync.Mutex{}, recs: &[]slog.Record{}} }

func (c capture) Enabled(context.Context, slog.Level) bool { return true }
func (c capture) WithGroup(string) slog.Handler            { return c }
func (c capture) WithAttrs(as []slog.Attr) slog.Handler {
	c.with = append(append([]slog.Attr(nil), c.with...), as...)
	return c
}

func (c capture) Handle(_ context.Context, r slog.Record) error {
	r = r.Clone()
	r.AddAttrs(c.with...)
	c.mu.Lock()
	defer c.mu.Unlock()
	*c.recs = append(*c.recs, r)
	return nil
}

func (c capture) messages() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	for _, r := range *c.recs {
		fmt.Fprintf(&b, "\n%v %s", r.Level, r.Message)
		r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true })
	}
	return b.String()
}

func (c capture) find(msg, plugin string) (slog.Record, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range *c.recs {
		attrs := map[string]string{}
		r.Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value.String(); return true })
		if r.Message == msg && attrs["plugin"] == plugin {
			return r, true
		}
	}
	return slog.Record{}, false
}

// A plugin's log lines reach the agent's log at their own level, with the
// time they were written and the plugin's name.
func TestPluginLogLevelsAndTimes(t *testing.T) {
	bin := testPlugin(t)
	c := newCapture()
	h, err := plugins.New(context.Background(), plugins.Config{Plugins: []plugins.Spec{{Name: "chatty", Kind: "decoder", Path: bin}}}, slog.New(c))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	before := time.Now().Add(-time.Millisecond)
	if _, err := h.Decode(context.Background(), "chatty", plugins.DecodeRequest{Value: []byte("log")}); err != nil {
		t.Fatal(err)
	}
	after := time.Now().Add(time.Millisecond)
	for _, want := range []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError} {
		name := strings.ToLower(want.String())
		var r slog.Record
		testbound.Until(t, 10*time.Second, "the plugin's "+name+" line in "+c.messages(), func() bool {
			var ok bool
			r, ok = c.find(name, "chatty")
			return ok
		})
		if r.Level != want {
			t.Errorf("%s line logged at %v", name, r.Level)
		}
		// written by the plugin between the call's start and its answer
		if r.Time.Before(before) || r.Time.After(after) {
			t.Errorf("%s line at %v, want between %v and %v", name, r.Time, before, after)
		}
		attrs := map[string]any{}
		r.Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value.Any(); return true })
		if _, ok := attrs["timestamp"]; ok {
			t.Errorf("%s line keeps go-plugin's timestamp attribute: %v", name, attrs)
		}
		if fmt.Sprint(attrs["n"]) == "" || attrs["kind"] != "decoder" {
			t.Errorf("%s line attributes %v", name, attrs)
		}
	}
}

// The restarts metric says why a plugin was restarted.
func TestRestartReasonsMetric(t *testing.T) {
	bin := testPlugin(t)
	h := newHost(t, plugins.Spec{Name: "d", Kind: "decoder", Path: bin, Timeout: plugins.Duration(300 * time.Millisecond), HungAfter: 1, MinBackoff: plugins.Duration(20 * time.Millisecond)})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, v := range []string{"crash", "hang"} {
		_, _ = h.Decode(ctx, "d", plugins.DecodeRequest{Value: []byte(v)})
		if _, _, err := decodeRetrying(ctx, h, "d", plugins.DecodeRequest{Value: []byte{1}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	testbound.Until(t, 10*time.Second, "two restarts", func() bool { return stats(t, h, "d").Restarts == 2 })
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(h.Collector())
	want := `
# HELP lwm2m_agent_plugin_restarts_total Restarts of a plugin process, by reason: crash (it exited), hang (calls or health checks unanswered within the timeout), start (it did not start).
# TYPE lwm2m_agent_plugin_restarts_total counter
lwm2m_agent_plugin_restarts_total{kind="decoder",plugin="d",reason="crash"} 1
lwm2m_agent_plugin_restarts_total{kind="decoder",plugin="d",reason="hang"} 1
lwm2m_agent_plugin_restarts_total{kind="decoder",plugin="d",reason="start"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "lwm2m_agent_plugin_restarts_total"); err != nil {
		t.Error(err)
	}
	b, _ := json.Marshal(stats(t, h, "d").RestartsBy)
	t.Logf("restarts by reason %s", b)
}

// A decoder service that stops answering (stopped with SIGSTOP) has no
// process of the agent's to restart: its calls time out, to be retried,
// and it shows as down until it answers again.
func TestStoppedServiceShowsDown(t *testing.T) {
	addr, cmd, _ := exampleService(t)
	h := newHost(t, plugins.Spec{Name: "svc", Kind: "decoder", Address: addr, Timeout: plugins.Duration(300 * time.Millisecond)})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, _, err := decodeRetrying(ctx, h, "svc", plugins.DecodeRequest{Value: frame(100)}, nil); err != nil {
		t.Fatal(err)
	}
	if s := stats(t, h, "svc"); !s.Up {
		t.Fatalf("answering service shows as down: %+v", s)
	}
	sigstop(t, cmd.Process.Pid)
	_, err := h.Decode(ctx, "svc", plugins.DecodeRequest{Value: frame(200)})
	if !plugins.IsRetryable(err) {
		t.Fatalf("call to the stopped service: %v, want retryable", err)
	}
	if s := stats(t, h, "svc"); s.Up {
		t.Errorf("stopped service shows as up: %+v", s)
	}
	if err := syscall.Kill(cmd.Process.Pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	res, _, err := decodeRetrying(ctx, h, "svc", plugins.DecodeRequest{Value: frame(300)}, nil)
	if err != nil || res.Measurements[0].Value != 3 {
		t.Fatalf("after SIGCONT: %+v, %v", res, err)
	}
	if s := stats(t, h, "svc"); !s.Up || s.Restarts != 0 {
		t.Errorf("service answering again: %+v, want up and no restarts", s)
	}
}
