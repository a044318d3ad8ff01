package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

var telemetryCases = []suiteCase{
	{"Events", testEvents},
	{"SaveStates", testSaveStates},
	{"Alarms", testAlarms},
	{"AlarmOrderAndPaging", testAlarmOrderAndPaging},
	{"ConcurrentAlarmRaise", testConcurrentAlarmRaise},
	{"AlarmAfterClear", testAlarmAfterClear},
	{"AlarmRepeatFragments", testAlarmRepeatFragments},
	{"ConcurrentAlarmRepeats", testConcurrentAlarmRepeats},
	{"EventFilters", testEventFilters},
	{"Measurements", testMeasurements},
	{"MeasurementFilters", testMeasurementFilters},
	{"MeasurementPaging", testMeasurementPaging},
	{"Values", testValues},
	{"ValuePaths", testValuePaths},
	{"TenantIsolation", testTelemetryIsolation},
}

// SaveStates merges the devices' fragments and stores the events, those
// of a device gone included, names the devices gone, and leaves another
// tenant's device as it was; input it cannot store writes nothing.
func testSaveStates(t *testing.T, s store.Engine) {
	d1, d2 := must(s.CreateDevice(ctx, "a", "ep-1")), must(s.CreateDevice(ctx, "a", "ep-2"))
	other := must(s.CreateDevice(ctx, "b", "ep-3"))
	available := map[string]any{"status": "AVAILABLE"}
	at := time.Now().UTC().Truncate(time.Millisecond)
	events := func(source string) []store.Event {
		evs, _, err := s.ListEvents(ctx, "a", store.EventFilter{Source: source, Page: store.Page{Size: 10, Current: 1}})
		check(t, err)
		return evs
	}
	missing, stored, err := s.SaveStates(ctx, "a", map[string]map[string]any{
		d1:     {"c8y_Availability": available, "lwm2m": map[string]any{"lifetime": int64(60)}},
		d2:     {"c8y_Availability": available},
		"gone": {"c8y_Availability": available},
		other:  {"c8y_Availability": available},
	}, []store.Event{
		{Source: d1, Type: "c8y_Registration", Text: "registered", Time: at},
		{Source: "gone", Type: "c8y_Registration", Text: "registered", Time: at},
	})
	check(t, err)
	// the events as stored, in order, as GetEvent finds them
	if len(stored) != 2 || stored[0].Source != d1 || stored[1].Source != "gone" {
		t.Fatalf("stored events %+v, want the two in order", stored)
	}
	for _, e := range stored {
		got := must(s.GetEvent(ctx, "a", e.ID))
		if got.Type != e.Type || got.Text != e.Text || !got.Time.Equal(e.Time) || !got.CreationTime.Equal(e.CreationTime) || got.CreationTime.IsZero() {
			t.Fatalf("stored event %+v, GetEvent has %+v", e, got)
		}
	}
	slices.Sort(missing)
	if want := slices.Sorted(slices.Values([]string{"gone", other})); !slices.Equal(missing, want) {
		t.Fatalf("missing %v, want %v", missing, want)
	}
	for _, id := range []string{d1, d2} {
		if mo := must(s.GetManagedObject(ctx, "a", id)); !reflect.DeepEqual(mo.Fragments["c8y_Availability"], available) {
			t.Fatalf("device %s: availability %v, want %v", id, mo.Fragments["c8y_Availability"], available)
		}
	}
	if lw, _ := must(s.GetManagedObject(ctx, "a", d1)).Fragments["lwm2m"].(map[string]any); lw["lifetime"] != int64(60) {
		t.Fatalf("device %s: lwm2m %v, want lifetime 60", d1, lw)
	}
	if evs := events(d1); len(evs) != 1 || evs[0].Type != "c8y_Registration" || evs[0].Text != "registered" || !evs[0].Time.Equal(at) {
		t.Fatalf("events of %s: %+v, want the registration", d1, evs)
	}
	if evs := events("gone"); len(evs) != 1 {
		t.Fatalf("%d events of the device gone, want 1", len(evs))
	}
	if mo := must(s.GetManagedObject(ctx, "b", other)); mo.Fragments["c8y_Availability"] != nil {
		t.Fatalf("tenant b's device was changed from a: %+v", mo.Fragments)
	}
	if evs, _, err := s.ListEvents(ctx, "b", store.EventFilter{}); err != nil || len(evs) != 0 {
		t.Fatalf("tenant b has %d events (%v)", len(evs), err)
	}

	// nothing, and events alone
	if missing, stored, err := s.SaveStates(ctx, "a", nil, nil); err != nil || missing != nil || len(stored) != 0 {
		t.Fatalf("SaveStates of nothing: %v, %v, %v", missing, stored, err)
	}
	check(t, statesSettled(s.SaveStates(ctx, "a", nil, []store.Event{{Source: d2, Type: "c8y_Security", Text: "alone"}})))
	if evs := events(d2); len(evs) != 1 || evs[0].Text != "alone" {
		t.Fatalf("events of %s: %+v, want the one stored alone", d2, evs)
	}

	// an invalid event, or an invalid fragment, writes neither
	for name, tc := range map[string]struct {
		fragments map[string]any
		event     store.Event
	}{
		"event without type":     {map[string]any{"c8y_New": available}, store.Event{Source: d1, Text: "no type"}},
		"event fragment":         {map[string]any{"c8y_New": available}, store.Event{Source: d1, Type: "x", Fragments: map[string]any{"$bad": 1}}},
		"fragment of the device": {map[string]any{"c8y_New": available, "$bad": 1}, store.Event{Source: d1, Type: "x"}},
	} {
		_, _, err := s.SaveStates(ctx, "a", map[string]map[string]any{d1: tc.fragments, d2: {"c8y_New": available}}, []store.Event{tc.event})
		if !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("%s: %v, want ErrInvalid", name, err)
		}
		for _, id := range []string{d1, d2} {
			if mo := must(s.GetManagedObject(ctx, "a", id)); mo.Fragments["c8y_New"] != nil {
				t.Fatalf("%s: the fragments of %s were written", name, id)
			}
		}
		if n := len(events(d1)); n != 1 {
			t.Fatalf("%s: %d events of %s, want the first only", name, n, d1)
		}
	}
}

