package mapping

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/plugins/customactions"
	pmapping "github.com/lwm2m-agent/lwm2m-agent/plugins/mapping"
)

// Source gives a tenant's functionalities of one object's resources, keyed
// by resource ID. Which tenant's protocol applies (a tenant's own, or one
// it inherits) is the Source's business; a resource it gives no
// functionality for falls back to the default mappings.
type Source interface {
	Functionalities(ctx context.Context, tenant string, objectID uint16) (map[uint16]Functionality, error)
}

// NoFunctionalities is a Source without any: only the default mappings
// apply.
type NoFunctionalities struct{}

// Functionalities returns none.
func (NoFunctionalities) Functionalities(context.Context, string, uint16) (map[uint16]Functionality, error) {
	return nil, nil
}

// Kind says how values reached the agent.
type Kind uint8

// The kinds of input.
const (
	// KindReport: the device sent them on its own (notification, Send).
	KindReport Kind = iota
	// KindRead: the answer to a read, an observe or a composite request.
	KindRead
)

// String names the kind for logs.
func (k Kind) String() string {
	if k == KindRead {
		return "read"
	}
	return "report"
}

// Device names the device values come from.
type Device struct {
	Tenant   string
	ID       string // managed object ID
	Endpoint string
}

// Input is one batch of values of one device.
type Input struct {
	Device
	Kind Kind
	// Records are the values; a record's Time is the device's time of
	// the value, zero when it gave none.
	Records []node.Record
	// Arrived is when the values reached the agent, the time of every
	// record without its own; zero means now.
	Arrived time.Time
}

// Output is what one Input becomes: everything for one device of one
// tenant.
type Output struct {
	Device
	Measurements []store.Measurement
	Events       []store.Event
	// Alarms are raised and cleared in this order.
	Alarms []AlarmChange
	// Inventory is merged into the device's managed object; nil when
	// nothing changes.
	Inventory *InventoryUpdate
	// Decodes are raw values for decoders.
	Decodes []DecodeRequest
}

// Len counts the items of o.
func (o *Output) Len() int {
	n := len(o.Measurements) + len(o.Events) + len(o.Alarms) + len(o.Decodes)
	if o.Inventory != nil {
		n++
	}
	return n
}

// AlarmChange raises Alarm (a repeat increments its count) or, with Clear,
// clears the open alarm of Alarm.Type on Alarm.Source.
type AlarmChange struct {
	Clear bool
	Alarm store.Alarm
}

// InventoryUpdate sets fields inside fragments of a device's managed
// object, leaving the fragments' other fields as they are: a device that
// reports its serial number alone keeps the model it reported before.
type InventoryUpdate struct {
	Fields map[string]map[string]any // fragment → field → value
	// Rename gives the device the name made of its c8y_Hardware
	// manufacturer, model and serial number (device:update* actions).
	Rename bool
}

func (u *InventoryUpdate) set(fragment, field string, v any) {
	if u.Fields == nil {
		u.Fields = map[string]map[string]any{}
	}
	f := u.Fields[fragment]
	if f == nil {
		f = map[string]any{}
		u.Fields[fragment] = f
	}
	f[field] = v
}

// merge adds v's fields to u; v's win.
func (u *InventoryUpdate) merge(v *InventoryUpdate) {
	for frag, fields := range v.Fields {
		for k, x := range fields {
			u.set(frag, k, x)
		}
	}
	u.Rename = u.Rename || v.Rename
}

// DecodeRequest is a value for the plugin a resource's customAction
// names: a decoder ("decoder:<name>[:<argument>]") given the raw value, or
// a custom action plugin ("plugin:<name>[:<action>]") given the typed one.
type DecodeRequest struct {
	Device
	Path     node.Path
	Value    node.Value
	Time     time.Time
	Decoder  string // the plugin's name
	Argument string
	Action   bool // a custom action plugin, not a decoder
}

