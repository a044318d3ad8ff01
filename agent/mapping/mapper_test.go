package mapping

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// mapSource is a Source over a plain map: tenant → object → resource.
type mapSource struct {
	fns   map[string]map[uint16]map[uint16]Functionality
	err   error
	calls int
}

func (s *mapSource) Functionalities(_ context.Context, tenant string, object uint16) (map[uint16]Functionality, error) {
	s.calls++
	if s.err != nil {
		return nil, s.err
	}
	return s.fns[tenant][object], nil
}

var (
	t0      = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	arrival = time.Date(2026, 3, 4, 6, 0, 0, 0, time.UTC)
	dev     = Device{Tenant: "acme", ID: "42", Endpoint: "urn:imei:1"}
)

func rec(path string, v node.Value) node.Record {
	return node.Record{Path: node.MustParsePath(path), Value: v}
}
func recAt(path string, v node.Value, t time.Time) node.Record {
	return node.Record{Path: node.MustParsePath(path), Value: v, Time: t}
}

// summary writes an output the way a test compares it, one line per
// item, in a stable order within each kind.
func summary(o Output) []string {
	var s []string
	for _, m := range o.Measurements {
		frag := m.Fragments[m.Type].(map[string]any)
		keys := make([]string, 0, len(frag))
		for k := range frag {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			sv := frag[k].(map[string]any)
			line := fmt.Sprintf("M %s.%s=%s", m.Type, k, strconv.FormatFloat(sv["value"].(float64), 'g', -1, 64))
			if u, ok := sv["unit"]; ok {
				line += " " + u.(string)
			}
			if !m.Time.Equal(arrival) {
				line += " @" + m.Time.Format(time.RFC3339)
			}
			if m.Source != dev.ID {
				line += " source " + m.Source
			}
			s = append(s, line)
		}
	}
	for _, e := range o.Events {
		s = append(s, "E "+e.Type+": "+e.Text)
	}
	for _, a := range o.Alarms {
		if a.Clear {
			s = append(s, "CLEAR "+a.Alarm.Type)
		} else {
			s = append(s, "RAISE "+a.Alarm.Type+" "+a.Alarm.Severity+": "+a.Alarm.Text)
		}
	}
	if u := o.Inventory; u != nil {
		var inv []string
		for frag, fields := range u.Fields {
			for k, v := range fields {
				inv = append(inv, fmt.Sprintf("I %s.%s=%v", frag, k, v))
			}
		}
		sort.Strings(inv)
		s = append(s, inv...)
		if u.Rename {
			s = append(s, "RENAME")
		}
	}
	for _, d := range o.Decodes {
		s = append(s, fmt.Sprintf("D %s(%s) %s %s", d.Decoder, d.Argument, d.Path, d.Value.Text()))
	}
	return s
}