func temp(src string, at time.Time, v float64) store.Measurement {
	return store.Measurement{Source: src, Type: "c8y_Temperature", Time: at,
		Fragments: map[string]any{"c8y_Temperature": map[string]any{"T": store.SeriesValue(v, "C")}}}
}

func value(m store.Measurement) float64 {
	return m.Fragments["c8y_Temperature"].(map[string]any)["T"].(map[string]any)["value"].(float64)
}

// listCase is a filter of a list with what the list must answer: the
// keys of the items of its page, in order, and its total.
type listCase[F any] struct {
	name  string
	f     F
	want  []string
	total int64
}

// checkLists runs each case as a subtest of t: list answers the keys
// of the page that the filter selects and the total.
func checkLists[F any](t *testing.T, cases []listCase[F], list func(F) ([]string, int64, error)) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, total, err := list(tc.f)
			check(t, err)
			if !slices.Equal(got, tc.want) || total != tc.total {
				t.Fatalf("got %v (total %d), want %v (total %d)", got, total, tc.want, tc.total)
			}
		})
	}
}

// eventTexts lists tenant a's events by their texts.
func eventTexts(s store.Engine) func(store.EventFilter) ([]string, int64, error) {
	return func(f store.EventFilter) ([]string, int64, error) {
		es, total, err := s.ListEvents(ctx, "a", f)
		var out []string
		for _, e := range es {
			out = append(out, e.Text)
		}
		return out, total, err
	}
}

// alarmKeys lists tenant a's alarms by key.
func alarmKeys(s store.Engine, key func(store.Alarm) string) func(store.AlarmFilter) ([]string, int64, error) {
	return func(f store.AlarmFilter) ([]string, int64, error) {
		as, total, err := s.ListAlarms(ctx, "a", f)
		var out []string
		for _, a := range as {
			out = append(out, key(a))
		}
		return out, total, err
	}
}

func testEvents(t *testing.T, s store.Engine) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var evs []store.Event
	for i := range 6 {
		evs = append(evs, store.Event{Source: []string{"1", "2"}[i%2], Type: []string{"tA", "tB", "tC"}[i%3], Text: fmt.Sprint("e", i),
			Time: t0.Add(time.Duration(i) * time.Minute), Fragments: map[string]any{"n": int64(i)}})
	}
	must(s.CreateEvents(ctx, "a", evs))
	checkLists(t, []listCase[store.EventFilter]{
		{"newest first", store.EventFilter{Page: store.Page{Size: 3, WithTotal: true}}, []string{"e5", "e4", "e3"}, 6},
		{"revert", store.EventFilter{Revert: true, Page: store.Page{Size: 3}}, []string{"e0", "e1", "e2"}, -1},
		{"source", store.EventFilter{Source: "2", Page: store.Page{WithTotal: true}}, []string{"e5", "e3", "e1"}, 3},
		{"type", store.EventFilter{Type: "tA"}, []string{"e3", "e0"}, -1},
		{"range", store.EventFilter{DateFrom: t0.Add(time.Minute), DateTo: t0.Add(3 * time.Minute)}, []string{"e2", "e1"}, -1},
		{"page 2", store.EventFilter{Page: store.Page{Size: 4, Current: 2, WithTotal: true}}, []string{"e1", "e0"}, 6},
		{"past the end", store.EventFilter{Page: store.Page{Size: 4, Current: 3}}, nil, -1},
	}, eventTexts(s))
	e := must(s.GetEvent(ctx, "a", must(s.CreateEvent(ctx, "a", store.Event{Source: "1", Type: "x", Fragments: map[string]any{"c8y_F": map[string]any{"a": "b"}}})).ID))
	if e.Fragments["c8y_F"].(map[string]any)["a"] != "b" || e.Time.IsZero() {
		t.Fatalf("event: %+v", e)
	}
	if _, err := s.CreateEvent(ctx, "a", store.Event{Type: "x"}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("event without source: %v", err)
	}
	if _, err := s.GetEvent(ctx, "a", "no-such-event"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing event: %v", err)
	}
}

