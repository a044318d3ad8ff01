package cache_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/cache"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/storetest"
	"github.com/prometheus/client_golang/prometheus"
)

var ctx = context.Background()

// must unwraps a result in a test's setup; a failure panics, with the
// stack of the call.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func check(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// names is an engine that knows the endpoints, identities and records
// it is given, and counts the reads that reach it; for the tests of the
// cache's own bookkeeping. Anything else it is asked panics.
type names struct {
	store.Engine
	mu    sync.Mutex
	known map[string]bool
	recs  map[string]store.DeviceRegistration
	reads atomic.Int64
}

func newNames(known ...string) *names {
	n := &names{known: map[string]bool{}, recs: map[string]store.DeviceRegistration{}}
	for _, k := range known {
		n.known[k] = true
	}
	return n
}

func (n *names) DeviceByEndpoint(_ context.Context, ep string) (string, string, error) {
	n.reads.Add(1)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.known[ep] {
		return "t", "dev-" + ep, nil
	}
	return "", "", fmt.Errorf("endpoint %s: %w", ep, store.ErrNotFound)
}

func (n *names) DeviceSettings(_ context.Context, tenant, id string) (store.DeviceRegistration, error) {
	n.reads.Add(1)
	n.mu.Lock()
	defer n.mu.Unlock()
	r, ok := n.recs[tenant+"/"+id]
	if !ok {
		return store.DeviceRegistration{}, store.ErrNotFound
	}
	return r, nil
}

// reads returns how many reads reached the engine while f ran.
func (n *names) readsOf(f func()) int64 {
	before := n.reads.Load()
	f()
	return n.reads.Load() - before
}

func stats(c *cache.Cache, name string) cache.Stats {
	for _, s := range c.Stats() {
		if s.Name == name {
			return s
		}
	}
	panic("no cache " + name)
}

// The cache holds at most Size known answers and a quarter of it of
// unknown ones, in rooms of their own, pushing out the least recently
// used: a flood of unknown names leaves the known ones cached.
func TestBounds(t *testing.T) {
	const size = 8
	var known []string
	for i := range size + 1 {
		known = append(known, fmt.Sprint("ep-", i))
	}
	n := newNames(known...)
	c := cache.New(cache.Config{Size: size})
	st := c.Wrap(n)
	lookup := func(ep string) {
		t.Helper()
		_, _, err := st.DeviceByEndpoint(ctx, ep)
		if n.known[ep] != (err == nil) {
			t.Fatalf("%s: %v", ep, err)
		}
	}
	warm := known[:size]
	if r := n.readsOf(func() {
		for _, ep := range warm {
			lookup(ep)
		}
	}); r != size {
		t.Fatalf("cold lookups read %d times, want %d", r, size)
	}
	if r := n.readsOf(func() {
		for _, ep := range warm {
			lookup(ep)
		}
		for i := range 100 {
			lookup(fmt.Sprint("unknown-", i))
		}
		for _, ep := range warm {
			lookup(ep)
		}
	}); r != 100 {
		t.Fatalf("known names read again after a flood of unknown ones: %d reads, want the 100 unknown", r)
	}
	s := stats(c, "endpoints")
	if s.Entries != size+size/4 || s.Evictions != 100-size/4 {
		t.Fatalf("after the flood: %+v, want %d entries and %d evictions", s, size+size/4, 100-size/4)
	}
	// the least recently used known name goes for a new one
	lookup(warm[0])
	lookup(known[size])
	if r := n.readsOf(func() { lookup(warm[0]) }); r != 0 {
		t.Fatal("the most recently used name was pushed out")
	}
	if r := n.readsOf(func() { lookup(warm[1]) }); r != 1 {
		t.Fatal("the least recently used name was not pushed out")
	}
}

