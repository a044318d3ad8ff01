package mapping_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/mapping"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/plugins"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/storetest"
)

// The test plugin program (agent/plugins/testdata/testplugin), built
// once for the package's tests.
var testPlugin struct {
	once sync.Once
	path string
	err  error
}

func buildTestPlugin(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the test plugin")
	}
	testPlugin.once.Do(func() {
		dir, err := os.MkdirTemp("", "mapping-testplugin-")
		if err != nil {
			testPlugin.err = err
			return
		}
		testPlugin.path = filepath.Join(dir, "testplugin")
		cmd := exec.Command("go", "build", "-buildvcs=false", "-o", testPlugin.path, "./agent/plugins/testdata/testplugin")
		cmd.Dir = "../.."
		if out, err := cmd.CombinedOutput(); err != nil {
			testPlugin.err = fmt.Errorf("go build the test plugin: %v\n%s", err, out)
		}
	})
	if testPlugin.err != nil {
		t.Fatal(testPlugin.err)
	}
	return testPlugin.path
}

// decoderRig is a pipeline whose resource /10268/0/6029 names the
// decoder tp, the test plugin run as a plugin process, with the decode
// backlog in the embedded store.
type decoderRig struct {
	t       *testing.T
	st      store.Engine
	p       *mapping.Pipeline
	dec     *mapping.PluginDecoder
	host    *plugins.Host
	devices []mapping.Device
	base    time.Time
}

var latest = node.MustParsePath("/10268/0/6029")

func newDecoderRig(t *testing.T, devices int, args []string, timeout time.Duration, opt mapping.DecoderOptions) *decoderRig {
	t.Helper()
	bin := buildTestPlugin(t)
	st := storetest.OpenTest(t)
	log := slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	host, err := plugins.New(ctx, plugins.Config{Plugins: []plugins.Spec{{
		Name: "tp", Kind: "decoder", Path: bin, Args: append([]string{"decoder"}, args...),
		Timeout: plugins.Duration(timeout), MinBackoff: plugins.Duration(20 * time.Millisecond), MaxBackoff: plugins.Duration(200 * time.Millisecond),
	}}}, log)
	if err != nil {
		t.Fatal(err)
	}
	src := sourceFunc(func(string, uint16) map[uint16]mapping.Functionality {
		return map[uint16]mapping.Functionality{latest.Resource: {CustomAction: "decoder:tp"}}
	})
	p := mapping.New(mapping.Config{Store: st, Source: src, Logger: log, Writer: mapping.WriterOptions{FlushInterval: 10 * time.Millisecond}})
	opt.Backlog, opt.Logger = st, log
	dec := mapping.NewPluginDecoder(host, p, opt)
	p.SetDecoder(dec)
	r := &decoderRig{t: t, st: st, p: p, dec: dec, host: host, base: time.Now().UTC().Truncate(time.Second)}
	for i := range devices {
		ep := fmt.Sprintf("ep-%d", i)
		id, err := st.CreateDevice(ctx, "acme", ep)
		if err != nil {
			t.Fatal(err)
		}
		r.devices = append(r.devices, mapping.Device{Tenant: "acme", ID: id, Endpoint: ep})
	}
	wctx, stopWriter := context.WithCancel(ctx)
	go p.RunWriter(wctx)
	t.Cleanup(func() {
		stopWriter()
		<-p.Done()
		host.Close()
	})
	return r
}

// run runs the decoder until the test ends (before the writer stops).
func (r *decoderRig) run() {
	dctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.dec.Run(dctx)
	}()
	r.t.Cleanup(func() {
		cancel()
		<-done
	})
}

// send reports value i of device d: one byte, i.
func (r *decoderRig) send(d, i int) {
	r.p.Handle(ctx, mapping.Input{Device: r.devices[d], Records: []node.Record{
		{Path: latest, Value: node.Opaque([]byte{byte(i)}), Time: r.base.Add(time.Duration(i) * time.Millisecond)},
	}})
}

// decoded returns each device's decoded values in the order they were
// stored (by measurement id).
func (r *decoderRig) decoded() [][]int {
	r.t.Helper()
	out := make([][]int, len(r.devices))
	for d, dev := range r.devices {
		ms, _, err := r.st.ListMeasurements(ctx, "acme", store.MeasurementFilter{Source: dev.ID, Type: "v", Page: page()})
		if err != nil {
			r.t.Fatal(err)
		}
		slices.SortFunc(ms, func(a, b store.Measurement) int { return idNumber(a.ID) - idNumber(b.ID) })
		for _, m := range ms {
			v := m.Fragments["v"].(map[string]any)["v"].(map[string]any)["value"].(float64)
			out[d] = append(out[d], int(v))
		}
	}
	return out
}

func idNumber(id string) int {
	n, _ := strconv.Atoi(id)
	return n
}