func testAlarms(t *testing.T, s store.Engine) {
	a1 := must(s.RaiseAlarm(ctx, "a", store.Alarm{Source: "1", Type: "c8y_High", Text: "first", Severity: store.SeverityMinor}))
	a2 := must(s.RaiseAlarm(ctx, "a", store.Alarm{Source: "1", Type: "c8y_High", Text: "second", Severity: store.SeverityMajor}))
	if a2.ID != a1.ID || a2.Count != 2 || a2.Text != "second" || !a2.FirstOccurrenceTime.Equal(a1.Time) {
		t.Fatalf("repeat: %+v after %+v", a2, a1)
	}
	// Acknowledged is still open: a repeat counts on it.
	must(s.UpdateAlarm(ctx, "a", a1.ID, store.AlarmUpdate{Status: store.AlarmAcknowledged}))
	a3 := must(s.RaiseAlarm(ctx, "a", store.Alarm{Source: "1", Type: "c8y_High"}))
	if a3.ID != a1.ID || a3.Count != 3 || a3.Status != store.AlarmAcknowledged {
		t.Fatalf("repeat of acknowledged: %+v", a3)
	}
	// Another tenant's alarm of the same source and type is its own.
	b1 := must(s.RaiseAlarm(ctx, "b", store.Alarm{Source: "1", Type: "c8y_High"}))
	if b1.ID == a1.ID || b1.Count != 1 {
		t.Fatalf("tenant b: %+v", b1)
	}
	cleared := must(s.ClearAlarm(ctx, "a", "1", "c8y_High"))
	if a := must(s.GetAlarm(ctx, "a", a1.ID)); a.Status != store.AlarmCleared {
		t.Fatalf("cleared alarm: %+v", a)
	} else if cleared.ID != a1.ID || cleared.Status != store.AlarmCleared || cleared.Count != a.Count || !cleared.Time.Equal(a.Time) {
		t.Fatalf("ClearAlarm answered %+v, the alarm is %+v", cleared, a)
	}
	if b := must(s.GetAlarm(ctx, "b", b1.ID)); b.Status != store.AlarmActive {
		t.Fatalf("a's clear reached b's alarm: %+v", b)
	}
	a4 := must(s.RaiseAlarm(ctx, "a", store.Alarm{Source: "1", Type: "c8y_High"}))
	if a4.ID == a1.ID || a4.Count != 1 || a4.Status != store.AlarmActive {
		t.Fatalf("raise after clear: %+v", a4)
	}
	errTests := []struct {
		name string
		id   string
		u    store.AlarmUpdate
		want error
	}{
		{"reopen cleared", a1.ID, store.AlarmUpdate{Status: store.AlarmActive}, store.ErrInvalid},
		{"unknown status", a4.ID, store.AlarmUpdate{Status: "OPEN"}, store.ErrInvalid},
		{"unknown severity", a4.ID, store.AlarmUpdate{Severity: "HUGE"}, store.ErrInvalid},
		{"missing alarm", "no-such-alarm", store.AlarmUpdate{Status: store.AlarmCleared}, store.ErrNotFound},
	}
	for _, tc := range errTests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.UpdateAlarm(ctx, "a", tc.id, tc.u); !errors.Is(err, tc.want) {
				t.Fatalf("UpdateAlarm: %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := s.GetAlarm(ctx, "a", "no-such-alarm"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing alarm: %v", err)
	}
	must(s.RaiseAlarm(ctx, "a", store.Alarm{Source: "2", Type: "c8y_Low", Severity: store.SeverityWarning}))
	tests := []struct {
		name string
		f    store.AlarmFilter
		want int
	}{
		{"all", store.AlarmFilter{Page: store.Page{Size: 10}}, 3},
		{"active", store.AlarmFilter{Status: []string{store.AlarmActive}}, 2},
		{"cleared", store.AlarmFilter{Status: []string{store.AlarmCleared}}, 1},
		{"any of two", store.AlarmFilter{Status: []string{store.AlarmCleared, store.AlarmActive}}, 3},
		{"source", store.AlarmFilter{Source: "2"}, 1},
		{"severity", store.AlarmFilter{Severity: store.SeverityWarning}, 1},
		{"type", store.AlarmFilter{Type: "c8y_High"}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			as, _, err := s.ListAlarms(ctx, "a", tc.f)
			if err != nil || len(as) != tc.want {
				t.Fatalf("got %d alarms (%v), want %d", len(as), err, tc.want)
			}
		})
	}
}

// ListAlarms lists the newest first, or the oldest with Revert, in pages.
func testAlarmOrderAndPaging(t *testing.T, s store.Engine) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 5 {
		must(s.RaiseAlarm(ctx, "a", store.Alarm{Source: fmt.Sprint(i), Type: "c8y_X", Time: t0.Add(time.Duration(i) * time.Minute)}))
	}
	checkLists(t, []listCase[store.AlarmFilter]{
		{"newest first", store.AlarmFilter{Page: store.Page{Size: 2, WithTotal: true}}, []string{"4", "3"}, 5},
		{"page 3", store.AlarmFilter{Page: store.Page{Size: 2, Current: 3}}, []string{"0"}, -1},
		{"revert", store.AlarmFilter{Revert: true, Page: store.Page{Size: 3}}, []string{"0", "1", "2"}, -1},
		{"range", store.AlarmFilter{DateFrom: t0.Add(time.Minute), DateTo: t0.Add(3 * time.Minute), Page: store.Page{WithTotal: true}}, []string{"2", "1"}, 2},
	}, alarmKeys(s, func(a store.Alarm) string { return a.Source }))
}