// Decoder takes the raw values of resources whose customAction names a
// decoder. Queue must not wait for the decoding: it hands the values over
// (the decoder keeps them, retries a failed decode, and writes what it
// decodes itself), so that a slow or broken decoder holds no device back.
// An error that is a *DecodesRefused says the decoder refused some of
// the values and raised their alarms; any other, that it took none.
type Decoder interface {
	Queue(ctx context.Context, reqs []DecodeRequest) error
}

// MappingErrorAlarm is the alarm type raised on a device whose value
// cannot be mapped as its functionality asks (a measurement of something
// that is not a number, for example).
const MappingErrorAlarm = "c8y_LWM2MMappingError"

// MapperOptions tune a Mapper; zero fields take defaults.
type MapperOptions struct {
	// CacheTTL is how long a tenant's functionalities of an object are
	// used before they are asked of the Source again; default 10 s, a
	// negative value asks for every batch.
	CacheTTL time.Duration
	// MaxCached bounds the cache (tenants × objects); default 100,000.
	MaxCached int
	// MaxAlarmStates bounds the remembered raiseWhen states (device ×
	// alarm type); default 1,000,000. When full it is forgotten, which
	// costs at most one redundant clear per alarm.
	MaxAlarmStates int
}

// Mapper decides which functionality applies to each of a device's
// values (the tenant's, else a default mapping) and turns what the
// bundled plugins answer into outputs. It keeps the state the mapping
// needs across batches, and across restarts of the plugin processes: the
// raiseWhen alarms' last states, by which a clear that changes nothing is
// dropped. It is safe for concurrent use.
type Mapper struct {
	src  Source
	opts MapperOptions

	mu    sync.Mutex
	cache map[objKey]*objRules

	alarmMu sync.Mutex
	raised  map[alarmKey]bool // true raised, false cleared
}

type objKey struct {
	tenant string
	object uint16
}

type alarmKey struct {
	tenant, device, typ string
}

// objRules are a tenant's compiled functionalities of one object.
type objRules struct {
	byResource map[uint16]*rule
	expires    time.Time
	gen        uint64 // the Source's generation they were read at
}

// generational is a Source that says when its functionalities changed
// (store.Protocols): the mapper's cache then starts over at once instead
// of after CacheTTL, so an operator's change applies to the next value.
type generational interface {
	Generation() uint64
}

// rule is a functionality with where its values go.
type rule struct {
	fn Functionality
	// raw is fn's JSON, as a batch's table carries it to the plugins.
	raw []byte
	// mapped: a measurement, event or alarm, for the mapping plugin.
	mapped bool
	// action: a predefined custom action (or a default mapping's
	// inventory: action), for the custom action plugin.
	action  bool
	decoder string // plugin name of decoder:<name>[:<arg>] or plugin:<name>[:<action>]
	decArg  string
	plugin  bool // plugin:, a custom action plugin
}

// NewMapper returns a mapper over src (nil: NoFunctionalities).
func NewMapper(src Source, o MapperOptions) *Mapper {
	if src == nil {
		src = NoFunctionalities{}
	}
	if o.CacheTTL == 0 {
		o.CacheTTL = 10 * time.Second
	}
	if o.MaxCached <= 0 {
		o.MaxCached = 100_000
	}
	if o.MaxAlarmStates <= 0 {
		o.MaxAlarmStates = 1_000_000
	}
	return &Mapper{src: src, opts: o, cache: map[objKey]*objRules{}, raised: map[alarmKey]bool{}}
}

func compile(fn Functionality) *rule {
	r := &rule{fn: fn, mapped: fn.Measurement != nil || fn.Event != nil || fn.Alarm != nil}
	if raw, err := json.Marshal(fn); err == nil {
		r.raw = raw
	} else {
		// plain structs of strings: cannot happen; map nothing rather than guess
		r.mapped = false
	}
	if customactions.Known(fn.CustomAction) {
		r.action = r.raw != nil
	} else if ref, ok := ParsePluginRef(fn.CustomAction); ok {
		r.decoder, r.decArg, r.plugin = ref.Name, ref.Argument, ref.Action
	}
	return r
}