func (r *decoderRig) waiting() int64 {
	r.t.Helper()
	st, err := r.st.DecodeBacklogStats(ctx)
	if err != nil {
		r.t.Fatal(err)
	}
	var n int64
	for _, s := range st {
		n += s.Waiting
	}
	return n
}

func (r *decoderRig) mappingAlarms(d int) []store.Alarm {
	r.t.Helper()
	al, _, err := r.st.ListAlarms(ctx, "acme", store.AlarmFilter{Source: r.devices[d].ID, Type: mapping.MappingErrorAlarm, Page: page()})
	if err != nil {
		r.t.Fatal(err)
	}
	return al
}

// checkOnceInOrder fails the test unless device d's values were decoded
// exactly once each, want of them, in the order they were sent.
func checkOnceInOrder(t *testing.T, got [][]int, want []int) {
	t.Helper()
	for d := range got {
		var exp []int
		for i := range want[d] {
			exp = append(exp, i)
		}
		if !slices.Equal(got[d], exp) {
			t.Errorf("device %d's values decoded as %v, want each of 0..%d once, in order", d, got[d], want[d]-1)
		}
	}
}

func waitUntil(t *testing.T, d time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// A decoder slower than the values come: they wait in the backlog, a
// batch too large to be answered within the plugin's timeout is cut
// down (the host splits it) rather than failed or tried again whole
// forever, and every value is decoded once, each device's in order.
func TestSlowDecoderLosesNothing(t *testing.T) {
	const devices, each = 3, 40
	r := newDecoderRig(t, devices, []string{"delay=25ms"}, time.Second, mapping.DecoderOptions{Backoff: 10 * time.Millisecond})
	start := time.Now()
	// half of the values before the decoder runs: 60 values, a first
	// batch of 1.5 s against a timeout of 1 s
	for i := range each / 2 {
		for d := range devices {
			r.send(d, i)
		}
	}
	if n := r.waiting(); n != devices*each/2 {
		t.Fatalf("%d values waiting in the backlog, want %d", n, devices*each/2)
	}
	r.run()
	for i := each / 2; i < each; i++ {
		for d := range devices {
			r.send(d, i)
		}
	}
	sent := time.Since(start)
	// counted once the values have left the backlog
	waitUntil(t, 60*time.Second, "every value decoded", func() bool { return r.dec.Stats().Decoded >= devices*each })
	drained := time.Since(start)
	checkOnceInOrder(t, r.decoded(), []int{each, each, each})
	s := r.dec.Stats()
	if s.Decoded != devices*each || s.Failed != 0 || r.waiting() != 0 {
		t.Errorf("decoded %d, failed %d, %d waiting; want %d, 0 and 0", s.Decoded, s.Failed, r.waiting(), devices*each)
	}
	t.Logf("slow decoder (25 ms a value, timeout 1 s): %d values sent in %v, %d decoded, 0 dropped, %d calls retried, drained %v after the first was sent",
		devices*each, sent.Round(time.Millisecond), s.Decoded, s.Retries, drained.Round(time.Millisecond))
}

// A decoder process killed (SIGKILL) while values flow, some of them in
// the call it dies in: that call's values are neither blamed nor lost,
// the process is restarted, and every value is decoded exactly once,
// each device's in order, with no alarm.
func TestKilledDecoderLosesNothing(t *testing.T) {
	const devices, each = 3, 60
	r := newDecoderRig(t, devices, []string{"delay=5ms"}, 2*time.Second, mapping.DecoderOptions{Backoff: 10 * time.Millisecond})
	r.run()
	start := time.Now()
	for i := range each / 2 {
		for d := range devices {
			r.send(d, i)
		}
	}
	// killed once values are flowing, with more of them waiting
	waitUntil(t, 30*time.Second, "the first values decoded", func() bool { return r.dec.Stats().Decoded >= 10 })
	before := r.plugin()
	if before.PID == 0 {
		t.Fatal("no process of the decoder")
	}
	if err := syscall.Kill(before.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	decodedAtKill := r.dec.Stats().Decoded
	for i := each / 2; i < each; i++ {
		for d := range devices {
			r.send(d, i)
		}
	}
	waitUntil(t, 60*time.Second, "every value decoded or failed", func() bool {
		s := r.dec.Stats()
		return s.Decoded+s.Failed >= devices*each && r.waiting() == 0
	})
	drained := time.Since(start)
	checkOnceInOrder(t, r.decoded(), []int{each, each, each})
	s, after := r.dec.Stats(), r.plugin()
	if s.Decoded != devices*each || s.Failed != 0 {
		t.Errorf("decoded %d, failed %d; want %d and 0", s.Decoded, s.Failed, devices*each)
	}
	if after.RestartsBy[plugins.ReasonCrash] < 1 || after.PID == before.PID || after.PID == 0 {
		t.Errorf("after the kill of process %d: %+v, want a crash restart and a new process", before.PID, after)
	}
	for d := range devices {
		if al := r.mappingAlarms(d); len(al) != 0 {
			t.Errorf("device %d has mapping alarms %+v", d, al)
		}
	}
	t.Logf("decoder killed after %d of %d values were decoded: %d decoded once each, in order, 0 dropped, 0 alarms, %d calls retried; drained %v after the first was sent",
		decodedAtKill, devices*each, s.Decoded, s.Retries, drained.Round(time.Millisecond))
}

// plugin answers the host's figures of the decoder tp.
func (r *decoderRig) plugin() plugins.Stats {
	for _, s := range r.host.Stats() {
		if s.Name == "tp" {
			return s
		}
	}
	r.t.Fatal("no plugin tp")
	return plugins.Stats{}
}

// A decoder down (its process exits at start) while values come: the
// values wait, up to the tenant's bound, beyond which they are dropped
// with a mapping alarm on their device that says how many and why; once
// the decoder starts, every value kept is decoded once, in order.
func TestDownDecoderLosesNothing(t *testing.T) {
	const devices, each, bound = 3, 18, 50
	down := filepath.Join(t.TempDir(), "down")
	if err := os.WriteFile(down, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	r := newDecoderRig(t, devices, []string{"down=" + down}, time.Second,
		mapping.DecoderOptions{MaxWaiting: bound, Backoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	r.run()
	for i := range each {
		for d := range devices {
			r.send(d, i)
		}
	}
	// the 4 values past the bound: device 2's 16th, and every device's 17th
	if got := r.dec.Dropped()["full"]; got != devices*each-bound {
		t.Fatalf("%d values dropped for a full backlog, want %d", got, devices*each-bound)
	}
	for d, n := range []int64{1, 1, 2} {
		waitUntil(t, 10*time.Second, fmt.Sprintf("device %d's alarm of its dropped values", d), func() bool {
			al := r.mappingAlarms(d)
			return len(al) == 1 && al[0].Count == n
		})
		if a := r.mappingAlarms(d)[0]; !strings.Contains(a.Text, "1 values of /10268/0/6029 for decoder \"tp\" dropped: the tenant's decode backlog is full") {
			t.Errorf("device %d's alarm: %q", d, a.Text)
		}
	}
	waitUntil(t, 10*time.Second, "retries of the down decoder", func() bool { return r.dec.Stats().Retries >= 3 })
	if n := r.waiting(); n != bound {
		t.Fatalf("%d values waiting while the decoder is down, want %d", n, bound)
	}
	if got := r.decoded(); len(got[0])+len(got[1])+len(got[2]) != 0 {
		t.Fatalf("values decoded by a decoder that is down: %v", got)
	}

	back := time.Now()
	if err := os.Remove(down); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, "every value kept decoded", func() bool { return r.dec.Stats().Decoded >= bound })
	drained := time.Since(back)
	checkOnceInOrder(t, r.decoded(), []int{each - 1, each - 1, each - 2})
	s := r.dec.Stats()
	if s.Decoded != bound || s.Failed != 0 || r.waiting() != 0 {
		t.Errorf("decoded %d, failed %d, %d waiting; want %d, 0 and 0", s.Decoded, s.Failed, r.waiting(), bound)
	}
	t.Logf("decoder down: %d values sent, %d kept, %d dropped with an alarm (backlog full), %d calls retried while down; "+
		"all %d decoded %v after the decoder could start", devices*each, bound, devices*each-bound, s.Retries, s.Decoded, drained.Round(time.Millisecond))
}

// A value not decoded within RetryFor is dropped, with a mapping alarm
// that says so, and leaves the backlog.
func TestExpiredValuesAreDropped(t *testing.T) {
	down := filepath.Join(t.TempDir(), "down")
	if err := os.WriteFile(down, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	r := newDecoderRig(t, 1, []string{"down=" + down}, time.Second,
		mapping.DecoderOptions{RetryFor: time.Second, StatsEvery: 50 * time.Millisecond, Backoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	r.run()
	for i := range 5 {
		r.send(0, i)
	}
	waitUntil(t, 20*time.Second, "the values dropped", func() bool { return r.dec.Dropped()["expired"] == 5 && r.waiting() == 0 })
	waitUntil(t, 10*time.Second, "the alarm", func() bool { return len(r.mappingAlarms(0)) == 1 })
	if a := r.mappingAlarms(0)[0]; !strings.Contains(a.Text, "values of /10268/0/6029 for decoder \"tp\" dropped: not decoded within 1s") {
		t.Errorf("alarm %q", a.Text)
	}
	if s := r.dec.Stats(); s.Decoded != 0 {
		t.Errorf("%d values decoded by a decoder that never started", s.Decoded)
	}
}