// Raises of one alarm at once count on one ACTIVE alarm.
func testConcurrentAlarmRaise(t *testing.T, s store.Engine) {
	const n = 16
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if _, err := s.RaiseAlarm(ctx, "a", store.Alarm{Source: "1", Type: "c8y_Storm", Severity: store.SeverityMajor}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	as, _, err := s.ListAlarms(ctx, "a", store.AlarmFilter{Source: "1", Type: "c8y_Storm"})
	check(t, err)
	if len(as) != 1 || as[0].Count != n || as[0].Status != store.AlarmActive {
		t.Fatalf("%d alarms %+v, want one ACTIVE with count %d", len(as), as, n)
	}
}

func testMeasurements(t *testing.T, s store.Engine) {
	t0 := time.Date(2026, 1, 1, 0, 30, 0, 0, time.UTC)
	var ms []store.Measurement
	// 2500 values over three hours: enough for an engine to split them
	// over hours and windows.
	for i := range 2500 {
		ms = append(ms, temp("1", t0.Add(time.Duration(i)*5*time.Second), float64(i)))
	}
	ms = append(ms, store.Measurement{Source: "1", Type: "c8y_Battery", Time: t0,
		Fragments: map[string]any{"c8y_Battery": map[string]any{"level": store.SeriesValue(90, "%")}}})
	ms = append(ms, temp("2", t0, -1))
	ids := must(s.AddMeasurements(ctx, "a", ms))
	if len(ids) != len(ms) || len(slices.Compact(slices.Sorted(slices.Values(ids)))) != len(ids) {
		t.Fatalf("ids not unique: %d for %d measurements", len(ids), len(ms))
	}
	m := must(s.GetMeasurement(ctx, "a", ids[1234]))
	if value(m) != 1234 || m.Source != "1" || !m.Time.Equal(t0.Add(1234*5*time.Second)) || m.ID != ids[1234] {
		t.Fatalf("GetMeasurement: %+v", m)
	}
	if _, err := s.GetMeasurement(ctx, "a", "no-such-measurement"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing measurement: %v", err)
	}

	tests := []struct {
		name   string
		f      store.MeasurementFilter
		values []float64
		total  int64
	}{
		{"oldest first", store.MeasurementFilter{Source: "1", Type: "c8y_Temperature", Page: store.Page{Size: 3, WithTotal: true}}, []float64{0, 1, 2}, 2500},
		{"revert", store.MeasurementFilter{Source: "1", Type: "c8y_Temperature", Revert: true, Page: store.Page{Size: 2}}, []float64{2499, 2498}, -1},
		{"range", store.MeasurementFilter{Source: "1", ValueFragmentType: "c8y_Temperature", DateFrom: t0.Add(50 * time.Second), DateTo: t0.Add(65 * time.Second), Page: store.Page{WithTotal: true}}, []float64{10, 11, 12}, 3},
		{"series", store.MeasurementFilter{Source: "1", ValueFragmentType: "c8y_Temperature", ValueFragmentSeries: "T", Page: store.Page{Size: 1, Current: 2500, WithTotal: true}}, []float64{2499}, 2500},
		{"series without fragment", store.MeasurementFilter{ValueFragmentSeries: "level", Page: store.Page{WithTotal: true}}, nil, 1},
		{"other source", store.MeasurementFilter{Source: "2"}, []float64{-1}, -1},
		{"no match", store.MeasurementFilter{Source: "1", ValueFragmentType: "c8y_Temperature", ValueFragmentSeries: "X"}, []float64{}, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, total, err := s.ListMeasurements(ctx, "a", tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if total != tc.total {
				t.Fatalf("total %d, want %d", total, tc.total)
			}
			if tc.values == nil {
				return
			}
			vs := []float64{}
			for _, m := range got {
				vs = append(vs, value(m))
			}
			if !slices.Equal(vs, tc.values) {
				t.Fatalf("got %v, want %v", vs, tc.values)
			}
		})
	}
	t.Run("page across hours", func(t *testing.T) {
		got, _, err := s.ListMeasurements(ctx, "a", store.MeasurementFilter{Source: "1", ValueFragmentType: "c8y_Temperature", Page: store.Page{Size: 400, Current: 3}})
		check(t, err)
		if len(got) != 400 || value(got[0]) != 800 || value(got[399]) != 1199 {
			t.Fatalf("page 3 of 400: %d values from %v", len(got), value(got[0]))
		}
	})
}

func testValues(t *testing.T, s store.Engine) {
	t1 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	check(t, s.SaveValues(ctx, "a", "7", []store.ResourceValue{
		{Path: "/3/0/13", Value: t1, Type: "TIME", Time: t1},
		{Path: "/3/0/1", Value: "model", Type: "STRING", Time: t1},
		{Path: "/3303/0/5700", Value: 21.5, Type: "FLOAT", Time: t1},
		{Path: "/3/0/7/1", Value: int64(3800), Type: "INTEGER", Time: t1},
		{Path: "/3/0/2", Value: []byte{0xca, 0xfe}, Type: "OPAQUE", Time: t1},
	}))
	t2 := t1.Add(time.Minute)
	check(t, s.SaveValues(ctx, "a", "7", []store.ResourceValue{{Path: "/3303/0/5700", Value: 22.0, Type: "FLOAT", Time: t2}}))
	vs := must(s.Values(ctx, "a", "7"))
	var paths []string
	for _, v := range vs {
		paths = append(paths, v.Path)
	}
	// sorted by path, numerically per level
	if want := []string{"/3/0/1", "/3/0/2", "/3/0/7/1", "/3/0/13", "/3303/0/5700"}; !slices.Equal(paths, want) {
		t.Fatalf("paths %v, want %v", paths, want)
	}
	if vs[4].Value != 22.0 || !vs[4].Time.Equal(t2) || vs[4].Type != "FLOAT" {
		t.Fatalf("overwritten value: %+v", vs[4])
	}
	if !slices.Equal(vs[1].Value.([]byte), []byte{0xca, 0xfe}) || !vs[3].Value.(time.Time).Equal(t1) {
		t.Fatalf("typed values: %+v", vs)
	}
	if vs[2].Value != int64(3800) {
		t.Fatalf("integer value %T %v", vs[2].Value, vs[2].Value)
	}
	if err := s.SaveValues(ctx, "a", "7", []store.ResourceValue{{Path: "3/x"}}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("bad path: %v", err)
	}
}

// A cleared alarm keeps what it was, and the next raise of its source
// and type opens a new one, whether ClearAlarm or UpdateAlarm cleared it.
func testAlarmAfterClear(t *testing.T, s store.Engine) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Minute) }
	raise := func(i int) store.Alarm {
		return must(s.RaiseAlarm(ctx, "a", store.Alarm{Source: "1", Type: "c8y_Door", Text: fmt.Sprint("r", i), Time: at(i)}))
	}
	first := raise(0)
	raise(1)
	if cleared := must(s.ClearAlarm(ctx, "a", "1", "c8y_Door")); cleared.ID != first.ID || cleared.Status != store.AlarmCleared {
		t.Fatalf("ClearAlarm answered %+v, want %s cleared", cleared, first.ID)
	}
	// nothing open: no error, no change, and the zero Alarm
	if cleared := must(s.ClearAlarm(ctx, "a", "1", "c8y_Door")); cleared.ID != "" {
		t.Fatalf("a second ClearAlarm answered %+v, want none", cleared)
	}
	second := raise(2)
	if second.ID == first.ID || second.Count != 1 || second.Status != store.AlarmActive || !second.FirstOccurrenceTime.Equal(at(2)) {
		t.Fatalf("raise after clear: %+v, first was %+v", second, first)
	}
	if again := raise(3); again.ID != second.ID || again.Count != 2 || !again.FirstOccurrenceTime.Equal(at(2)) || !again.Time.Equal(at(3)) {
		t.Fatalf("repeat of the new alarm: %+v", again)
	}
	if old := must(s.GetAlarm(ctx, "a", first.ID)); old.Status != store.AlarmCleared || old.Count != 2 || old.Text != "r1" || !old.Time.Equal(at(1)) {
		t.Fatalf("cleared alarm: %+v", old)
	}
	if u := must(s.UpdateAlarm(ctx, "a", second.ID, store.AlarmUpdate{Status: store.AlarmCleared})); u.Status != store.AlarmCleared || u.Count != 2 {
		t.Fatalf("cleared by update: %+v", u)
	}
	third := raise(4)
	if third.ID == second.ID || third.ID == first.ID || third.Count != 1 {
		t.Fatalf("raise after a clear by update: %+v", third)
	}
	// A cleared alarm's text and severity may change; it stays cleared
	// and is not counted on.
	if u := must(s.UpdateAlarm(ctx, "a", first.ID, store.AlarmUpdate{Text: "note", Severity: store.SeverityMinor})); u.Status != store.AlarmCleared || u.Text != "note" || u.Severity != store.SeverityMinor {
		t.Fatalf("update of a cleared alarm: %+v", u)
	}
	if r := raise(5); r.ID != third.ID || r.Count != 2 {
		t.Fatalf("repeat after updating a cleared alarm: %+v", r)
	}
	checkLists(t, []listCase[store.AlarmFilter]{
		{"source", store.AlarmFilter{Source: "1", Page: store.Page{WithTotal: true}}, []string{third.ID, second.ID, first.ID}, 3},
		{"open", store.AlarmFilter{Status: []string{store.AlarmActive, store.AlarmAcknowledged}, Page: store.Page{WithTotal: true}}, []string{third.ID}, 1},
		{"cleared, oldest first", store.AlarmFilter{Status: []string{store.AlarmCleared}, Revert: true}, []string{first.ID, second.ID}, -1},
		{"source and status", store.AlarmFilter{Source: "1", Status: []string{store.AlarmCleared}, Page: store.Page{Size: 1, Current: 2, WithTotal: true}}, []string{first.ID}, 2},
		{"severity", store.AlarmFilter{Severity: store.SeverityMinor}, []string{first.ID}, -1},
	}, alarmKeys(s, func(a store.Alarm) string { return a.ID }))
}