// rules returns the tenant's rules of an object, from the cache while
// they are fresh. When the Source fails, rules it gave before are used.
func (m *Mapper) rules(ctx context.Context, tenant string, object uint16, now time.Time) (map[uint16]*rule, error) {
	k := objKey{tenant, object}
	var gen uint64
	if g, ok := m.src.(generational); ok {
		gen = g.Generation()
	}
	m.mu.Lock()
	cached := m.cache[k]
	m.mu.Unlock()
	if cached != nil && now.Before(cached.expires) && cached.gen == gen {
		return cached.byResource, nil
	}
	fns, err := m.src.Functionalities(ctx, tenant, object)
	if err != nil {
		if cached != nil {
			return cached.byResource, nil
		}
		return nil, fmt.Errorf("functionalities of object %d of tenant %s: %w", object, tenant, err)
	}
	var byRes map[uint16]*rule
	if len(fns) > 0 {
		byRes = make(map[uint16]*rule, len(fns))
		for id, fn := range fns {
			byRes[id] = compile(fn)
		}
	}
	if m.opts.CacheTTL > 0 {
		m.mu.Lock()
		if len(m.cache) >= m.opts.MaxCached {
			clear(m.cache)
		}
		m.cache[k] = &objRules{byResource: byRes, expires: now.Add(m.opts.CacheTTL), gen: gen}
		m.mu.Unlock()
	}
	return byRes, nil
}

// Functionality returns the functionality that applies to a resource of a
// tenant's device: the tenant's, else the default one.
func (m *Mapper) Functionality(ctx context.Context, tenant string, object, resource uint16) (Functionality, bool, error) {
	rs, err := m.rules(ctx, tenant, object, time.Now())
	if err != nil {
		return Functionality{}, false, err
	}
	if r := rs[resource]; r != nil {
		return r.fn, true, nil
	}
	if r := defaults[resKey{object, resource}]; r != nil {
		return r.fn, true, nil
	}
	return Functionality{}, false, nil
}

// AutoObserved returns the resources of an object whose functionality
// asks to be observed as soon as a device registers.
func (m *Mapper) AutoObserved(ctx context.Context, tenant string, object uint16) ([]uint16, error) {
	rs, err := m.rules(ctx, tenant, object, time.Now())
	if err != nil {
		return nil, err
	}
	var ids []uint16
	for id, r := range rs {
		if r.fn.AutoObserve {
			ids = append(ids, id)
		}
	}
	for k, r := range defaults {
		if k.object == object && r.fn.AutoObserve && rs[k.resource] == nil {
			ids = append(ids, k.resource)
		}
	}
	return ids, nil
}

// job is one Input's values for the bundled plugins, each with its rule.
type job struct {
	Device
	values []jobValue
	at     time.Time // handed to the pipeline
}

type jobValue struct {
	rec node.Record
	t   time.Time // the device's time, else the arrival
	r   *rule
}