func TestMap(t *testing.T) {
	temp := map[uint16]Functionality{5700: {Measurement: &Measurement{Type: "c8y_Temperature", Series: "T", Unit: "C"}}}
	fn := func(f Functionality) map[uint16]map[uint16]Functionality {
		return map[uint16]map[uint16]Functionality{3303: {5700: f}}
	}
	tests := []struct {
		name string
		fns  map[uint16]map[uint16]Functionality
		recs []node.Record
		want []string
	}{
		{"float measurement", map[uint16]map[uint16]Functionality{3303: temp},
			[]node.Record{rec("/3303/0/5700", node.Float(21.5))}, []string{"M c8y_Temperature.T=21.5 C"}},
		{"integer and unsigned as they come", map[uint16]map[uint16]Functionality{3303: temp},
			[]node.Record{recAt("/3303/0/5700", node.Int(-3), t0), recAt("/3303/1/5700", node.Uint(18446744073709551615), t0.Add(time.Second))},
			[]string{"M c8y_Temperature.T=-3 C @2026-03-04T05:06:07Z", "M c8y_Temperature.T=1.8446744073709552e+19 C @2026-03-04T05:06:08Z"}},
		{"booleans as 0 and 1", fn(Functionality{Measurement: &Measurement{Type: "c8y_Door", Series: "open"}}),
			[]node.Record{recAt("/3303/0/5700", node.Bool(true), t0), recAt("/3303/0/5700", node.Bool(false), t0.Add(time.Second))},
			[]string{"M c8y_Door.open=1 @2026-03-04T05:06:07Z", "M c8y_Door.open=0 @2026-03-04T05:06:08Z"}},
		{"strings holding numbers", fn(Functionality{Measurement: &Measurement{Type: "c8y_X", Series: "v"}}),
			[]node.Record{
				recAt("/3303/0/5700", node.String("1.23E10"), t0),
				recAt("/3303/0/5700", node.String("0x1F"), t0.Add(1*time.Second)),
				recAt("/3303/0/5700", node.String("-0x10"), t0.Add(2*time.Second)),
				recAt("/3303/0/5700", node.String(" 42 "), t0.Add(3*time.Second)),
				recAt("/3303/0/5700", node.String("017"), t0.Add(4*time.Second)),
				recAt("/3303/0/5700", node.String("-2.5e-3"), t0.Add(5*time.Second)),
			},
			[]string{
				"M c8y_X.v=1.23e+10 @2026-03-04T05:06:07Z", "M c8y_X.v=31 @2026-03-04T05:06:08Z", "M c8y_X.v=-16 @2026-03-04T05:06:09Z",
				"M c8y_X.v=42 @2026-03-04T05:06:10Z", "M c8y_X.v=17 @2026-03-04T05:06:11Z", "M c8y_X.v=-0.0025 @2026-03-04T05:06:12Z",
			}},
		{"not a number raises the mapping alarm", map[uint16]map[uint16]Functionality{3303: temp},
			[]node.Record{rec("/3303/0/5700", node.String("warm")), rec("/3303/1/5700", node.Opaque([]byte{1, 2})), rec("/3303/2/5700", node.Link(3, 0)), rec("/3303/3/5700", node.String("NaN"))},
			[]string{
				`RAISE c8y_LWM2MMappingError MAJOR: Value "warm" of /3303/0/5700 (STRING) cannot be mapped: measurement c8y_Temperature.T needs a number`,
				`RAISE c8y_LWM2MMappingError MAJOR: Value "0102" of /3303/1/5700 (OPAQUE) cannot be mapped: measurement c8y_Temperature.T needs a number`,
				`RAISE c8y_LWM2MMappingError MAJOR: Value "3:0" of /3303/2/5700 (OBJLNK) cannot be mapped: measurement c8y_Temperature.T needs a number`,
				`RAISE c8y_LWM2MMappingError MAJOR: Value "NaN" of /3303/3/5700 (STRING) cannot be mapped: measurement c8y_Temperature.T needs a number`,
			}},
		{"values sent together make one measurement", map[uint16]map[uint16]Functionality{3303: {
			5700: {Measurement: &Measurement{Type: "c8y_Env", Series: "T", Unit: "C"}},
			5701: {Measurement: &Measurement{Type: "c8y_Env", Series: "H", Unit: "%"}},
		}}, []node.Record{rec("/3303/0/5700", node.Float(20)), rec("/3303/0/5701", node.Float(55))},
			[]string{"M c8y_Env.H=55 %", "M c8y_Env.T=20 C"}},
		{"event template fields", fn(Functionality{Event: &Event{Type: "c8y_Door",
			Text: "Door is {value}: {path} object {object} instance {instance} resource {resource} of {endpoint} ({device}) at {time}; {unknown} {value"}}),
			[]node.Record{recAt("/3303/1/5700", node.Bool(true), t0)},
			[]string{"E c8y_Door: Door is true: /3303/1/5700 object 3303 instance 1 resource 5700 of urn:imei:1 (42) at 2026-03-04T05:06:07Z; {unknown} {value"}},
		{"event of a resource instance", fn(Functionality{Event: &Event{Type: "c8y_E", Text: "{path}={value}"}}),
			[]node.Record{rec("/3303/0/5700/3", node.String("x"))}, []string{"E c8y_E: /3303/0/5700/3=x"}},
		{"alarm without raiseWhen raises every value", fn(Functionality{Alarm: &Alarm{Type: "c8y_Fault", Severity: "MINOR", Text: "Fault {value}"}}),
			[]node.Record{rec("/3303/0/5700", node.Int(1)), rec("/3303/0/5700", node.Int(2))},
			[]string{"RAISE c8y_Fault MINOR: Fault 1", "RAISE c8y_Fault MINOR: Fault 2"}},
		{"ignoreEmptyValues skips empty strings and bytes", fn(Functionality{IgnoreEmptyValues: true,
			Measurement: &Measurement{Type: "c8y_X", Series: "v"}, Event: &Event{Type: "c8y_E", Text: "got {value}"}}),
			[]node.Record{rec("/3303/0/5700", node.String("")), rec("/3303/0/5700", node.String("  ")), rec("/3303/0/5700", node.Opaque(nil))}, nil},
		{"empty values without ignoreEmptyValues", fn(Functionality{
			Measurement: &Measurement{Type: "c8y_X", Series: "v"}, Event: &Event{Type: "c8y_E", Text: "got '{value}'"}}),
			[]node.Record{rec("/3303/0/5700", node.String(""))},
			[]string{"E c8y_E: got ''", `RAISE c8y_LWM2MMappingError MAJOR: Value "" of /3303/0/5700 (STRING) cannot be mapped: measurement c8y_X.v needs a number`}},
		{"measurement, event and alarm of one value", fn(Functionality{
			Measurement: &Measurement{Type: "c8y_Temperature", Series: "T", Unit: "C"},
			Event:       &Event{Type: "c8y_TempEvent", Text: "T={value}"},
			Alarm:       &Alarm{Type: "c8y_Hot", Severity: "CRITICAL", Text: "Hot: {value}", RaiseWhen: "value > 40"}}),
			[]node.Record{rec("/3303/0/5700", node.Float(41.5))},
			[]string{"M c8y_Temperature.T=41.5 C", "E c8y_TempEvent: T=41.5", "RAISE c8y_Hot CRITICAL: Hot: 41.5"}},
		{"bad raiseWhen raises the mapping alarm", fn(Functionality{Alarm: &Alarm{Type: "c8y_Hot", Severity: "MAJOR", Text: "hot", RaiseWhen: "value >"}}),
			[]node.Record{rec("/3303/0/5700", node.Int(1))},
			[]string{`RAISE c8y_LWM2MMappingError MAJOR: Value "1" of /3303/0/5700 (INTEGER) cannot be mapped: alarm c8y_Hot: raiseWhen "value >": expression ends too early`}},
		{"device:update actions name the device", map[uint16]map[uint16]Functionality{3: {
			0: {CustomAction: "device:updateManufacturer"}, 1: {CustomAction: "device:updateModelNumber"},
			2: {CustomAction: "device:updateSerialNumber"}, 3: {CustomAction: "device:updateFirmwareVersion"},
		}}, []node.Record{rec("/3/0/0", node.String("ACME")), rec("/3/0/1", node.String("T-1000")), rec("/3/0/2", node.String("SN-7")), rec("/3/0/3", node.String("1.2.3"))},
			[]string{"I c8y_Firmware.version=1.2.3", "I c8y_Hardware.manufacturer=ACME", "I c8y_Hardware.model=T-1000", "I c8y_Hardware.serialNumber=SN-7", "RENAME"}},
		{"connectivity actions", map[uint16]map[uint16]Functionality{4: {
			2: {CustomAction: "connectivity:updateRssi"}, 8: {CustomAction: "connectivity:updateCellId"},
			9: {CustomAction: "connectivity:updateSmnc"}, 10: {CustomAction: "connectivity:updateSmcc"},
		}}, []node.Record{rec("/4/0/2", node.Int(-87)), rec("/4/0/8", node.Int(12345)), rec("/4/0/9", node.Int(1)), rec("/4/0/10", node.Int(262))},
			[]string{"M c8y_SignalStrength.rssi=-87 dBm", "I c8y_Mobile.cellId=12345", "I c8y_Mobile.mcc=262", "I c8y_Mobile.mnc=1"}},
		{"rssi that is not a number", map[uint16]map[uint16]Functionality{4: {2: {CustomAction: "connectivity:updateRssi"}}},
			[]node.Record{rec("/4/0/2", node.String("strong"))},
			[]string{`RAISE c8y_LWM2MMappingError MAJOR: Value "strong" of /4/0/2 (STRING) cannot be mapped: measurement c8y_SignalStrength.rssi needs a number`}},
		{"decoder action queues the raw value", fn(Functionality{CustomAction: "decoder:lora-meter:port=2"}),
			[]node.Record{rec("/3303/0/5700", node.Opaque([]byte{0xca, 0xfe}))}, []string{"D lora-meter(port=2) /3303/0/5700 cafe"}},
		{"decoder without argument", fn(Functionality{CustomAction: "decoder:plain"}),
			[]node.Record{rec("/3303/0/5700", node.String("x"))}, []string{"D plain() /3303/0/5700 x"}},
		{"defaults of object 3 and 5", nil,
			[]node.Record{rec("/3/0/0", node.String("lwm2m-agent")), rec("/3/0/1", node.String("simulator")), rec("/3/0/2", node.String("ep-1")),
				rec("/3/0/3", node.String("1.0.0")), rec("/3/0/18", node.String("rev-b")), rec("/3/0/9", node.Int(80)), rec("/5/0/6", node.String("fw-pkg")), rec("/5/0/7", node.String("2.0"))},
			[]string{"I c8y_Firmware.name=fw-pkg", "I c8y_Firmware.version=1.0.0", "I c8y_Hardware.model=simulator", "I c8y_Hardware.revision=rev-b", "I c8y_Hardware.serialNumber=ep-1"}},
		{"defaults of object 4", nil,
			[]node.Record{rec("/4/0/0", node.Int(6)), rec("/4/0/2", node.Int(-75)), rec("/4/0/8", node.Int(9876)), rec("/4/0/9", node.Int(2)), rec("/4/0/10", node.Int(262)), rec("/4/0/12", node.Int(555))},
			[]string{"M c8y_SignalStrength.rssi=-75 dBm", "I c8y_Mobile.cellId=9876", "I c8y_Mobile.lac=555", "I c8y_Mobile.mcc=262", "I c8y_Mobile.mnc=2"}},
		{"defaults of object 6", nil,
			[]node.Record{rec("/6/0/0", node.Float(52.52)), rec("/6/0/1", node.String("13.405")), rec("/6/0/2", node.Float(34)), rec("/6/0/5", node.TimeValue(t0))},
			[]string{"I c8y_Position.alt=34", "I c8y_Position.lat=52.52", "I c8y_Position.lng=13.405"}},
		{"default position that is not a number", nil,
			[]node.Record{rec("/6/0/0", node.String("north"))},
			[]string{`RAISE c8y_LWM2MMappingError MAJOR: Value "north" of /6/0/0 (STRING) cannot be mapped: c8y_Position.lat needs a number`}},
		{"defaults ignore empty values", nil,
			[]node.Record{rec("/3/0/2", node.String("")), rec("/5/0/6", node.String(""))}, nil},
		{"the tenant's functionality wins over the default", map[uint16]map[uint16]Functionality{4: {2: {Measurement: &Measurement{Type: "c8y_Radio", Series: "level"}}}},
			[]node.Record{rec("/4/0/2", node.Int(-80)), rec("/4/0/8", node.Int(1))},
			[]string{"M c8y_Radio.level=-80", "I c8y_Mobile.cellId=1"}},
		{"no mapping, no alarm", nil,
			[]node.Record{rec("/3303/0/5700", node.String("warm")), rec("/3/0", node.String("not a resource")), rec("/3/0/0", node.String("ACME"))}, nil},
		{"the device's time, else the arrival", map[uint16]map[uint16]Functionality{3303: temp},
			[]node.Record{recAt("/3303/0/5700", node.Float(1), t0), rec("/3303/1/5700", node.Float(2))},
			[]string{"M c8y_Temperature.T=1 C @2026-03-04T05:06:07Z", "M c8y_Temperature.T=2 C"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := &mapSource{fns: map[string]map[uint16]map[uint16]Functionality{"acme": tc.fns}}
			m := NewMapper(src, MapperOptions{})
			out, err := m.Map(context.Background(), Input{Device: dev, Records: tc.recs, Arrived: arrival})
			if err != nil {
				t.Fatal(err)
			}
			got := summary(out)
			if !slices.Equal(got, tc.want) {
				t.Errorf("got\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(tc.want, "\n\t"))
			}
		})
	}
}

// raiseWhen: raised (and counted) while the condition holds, cleared once
// when it stops holding; a first value that does not hold clears, as the
// state before a restart is unknown.
func TestRaiseWhenSequence(t *testing.T) {
	src := &mapSource{fns: map[string]map[uint16]map[uint16]Functionality{"acme": {3303: {5700: {
		Alarm: &Alarm{Type: "c8y_HighTemperature", Severity: "MAJOR", Text: "Temperature {value}", RaiseWhen: "value > 40"},
	}}}}}
	m := NewMapper(src, MapperOptions{})
	steps := []struct {
		value float64
		want  []string
	}{
		{30, []string{"CLEAR c8y_HighTemperature"}},
		{35, nil},
		{45, []string{"RAISE c8y_HighTemperature MAJOR: Temperature 45"}},
		{50, []string{"RAISE c8y_HighTemperature MAJOR: Temperature 50"}},
		{35, []string{"CLEAR c8y_HighTemperature"}},
		{20, nil},
		{41, []string{"RAISE c8y_HighTemperature MAJOR: Temperature 41"}},
	}
	for i, s := range steps {
		out, err := m.Map(context.Background(), Input{Device: dev, Records: []node.Record{rec("/3303/0/5700", node.Float(s.value))}, Arrived: arrival})
		if err != nil {
			t.Fatal(err)
		}
		if got := summary(out); !slices.Equal(got, s.want) {
			t.Errorf("step %d (value %v): got %q, want %q", i, s.value, got, s.want)
		}
	}
	// another device has its own state
	other := dev
	other.ID = "43"
	out, _ := m.Map(context.Background(), Input{Device: other, Records: []node.Record{rec("/3303/0/5700", node.Float(45))}, Arrived: arrival})
	if len(out.Alarms) != 1 || out.Alarms[0].Clear || out.Alarms[0].Alarm.Source != "43" {
		t.Errorf("other device: %+v", out.Alarms)
	}
}

// Functionalities are asked of the Source once per tenant and object while
// cached; when the Source fails, the last answer is used, and without one
// the batch fails instead of being mapped by defaults alone.
func TestMapperSource(t *testing.T) {
	src := &mapSource{fns: map[string]map[uint16]map[uint16]Functionality{
		"acme": {4: {2: {Measurement: &Measurement{Type: "c8y_Radio", Series: "level"}}}},
	}}
	m := NewMapper(src, MapperOptions{CacheTTL: time.Hour})
	in := Input{Device: dev, Records: []node.Record{rec("/4/0/2", node.Int(-80)), rec("/4/0/3", node.Int(1))}, Arrived: arrival}
	for range 3 {
		if _, err := m.Map(context.Background(), in); err != nil {
			t.Fatal(err)
		}
	}
	if src.calls != 1 {
		t.Errorf("%d Source calls for 3 batches of one object, want 1", src.calls)
	}
	// another tenant gets its own (none: the default applies)
	other := in
	other.Tenant = "globex"
	out, err := m.Map(context.Background(), other)
	if err != nil {
		t.Fatal(err)
	}
	if got := summary(out); !slices.Equal(got, []string{"M c8y_SignalStrength.rssi=-80 dBm"}) {
		t.Errorf("tenant globex: %q", got)
	}

	src.err = errors.New("store down")
	m2 := NewMapper(src, MapperOptions{CacheTTL: -1})
	if _, err := m2.Map(context.Background(), in); err == nil || !strings.Contains(err.Error(), "store down") {
		t.Errorf("Map with a failing Source and nothing cached: %v", err)
	}
	m3 := NewMapper(src, MapperOptions{CacheTTL: time.Nanosecond})
	src.err = nil
	if _, err := m3.Map(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	src.err = errors.New("store down")
	time.Sleep(time.Millisecond)
	out, err = m3.Map(context.Background(), in)
	if err != nil {
		t.Fatalf("Map with a failing Source and a stale answer: %v", err)
	}
	if got := summary(out); !slices.Equal(got, []string{"M c8y_Radio.level=-80"}) {
		t.Errorf("with the stale answer: %q", got)
	}
}

func TestAutoObserved(t *testing.T) {
	src := &mapSource{fns: map[string]map[uint16]map[uint16]Functionality{"acme": {3303: {
		5700: {Measurement: &Measurement{Type: "c8y_T", Series: "T"}, AutoObserve: true},
		5701: {Event: &Event{Type: "c8y_E", Text: "x"}},
		5702: {AutoObserve: true, CustomAction: "decoder:x"},
	}}}}
	m := NewMapper(src, MapperOptions{})
	ids, err := m.AutoObserved(context.Background(), "acme", 3303)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []uint16{5700, 5702}) {
		t.Errorf("auto-observed %v, want [5700 5702]", ids)
	}
	if ids, _ := m.AutoObserved(context.Background(), "acme", 3); len(ids) != 0 {
		t.Errorf("object 3 auto-observed %v, want none (defaults observe nothing)", ids)
	}
	f, ok, err := m.Functionality(context.Background(), "globex", 4, 2)
	if err != nil || !ok || f.CustomAction != "connectivity:updateRssi" {
		t.Errorf("default of /4/x/2: %+v %v %v", f, ok, err)
	}
}

func BenchmarkMap(b *testing.B) {
	src := &mapSource{fns: map[string]map[uint16]map[uint16]Functionality{"acme": {3303: {
		5700: {Measurement: &Measurement{Type: "c8y_Temperature", Series: "T", Unit: "C"},
			Alarm: &Alarm{Type: "c8y_HighTemperature", Severity: "MAJOR", Text: "Temperature {value}", RaiseWhen: "value > 40"}},
	}}}}
	m := NewMapper(src, MapperOptions{})
	// a typical notification batch: 8 sensor values and the signal strength
	recs := make([]node.Record, 0, 9)
	for i := range 8 {
		recs = append(recs, recAt(fmt.Sprintf("/3303/%d/5700", i), node.Float(20+float64(i)), t0))
	}
	recs = append(recs, rec("/4/0/2", node.Int(-80)))
	in := Input{Device: dev, Records: recs, Arrived: arrival}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Map(ctx, in); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(recs))/b.Elapsed().Seconds(), "values/s")
}