// A repeat replaces the fragments it names, each whole, and keeps the
// others; fragments named like an alarm's members change nothing.
func testAlarmRepeatFragments(t *testing.T, s store.Engine) {
	a := must(s.RaiseAlarm(ctx, "a", store.Alarm{Source: "1", Type: "c8y_X", Fragments: map[string]any{
		"c8y_A": map[string]any{"x": 1.5, "y": "k"}, "c8y_B": "b", "count": int64(99), "status": store.AlarmCleared,
	}}))
	if a.Count != 1 || a.Status != store.AlarmActive {
		t.Fatalf("raised %+v", a)
	}
	r := must(s.RaiseAlarm(ctx, "a", store.Alarm{Source: "1", Type: "c8y_X", Fragments: map[string]any{"c8y_A": map[string]any{"z": true}}}))
	want := map[string]any{"c8y_A": map[string]any{"z": true}, "c8y_B": "b"}
	if r.ID != a.ID || r.Count != 2 || !reflect.DeepEqual(r.Fragments, want) {
		t.Fatalf("repeat: %+v, want fragments %v", r, want)
	}
	if g := must(s.GetAlarm(ctx, "a", a.ID)); g.Count != 2 || g.Status != store.AlarmActive || !reflect.DeepEqual(g.Fragments, want) {
		t.Fatalf("read back: %+v", g)
	}
}

// Repeats of one alarm from many goroutines count on one alarm, each
// once: every raise answers a count of its own.
func testConcurrentAlarmRepeats(t *testing.T, s store.Engine) {
	const workers, each = 8, 20
	counts := make(chan int64, workers*each)
	ids := make(chan string, workers*each)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				a, err := s.RaiseAlarm(ctx, "a", store.Alarm{Source: "1", Type: "c8y_Flood"})
				if err != nil {
					t.Error(err)
					return
				}
				counts <- a.Count
				ids <- a.ID
			}
		})
	}
	wg.Wait()
	close(counts)
	close(ids)
	var got []int64
	for c := range counts {
		got = append(got, c)
	}
	slices.Sort(got)
	for i, c := range got {
		if c != int64(i+1) {
			t.Fatalf("counts answered %v, want 1 to %d each once", got, workers*each)
		}
	}
	var one []string
	for id := range ids {
		one = append(one, id)
	}
	if one = slices.Compact(slices.Sorted(slices.Values(one))); len(one) != 1 {
		t.Fatalf("raises answered alarms %v, want one", one)
	}
	as, total, err := s.ListAlarms(ctx, "a", store.AlarmFilter{Page: store.Page{WithTotal: true}})
	check(t, err)
	if total != 1 || as[0].ID != one[0] || as[0].Count != workers*each || as[0].Status != store.AlarmActive {
		t.Fatalf("%d alarms %+v, want one ACTIVE with count %d", total, as, workers*each)
	}
}