// An answer expires TTL after the read that loaded it began.
func TestTTL(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	n := newNames("ep")
	st := cache.New(cache.Config{Size: 4, TTL: 5 * time.Second, Now: clock}).Wrap(n)
	for _, step := range []struct {
		advance time.Duration
		reads   int64
	}{{0, 1}, {4 * time.Second, 0}, {time.Second, 1}, {4999 * time.Millisecond, 0}, {time.Millisecond, 1}} {
		advance(step.advance)
		for _, ep := range []string{"ep", "nobody"} {
			if r := n.readsOf(func() { _, _, _ = st.DeviceByEndpoint(ctx, ep) }); r != step.reads {
				t.Fatalf("%s after %v more: %d reads, want %d", ep, step.advance, r, step.reads)
			}
		}
	}
}

// What a caller gets is its own: changing it changes neither the cached
// record nor what the next caller gets.
func TestAnswersAreCopies(t *testing.T) {
	n := newNames()
	n.recs["t/1"] = store.DeviceRegistration{
		Params:  map[string]any{"securityMode": "PSK", "servers": []any{map[string]any{"uri": "coap://a"}}},
		PSKKey:  []byte{1, 2, 3},
		Release: map[string]string{store.PSKServer: "old"},
	}
	st := cache.New(cache.Config{Size: 4}).Wrap(n)
	for range 2 { // the first answer comes from the engine, the second from the cache
		r := must(st.DeviceSettings(ctx, "t", "1"))
		want := n.recs["t/1"]
		if !reflect.DeepEqual(r, want) {
			t.Fatalf("record %+v, want %+v", r, want)
		}
		r.Params["securityMode"] = "NO_SEC"
		r.Params["servers"].([]any)[0].(map[string]any)["uri"] = "coap://evil"
		r.PSKKey[0] = 9
		r.Release[store.PSKServer] = "x"
	}
	if r := must(st.DeviceRegistrationOf(ctx, "t", "1")); r.Params["securityMode"] != "PSK" || r.PSKKey[0] != 1 ||
		r.Params["servers"].([]any)[0].(map[string]any)["uri"] != "coap://a" || r.Release[store.PSKServer] != "old" {
		t.Fatalf("a caller's change reached the cache: %+v", r)
	}
	if n.recs["t/1"].PSKKey[0] != 1 {
		t.Fatal("a caller's change reached the engine's record")
	}
}

// Without a size there is no cache.
func TestSizeZeroIsNoCache(t *testing.T) {
	n := newNames()
	if st := cache.New(cache.Config{}).Wrap(n); st != store.Engine(n) {
		t.Fatalf("Wrap without a size returned %T", st)
	}
}

// The concerns the cache passes through untouched hold no method that
// changes a cached answer. A method added to them must be checked and
// added here; one added to the other concerns does not compile until
// Engine has it.
func TestPassThroughConcerns(t *testing.T) {
	want := map[string][]string{
		"Telemetry": {"AddMeasurements", "ClearAlarm", "CreateEvent", "CreateEvents", "GetAlarm", "GetEvent", "GetMeasurement",
			"ListAlarms", "ListEvents", "ListMeasurements", "RaiseAlarm", "SaveValues", "UpdateAlarm", "Values"},
		"Binaries": {"CreateBinary", "DeleteBinary", "GetBinary", "ListBinaries", "OpenBinary", "ReadBinary"},
		"ProtocolRecords": {"DeleteProtocolRecord", "FirstProtocolRecord", "GetProtocolRecord", "ListProtocolRecords",
			"ProtocolObjectIDs", "PutProtocolRecord"},
		"Tenants":   {"Authenticate", "CreateTenant", "CreateUser", "EnsureManagement", "GetTenant", "ListTenants", "Login", "SetPassword"},
		"Retention": {"Expire"},
		"DecodeBacklog": {"AppendDecodes", "DecodeBacklogStats", "ResumeDecodes", "SettleDecodes", "TakeDecodes",
			"TakeExpiredDecodes"},
		"FirmwareGrants": {"DeleteFirmwareGrant", "ExpiredFirmwareGrants", "FirmwareGrant", "PutFirmwareGrant", "RevokeFirmwareGrants"},
		"References":     {"AddChildReference", "AllReferences", "ListChildren", "ParentsOf", "RemoveChildReference"},
		"DTLSSessions": {"DTLSSessionByAddr", "DTLSSessionByCID", "DTLSSessionByIdentity", "DeleteDTLSSession", "PutDTLSSession",
			"ReserveDTLSSequence", "TouchDTLSSession"},
	}
	for name, typ := range map[string]reflect.Type{
		"Telemetry":       reflect.TypeFor[store.Telemetry](),
		"Binaries":        reflect.TypeFor[store.Binaries](),
		"ProtocolRecords": reflect.TypeFor[store.ProtocolRecords](),
		"Tenants":         reflect.TypeFor[store.Tenants](),
		"Retention":       reflect.TypeFor[store.Retention](),
		"DecodeBacklog":   reflect.TypeFor[store.DecodeBacklog](),
		"FirmwareGrants":  reflect.TypeFor[store.FirmwareGrants](),
		"References":      reflect.TypeFor[store.References](),
		"DTLSSessions":    reflect.TypeFor[store.DTLSSessions](),
	} {
		var got []string
		for i := range typ.NumMethod() {
			got = append(got, typ.Method(i).Name)
		}
		if !slices.Equal(got, want[name]) {
			t.Errorf("store.%s has %v, the cache passes through %v: check what the new methods change", name, got, want[name])
		}
	}
}

