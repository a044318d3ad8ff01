package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

var telemetryCases = []suiteCase{
	{"Events", testEvents},
	{"Alarms", testAlarms},
	{"AlarmOrderAndPaging", testAlarmOrderAndPaging},
	{"ConcurrentAlarmRaise", testConcurrentAlarmRaise},
	{"Measurements", testMeasurements},
	{"Values", testValues},
}

func temp(src string, at time.Time, v float64) store.Measurement {
	return store.Measurement{Source: src, Type: "c8y_Temperature", Time: at,
		Fragments: map[string]any{"c8y_Temperature": map[string]any{"T": store.SeriesValue(v, "C")}}}
}

func value(m store.Measurement) float64 {
	return m.Fragments["c8y_Temperature"].(map[string]any)["T"].(map[string]any)["value"].(float64)
}

func testEvents(t *testing.T, s store.Engine) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var evs []store.Event
	for i := range 6 {
		evs = append(evs, store.Event{Source: []string{"1", "2"}[i%2], Type: []string{"tA", "tB", "tC"}[i%3], Text: fmt.Sprint("e", i),
			Time: t0.Add(time.Duration(i) * time.Minute), Fragments: map[string]any{"n": int64(i)}})
	}
	must(s.CreateEvents(ctx, "a", evs))
	texts := func(es []store.Event) (out []string) {
		for _, e := range es {
			out = append(out, e.Text)
		}
		return out
	}
	tests := []struct {
		name  string
		f     store.EventFilter
		want  []string
		total int64
	}{
		{"newest first", store.EventFilter{Page: store.Page{Size: 3, WithTotal: true}}, []string{"e5", "e4", "e3"}, 6},
		{"revert", store.EventFilter{Revert: true, Page: store.Page{Size: 3}}, []string{"e0", "e1", "e2"}, -1},
		{"source", store.EventFilter{Source: "2", Page: store.Page{WithTotal: true}}, []string{"e5", "e3", "e1"}, 3},
		{"type", store.EventFilter{Type: "tA"}, []string{"e3", "e0"}, -1},
		{"range", store.EventFilter{DateFrom: t0.Add(time.Minute), DateTo: t0.Add(3 * time.Minute)}, []string{"e2", "e1"}, -1},
		{"page 2", store.EventFilter{Page: store.Page{Size: 4, Current: 2, WithTotal: true}}, []string{"e1", "e0"}, 6},
		{"past the end", store.EventFilter{Page: store.Page{Size: 4, Current: 3}}, nil, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			es, total, err := s.ListEvents(ctx, "a", tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(texts(es), tc.want) || total != tc.total {
				t.Fatalf("got %v (total %d), want %v (total %d)", texts(es), total, tc.want, tc.total)
			}
		})
	}
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
	check(t, s.ClearAlarm(ctx, "a", "1", "c8y_High"))
	if a := must(s.GetAlarm(ctx, "a", a1.ID)); a.Status != store.AlarmCleared {
		t.Fatalf("cleared alarm: %+v", a)
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
	sources := func(as []store.Alarm) (out []string) {
		for _, a := range as {
			out = append(out, a.Source)
		}
		return out
	}
	tests := []struct {
		name  string
		f     store.AlarmFilter
		want  []string
		total int64
	}{
		{"newest first", store.AlarmFilter{Page: store.Page{Size: 2, WithTotal: true}}, []string{"4", "3"}, 5},
		{"page 3", store.AlarmFilter{Page: store.Page{Size: 2, Current: 3}}, []string{"0"}, -1},
		{"revert", store.AlarmFilter{Revert: true, Page: store.Page{Size: 3}}, []string{"0", "1", "2"}, -1},
		{"range", store.AlarmFilter{DateFrom: t0.Add(time.Minute), DateTo: t0.Add(3 * time.Minute), Page: store.Page{WithTotal: true}}, []string{"2", "1"}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			as, total, err := s.ListAlarms(ctx, "a", tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(sources(as), tc.want) || total != tc.total {
				t.Fatalf("got %v (total %d), want %v (total %d)", sources(as), total, tc.want, tc.total)
			}
		})
	}
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