// ListEvents by type, source and time range, each alone and together,
// newest first or oldest, events of one time by creation order.
func testEventFilters(t *testing.T, s store.Engine) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	spec := []struct {
		src, typ string
		m        int
	}{{"1", "tA", 0}, {"1", "tB", 1}, {"2", "tA", 1}, {"1", "tA", 2}, {"2", "tA", 3}, {"1", "tA", 3}, {"1", "tB", 4}}
	var evs []store.Event
	for i, e := range spec {
		evs = append(evs, store.Event{Source: e.src, Type: e.typ, Time: at(e.m), Text: fmt.Sprint("e", i)})
	}
	must(s.CreateEvents(ctx, "a", evs))
	all := store.Page{Size: 100, WithTotal: true}
	checkLists(t, []listCase[store.EventFilter]{
		{"type", store.EventFilter{Type: "tA", Page: all}, []string{"e5", "e4", "e3", "e2", "e0"}, 5},
		{"type, oldest first", store.EventFilter{Type: "tA", Revert: true, Page: all}, []string{"e0", "e2", "e3", "e4", "e5"}, 5},
		{"type and range", store.EventFilter{Type: "tA", DateFrom: at(1), DateTo: at(3), Page: all}, []string{"e3", "e2"}, 2},
		{"source and type", store.EventFilter{Source: "1", Type: "tA", Page: all}, []string{"e5", "e3", "e0"}, 3},
		{"source, type and from", store.EventFilter{Source: "1", Type: "tA", DateFrom: at(2), Page: all}, []string{"e5", "e3"}, 2},
		{"source and to", store.EventFilter{Source: "2", DateTo: at(3), Page: all}, []string{"e2"}, 1},
		{"from", store.EventFilter{DateFrom: at(3), Page: all}, []string{"e6", "e5", "e4"}, 3},
		{"to is exclusive", store.EventFilter{DateTo: at(1), Page: all}, []string{"e0"}, 1},
		{"type, page 2 of 1", store.EventFilter{Type: "tB", Page: store.Page{Size: 1, Current: 2, WithTotal: true}}, []string{"e1"}, 2},
		{"no such type", store.EventFilter{Type: "tZ", Page: all}, nil, 0},
		{"empty range", store.EventFilter{DateFrom: at(4), DateTo: at(4), Page: all}, nil, 0},
	}, eventTexts(s))
}

// minutes are the measurements' times as minutes from t0.
func minutes(ms []store.Measurement, t0 time.Time) []int {
	out := []int{}
	for _, m := range ms {
		out = append(out, int(m.Time.Sub(t0)/time.Minute))
	}
	return out
}

func span(from, to int) []int {
	var out []int
	for m := from; m <= to; m++ {
		out = append(out, m)
	}
	return out
}

// Every filter of ListMeasurements, alone and with the others. Each
// source and type has its measurements in an hour of its own, so that
// the time order is the same whatever an engine groups them by.
func testMeasurementFilters(t *testing.T, s store.Engine) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var ms []store.Measurement
	add := func(src, typ string, from, to int, frags func(v float64) map[string]any) {
		for m := from; m <= to; m++ {
			ms = append(ms, store.Measurement{Source: src, Type: typ, Time: t0.Add(time.Duration(m) * time.Minute), Fragments: frags(float64(m))})
		}
	}
	series := func(frag, name string) func(float64) map[string]any {
		return func(v float64) map[string]any {
			return map[string]any{frag: map[string]any{name: store.SeriesValue(v, "")}}
		}
	}
	add("1", "c8y_Temperature", 0, 9, series("c8y_Temperature", "T"))
	add("1", "c8y_Battery", 60, 64, series("c8y_Battery", "level"))
	add("2", "c8y_Temperature", 120, 124, series("c8y_Temperature", "T"))
	add("2", "c8y_Multi", 180, 182, func(v float64) map[string]any {
		return map[string]any{
			"c8y_Temperature": map[string]any{"T2": store.SeriesValue(v, "C")},
			"c8y_Battery":     map[string]any{"level": store.SeriesValue(v, "%")},
			"c8y_Note":        "not a series",
		}
	})
	slices.Reverse(ms) // the order of a batch is not the order of a list
	must(s.AddMeasurements(ctx, "a", ms))

	cat := func(parts ...[]int) []int { return slices.Concat(parts...) }
	all := store.Page{Size: 100, WithTotal: true}
	tests := []struct {
		name string
		f    store.MeasurementFilter
		want []int
	}{
		{"none", store.MeasurementFilter{}, cat(span(0, 9), span(60, 64), span(120, 124), span(180, 182))},
		{"source", store.MeasurementFilter{Source: "1"}, cat(span(0, 9), span(60, 64))},
		{"source, newest first", store.MeasurementFilter{Source: "2", Revert: true}, cat([]int{182, 181, 180}, []int{124, 123, 122, 121, 120})},
		{"type", store.MeasurementFilter{Type: "c8y_Temperature"}, cat(span(0, 9), span(120, 124))},
		{"source and type", store.MeasurementFilter{Source: "2", Type: "c8y_Multi"}, span(180, 182)},
		{"fragment", store.MeasurementFilter{ValueFragmentType: "c8y_Battery"}, cat(span(60, 64), span(180, 182))},
		{"fragment of many", store.MeasurementFilter{ValueFragmentType: "c8y_Temperature"}, cat(span(0, 9), span(120, 124), span(180, 182))},
		{"fragment not a series", store.MeasurementFilter{ValueFragmentType: "c8y_Note"}, span(180, 182)},
		{"fragment and series", store.MeasurementFilter{ValueFragmentType: "c8y_Temperature", ValueFragmentSeries: "T"}, cat(span(0, 9), span(120, 124))},
		{"fragment and other series", store.MeasurementFilter{ValueFragmentType: "c8y_Temperature", ValueFragmentSeries: "T2"}, span(180, 182)},
		{"series of a fragment that is no object", store.MeasurementFilter{ValueFragmentType: "c8y_Note", ValueFragmentSeries: "x"}, nil},
		{"series alone", store.MeasurementFilter{ValueFragmentSeries: "level"}, cat(span(60, 64), span(180, 182))},
		{"series alone, newest first", store.MeasurementFilter{ValueFragmentSeries: "T2", Revert: true}, []int{182, 181, 180}},
		{"source and fragment", store.MeasurementFilter{Source: "1", ValueFragmentType: "c8y_Battery"}, span(60, 64)},
		{"source and series", store.MeasurementFilter{Source: "2", ValueFragmentSeries: "T"}, span(120, 124)},
		{"source, type and series", store.MeasurementFilter{Source: "2", Type: "c8y_Multi", ValueFragmentSeries: "level"}, span(180, 182)},
		{"type and fragment", store.MeasurementFilter{Type: "c8y_Temperature", ValueFragmentType: "c8y_Temperature", ValueFragmentSeries: "T"}, cat(span(0, 9), span(120, 124))},
		{"type and other fragment", store.MeasurementFilter{Type: "c8y_Temperature", ValueFragmentType: "c8y_Battery"}, nil},
		{"range", store.MeasurementFilter{DateFrom: t0.Add(5 * time.Minute), DateTo: t0.Add(62 * time.Minute)}, cat(span(5, 9), span(60, 61))},
		{"fragment from", store.MeasurementFilter{ValueFragmentType: "c8y_Temperature", DateFrom: t0.Add(121 * time.Minute)}, cat(span(121, 124), span(180, 182))},
		{"type to, newest first", store.MeasurementFilter{Type: "c8y_Temperature", DateTo: t0.Add(121 * time.Minute), Revert: true}, []int{120, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0}},
		// DateFrom holds to the nanosecond.
		{"from just past a measurement", store.MeasurementFilter{Source: "1", DateFrom: t0.Add(9*time.Minute + time.Nanosecond), DateTo: t0.Add(61 * time.Minute)}, []int{60}},
		{"no such fragment", store.MeasurementFilter{ValueFragmentType: "c8y_None"}, nil},
		{"no such series", store.MeasurementFilter{ValueFragmentSeries: "c8y_None"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.f.Page = all
			got, total, err := s.ListMeasurements(ctx, "a", tc.f)
			check(t, err)
			if want := append([]int{}, tc.want...); !slices.Equal(minutes(got, t0), want) || total != int64(len(want)) {
				t.Fatalf("got %v (total %d), want %v", minutes(got, t0), total, want)
			}
		})
	}
}

