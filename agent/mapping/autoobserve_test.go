package mapping_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/lwm2m-agent/lwm2m-agent/agent/lwm2m"
	"github.com/lwm2m-agent/lwm2m-agent/agent/mapping"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/storetest"
)

// scriptedObserver answers Observe with a value, or with the error set
// for the path until it is cleared.
type scriptedObserver struct {
	mu   sync.Mutex
	got  []string
	errs map[string]error
}

func (o *scriptedObserver) Observe(_ context.Context, _ string, p node.Path) ([]node.Record, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.got = append(o.got, p.String())
	if err := o.errs[p.String()]; err != nil {
		return nil, err
	}
	return []node.Record{{Path: p, Value: node.Float(21.5)}}, nil
}

func (o *scriptedObserver) setErr(path string, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.errs == nil {
		o.errs = map[string]error{}
	}
	o.errs[path] = err
}

func (o *scriptedObserver) paths() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.got)
}

// Each path is observed once per registration: a repeated Register hook,
// Updates with the same objects and a stale view of an older
// registration send nothing; an Update adding an instance observes only
// that instance; a new registration ID observes again; a failure that
// may pass is tried again at the next chance, a refusal is not.
func TestAutoObserveOncePerRegistration(t *testing.T) {
	st := storetest.OpenTest(t)
	id, err := st.CreateDevice(ctx, "acme", "ep-1")
	if err != nil {
		t.Fatal(err)
	}
	src := sourceFunc(func(_ string, object uint16) map[uint16]mapping.Functionality {
		if object != 3303 {
			return nil
		}
		return map[uint16]mapping.Functionality{
			5700: {Measurement: &mapping.Measurement{Type: "c8y_Temperature", Series: "T"}, AutoObserve: true},
			5601: {Measurement: &mapping.Measurement{Type: "c8y_TemperatureMin", Series: "T"}, AutoObserve: true},
		}
	})
	// one worker: jobs are taken in the order they were queued
	p := mapping.New(mapping.Config{Store: st, Source: src, ObserveWorkers: 1, Writer: mapping.WriterOptions{FlushInterval: 10 * time.Millisecond}})
	obs := &scriptedObserver{}
	p.SetObserver(obs)
	octx, stopObs := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { p.RunObservers(octx); close(done) }()
	wctx, stopWriter := context.WithCancel(ctx)
	go p.RunWriter(wctx)
	defer func() {
		stopObs()
		<-done
		stopWriter()
		<-p.Done()
	}()

	obs.setErr("/3303/0/5601", &lwm2m.ResponseError{Code: codes.NotFound})
	since := time.Now()
	reg := mapping.Registration{Device: mapping.Device{Tenant: "acme", ID: id, Endpoint: "ep-1"}, RegID: "r1", Since: since,
		Objects: []node.Path{node.InstancePath(3, 0), node.InstancePath(3303, 0)}}
	p.Registered(ctx, reg)
	waitFor(t, func() bool { return p.Stats().AutoObserved == 1 && p.Stats().ObserveFails == 1 })
	p.Registered(ctx, reg)
	p.Listening(ctx, reg)
	if p.Missing(ctx, reg) {
		t.Error("Missing after every path was asked")
	}

	// an Update adds /3303/1; the first Observe of its 5700 times out
	obs.setErr("/3303/1/5700", lwm2m.ErrTimeout)
	upd := reg
	upd.Objects = append(slices.Clone(reg.Objects), node.InstancePath(3303, 1))
	if !p.Missing(ctx, upd) {
		t.Error("not Missing with a new instance")
	}
	p.Listening(ctx, upd)
	waitFor(t, func() bool { return p.Stats().AutoObserved == 2 && p.Stats().ObserveFails == 2 })
	obs.setErr("/3303/1/5700", nil)
	p.Listening(ctx, upd)
	waitFor(t, func() bool { return p.Stats().AutoObserved == 3 })

	// a view of an earlier registration changes nothing
	old := upd
	old.RegID, old.Since = "r0", since.Add(-time.Minute)
	if p.Missing(ctx, old) {
		t.Error("Missing for an older registration")
	}
	p.Listening(ctx, old)

	// a new Register observes everything again, once; with one worker,
	// its paths come after whatever was queued before
	p.Registered(ctx, mapping.Registration{Device: reg.Device, RegID: "r2", Since: since.Add(time.Second), Objects: reg.Objects})
	want := []string{"/3303/0/5700", "/3303/0/5601", "/3303/1/5700", "/3303/1/5601", "/3303/1/5700", "/3303/0/5700", "/3303/0/5601"}
	waitFor(t, func() bool { return len(obs.paths()) >= len(want) })
	if got := obs.paths(); !slices.Equal(sortedCopy(got), sortedCopy(want)) {
		t.Errorf("observed %v, want %v", got, want)
	}
	if p.AutoTracked() != 1 {
		t.Errorf("%d registrations tracked, want 1", p.AutoTracked())
	}
	p.Gone("ep-1", "r1") // not the current registration
	if p.AutoTracked() != 1 {
		t.Errorf("Gone of an earlier registration dropped the current one")
	}
	p.Gone("ep-1", "r2")
	if p.AutoTracked() != 0 {
		t.Errorf("%d registrations tracked after Gone, want 0", p.AutoTracked())
	}
}

func sortedCopy(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