func TestMetrics(t *testing.T) {
	n := newNames("ep")
	c := cache.New(cache.Config{Size: 4})
	st := c.Wrap(n)
	for range 3 {
		_, _, _ = st.DeviceByEndpoint(ctx, "ep")
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(c.Collector())
	mfs := must(reg.Gather())
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() != "endpoints" {
				continue
			}
			v := m.GetCounter().GetValue()
			if m.GetGauge() != nil {
				v = m.GetGauge().GetValue()
			}
			got[mf.GetName()] = v
		}
	}
	want := map[string]float64{
		"lwm2m_agent_store_cache_hits_total": 2, "lwm2m_agent_store_cache_misses_total": 1,
		"lwm2m_agent_store_cache_evictions_total": 0, "lwm2m_agent_store_cache_entries": 1,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("metrics of the endpoints cache: %v, want %v", got, want)
	}
}

// answers renders what the cached lookups answer for the names a test
// looks at, to compare the cache with the engine alone.
type probe struct {
	endpoints  []string
	identities []string // lwm2m kind
	devices    []string // of tenant t1
}

func (p probe) answers(t *testing.T, s store.Engine) []string {
	t.Helper()
	var out []string
	kind := func(err error) string {
		switch {
		case err == nil:
			return "ok"
		case errors.Is(err, store.ErrNotFound):
			return "not found"
		}
		t.Fatal(err)
		return ""
	}
	for _, ep := range p.endpoints {
		tenant, id, err := s.DeviceByEndpoint(ctx, ep)
		out = append(out, fmt.Sprintf("endpoint %s: %s %s %s", ep, tenant, id, kind(err)))
	}
	for _, ident := range p.identities {
		tenant, id, err := s.DeviceByPSKIdentity(ctx, store.PSKServer, ident)
		out = append(out, fmt.Sprintf("identity %s: %s %s %s", ident, tenant, id, kind(err)))
	}
	for _, id := range p.devices {
		r, err := s.DeviceSettings(ctx, "t1", id)
		r.Updated = time.Time{}
		out = append(out, fmt.Sprintf("settings %s: %+v %s", id, r, kind(err)))
		r, err = s.DeviceRegistrationOf(ctx, "t1", id)
		r.Updated = time.Time{}
		out = append(out, fmt.Sprintf("registration %s: %+v %s", id, r, kind(err)))
		ops, err := s.Pending(ctx, "t1", id, 10)
		var ids []string
		for _, op := range ops {
			ids = append(ids, op.ID+" "+op.Status)
		}
		out = append(out, fmt.Sprintf("pending %s: %v %s", id, ids, kind(err)))
	}
	return out
}