// route finds the rule of each value of in: values for the bundled
// plugins go into the job, those of decoders and custom action plugins
// into decodes. Values of resources without any functionality (the
// tenant's or a default) are left alone. It fails only when the tenant's
// functionalities cannot be had at all.
func (m *Mapper) route(ctx context.Context, in Input) (job, []DecodeRequest, error) {
	arrived := in.Arrived
	if arrived.IsZero() {
		arrived = time.Now()
	}
	arrived = arrived.UTC()
	j := job{Device: in.Device, at: time.Now()}
	var (
		decodes  []DecodeRequest
		lastObj  uint16
		objRules map[uint16]*rule
		loaded   bool
	)
	for _, rec := range in.Records {
		p := rec.Path
		if p.Depth < 3 {
			continue
		}
		if !loaded || p.Object != lastObj {
			var err error
			if objRules, err = m.rules(ctx, in.Tenant, p.Object, arrived); err != nil {
				return job{}, nil, err
			}
			lastObj, loaded = p.Object, true
		}
		r := objRules[p.Resource]
		if r == nil {
			if r = defaults[resKey{p.Object, p.Resource}]; r == nil {
				continue
			}
		}
		t := rec.Time
		if t.IsZero() {
			t = arrived
		}
		t = t.UTC()
		if r.mapped || r.action {
			j.values = append(j.values, jobValue{rec: rec, t: t, r: r})
		}
		if r.decoder != "" && !(r.fn.IgnoreEmptyValues && pmapping.Empty(rec.Value)) {
			decodes = append(decodes, DecodeRequest{
				Device: in.Device, Path: rec.Path, Value: rec.Value, Time: t, Decoder: r.decoder, Argument: r.decArg, Action: r.plugin,
			})
		}
	}
	return j, decodes, nil
}

// Map maps one batch of a device's values at once, with the bundled
// plugins' code called in process: the pipeline's path without its
// batching, for tests and tools. Decoder values come back as Decodes.
func (m *Mapper) Map(ctx context.Context, in Input) (Output, error) {
	j, decodes, err := m.route(ctx, in)
	if err != nil {
		return Output{Device: in.Device}, err
	}
	out := Output{Device: in.Device}
	if len(j.values) > 0 {
		outs, _, err := m.mapJobs(ctx, InProcess{}, []job{j}, nil)
		if err != nil {
			return out, err
		}
		for _, o := range outs {
			out.merge(o)
		}
	}
	out.Decodes = decodes
	return out, nil
}

// merge adds o's items to out.
func (out *Output) merge(o Output) {
	out.Measurements = append(out.Measurements, o.Measurements...)
	out.Events = append(out.Events, o.Events...)
	out.Alarms = append(out.Alarms, o.Alarms...)
	if o.Inventory != nil {
		if out.Inventory == nil {
			out.Inventory = &InventoryUpdate{}
		}
		out.Inventory.merge(o.Inventory)
	}
	out.Decodes = append(out.Decodes, o.Decodes...)
}

// alarmChange turns a raise or clear the mapping plugin answered into
// the change to store, or drops a clear of an alarm known to be cleared
// already. A plugin answers a raiseWhen alarm's state with every value;
// the state lives here, so that it survives the plugin's restarts.
func (m *Mapper) alarmChange(tenant string, c AlarmChange) (AlarmChange, bool) {
	k := alarmKey{tenant, c.Alarm.Source, c.Alarm.Type}
	m.alarmMu.Lock()
	defer m.alarmMu.Unlock()
	was, known := m.raised[k]
	if !known && len(m.raised) >= m.opts.MaxAlarmStates {
		clear(m.raised)
	}
	m.raised[k] = !c.Clear
	// cleared once when it stops holding; after a restart of the agent
	// the state is unknown, and a clear of nothing costs one lookup
	return c, !c.Clear || was || !known
}

// mappingError raises the mapping alarm on the device, naming the value
// and what could not be done with it.
func mappingError(out *Output, tc textContext, what string) {
	v := pmapping.Text(tc.value)
	if len(v) > 64 {
		v = v[:64] + "…"
	}
	out.Alarms = append(out.Alarms, AlarmChange{Alarm: store.Alarm{
		Source: out.ID, Type: MappingErrorAlarm, Severity: store.SeverityMajor, Time: tc.time,
		Text: fmt.Sprintf("Value %q of %s (%s) cannot be mapped: %s", v, tc.path, tc.value.Type, what),
	}})
}

// textContext is a value with what the mapping alarm names of it.
type textContext struct {
	value node.Value
	path  node.Path
	time  time.Time
}
