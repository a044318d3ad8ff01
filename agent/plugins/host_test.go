package plugins_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"

	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/testbound"
	"github.com/lwm2m-agent/lwm2m-agent/agent/plugins"
	"github.com/lwm2m-agent/lwm2m-agent/sdk"
)

// Binaries built once for the package's tests.
var (
	binDir    string
	buildOnce sync.Map // name -> *builtBinary
)

type builtBinary struct {
	once sync.Once
	path string
	err  error
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "plugins-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	// a test still running after two minutes is stuck: it ends the binary
	// with its name and every goroutine's stack
	code := testbound.Run(m, 2*time.Minute)
	os.RemoveAll(dir)
	os.Exit(code)
}

// build compiles a plugin with `go build`: pkg in dir (its own module for
// the SDK example, this module for the test plugin).
func build(t testing.TB, name, dir, pkg string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds a plugin binary")
	}
	v, _ := buildOnce.LoadOrStore(name, &builtBinary{})
	b := v.(*builtBinary)
	b.once.Do(func() {
		b.path = filepath.Join(binDir, name)
		cmd := exec.Command("go", "build", "-buildvcs=false", "-o", b.path, pkg)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

func examplePlugin(t testing.TB) string {
	return build(t, "tempframe", "../../sdk/examples/tempframe", ".")
}

func testPlugin(t *testing.T) string {
	return build(t, "testplugin", ".", "./testdata/testplugin")
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func newHost(t *testing.T, specs ...plugins.Spec) *plugins.Host {
	t.Helper()
	h, err := plugins.New(context.Background(), plugins.Config{Plugins: specs}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

func stats(t *testing.T, h *plugins.Host, name string) plugins.Stats {
	t.Helper()
	for _, s := range h.Stats() {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no stats of %s", name)
	return plugins.Stats{}
}

func frame(centi int16) []byte {
	return binary.LittleEndian.AppendUint16(nil, uint16(centi))
}

// decodeRetrying is what a caller does: keep the value and retry while the
// plugin is unavailable; any other error is final.
func decodeRetrying(ctx context.Context, h *plugins.Host, name string, req plugins.DecodeRequest, maxFailCall *time.Duration) (plugins.DecodeResult, int, error) {
	retries := 0
	for {
		start := time.Now()
		res, err := h.Decode(ctx, name, req)
		if err == nil || !plugins.IsRetryable(err) {
			return res, retries, err
		}
		if d := time.Since(start); maxFailCall != nil && d > *maxFailCall {
			*maxFailCall = d
		}
		retries++
		select {
		case <-ctx.Done():
			return res, retries, fmt.Errorf("gave up after %d retries: %w", retries, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// The SDK's example decoder, built with `go build` from its own module,
// runs as a plugin process; killed in the middle of a stream of values it
// is restarted, and every value is decoded exactly as sent.
func TestExampleDecoderProcessSurvivesKill(t *testing.T) {
	bin := examplePlugin(t)
	h := newHost(t, plugins.Spec{Name: "temp", Kind: "decoder", Path: bin, Timeout: plugins.Duration(2 * time.Second), MinBackoff: plugins.Duration(300 * time.Millisecond)})

	res, err := h.Decode(context.Background(), "temp", plugins.DecodeRequest{ResourcePath: "/19/0/0", DeviceID: "100", Value: frame(2150)})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Success || len(res.Measurements) != 1 || res.Measurements[0].Value != 21.5 || res.Measurements[0].Unit != "C" || res.Measurements[0].Type != "c8y_Temperature" {
		t.Fatalf("decoded %+v", res)
	}
	bad, err := h.Decode(context.Background(), "temp", plugins.DecodeRequest{Value: []byte{1, 2, 3}})
	if err != nil || bad.Success || !strings.Contains(bad.Message, "3 bytes") {
		t.Fatalf("a 3-byte frame: %+v, %v; want a failed result", bad, err)
	}

	firstPID := stats(t, h, "temp").PID
	if firstPID == 0 {
		t.Fatal("no PID of the running plugin")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const n = 60
	var retried int
	var maxFail time.Duration
	for i := range n {
		if i == 20 {
			if err := syscall.Kill(firstPID, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		}
		want := int16(i*37 - 900)
		res, r, err := decodeRetrying(ctx, h, "temp", plugins.DecodeRequest{ResourcePath: "/19/0/0", Value: frame(want)}, &maxFail)
		if err != nil {
			t.Fatalf("value %d lost: %v", i, err)
		}
		retried += r
		if got := res.Measurements[0].Value; got != float64(want)/100 {
			t.Fatalf("value %d decoded as %v, want %v", i, got, float64(want)/100)
		}
	}
	s := stats(t, h, "temp")
	if retried == 0 || s.Restarts < 1 || s.PID == firstPID || s.PID == 0 || !s.Up {
		t.Fatalf("after the kill: %d retries, stats %+v (first PID %d); want retries, a restart and a new process", retried, s, firstPID)
	}
	// while the plugin was down, calls failed at once instead of waiting
	// for the timeout
	if maxFail > time.Second {
		t.Errorf("a call during the restart took %v to fail", maxFail)
	}
}

// The same example decoder run as a gRPC service (--listen) is reached by
// address.
func TestExampleDecoderAsService(t *testing.T) {
	addr, cmd, exited := exampleService(t)

	h := newHost(t, plugins.Spec{Name: "svc", Kind: "decoder", Address: addr, Timeout: plugins.Duration(time.Second)})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// the service may still be starting: unavailable until then
	res, _, err := decodeRetrying(ctx, h, "svc", plugins.DecodeRequest{Value: frame(-1250)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Measurements[0].Value != -12.5 {
		t.Fatalf("decoded %+v", res)
	}
	batch, err := h.DecodeBatch(ctx, "svc", []plugins.DecodeRequest{{Value: frame(100)}, {Value: []byte{9}}, {Value: frame(300)}})
	if err != nil {
		t.Fatal(err)
	}
	if len(batch) != 3 || batch[0].Measurements[0].Value != 1 || batch[1].Success || batch[2].Measurements[0].Value != 3 {
		t.Fatalf("batch %+v", batch)
	}
	if s := stats(t, h, "svc"); s.Via != "grpc" || s.Calls < 2 {
		t.Errorf("stats %+v", s)
	}
	// SIGTERM stops the service gracefully
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Errorf("service exited with %v after SIGTERM", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("service did not stop on SIGTERM")
	}
	_, err = h.Decode(context.Background(), "svc", plugins.DecodeRequest{Value: frame(1)})
	if !plugins.IsRetryable(err) {
		t.Errorf("decode with the service gone: %v, want a retryable error", err)
	}
}

// exampleService runs the example decoder as a gRPC service on a free
// loopback address; exited gets its end, and the test's end kills it.
func exampleService(t *testing.T) (addr string, cmd *exec.Cmd, exited chan error) {
	bin := examplePlugin(t)
	addr = freeAddr(t)
	cmd = exec.Command(bin, "--listen", addr)
	cmd.Stderr = testWriter{t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited = make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	return addr, cmd, exited
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func pidOf(t *testing.T, h *plugins.Host, name string) int {
	t.Helper()
	res, err := h.Decode(context.Background(), name, plugins.DecodeRequest{Value: []byte("pid")})
	if err != nil {
		t.Fatal(err)
	}
	return int(res.Measurements[0].Value)
}

// A plugin that stops answering is taken for hung after HungAfter
// timeouts in a row and replaced by a new process.
func TestHungPluginIsRestarted(t *testing.T) {
	bin := testPlugin(t)
	h := newHost(t, plugins.Spec{Name: "d", Kind: "decoder", Path: bin, Timeout: plugins.Duration(150 * time.Millisecond), HungAfter: 2, MinBackoff: plugins.Duration(50 * time.Millisecond)})
	before := pidOf(t, h, "d")
	for range 2 {
		start := time.Now()
		_, err := h.Decode(context.Background(), "d", plugins.DecodeRequest{Value: []byte("hang")})
		if !plugins.IsRetryable(err) || !errors.Is(err, plugins.ErrUnavailable) {
			t.Fatalf("hanging call: %v, want ErrUnavailable", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("hanging call returned after %v, timeout is 150ms", d)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		res, _, err := decodeRetrying(ctx, h, "d", plugins.DecodeRequest{Value: []byte("pid")}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if pid := int(res.Measurements[0].Value); pid != before {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("the hung process was not replaced")
		case <-time.After(50 * time.Millisecond):
		}
	}
	if s := stats(t, h, "d"); s.Restarts != 1 {
		t.Errorf("restarts = %d, want 1", s.Restarts)
	}
	if err := syscall.Kill(before, 0); err == nil {
		t.Errorf("the hung process %d still runs", before)
	}
}

// A plugin that keeps crashing is restarted with a growing wait, and the
// calls in between fail at once as retryable.
func TestCrashingPluginBacksOff(t *testing.T) {
	bin := testPlugin(t)
	h := newHost(t, plugins.Spec{Name: "d", Kind: "decoder", Path: bin, Timeout: plugins.Duration(2 * time.Second), MinBackoff: plugins.Duration(100 * time.Millisecond), MaxBackoff: plugins.Duration(400 * time.Millisecond)})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var crashTimes []time.Time
	for len(crashTimes) < 4 {
		_, _, err := decodeRetrying(ctx, h, "d", plugins.DecodeRequest{Value: []byte{7}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = h.Decode(ctx, "d", plugins.DecodeRequest{Value: []byte("crash")})
		if !plugins.IsRetryable(err) {
			t.Fatalf("call that crashed the plugin: %v, want retryable", err)
		}
		crashTimes = append(crashTimes, time.Now())
	}
	// 100, 200, 400, 400 ms of backoff (plus start time): at least 1.1 s
	if d := crashTimes[3].Sub(crashTimes[0]); d < 700*time.Millisecond {
		t.Errorf("4 crashes within %v: no backoff", d)
	}
	res, _, err := decodeRetrying(ctx, h, "d", plugins.DecodeRequest{Value: []byte{42}}, nil)
	if err != nil || res.Measurements[0].Value != 42 {
		t.Fatalf("after the crashes: %+v, %v", res, err)
	}
	if s := stats(t, h, "d"); s.Restarts != 4 {
		t.Errorf("restarts = %d, want 4", s.Restarts)
	}
}

func TestMappingAndCustomActionProcesses(t *testing.T) {
	bin := testPlugin(t)
	h := newHost(t,
		plugins.Spec{Name: "m", Kind: "mapping", Path: bin, Args: []string{"mapping"}},
		plugins.Spec{Name: "a", Kind: "customaction", Path: bin, Args: []string{"customaction"}},
	)
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	values := []plugins.ResourceValue{
		{DeviceID: "7", Path: sdk.MustParsePath("/3303/0/5700"), Value: sdk.Float(21.5), Time: t0},
		{DeviceID: "7", Path: sdk.MustParsePath("/3/0/0"), Value: sdk.String("ACME")},
		{DeviceID: "7", Path: sdk.MustParsePath("/3/0/9"), Value: sdk.Int(80)},
	}
	res, err := h.Map(context.Background(), "m", values)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Measurements) != 2 || res.Measurements[0].Value != 21.5 || !res.Measurements[0].Time.Equal(t0) || res.Measurements[0].Source != "7" || res.Measurements[1].Value != 80 {
		t.Errorf("measurements %+v", res.Measurements)
	}
	if len(res.Errors) != 1 || res.Errors[0].Index != 1 || res.Errors[0].Path != "/3/0/0" {
		t.Errorf("errors %+v, want value 1 /3/0/0", res.Errors)
	}
	run, err := h.Run(context.Background(), "a", plugins.ActionRequest{Action: "c8y_Alarm", Argument: "high", Values: values})
	if err != nil {
		t.Fatal(err)
	}
	if len(run.Events) != 1 || run.Events[0].Type != "c8y_Alarm" || run.Events[0].Text != "high" || fmt.Sprint(run.Events[0].Fragments["values"]) != "3" {
		t.Errorf("events %+v", run.Events)
	}
	// a name of another kind is not found
	if _, err := h.Map(context.Background(), "a", values); !errors.Is(err, plugins.ErrUnknownPlugin) {
		t.Errorf("map with a custom action plugin: %v", err)
	}
	if _, err := h.Decode(context.Background(), "nope", plugins.DecodeRequest{}); !errors.Is(err, plugins.ErrUnknownPlugin) {
		t.Errorf("unknown plugin: %v", err)
	}
}

// rawCodec answers the bytes it is given, whatever message the client
// expects: a plugin speaking garbage.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	if b, ok := v.([]byte); ok {
		return b, nil
	}
	return nil, fmt.Errorf("raw codec: %T", v)
}
func (rawCodec) Unmarshal(data []byte, v any) error { return nil }
func (rawCodec) Name() string                       { return "proto" }

var _ encoding.Codec = rawCodec{}

func TestGarbageAnswersAreErrors(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(grpc.ForceServerCodec(rawCodec{}), grpc.UnknownServiceHandler(func(_ any, stream grpc.ServerStream) error {
		var in []byte
		_ = stream.RecvMsg(&in)
		return stream.SendMsg([]byte{0xff, 0xff, 0xff, 0xff, 0x0f, 0x12, 0x99})
	}))
	var wg sync.WaitGroup
	wg.Go(func() { _ = s.Serve(lis) })
	t.Cleanup(func() { s.Stop(); wg.Wait() })

	bin := testPlugin(t)
	h := newHost(t,
		plugins.Spec{Name: "garbage", Kind: "decoder", Address: lis.Addr().String()},
		plugins.Spec{Name: "d", Kind: "decoder", Path: bin},
	)
	_, err = h.Decode(context.Background(), "garbage", plugins.DecodeRequest{Value: []byte{1}})
	if err == nil || plugins.IsRetryable(err) {
		t.Errorf("undecodable answer: %v, want a final error", err)
	}
	_, err = h.Map(context.Background(), "garbage", nil)
	if !errors.Is(err, plugins.ErrUnknownPlugin) {
		t.Errorf("map via decoder: %v", err)
	}
	// the SDK fails the value whose answer breaks the contract, and only it
	res, err := h.Decode(context.Background(), "d", plugins.DecodeRequest{Value: []byte("badalarm")})
	if err != nil || res.Success || !strings.Contains(res.Message, "severity") {
		t.Errorf("alarm of unknown severity: %+v, %v; want a failed result", res, err)
	}
	if s := stats(t, h, "garbage"); s.Errors != 1 || s.Calls != 1 {
		t.Errorf("stats %+v, want 1 call, 1 error", s)
	}
}

// Close ends the plugin processes and every goroutine the host started.
func TestCloseStopsProcessesAndGoroutines(t *testing.T) {
	bin := testPlugin(t)
	runtime.GC()
	before := runtime.NumGoroutine()
	h, err := plugins.New(context.Background(), plugins.Config{Plugins: []plugins.Spec{
		{Name: "d", Kind: "decoder", Path: bin},
		{Name: "m", Kind: "mapping", Path: bin, Args: []string{"mapping"}},
		{Name: "r", Kind: "decoder", Address: "127.0.0.1:1"},
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	pid := pidOf(t, h, "d")
	if _, err := h.Decode(context.Background(), "r", plugins.DecodeRequest{}); !plugins.IsRetryable(err) {
		t.Errorf("unreachable service: %v, want retryable", err)
	}
	h.Close()
	h.Close() // twice is fine
	if _, err := h.Decode(context.Background(), "d", plugins.DecodeRequest{Value: []byte{1}}); !errors.Is(err, plugins.ErrClosed) {
		t.Errorf("decode after close: %v", err)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("plugin process %d still runs after Close", pid)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= before {
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before New, %d after Close:\n%s", before, n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCollector(t *testing.T) {
	bin := testPlugin(t)
	h := newHost(t, plugins.Spec{Name: "d", Kind: "decoder", Path: bin})
	for _, v := range [][]byte{{1}, {2}} {
		_, _ = h.Decode(context.Background(), "d", plugins.DecodeRequest{Value: v})
	}
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	_, _ = h.Decode(gone, "d", plugins.DecodeRequest{Value: []byte{3}}) // a failed call
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(h.Collector()); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP lwm2m_agent_plugin_calls_total Calls to a plugin.
# TYPE lwm2m_agent_plugin_calls_total counter
lwm2m_agent_plugin_calls_total{kind="decoder",plugin="d"} 3
# HELP lwm2m_agent_plugin_errors_total Calls to a plugin that failed (unavailable, timed out, error or bad answer).
# TYPE lwm2m_agent_plugin_errors_total counter
lwm2m_agent_plugin_errors_total{kind="decoder",plugin="d"} 1
# HELP lwm2m_agent_plugin_up Whether the plugin answers now (0 while a process restarts, or since a call or health check went unanswered).
# TYPE lwm2m_agent_plugin_up gauge
lwm2m_agent_plugin_up{kind="decoder",plugin="d"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "lwm2m_agent_plugin_calls_total", "lwm2m_agent_plugin_errors_total", "lwm2m_agent_plugin_up"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(h.Collector(), "lwm2m_agent_plugin_call_duration_seconds"); n != 1 {
		t.Errorf("%d latency histograms, want 1", n)
	}
	if s := stats(t, h, "d"); s.LatencySum <= 0 || sum(s.LatencyCounts) != 3 {
		t.Errorf("latency %v %v", s.LatencySum, s.LatencyCounts)
	}
}

func sum(xs []uint64) (n uint64) {
	for _, x := range xs {
		n += x
	}
	return n
}