// Every write of the contract that can change a cached answer drops it:
// after answers are cached, a write through the cache, and the cached
// answers are the engine's own.
func TestWritesDropWhatTheyChange(t *testing.T) {
	pskReg := func(ep, ident string) store.DeviceRegistration {
		return store.DeviceRegistration{Params: map[string]any{"endpointId": ep, "securityMode": "PSK", "lwm2mPskId": ident}, PSKKey: []byte{1, 2}}
	}
	device := func(t *testing.T, s store.Engine, ep string, reg store.DeviceRegistration, complete bool) string {
		id := must(s.CreateIncompleteDevice(ctx, "t1", store.NewDevice{Endpoint: ep, Registration: reg}))
		if complete {
			check(t, s.CompleteDevice(ctx, "t1", id))
		}
		return id
	}
	executing := func(t *testing.T, s store.Engine, dev string) store.Operation {
		op := must(s.CreateOperation(ctx, "t1", store.Operation{DeviceID: dev, HasCommand: true, Text: "read /3/0"}))
		check(t, s.Transition(ctx, "t1", op, store.OpExecuting, "", ""))
		op.Status = store.OpExecuting
		return op
	}
	// each case prepares the engine alone, then writes through the cache
	// after the probe's answers are cached; ids are those setup returns
	cases := []struct {
		name  string
		probe probe
		setup func(t *testing.T, raw store.Engine) []string
		write func(t *testing.T, st store.Engine, ids []string)
	}{
		{"BindPSKIdentity", probe{identities: []string{"id-a"}},
			func(t *testing.T, raw store.Engine) []string {
				return []string{device(t, raw, "ep", pskReg("ep", "id-a"), true)}
			},
			func(t *testing.T, st store.Engine, ids []string) {
				check(t, st.BindPSKIdentity(ctx, store.PSKServer, "id-a", "t1", ids[0]))
			}},
		{"UnbindPSKIdentity", probe{identities: []string{"id-a"}},
			func(t *testing.T, raw store.Engine) []string {
				id := device(t, raw, "ep", pskReg("ep", "id-a"), true)
				check(t, raw.BindPSKIdentity(ctx, store.PSKServer, "id-a", "t1", id))
				return []string{id}
			},
			func(t *testing.T, st store.Engine, ids []string) {
				check(t, st.UnbindPSKIdentity(ctx, store.PSKServer, "id-a", "t1", ids[0]))
			}},
		{"ReleasePendingIdentities", probe{identities: []string{"old", "new"}},
			func(t *testing.T, raw store.Engine) []string {
				id := device(t, raw, "ep", pskReg("ep", "old"), true)
				check(t, raw.BindPSKIdentity(ctx, store.PSKServer, "old", "t1", id))
				check(t, raw.BindPSKIdentity(ctx, store.PSKServer, "new", "t1", id))
				next := pskReg("ep", "new")
				next.Release = map[string]string{store.PSKServer: "old"}
				check(t, raw.SaveDeviceRegistration(ctx, "t1", id, next))
				return []string{id}
			},
			func(t *testing.T, st store.Engine, ids []string) {
				check(t, st.ReleasePendingIdentities(ctx, "t1", ids[0]))
			}},
		{"SaveDeviceRegistration", probe{},
			func(t *testing.T, raw store.Engine) []string {
				return []string{device(t, raw, "ep", pskReg("ep", "id-a"), true)}
			},
			func(t *testing.T, st store.Engine, ids []string) {
				check(t, st.SaveDeviceRegistration(ctx, "t1", ids[0], store.DeviceRegistration{Params: map[string]any{"securityMode": "NO_SEC"}}))
			}},
		{"SaveDeviceRegistrationOfNone", probe{},
			func(t *testing.T, raw store.Engine) []string { return []string{"77"} },
			func(t *testing.T, st store.Engine, ids []string) {
				check(t, st.SaveDeviceRegistration(ctx, "t1", ids[0], pskReg("ep", "id-a")))
			}},
		{"SetDeviceSerialization", probe{},
			func(t *testing.T, raw store.Engine) []string {
				return []string{device(t, raw, "ep", pskReg("ep", "id-a"), true)}
			},
			func(t *testing.T, st store.Engine, ids []string) {
				check(t, st.SetDeviceSerialization(ctx, "t1", ids[0], "TLV"))
			}},
		{"CreateDevice", probe{endpoints: []string{"ep"}},
			func(t *testing.T, raw store.Engine) []string { return nil },
			func(t *testing.T, st store.Engine, ids []string) { must(st.CreateDevice(ctx, "t1", "ep")) }},
		{"SaveNewStates", probe{endpoints: []string{"ep"}},
			func(t *testing.T, raw store.Engine) []string { return nil },
			func(t *testing.T, st store.Engine, ids []string) {
				id := must(st.NewDeviceID(ctx, "t1"))
				_, _, _, err := st.SaveNewStates(ctx, "t1", []store.NewEndpoint{{ID: id, Endpoint: "ep"}}, nil, nil)
				check(t, err)
			}},
		{"CreateIncompleteDevice", probe{endpoints: []string{"ep"}},
			func(t *testing.T, raw store.Engine) []string { return nil },
			func(t *testing.T, st store.Engine, ids []string) {
				must(st.CreateIncompleteDevice(ctx, "t1", store.NewDevice{Endpoint: "ep", Registration: pskReg("ep", "id-a")}))
			}},
		{"CompleteDevice", probe{endpoints: []string{"ep"}},
			func(t *testing.T, raw store.Engine) []string {
				return []string{device(t, raw, "ep", pskReg("ep", "id-a"), false)}
			},
			func(t *testing.T, st store.Engine, ids []string) { check(t, st.CompleteDevice(ctx, "t1", ids[0])) }},
		{"RemoveIncompleteDevice", probe{endpoints: []string{"ep"}, identities: []string{"id-a"}},
			func(t *testing.T, raw store.Engine) []string {
				id := device(t, raw, "ep", pskReg("ep", "id-a"), false)
				check(t, raw.BindPSKIdentity(ctx, store.PSKServer, "id-a", "t1", id))
				return []string{id}
			},
			func(t *testing.T, st store.Engine, ids []string) {
				check(t, st.RemoveIncompleteDevice(ctx, "t1", ids[0]))
			}},
		{"AdoptNoSecDevice", probe{},
			func(t *testing.T, raw store.Engine) []string {
				return []string{device(t, raw, "ep", store.DeviceRegistration{Params: map[string]any{"awakeTimeRegistrationParameter": int64(0)}}, true)}
			},
			func(t *testing.T, st store.Engine, ids []string) {
				if !must(st.AdoptNoSecDevice(ctx, "t1", ids[0], "ep")) {
					t.Fatal("not adopted")
				}
			}},
		{"DeleteManagedObject", probe{endpoints: []string{"ep"}, identities: []string{"id-a"}},
			func(t *testing.T, raw store.Engine) []string {
				id := device(t, raw, "ep", pskReg("ep", "id-a"), true)
				check(t, raw.BindPSKIdentity(ctx, store.PSKServer, "id-a", "t1", id))
				return []string{id}
			},
			func(t *testing.T, st store.Engine, ids []string) { must(st.DeleteManagedObject(ctx, "t1", ids[0])) }},
		{"CreateOperation", probe{},
			func(t *testing.T, raw store.Engine) []string {
				return []string{must(raw.CreateDevice(ctx, "t1", "ep"))}
			},
			func(t *testing.T, st store.Engine, ids []string) {
				must(st.CreateOperation(ctx, "t1", store.Operation{DeviceID: ids[0], HasCommand: true, Text: "read /3/0"}))
			}},
		{"CreateOperations", probe{},
			func(t *testing.T, raw store.Engine) []string {
				return []string{must(raw.CreateDevice(ctx, "t1", "ep")), must(raw.CreateDevice(ctx, "t1", "ep2"))}
			},
			func(t *testing.T, st store.Engine, ids []string) {
				must(st.CreateOperations(ctx, "t1", []store.Operation{
					{DeviceID: ids[0], HasCommand: true, Text: "read /3/0"}, {DeviceID: ids[1], HasCommand: true, Text: "read /3/0"},
				}))
			}},
		{"SetStatusToPending", probe{},
			func(t *testing.T, raw store.Engine) []string {
				id := must(raw.CreateDevice(ctx, "t1", "ep"))
				return []string{id, executing(t, raw, id).ID}
			},
			func(t *testing.T, st store.Engine, ids []string) {
				check(t, st.SetStatus(ctx, "t1", ids[1], store.OpPending, "", ""))
			}},
		{"SetStatusFromToPending", probe{},
			func(t *testing.T, raw store.Engine) []string {
				id := must(raw.CreateDevice(ctx, "t1", "ep"))
				return []string{id, executing(t, raw, id).ID}
			},
			func(t *testing.T, st store.Engine, ids []string) {
				check(t, st.SetStatusFrom(ctx, "t1", ids[1], store.OpExecuting, store.OpPending, "", ""))
			}},
		{"TransitionToPending", probe{},
			func(t *testing.T, raw store.Engine) []string {
				id := must(raw.CreateDevice(ctx, "t1", "ep"))
				return []string{id, executing(t, raw, id).ID}
			},
			func(t *testing.T, st store.Engine, ids []string) {
				op := must(st.GetOperation(ctx, "t1", ids[1]))
				check(t, st.Transition(ctx, "t1", op, store.OpPending, "", ""))
			}},
		{"Unsend", probe{},
			func(t *testing.T, raw store.Engine) []string {
				id := must(raw.CreateDevice(ctx, "t1", "ep"))
				return []string{id, executing(t, raw, id).ID}
			},
			func(t *testing.T, st store.Engine, ids []string) {
				check(t, st.Unsend(ctx, "t1", must(st.GetOperation(ctx, "t1", ids[1]))))
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			raw := storetest.OpenTest(t)
			st := cache.New(cache.Config{Size: 100}).Wrap(raw)
			ids := tc.setup(t, raw)
			p := tc.probe
			if len(ids) > 0 {
				p.devices = ids[:1]
				if tc.name == "CreateOperations" {
					p.devices = ids
				}
			}
			before := p.answers(t, st)
			if got := p.answers(t, raw); !slices.Equal(before, got) {
				t.Fatalf("before the write the cache answers\n%v\nthe engine\n%v", before, got)
			}
			tc.write(t, st, ids)
			got, want := p.answers(t, st), p.answers(t, raw)
			if !slices.Equal(got, want) {
				t.Fatalf("after the write the cache answers\n%v\nthe engine\n%v", got, want)
			}
			if slices.Equal(got, before) {
				t.Fatalf("the write changed none of the answers %v: the case tests nothing", before)
			}
		})
	}
}

