package mapping_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/mapping"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/storetest"
)

var ctx = context.Background()

func page() store.Page { return store.Page{Size: 2000, Current: 1, WithTotal: true} }

func measurement(dev string, t time.Time, v float64) store.Measurement {
	return store.Measurement{Source: dev, Type: "c8y_Temperature", Time: t,
		Fragments: map[string]any{"c8y_Temperature": map[string]any{"T": store.SeriesValue(v, "C")}}}
}

func runWriter(t *testing.T, w *mapping.Writer) (stop func()) {
	wctx, cancel := context.WithCancel(ctx)
	go w.Run(wctx)
	return func() {
		cancel()
		select {
		case <-w.Done():
		case <-time.After(30 * time.Second):
			t.Fatal("writer did not stop")
		}
	}
}

// Every kind of output reaches the store: measurements, events, alarm
// raises (counted) and clears in order, and inventory fields merged into
// the fragments stored before, with the device named after its hardware.
func TestWriterStoresOutputs(t *testing.T) {
	st := storetest.OpenTest(t)
	id, err := st.CreateDevice(ctx, "acme", "ep-1")
	if err != nil {
		t.Fatal(err)
	}
	gone, err := st.CreateDevice(ctx, "acme", "ep-2")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.DeleteManagedObject(ctx, "acme", gone); err != nil {
		t.Fatal(err)
	}
	w := mapping.NewWriter(st, mapping.WriterOptions{FlushInterval: 10 * time.Millisecond})
	stop := runWriter(t, w)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	d := mapping.Device{Tenant: "acme", ID: id, Endpoint: "ep-1"}
	raise := func(typ, text string) mapping.AlarmChange {
		return mapping.AlarmChange{Alarm: store.Alarm{Source: id, Type: typ, Severity: "MAJOR", Text: text, Time: t0}}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(w.Add(ctx, mapping.Output{Device: d,
		Measurements: []store.Measurement{measurement(id, t0, 21), measurement(id, t0.Add(time.Second), 22)},
		Events:       []store.Event{{Source: id, Type: "c8y_Door", Text: "Door is open", Time: t0}},
		Alarms:       []mapping.AlarmChange{raise("c8y_Hot", "hot 41"), raise("c8y_Hot", "hot 45"), {Clear: true, Alarm: store.Alarm{Source: id, Type: "c8y_Hot"}}, raise("c8y_Fault", "fault")},
		Inventory:    &mapping.InventoryUpdate{Fields: map[string]map[string]any{"c8y_Hardware": {"model": "T-1000", "manufacturer": "ACME"}}},
	}))
	waitFor(t, func() bool { return w.Stats().Inventory == 1 })
	// later, alone: the serial number joins the model stored before
	must(w.Add(ctx, mapping.Output{Device: d, Inventory: &mapping.InventoryUpdate{
		Fields: map[string]map[string]any{"c8y_Hardware": {"serialNumber": "SN-7"}, "c8y_Position": {"lat": 52.5, "lng": 13.4}}, Rename: true}}))
	must(w.Add(ctx, mapping.Output{Device: mapping.Device{Tenant: "acme", ID: gone},
		Inventory: &mapping.InventoryUpdate{Fields: map[string]map[string]any{"c8y_Hardware": {"model": "x"}}}}))
	stop()

	ms, total, err := st.ListMeasurements(ctx, "acme", store.MeasurementFilter{Source: id, Page: page()})
	if err != nil || total != 2 {
		t.Fatalf("%d measurements (%v), want 2", total, err)
	}
	if v := ms[0].Fragments["c8y_Temperature"].(map[string]any)["T"].(map[string]any)["value"]; v != 21.0 || !ms[0].Time.Equal(t0) {
		t.Errorf("first measurement %v at %v", v, ms[0].Time)
	}
	evs, _, err := st.ListEvents(ctx, "acme", store.EventFilter{Source: id, Type: "c8y_Door", Page: page()})
	if err != nil || len(evs) != 1 || evs[0].Text != "Door is open" {
		t.Errorf("events %+v (%v)", evs, err)
	}
	hot, _, err := st.ListAlarms(ctx, "acme", store.AlarmFilter{Source: id, Type: "c8y_Hot", Page: page()})
	if err != nil || len(hot) != 1 || hot[0].Status != store.AlarmCleared || hot[0].Count != 2 || hot[0].Text != "hot 45" {
		t.Errorf("c8y_Hot alarms %+v (%v), want one CLEARED with count 2", hot, err)
	}
	fault, _, err := st.ListAlarms(ctx, "acme", store.AlarmFilter{Source: id, Type: "c8y_Fault", Page: page()})
	if err != nil || len(fault) != 1 || fault[0].Status != store.AlarmActive {
		t.Errorf("c8y_Fault alarms %+v (%v), want one ACTIVE", fault, err)
	}
	mo, err := st.GetManagedObject(ctx, "acme", id)
	if err != nil {
		t.Fatal(err)
	}
	hw, _ := mo.Fragments["c8y_Hardware"].(map[string]any)
	if hw["model"] != "T-1000" || hw["serialNumber"] != "SN-7" || hw["manufacturer"] != "ACME" {
		t.Errorf("c8y_Hardware %v, want model, manufacturer and serial number", hw)
	}
	if pos, _ := mo.Fragments["c8y_Position"].(map[string]any); pos["lat"] != 52.5 || pos["lng"] != 13.4 {
		t.Errorf("c8y_Position %v", pos)
	}
	if mo.Name != "ACME T-1000 SN-7" {
		t.Errorf("name %q, want %q", mo.Name, "ACME T-1000 SN-7")
	}
	s := w.Stats()
	if s.Measurements != 2 || s.Events != 1 || s.Alarms != 4 || s.Inventory != 2 || s.Dropped != 1 {
		t.Errorf("stats %+v, want 2 measurements, 1 event, 4 alarm changes, 2 inventory updates, 1 dropped (deleted device)", s)
	}
}

// Outputs that arrive one by one are written in batches, each flush
// taking what came meanwhile, not one output per flush: a batch still
// filling is no failed write, so a healthy store sees no retries.
func TestWriterBatchesSteadyStream(t *testing.T) {
	st := storetest.OpenTest(t)
	id, err := st.CreateDevice(ctx, "acme", "ep-1")
	if err != nil {
		t.Fatal(err)
	}
	w := mapping.NewWriter(st, mapping.WriterOptions{FlushInterval: 50 * time.Millisecond})
	stop := runWriter(t, w)
	defer stop()
	const n = 1000
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	start := time.Now()
	for i := range n {
		out := mapping.Output{Device: mapping.Device{Tenant: "acme", ID: id, Endpoint: "ep-1"},
			Measurements: []store.Measurement{measurement(id, t0.Add(time.Duration(i)*time.Millisecond), float64(i))}}
		if err := w.Add(ctx, out); err != nil {
			t.Fatal(err)
		}
		if i%100 == 0 {
			time.Sleep(5 * time.Millisecond) // a stream, not one burst
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for w.Stats().Measurements < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	s := w.Stats()
	if s.Measurements != n || s.Retries != 0 {
		t.Fatalf("after %v: %+v; want %d measurements stored and no retries", time.Since(start).Round(time.Millisecond), s, n)
	}
	// each output's delay is counted once, and none waited for seconds
	var counted, slow int64
	for i, c := range s.Delay {
		counted += c
		if i >= len(mapping.DelayBuckets) || mapping.DelayBuckets[i] > 2.5 {
			slow += c
		}
	}
	if counted != n || slow != 0 || s.DelaySum <= 0 {
		t.Errorf("delay histogram %v (sum %v): want %d outputs, none slower than 2.5 s", s.Delay, s.DelaySum, n)
	}
}

// What is queued when the writer stops is still written.
func TestWriterDrainsAtStop(t *testing.T) {
	st := storetest.OpenTest(t)
	w := mapping.NewWriter(st, mapping.WriterOptions{FlushInterval: time.Hour, QueueSize: 64})
	stop := runWriter(t, w)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range 50 {
		if err := w.Add(ctx, mapping.Output{Device: mapping.Device{Tenant: "acme", ID: "7"},
			Measurements: []store.Measurement{measurement("7", t0.Add(time.Duration(i)*time.Second), float64(i))}}); err != nil {
			t.Fatal(err)
		}
	}
	stop()
	if _, total, err := st.ListMeasurements(ctx, "acme", store.MeasurementFilter{Source: "7", Page: page()}); err != nil || total != 50 {
		t.Fatalf("%d measurements stored at stop (%v), want 50", total, err)
	}
}

// While the store is unreachable the writer keeps its batch and retries,
// Add blocks once the queue is full (no growth), and after the outage
// everything is stored.
func TestWriterOutage(t *testing.T) {
	direct, st, px := storetest.OpenMongoBehindProxy(t)
	id, err := direct.CreateDevice(ctx, "acme", "ep-1")
	if err != nil {
		t.Fatal(err)
	}
	const queue, maxBatch = 20, 20
	w := mapping.NewWriter(st, mapping.WriterOptions{FlushInterval: 10 * time.Millisecond, QueueSize: queue, MaxBatch: maxBatch})
	stop := runWriter(t, w)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	out := func(i int) mapping.Output {
		return mapping.Output{Device: mapping.Device{Tenant: "acme", ID: id},
			Measurements: []store.Measurement{measurement(id, t0.Add(time.Duration(i)*time.Second), float64(i))},
			Alarms:       []mapping.AlarmChange{{Alarm: store.Alarm{Source: id, Type: "c8y_Hot", Severity: "MAJOR", Text: fmt.Sprint(i)}}}}
	}
	n := 0
	for ; n < 10; n++ {
		if err := w.Add(ctx, out(n)); err != nil {
			t.Fatal(err)
		}
	}
	// cut only after every write was answered: one cut in the middle of
	// a write may have applied it (the writer stores at least once)
	waitFor(t, func() bool { s := w.Stats(); return s.Measurements == 10 && s.Alarms == 10 })
	px.SetUp(false)
	for ; ; n++ {
		c, cancel := context.WithTimeout(ctx, 700*time.Millisecond)
		err := w.Add(c, out(n))
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		// one batch held (each output counts two items) and a full queue
		if n > 10+maxBatch/2+queue+1 {
			t.Fatalf("Add accepted %d outputs during the outage: the queue is not bounded", n-10)
		}
	}
	if w.Stats().Retries == 0 {
		t.Fatalf("no retries during the outage: %+v", w.Stats())
	}
	px.SetUp(true)
	for end := n + 10; n < end; n++ {
		if err := w.Add(ctx, out(n)); err != nil {
			t.Fatal(err)
		}
	}
	stop()
	ms, total, err := direct.ListMeasurements(ctx, "acme", store.MeasurementFilter{Source: id, Page: page()})
	if err != nil || total != int64(n) {
		t.Fatalf("stored %d measurements (%v), want %d", total, err, n)
	}
	for i, m := range ms {
		if v := m.Fragments["c8y_Temperature"].(map[string]any)["T"].(map[string]any)["value"]; v != float64(i) {
			t.Fatalf("measurement %d has value %v: lost or reordered", i, v)
		}
	}
	al, _, err := direct.ListAlarms(ctx, "acme", store.AlarmFilter{Source: id, Type: "c8y_Hot", Page: page()})
	if err != nil || len(al) != 1 || al[0].Count != int64(n) {
		t.Fatalf("alarm %+v (%v), want one with count %d", al, err, n)
	}
	if s := w.Stats(); s.Dropped != 0 {
		t.Errorf("dropped %d", s.Dropped)
	}
}

// The pipeline end to end against the store: values of objects 3, 4 and
// 6 with no protocol uploaded fill the inventory and the signal strength;
// a decoder resource without a decoder raises the mapping alarm.
func TestPipelineDefaults(t *testing.T) {
	st := storetest.OpenTest(t)
	id, err := st.CreateDevice(ctx, "acme", "ep-1")
	if err != nil {
		t.Fatal(err)
	}
	src := sourceFunc(func(tenant string, object uint16) map[uint16]mapping.Functionality {
		if object == 3303 {
			return map[uint16]mapping.Functionality{5700: {CustomAction: "decoder:meter"}}
		}
		return nil
	})
	p := mapping.New(mapping.Config{Store: st, Source: src, Writer: mapping.WriterOptions{FlushInterval: 10 * time.Millisecond}})
	wctx, cancel := context.WithCancel(ctx)
	go p.RunWriter(wctx)
	d := mapping.Device{Tenant: "acme", ID: id, Endpoint: "ep-1"}
	r := func(path string, v node.Value) node.Record {
		return node.Record{Path: node.MustParsePath(path), Value: v}
	}
	p.Handle(ctx, mapping.Input{Device: d, Kind: mapping.KindRead, Records: []node.Record{
		r("/3/0/0", node.String("lwm2m-agent")), r("/3/0/1", node.String("simulator")), r("/3/0/2", node.String("ep-1")),
		r("/3/0/3", node.String("1.0.0")), r("/4/0/2", node.Int(-75)), r("/4/0/8", node.Int(1234)),
		r("/6/0/0", node.Float(52.52)), r("/6/0/1", node.Float(13.405)), r("/6/0/2", node.Float(34)),
		r("/3303/0/5700", node.Opaque([]byte{1})),
	}})
	cancel()
	<-p.Done()

	mo, err := st.GetManagedObject(ctx, "acme", id)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]any{
		"c8y_Hardware": {"model": "simulator", "serialNumber": "ep-1"},
		"c8y_Firmware": {"version": "1.0.0"},
		"c8y_Mobile":   {"cellId": "1234"},
		"c8y_Position": {"lat": 52.52, "lng": 13.405, "alt": 34.0},
	}
	for frag, fields := range want {
		got, _ := mo.Fragments[frag].(map[string]any)
		for k, v := range fields {
			if got[k] != v {
				t.Errorf("%s.%s = %v, want %v", frag, k, got[k], v)
			}
		}
	}
	ms, _, err := st.ListMeasurements(ctx, "acme", store.MeasurementFilter{Source: id, Type: "c8y_SignalStrength", Page: page()})
	if err != nil || len(ms) != 1 {
		t.Fatalf("signal strength measurements %v (%v)", ms, err)
	}
	if v := ms[0].Fragments["c8y_SignalStrength"].(map[string]any)["rssi"].(map[string]any); v["value"] != -75.0 || v["unit"] != "dBm" {
		t.Errorf("rssi %v", v)
	}
	al, _, err := st.ListAlarms(ctx, "acme", store.AlarmFilter{Source: id, Type: mapping.MappingErrorAlarm, Page: page()})
	if err != nil || len(al) != 1 {
		t.Fatalf("mapping alarms %+v (%v), want one for the decoder value", al, err)
	}
	if s := p.Stats(); s.Values != 10 {
		t.Errorf("values mapped %d, want 10", s.Values)
	}
}

// A decoder gets the raw values of its resources, with their context.
func TestPipelineQueuesToDecoder(t *testing.T) {
	st := storetest.OpenTest(t)
	dec := &decoder{}
	src := sourceFunc(func(string, uint16) map[uint16]mapping.Functionality {
		return map[uint16]mapping.Functionality{1: {CustomAction: "decoder:meter:v2"}}
	})
	p := mapping.New(mapping.Config{Store: st, Source: src, Decoder: dec})
	d := mapping.Device{Tenant: "acme", ID: "9", Endpoint: "ep-9"}
	p.Handle(ctx, mapping.Input{Device: d, Records: []node.Record{{Path: node.MustParsePath("/10250/0/1"), Value: node.Opaque([]byte{0xca, 0xfe})}}})
	if len(dec.got) != 1 {
		t.Fatalf("decoder got %d requests, want 1", len(dec.got))
	}
	g := dec.got[0]
	if g.Decoder != "meter" || g.Argument != "v2" || g.Path.String() != "/10250/0/1" || g.ID != "9" || g.Endpoint != "ep-9" || string(g.Value.Bytes) != "\xca\xfe" || g.Time.IsZero() {
		t.Errorf("decode request %+v", g)
	}
}

// At a registration, every resource whose functionality says autoObserve
// is observed on every registered instance of its object, and the first
// answer is mapped like any other value.
func TestPipelineAutoObserve(t *testing.T) {
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
			5700: {Measurement: &mapping.Measurement{Type: "c8y_Temperature", Series: "T", Unit: "C"}, AutoObserve: true},
			5701: {Event: &mapping.Event{Type: "c8y_Units", Text: "{value}"}},
		}
	})
	p := mapping.New(mapping.Config{Store: st, Source: src, ObserveWorkers: 2, Writer: mapping.WriterOptions{FlushInterval: 10 * time.Millisecond}})
	obs := &observer{}
	p.SetObserver(obs)
	octx, stopObs := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { p.RunObservers(octx); close(done) }()
	wctx, stopWriter := context.WithCancel(ctx)
	go p.RunWriter(wctx)

	d := mapping.Device{Tenant: "acme", ID: id, Endpoint: "ep-1"}
	p.Registered(ctx, mapping.Registration{Device: d, RegID: "r1", Since: time.Now(),
		Objects: []node.Path{node.InstancePath(3, 0), node.InstancePath(3303, 0), node.InstancePath(3303, 1), node.ObjectPath(3304)}})
	waitFor(t, func() bool { return p.Stats().AutoObserved == 2 })
	stopObs()
	<-done
	stopWriter()
	<-p.Done()
	got := obs.paths()
	slices.Sort(got)
	if want := []string{"/3303/0/5700", "/3303/1/5700"}; !slices.Equal(got, want) {
		t.Errorf("observed %v, want %v", got, want)
	}
	if _, total, err := st.ListMeasurements(ctx, "acme", store.MeasurementFilter{Source: id, Page: page()}); err != nil || total != 2 {
		t.Errorf("%d measurements from the first answers (%v), want 2", total, err)
	}
}

type sourceFunc func(tenant string, object uint16) map[uint16]mapping.Functionality

func (f sourceFunc) Functionalities(_ context.Context, tenant string, object uint16) (map[uint16]mapping.Functionality, error) {
	return f(tenant, object), nil
}

type decoder struct{ got []mapping.DecodeRequest }

func (d *decoder) Queue(_ context.Context, reqs []mapping.DecodeRequest) error {
	d.got = append(d.got, reqs...)
	return nil
}

// observer answers every Observe with a value at the path, as a device
// would.
type observer struct {
	mu  sync.Mutex
	got []string
}

func (o *observer) Observe(_ context.Context, _ string, p node.Path) ([]node.Record, error) {
	o.mu.Lock()
	o.got = append(o.got, p.String())
	o.mu.Unlock()
	return []node.Record{{Path: p, Value: node.Float(21.5)}}, nil
}

func (o *observer) paths() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.got)
}

func waitFor(t *testing.T, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
