package mapping

import (
	"bytes"
	"math"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// A value read back from the backlog is the value that was stored, of
// every type, and a decoder is given the same bytes as before it waited.
func TestBacklogValueRoundTrip(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	for _, tc := range []struct {
		name string
		v    node.Value
	}{
		{"opaque", node.Opaque([]byte{0, 0xff, 0x10})},
		{"empty opaque", node.Opaque(nil)},
		{"no type", node.Value{Type: node.TypeNone, Bytes: []byte{1, 2}}},
		{"string", node.String("21.5 °C, or so")},
		{"empty string", node.String("")},
		{"integer", node.Int(math.MinInt64)},
		{"unsigned", node.Uint(math.MaxUint64)},
		{"float", node.Float(0.1)},
		{"not a number", node.Float(math.NaN())},
		{"infinity", node.Float(math.Inf(-1))},
		{"boolean", node.Bool(true)},
		{"time", node.TimeValue(at)},
		{"object link", node.Link(3, 65535)},
		{"core link", node.CoreLink("</3/0>;ver=1.1")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := DecodeRequest{
				Device: Device{Tenant: "acme", ID: "7", Endpoint: "ep-7"}, Path: node.MustParsePath("/10268/0/6029/2"),
				Value: tc.v, Time: at, Decoder: "frame", Argument: "v2", Action: true,
			}
			out, err := request(backlogValue(in, at))
			if err != nil {
				t.Fatal(err)
			}
			if !out.Value.Equal(in.Value) || out.Device != in.Device || out.Path != in.Path || !out.Time.Equal(in.Time) ||
				out.Decoder != in.Decoder || out.Argument != in.Argument || out.Action != in.Action {
				t.Errorf("read back %+v, stored %+v", out, in)
			}
			if !bytes.Equal(rawBytes(out.Value), rawBytes(in.Value)) {
				t.Errorf("decoder given %x, was %x", rawBytes(out.Value), rawBytes(in.Value))
			}
		})
	}
	for _, bad := range []store.DecodeValue{
		{Path: "/x", Type: "OPAQUE"},
		{Path: "/1/0/1", Type: "COLOUR"},
		{Path: "/1/0/1", Type: "INTEGER", Value: []byte("twelve")},
	} {
		if _, err := request(bad); err == nil {
			t.Errorf("%+v read back without an error", bad)
		}
	}
}

// The wait between tries doubles from the first to the cap, once per
// failure however many workers saw it, and a success ends it; the batch
// halves with each failure and grows back, doubling below half the size
// that failed, then by one.
func TestPluginBackoffAndBatch(t *testing.T) {
	p := &pluginState{batch: 64, thresh: 64, most: 64}
	t0 := time.Unix(1000, 0)
	steps := []struct {
		at        time.Duration // since t0
		fail      bool
		wantWait  time.Duration // after the step, from its time
		wantBatch int
	}{
		{0, true, 100 * time.Millisecond, 32},
		{50 * time.Millisecond, true, 50 * time.Millisecond, 32}, // another worker's call of the same outage
		{100 * time.Millisecond, true, 200 * time.Millisecond, 16},
		{300 * time.Millisecond, true, 400 * time.Millisecond, 8},
		{700 * time.Millisecond, true, 500 * time.Millisecond, 4}, // capped
		{1200 * time.Millisecond, true, 500 * time.Millisecond, 2},
		{1700 * time.Millisecond, true, 500 * time.Millisecond, 1},
		{2200 * time.Millisecond, true, 500 * time.Millisecond, 1},
		{2700 * time.Millisecond, false, 0, 2},
		{2800 * time.Millisecond, false, 0, 3},
		{2900 * time.Millisecond, true, 100 * time.Millisecond, 1},
		{3000 * time.Millisecond, false, 0, 2},
	}
	for i, s := range steps {
		now := t0.Add(s.at)
		if s.fail {
			p.failedAt(now, 100*time.Millisecond, 500*time.Millisecond)
		} else {
			p.succeeded()
		}
		if w := max(p.wait(now), 0); w != s.wantWait || p.size() != s.wantBatch {
			t.Errorf("step %d: wait %v, batch %d; want %v, %d", i, w, p.size(), s.wantWait, s.wantBatch)
		}
	}
	// below half the size that failed, the batch doubles
	p = &pluginState{batch: 64, thresh: 64, most: 64}
	p.failedAt(t0, time.Millisecond, time.Millisecond) // 32, threshold 32
	p.failedAt(t0.Add(time.Second), time.Millisecond, time.Millisecond)
	p.failedAt(t0.Add(2*time.Second), time.Millisecond, time.Millisecond) // 8, threshold 8
	p.thresh = 32
	for _, want := range []int{16, 32, 33, 34} {
		p.succeeded()
		if p.size() != want {
			t.Fatalf("batch %d after a success, want %d", p.size(), want)
		}
	}
}

// The alarm of dropped values names each device's count, its resources
// (the first three and how many more) and the plugin, and says why.
func TestDroppedAlarms(t *testing.T) {
	at := time.Unix(2000, 0)
	v := func(dev, path, decoder string, action bool) store.DecodeValue {
		return store.DecodeValue{Tenant: "acme", Device: dev, Endpoint: "ep-" + dev, Path: path, Decoder: decoder, Action: action}
	}
	outs := droppedAlarms([]store.DecodeValue{
		v("1", "/1/0/1", "frame", false), v("2", "/2/0/1", "frame", false), v("1", "/1/0/1", "frame", false),
		v("1", "/1/0/2", "frame", false), v("1", "/1/0/3", "frame", false), v("1", "/1/0/4", "frame", false),
		v("2", "/2/0/1", "act", true),
	}, "why", at)
	want := []struct{ dev, text string }{
		{"1", `5 values of /1/0/1, /1/0/2, /1/0/3 and 1 more for decoder "frame" dropped: why`},
		{"2", `1 values of /2/0/1 for decoder "frame" dropped: why`},
		{"2", `1 values of /2/0/1 for custom action plugin "act" dropped: why`},
	}
	if len(outs) != len(want) {
		t.Fatalf("%d outputs, want %d: %+v", len(outs), len(want), outs)
	}
	for i, w := range want {
		o := outs[i]
		if o.ID != w.dev || o.Endpoint != "ep-"+w.dev || len(o.Alarms) != 1 {
			t.Fatalf("output %d: %+v", i, o)
		}
		a := o.Alarms[0].Alarm
		if a.Text != w.text || a.Source != w.dev || a.Type != MappingErrorAlarm || a.Severity != store.SeverityMajor || !a.Time.Equal(at) {
			t.Errorf("alarm %d: %+v, want text %q", i, a, w.text)
		}
	}
}