// The tenants' post-registration commands are read from the store once
// and again after a change through the cache.
func TestPostOperationsCached(t *testing.T) {
	raw := &countingEngine{Engine: storetest.OpenTest(t)}
	st := cache.New(cache.Config{Size: 10}).Wrap(raw)
	check(t, raw.SetPostOperations(ctx, "t1", []string{"read /3/0"}))
	for range 3 {
		if got := must(st.PostOperations(ctx, "t1")); !slices.Equal(got, []string{"read /3/0"}) {
			t.Fatalf("post operations %q", got)
		}
	}
	if n := raw.postOps.Load(); n != 1 {
		t.Fatalf("%d reads of the store, want 1", n)
	}
	got := must(st.PostOperations(ctx, "t1"))
	got[0] = "changed by a caller"
	if got := must(st.PostOperations(ctx, "t1")); !slices.Equal(got, []string{"read /3/0"}) {
		t.Fatalf("after a caller changed its answer: %q", got)
	}
	check(t, st.SetPostOperations(ctx, "t1", []string{"read /3/0/9", "read /3/0/1"}))
	if got := must(st.PostOperations(ctx, "t1")); !slices.Equal(got, []string{"read /3/0/9", "read /3/0/1"}) {
		t.Fatalf("after a change: %q", got)
	}
	if n := raw.postOps.Load(); n != 2 {
		t.Fatalf("%d reads of the store, want 2", n)
	}
}

type countingEngine struct {
	store.Engine
	postOps atomic.Int64
}

func (c *countingEngine) PostOperations(ctx context.Context, tenant string) ([]string, error) {
	c.postOps.Add(1)
	return c.Engine.PostOperations(ctx, tenant)
}