// Pages of measurements forwards and backwards, with and without totals;
// measurements of one time in the order they were added.
func testMeasurementPaging(t *testing.T, s store.Engine) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	batch := func(vs ...int) {
		var ms []store.Measurement
		for _, v := range vs {
			ms = append(ms, temp("1", t0.Add(time.Duration(min(v, 10))*time.Minute), float64(v)))
		}
		must(s.AddMeasurements(ctx, "a", ms))
	}
	batch(0, 1, 2, 3, 4)
	batch(5, 6, 7, 8, 9)
	batch(10, 11, 12) // all three at minute 10
	checkLists(t, []listCase[store.MeasurementFilter]{
		{"page 1", store.MeasurementFilter{Source: "1", Page: store.Page{Size: 4, WithTotal: true}}, []string{"0", "1", "2", "3"}, 13},
		{"page 2", store.MeasurementFilter{Source: "1", Page: store.Page{Size: 4, Current: 2, WithTotal: true}}, []string{"4", "5", "6", "7"}, 13},
		{"page 4", store.MeasurementFilter{Source: "1", Page: store.Page{Size: 4, Current: 4, WithTotal: true}}, []string{"12"}, 13},
		{"past the end", store.MeasurementFilter{Source: "1", Page: store.Page{Size: 4, Current: 5, WithTotal: true}}, nil, 13},
		{"newest first, page 1", store.MeasurementFilter{Source: "1", Revert: true, Page: store.Page{Size: 4, WithTotal: true}}, []string{"12", "11", "10", "9"}, 13},
		{"newest first, page 2", store.MeasurementFilter{Source: "1", Revert: true, Page: store.Page{Size: 4, Current: 2}}, []string{"8", "7", "6", "5"}, -1},
		{"newest first, page 4", store.MeasurementFilter{Source: "1", Revert: true, Page: store.Page{Size: 4, Current: 4}}, []string{"0"}, -1},
		{"default size", store.MeasurementFilter{Type: "c8y_Temperature"}, []string{"0", "1", "2", "3", "4"}, -1},
		{"page 0 is page 1", store.MeasurementFilter{Page: store.Page{Size: 2, Current: 0, WithTotal: true}}, []string{"0", "1"}, 13},
		{"range with total", store.MeasurementFilter{ValueFragmentType: "c8y_Temperature", DateFrom: t0.Add(8 * time.Minute), Page: store.Page{Size: 2, Current: 2, WithTotal: true}}, []string{"10", "11"}, 5},
	}, func(f store.MeasurementFilter) ([]string, int64, error) {
		ms, total, err := s.ListMeasurements(ctx, "a", f)
		var out []string
		for _, m := range ms {
			out = append(out, fmt.Sprint(value(m)))
		}
		return out, total, err
	})
	t.Run("no measurements", func(t *testing.T) {
		ids, err := s.AddMeasurements(ctx, "a", nil)
		if err != nil || len(ids) != 0 {
			t.Fatalf("AddMeasurements of none: %v, %v", ids, err)
		}
	})
	t.Run("invalid", func(t *testing.T) {
		for _, m := range []store.Measurement{{Type: "x"}, {Source: "1"}, {Source: "1", Type: "x", Fragments: map[string]any{"a.b": 1}}} {
			if _, err := s.AddMeasurements(ctx, "a", []store.Measurement{temp("1", t0, 99), m}); !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("AddMeasurements with %+v: %v, want ErrInvalid", m, err)
			}
		}
		if _, total, _ := s.ListMeasurements(ctx, "a", store.MeasurementFilter{Page: store.Page{WithTotal: true}}); total != 13 {
			t.Fatalf("a refused batch stored measurements: %d, want 13", total)
		}
	})
}

