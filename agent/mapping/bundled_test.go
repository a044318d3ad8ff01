package mapping_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/mapping"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/plugins"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/storetest"
	pb "github.com/lwm2m-agent/lwm2m-agent/sdk/proto/lwm2m/plugin/v1"
)

// flaky is the bundled plugins' code behind a process that is down for
// its first failures calls (a retryable error, as the plugin host gives
// while it restarts one), or for good with a permanent error.
type flaky struct {
	failures  int64
	permanent error
	calls     atomic.Int64
	values    atomic.Int64 // in the calls answered
	maxBatch  atomic.Int64
}

func (f *flaky) fail() error {
	if f.permanent != nil {
		return f.permanent
	}
	if f.calls.Add(1) <= f.failures {
		return fmt.Errorf("plugin mapping: %w: process not running (restarting)", plugins.ErrUnavailable)
	}
	return nil
}

func (f *flaky) Map(ctx context.Context, req *pb.MapRequest) (*pb.MapResponse, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	n := int64(len(req.GetValues()))
	f.values.Add(n)
	for cur := f.maxBatch.Load(); n > cur && !f.maxBatch.CompareAndSwap(cur, n); cur = f.maxBatch.Load() {
	}
	return mapping.InProcess{}.Map(ctx, req)
}

func (f *flaky) Run(ctx context.Context, req *pb.ActionRequest) (*pb.MapResponse, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	return mapping.InProcess{}.Run(ctx, req)
}

func tempSource(string, uint16) map[uint16]mapping.Functionality {
	return map[uint16]mapping.Functionality{5700: {
		Measurement: &mapping.Measurement{Type: "c8y_Temperature", Series: "T", Unit: "C"},
		Alarm:       &mapping.Alarm{Type: "c8y_Hot", Severity: "MAJOR", Text: "Hot {value}", RaiseWhen: "value > 40"},
	}}
}

// Values handed to the pipeline while the bundled mapping plugin is down
// wait and are sent again when it is back: each becomes exactly one
// measurement, in order, in batches; the raiseWhen alarm is raised and
// cleared once per change.
func TestPipelineBundledRetries(t *testing.T) {
	st := storetest.OpenTest(t)
	id, err := st.CreateDevice(ctx, "acme", "ep-1")
	if err != nil {
		t.Fatal(err)
	}
	client := &flaky{failures: 3}
	p := mapping.New(mapping.Config{Store: st, Source: sourceFunc(tempSource),
		Bundled: mapping.BundledOptions{Client: client, Backoff: time.Millisecond, MaxBatch: 64},
		Writer:  mapping.WriterOptions{FlushInterval: 10 * time.Millisecond}})
	wctx, cancel := context.WithCancel(ctx)
	go p.RunWriter(wctx)
	d := mapping.Device{Tenant: "acme", ID: id, Endpoint: "ep-1"}
	const n = 200
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	for i := range n {
		v := 20.0
		if i >= 100 && i < 150 {
			v = 45 // hot for 50 values
		}
		p.Handle(ctx, mapping.Input{Device: d, Records: []node.Record{
			{Path: node.MustParsePath("/3303/0/5700"), Value: node.Float(v + float64(i)/1000), Time: t0.Add(time.Duration(i) * time.Second)},
		}})
	}
	waitFor(t, func() bool { return p.Stats().Writer.Measurements == n })
	cancel()
	<-p.Done()

	ms, _, err := st.ListMeasurements(ctx, "acme", store.MeasurementFilter{Source: id, Type: "c8y_Temperature", Page: page()})
	if err != nil || len(ms) != n {
		t.Fatalf("%d measurements (%v), want %d", len(ms), err, n)
	}
	for i, m := range ms {
		if !m.Time.Equal(t0.Add(time.Duration(i) * time.Second)) {
			t.Fatalf("measurement %d at %v: lost, doubled or reordered", i, m.Time)
		}
	}
	s := p.Stats()
	if s.BundledRetries < 3 || s.BundledFailed != 0 {
		t.Errorf("retries %d, failed %d; want 3 or more retries and no failure", s.BundledRetries, s.BundledFailed)
	}
	if got := client.values.Load(); got != n {
		t.Errorf("the plugin answered %d values, want each of the %d once", got, n)
	}
	if b := client.maxBatch.Load(); b < 2 || b > 64 {
		t.Errorf("largest batch %d values, want batches of 2 to 64", b)
	}
	al, _, err := st.ListAlarms(ctx, "acme", store.AlarmFilter{Source: id, Type: "c8y_Hot", Page: page()})
	if err != nil || len(al) != 1 || al[0].Count != 50 || al[0].Status != store.AlarmCleared {
		t.Errorf("alarm %+v (%v), want one raised 50 times, then cleared", al, err)
	}
}

// A bundled plugin that fails for good: the values are not mapped, and
// the device gets the mapping alarm naming the plugin and the error
// instead of losing them unseen.
func TestPipelineBundledFailure(t *testing.T) {
	st := storetest.OpenTest(t)
	id, err := st.CreateDevice(ctx, "acme", "ep-1")
	if err != nil {
		t.Fatal(err)
	}
	p := mapping.New(mapping.Config{Store: st, Source: sourceFunc(tempSource),
		Bundled: mapping.BundledOptions{Client: &flaky{permanent: errors.New("map: rpc error: code = Internal desc = broken")}},
		Writer:  mapping.WriterOptions{FlushInterval: 10 * time.Millisecond}})
	wctx, cancel := context.WithCancel(ctx)
	go p.RunWriter(wctx)
	d := mapping.Device{Tenant: "acme", ID: id, Endpoint: "ep-1"}
	p.Handle(ctx, mapping.Input{Device: d, Records: []node.Record{
		{Path: node.MustParsePath("/3303/0/5700"), Value: node.Float(1)}, {Path: node.MustParsePath("/3303/1/5700"), Value: node.Float(2)},
	}})
	waitFor(t, func() bool { return p.Stats().Writer.Alarms == 1 })
	cancel()
	<-p.Done()
	al, _, err := st.ListAlarms(ctx, "acme", store.AlarmFilter{Source: id, Type: mapping.MappingErrorAlarm, Page: page()})
	if err != nil || len(al) != 1 || !strings.Contains(al[0].Text, `"mapping"`) || !strings.Contains(al[0].Text, "broken (2 values)") {
		t.Fatalf("mapping alarms %+v (%v)", al, err)
	}
	if s := p.Stats(); s.BundledFailed != 2 || s.Writer.Measurements != 0 {
		t.Errorf("failed %d, measurements %d; want 2 and 0", s.BundledFailed, s.Writer.Measurements)
	}
}
