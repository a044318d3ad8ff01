package mapping

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
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

// Mapper turns a device's values into measurements, events, alarms,
// inventory updates and decoder requests, following the functionalities
// of each resource and, where a tenant configured none, the default
// mappings. It is safe for concurrent use.
type Mapper struct {
	src  Source
	opts MapperOptions

	mu    sync.Mutex
	cache map[objKey]*objRules

	alarmMu sync.Mutex
	raised  map[alarmKey]bool // raiseWhen alarms: true raised, false cleared
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
}

// rule is a functionality ready to apply.
type rule struct {
	fn      Functionality
	cond    *Condition // parsed raiseWhen
	condErr error
	action  *action // predefined custom action
	decoder string  // plugin name of decoder:<name>[:<arg>] or plugin:<name>[:<action>]
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
	r := &rule{fn: fn}
	if fn.Alarm != nil && fn.Alarm.RaiseWhen != "" {
		r.cond, r.condErr = ParseCondition(fn.Alarm.RaiseWhen)
	}
	if a, ok := actions[fn.CustomAction]; ok {
		r.action = a
	} else if rest, ok := strings.CutPrefix(fn.CustomAction, "decoder:"); ok {
		r.decoder, r.decArg, _ = strings.Cut(rest, ":")
	} else if rest, ok := strings.CutPrefix(fn.CustomAction, "plugin:"); ok {
		r.decoder, r.decArg, _ = strings.Cut(rest, ":")
		r.plugin = true
	}
	return r
}

// rules returns the tenant's rules of an object, from the cache while
// they are fresh. When the Source fails, rules it gave before are used.
func (m *Mapper) rules(ctx context.Context, tenant string, object uint16, now time.Time) (map[uint16]*rule, error) {
	k := objKey{tenant, object}
	m.mu.Lock()
	cached := m.cache[k]
	m.mu.Unlock()
	if cached != nil && now.Before(cached.expires) {
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
		m.cache[k] = &objRules{byResource: byRes, expires: now.Add(m.opts.CacheTTL)}
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

// Map maps one batch of a device's values. Values of resources without any
// functionality (the tenant's or a default) are left alone. It fails only
// when the tenant's functionalities cannot be had at all.
func (m *Mapper) Map(ctx context.Context, in Input) (Output, error) {
	out := Output{Device: in.Device}
	arrived := in.Arrived
	if arrived.IsZero() {
		arrived = time.Now()
	}
	arrived = arrived.UTC()
	var (
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
				return out, err
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
		m.apply(&out, r, rec, t.UTC())
	}
	return out, nil
}

// apply maps one value by one rule into out.
func (m *Mapper) apply(out *Output, r *rule, rec node.Record, t time.Time) {
	fn := &r.fn
	if fn.IgnoreEmptyValues && empty(rec.Value) {
		return
	}
	tc := textContext{value: rec.Value, path: rec.Path, endpoint: out.Endpoint, device: out.ID, time: t}
	if ms := fn.Measurement; ms != nil {
		if v, ok := Number(rec.Value); ok {
			addMeasurement(out, ms.Type, ms.Series, ms.Unit, v, t)
		} else {
			m.mappingError(out, tc, fmt.Sprintf("measurement %s.%s needs a number", ms.Type, ms.Series))
		}
	}
	if ev := fn.Event; ev != nil {
		out.Events = append(out.Events, store.Event{Source: out.ID, Type: ev.Type, Text: expand(ev.Text, tc), Time: t})
	}
	if al := fn.Alarm; al != nil {
		m.alarm(out, r, al, rec.Value, tc)
	}
	switch {
	case r.action != nil:
		r.action.apply(m, out, rec.Value, tc)
	case r.decoder != "":
		out.Decodes = append(out.Decodes, DecodeRequest{
			Device: out.Device, Path: rec.Path, Value: rec.Value, Time: t, Decoder: r.decoder, Argument: r.decArg, Action: r.plugin,
		})
	}
}

func (m *Mapper) alarm(out *Output, r *rule, al *Alarm, v node.Value, tc textContext) {
	a := store.Alarm{Source: out.ID, Type: al.Type, Severity: al.Severity, Status: al.Status, Text: expand(al.Text, tc), Time: tc.time}
	if al.RaiseWhen == "" {
		out.Alarms = append(out.Alarms, AlarmChange{Alarm: a})
		return
	}
	if r.condErr != nil {
		m.mappingError(out, tc, fmt.Sprintf("alarm %s: raiseWhen %q: %v", al.Type, al.RaiseWhen, r.condErr))
		return
	}
	holds := r.cond.Holds(scalar(v))
	k := alarmKey{out.Tenant, out.ID, al.Type}
	m.alarmMu.Lock()
	was, known := m.raised[k]
	if !known && len(m.raised) >= m.opts.MaxAlarmStates {
		clear(m.raised)
	}
	m.raised[k] = holds
	m.alarmMu.Unlock()
	switch {
	case holds:
		// raised while the condition holds: every such value counts
		out.Alarms = append(out.Alarms, AlarmChange{Alarm: a})
	case was || !known:
		// cleared once when it stops holding; after a restart the state
		// is unknown, and a clear of nothing costs one lookup
		out.Alarms = append(out.Alarms, AlarmChange{Clear: true, Alarm: store.Alarm{Source: out.ID, Type: al.Type, Time: tc.time}})
	}
}

// mappingError raises the mapping alarm on the device, naming the value
// and what could not be done with it.
func (m *Mapper) mappingError(out *Output, tc textContext, what string) {
	v := valueText(tc.value)
	if len(v) > 64 {
		v = v[:64] + "…"
	}
	out.Alarms = append(out.Alarms, AlarmChange{Alarm: store.Alarm{
		Source: out.ID, Type: MappingErrorAlarm, Severity: store.SeverityMajor, Time: tc.time,
		Text: fmt.Sprintf("Value %q of %s (%s) cannot be mapped: %s", v, tc.path, tc.value.Type, what),
	}})
}

// addMeasurement adds a series to the device's measurement of that type
// and time, or starts one: values sent together become one measurement.
func addMeasurement(out *Output, typ, series, unit string, v float64, t time.Time) {
	addMeasurementFragment(out, typ, typ, series, unit, v, t)
}