// Paths of one resource written differently are one value; a path given
// twice in a call keeps its last value; every type reads back as saved.
func testValuePaths(t *testing.T, s store.Engine) {
	t1 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	check(t, s.SaveValues(ctx, "a", "7", []store.ResourceValue{
		{Path: "/3/0/1", Value: "first", Type: "STRING", Time: t1},
		{Path: "3/0/1", Value: "second", Type: "STRING", Time: t1},
		{Path: "/3/0/9", Value: true, Type: "BOOLEAN", Time: t1},
		{Path: "/3/0/10", Value: uint64(5), Type: "UNSIGNED_INTEGER", Time: t1},
		{Path: "/3/0/11", Value: -1.5, Type: "FLOAT", Time: t1},
	}))
	check(t, s.SaveValues(ctx, "a", "7", nil))
	check(t, s.SaveValues(ctx, "a", "8", []store.ResourceValue{{Path: "/3/0/1", Value: "other device", Type: "STRING", Time: t1}}))
	vs := must(s.Values(ctx, "a", "7"))
	want := []store.ResourceValue{
		{Path: "3/0/1", Value: "second", Type: "STRING", Time: t1},
		{Path: "/3/0/9", Value: true, Type: "BOOLEAN", Time: t1},
		{Path: "/3/0/10", Value: int64(5), Type: "UNSIGNED_INTEGER", Time: t1},
		{Path: "/3/0/11", Value: -1.5, Type: "FLOAT", Time: t1},
	}
	if !reflect.DeepEqual(vs, want) {
		t.Fatalf("values %+v, want %+v", vs, want)
	}
	if vs := must(s.Values(ctx, "a", "9")); len(vs) != 0 {
		t.Fatalf("values of a device without any: %+v", vs)
	}
	for _, p := range []string{"/", "", "/3/0/1/2/3", "/3/65536"} {
		if err := s.SaveValues(ctx, "a", "7", []store.ResourceValue{{Path: p, Value: 1, Type: "INTEGER", Time: t1}}); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("path %q: %v, want ErrInvalid", p, err)
		}
	}
}

// Tenant b neither sees nor changes tenant a's telemetry, though both
// name the same sources: every list of b is empty whichever filter
// (and so whichever index) it uses.
func testTelemetryIsolation(t *testing.T, s store.Engine) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ms := must(s.AddMeasurements(ctx, "a", []store.Measurement{temp("1", t0, 1)}))
	ev := must(s.CreateEvent(ctx, "a", store.Event{Source: "1", Type: "x", Time: t0}))
	al := must(s.RaiseAlarm(ctx, "a", store.Alarm{Source: "1", Type: "x", Time: t0}))
	check(t, s.SaveValues(ctx, "a", "1", []store.ResourceValue{{Path: "/3/0/1", Value: "a", Type: "STRING", Time: t0}}))

	for name, do := range map[string]func() error{
		"get measurement": func() error { _, err := s.GetMeasurement(ctx, "b", ms[0]); return err },
		"get event":       func() error { _, err := s.GetEvent(ctx, "b", ev.ID); return err },
		"get alarm":       func() error { _, err := s.GetAlarm(ctx, "b", al.ID); return err },
		"update alarm": func() error {
			_, err := s.UpdateAlarm(ctx, "b", al.ID, store.AlarmUpdate{Status: store.AlarmAcknowledged})
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			if err := do(); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("got %v, want ErrNotFound", err)
			}
		})
	}
	all := store.Page{WithTotal: true}
	lists := map[string]func() (int, int64, error){}
	for _, f := range []store.MeasurementFilter{{}, {Source: "1"}, {Type: "c8y_Temperature"}, {ValueFragmentType: "c8y_Temperature"}, {ValueFragmentSeries: "T"}, {DateFrom: t0}} {
		lists[fmt.Sprintf("measurements %+v", f)] = func() (int, int64, error) {
			f.Page = all
			l, total, err := s.ListMeasurements(ctx, "b", f)
			return len(l), total, err
		}
	}
	for _, f := range []store.EventFilter{{}, {Source: "1"}, {Type: "x"}} {
		lists[fmt.Sprintf("events %+v", f)] = func() (int, int64, error) {
			f.Page = all
			l, total, err := s.ListEvents(ctx, "b", f)
			return len(l), total, err
		}
	}
	for _, f := range []store.AlarmFilter{{}, {Source: "1"}, {Status: []string{store.AlarmActive}}} {
		lists[fmt.Sprintf("alarms %+v", f)] = func() (int, int64, error) {
			f.Page = all
			l, total, err := s.ListAlarms(ctx, "b", f)
			return len(l), total, err
		}
	}
	lists["values"] = func() (int, int64, error) { l, err := s.Values(ctx, "b", "1"); return len(l), 0, err }
	for name, list := range lists {
		t.Run("list "+name, func(t *testing.T) {
			n, total, err := list()
			check(t, err)
			if n != 0 || total != 0 {
				t.Fatalf("tenant b sees %d (total %d)", n, total)
			}
		})
	}

	// b's changes of the same source and type are b's own.
	must(s.ClearAlarm(ctx, "b", "1", "x"))
	if b := must(s.RaiseAlarm(ctx, "b", store.Alarm{Source: "1", Type: "x"})); b.ID == al.ID || b.Count != 1 {
		t.Fatalf("b's alarm: %+v", b)
	}
	check(t, s.SaveValues(ctx, "b", "1", []store.ResourceValue{{Path: "/3/0/1", Value: "b", Type: "STRING", Time: t0}}))
	if a := must(s.GetAlarm(ctx, "a", al.ID)); a.Status != store.AlarmActive || a.Count != 1 {
		t.Fatalf("a's alarm changed: %+v", a)
	}
	if vs := must(s.Values(ctx, "a", "1")); len(vs) != 1 || vs[0].Value != "a" {
		t.Fatalf("a's values changed: %+v", vs)
	}
}
