package sqlite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// Every list of telemetry reads a range of the index it names, in the
// order it lists (no sort of what it read), and so does its count.
func TestTelemetryQueryPlans(t *testing.T) {
	s := newStore(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	type query struct {
		from  string
		w     *where
		order string
	}
	measurements := func(f store.MeasurementFilter) query {
		from, w, order, ok := measurementQuery("acme", f)
		if !ok {
			t.Fatalf("%+v selects nothing", f)
		}
		return query{from, w, order}
	}
	events := func(f store.EventFilter) query {
		from, w := eventQuery("acme", f)
		return query{from, w, newestFirst(f.Revert)}
	}
	alarms := func(f store.AlarmFilter) query {
		from, w := alarmQuery("acme", f)
		return query{from, w, newestFirst(f.Revert)}
	}
	tests := []struct {
		name  string
		cols  string
		q     query
		index string // what the first step must read (as a covering index in a count)
		sort  bool   // whether a sort of the rows read is expected
	}{
		{"measurements of a source over a time range", measurementColumns,
			measurements(store.MeasurementFilter{Source: "1", DateFrom: t0, DateTo: t0.Add(time.Hour), Revert: true}),
			"INDEX measurements_source (tenant=? AND source=? AND time>? AND time<?)", false},
		{"measurements of a source and type", measurementColumns,
			measurements(store.MeasurementFilter{Source: "1", Type: "c8y_T", ValueFragmentSeries: "T"}),
			"INDEX measurements_source (tenant=? AND source=?)", false},
		{"measurements of a type", measurementColumns,
			measurements(store.MeasurementFilter{Type: "c8y_T", DateFrom: t0}),
			"INDEX measurements_type (tenant=? AND type=? AND time>?)", false},
		{"measurements of a fragment", measurementColumns,
			measurements(store.MeasurementFilter{ValueFragmentType: "c8y_T", ValueFragmentSeries: "T", DateTo: t0}),
			"PRIMARY KEY (tenant=? AND fragment=? AND time<?)", false},
		{"measurements of a tenant", measurementColumns,
			measurements(store.MeasurementFilter{ValueFragmentSeries: "T"}),
			"INDEX measurements_time (tenant=?)", false},
		{"events of a source", eventColumns, events(store.EventFilter{Source: "1", Type: "x", DateFrom: t0}),
			"INDEX events_source (tenant=? AND source=? AND time>?)", false},
		{"events of a type", eventColumns, events(store.EventFilter{Type: "x", Revert: true}),
			"INDEX events_type (tenant=? AND type=?)", false},
		{"events of a tenant", eventColumns, events(store.EventFilter{DateTo: t0}),
			"INDEX events_time (tenant=? AND time<?)", false},
		{"alarms of a source", alarmColumns, alarms(store.AlarmFilter{Source: "1", Status: []string{store.AlarmActive}}),
			"INDEX alarms_source (tenant=? AND source=?)", false},
		{"alarms of a status", alarmColumns, alarms(store.AlarmFilter{Status: []string{store.AlarmActive}, Type: "x"}),
			"INDEX alarms_status (tenant=? AND status=?)", false},
		{"alarms of statuses", alarmColumns, alarms(store.AlarmFilter{Status: []string{store.AlarmActive, store.AlarmAcknowledged}}),
			"INDEX alarms_status (tenant=? AND status=?)", true},
		{"alarms of a tenant", alarmColumns, alarms(store.AlarmFilter{Severity: store.SeverityMajor}),
			"INDEX alarms_time (tenant=?)", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// The page's query as listPage writes it.
			steps := strings.Split(explain(t, s.db, "SELECT "+tc.cols+" FROM "+tc.q.from+" WHERE "+tc.q.w.String()+
				" ORDER BY "+tc.q.order+" LIMIT ? OFFSET ?", append(tc.q.w.args, 100, 0)...), "\n")
			if len(steps) == 0 || !strings.Contains(steps[0], tc.index) {
				t.Fatalf("plan %q, want its first step %s", steps, tc.index)
			}
			sorts := strings.Contains(strings.Join(steps, "\n"), "TEMP B-TREE")
			if sorts != tc.sort {
				t.Fatalf("plan %q: sorts %v, want %v", steps, sorts, tc.sort)
			}
			count := explain(t, s.db, "SELECT count(*) FROM "+tc.q.from+" WHERE "+tc.q.w.String(), tc.q.w.args...)
			if !strings.Contains(count, tc.index) {
				t.Fatalf("count's plan %q, want %s", count, tc.index)
			}
		})
	}
	points := []struct {
		name, query, want string
	}{
		{"measurement", "SELECT " + measurementColumns + " FROM measurements m WHERE m.id = ? AND m.tenant = ?", "USING INTEGER PRIMARY KEY"},
		{"event", "SELECT " + eventColumns + " FROM events WHERE id = ? AND tenant = ?", "USING INTEGER PRIMARY KEY"},
		{"alarm", "SELECT " + alarmColumns + " FROM alarms WHERE id = ? AND tenant = ?", "USING INTEGER PRIMARY KEY"},
		{"values", "SELECT path, type, value, kind, time FROM resource_values WHERE tenant = ? AND device = ? ORDER BY key", "USING PRIMARY KEY (tenant=? AND device=?)"},
	}
	for _, tc := range points {
		t.Run(tc.name, func(t *testing.T) {
			if steps := strings.Split(explain(t, s.db, tc.query, "acme", "1"), "\n"); len(steps) != 1 || !strings.Contains(steps[0], tc.want) {
				t.Fatalf("plan %q, want one step %s", steps, tc.want)
			}
		})
	}
}

// Fragments keep their types through the store: a whole float stays a
// float, which encoding/json would write as an integer.
func TestEncodeJSON(t *testing.T) {
	type celsius float64
	tm := time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC)
	in := map[string]any{
		"whole": 21.0, "frac": 21.5, "big": 1e21, "tiny": 1e-7, "f32": float32(2),
		"int": 3, "i64": int64(-4), "u64": uint64(5), "named": celsius(7), "typed": map[string]float64{"x": 8},
		"list": []any{1.0, "s", nil, true}, "ints": []int{1, 2}, "nil map": map[string]any(nil), "nil list": []any(nil),
		"text": "quote \" backslash \\ newline \n tab \t nul \x00 bad \xff é", "time": tm,
		"num": json.Number("12"), "ptr": new(int), "struct": struct{ A float64 }{A: 2},
	}
	doc, err := encodeJSON("test", in)
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid([]byte(doc)) {
		t.Fatalf("invalid JSON %s", doc)
	}
	got, err := decodeFragments(doc)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"whole": 21.0, "frac": 21.5, "big": 1e21, "tiny": 1e-7, "f32": 2.0,
		"int": int64(3), "i64": int64(-4), "u64": int64(5), "named": 7.0, "typed": map[string]any{"x": 8.0},
		"list": []any{1.0, "s", nil, true}, "ints": []any{int64(1), int64(2)}, "nil map": nil, "nil list": nil,
		"text": "quote \" backslash \\ newline \n tab \t nul \x00 bad \ufffd é", "time": tm.Format(time.RFC3339Nano),
		"num": int64(12), "ptr": int64(0), "struct": map[string]any{"A": int64(2)},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip\n got %#v\nwant %#v", got, want)
	}
	// What encoding/json reads of it is what it reads of its own.
	var mine, theirs any
	theirsDoc, _ := json.Marshal(in["text"])
	mineDoc, _ := encodeJSON("text", in["text"])
	if json.Unmarshal([]byte(mineDoc), &mine) != nil || json.Unmarshal(theirsDoc, &theirs) != nil || mine != theirs {
		t.Fatalf("string %s, encoding/json's %s", mineDoc, theirsDoc)
	}
	for _, bad := range []any{math.NaN(), math.Inf(1), map[string]any{"x": math.Inf(-1)}, json.Number("1x"), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), make(chan int)} {
		if _, err := encodeJSON("bad", bad); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("encode %v: %v, want ErrInvalid", bad, err)
		}
	}
}

// A batch larger than a statement's rows is stored whole, its ids one
// run, each measurement with its fragments in measurement_fragments.
func TestAddMeasurementsBatch(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const n = 64*3 + 8*2 + 5
	ms := make([]store.Measurement, n)
	for i := range ms {
		ms[i] = store.Measurement{Source: fmt.Sprint(i % 7), Type: "c8y_T", Time: t0.Add(time.Duration(i) * time.Second),
			Fragments: map[string]any{"c8y_T": map[string]any{"T": store.SeriesValue(float64(i), "C")}, "c8y_Extra": map[string]any{}}}
	}
	ids, err := s.AddMeasurements(ctx, "acme", ms)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := strconv.ParseInt(ids[0], 10, 64)
	for i, id := range ids {
		if id != strconv.FormatInt(first+int64(i), 10) {
			t.Fatalf("ids %v are not one run", ids)
		}
	}
	if got := intOf(t, s.db, "SELECT count(*) FROM measurements"); got != n {
		t.Fatalf("%d measurements stored, want %d", got, n)
	}
	if got := intOf(t, s.db, "SELECT count(*) FROM measurement_fragments WHERE fragment IN ('c8y_T', 'c8y_Extra')"); got != 2*n {
		t.Fatalf("%d fragment rows, want %d", got, 2*n)
	}
	m, err := s.GetMeasurement(ctx, "acme", ids[n-1])
	if err != nil || m.Fragments["c8y_T"].(map[string]any)["T"].(map[string]any)["value"] != float64(n-1) || m.Source != fmt.Sprint((n-1)%7) {
		t.Fatalf("last measurement %+v, %v", m, err)
	}
	// Any decimal form of an id names the measurement, as in the
	// MongoDB engine; an event's or alarm's id only in its own form.
	if _, err := s.GetMeasurement(ctx, "acme", "0"+ids[0]); err != nil {
		t.Fatalf("measurement 0%s: %v", ids[0], err)
	}
	ev, err := s.CreateEvent(ctx, "acme", store.Event{Source: "1", Type: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetEvent(ctx, "acme", "0"+ev.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("event 0%s: %v", ev.ID, err)
	}
}

// The delete functions remove a device's telemetry, and only its own.
func TestDeleteTelemetry(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	for _, tenant := range []string{"acme", "other"} {
		for _, src := range []string{"1", "2"} {
			var ms []store.Measurement
			for i := range 25 {
				ms = append(ms, store.Measurement{Source: src, Type: "c8y_T", Time: time.UnixMilli(int64(i)),
					Fragments: map[string]any{"c8y_T": map[string]any{}, "c8y_U": 1}})
			}
			if _, err := s.AddMeasurements(ctx, tenant, ms); err != nil {
				t.Fatal(err)
			}
			if _, err := s.CreateEvents(ctx, tenant, []store.Event{{Source: src, Type: "x"}, {Source: src, Type: "y"}}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.RaiseAlarm(ctx, tenant, store.Alarm{Source: src, Type: "x"}); err != nil {
				t.Fatal(err)
			}
			if err := s.SaveValues(ctx, tenant, src, []store.ResourceValue{{Path: "/3/0/1", Value: "v"}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	counts := func(tenant, src string) [5]int {
		var c [5]int
		for i, q := range []string{
			"SELECT count(*) FROM measurements WHERE tenant = ? AND source = ?",
			"SELECT count(*) FROM measurement_fragments f JOIN measurements m USING (id) WHERE m.tenant = ? AND m.source = ?",
			"SELECT count(*) FROM events WHERE tenant = ? AND source = ?",
			"SELECT count(*) FROM alarms WHERE tenant = ? AND source = ?",
			"SELECT count(*) FROM resource_values WHERE tenant = ? AND device = ?",
		} {
			c[i] = intOf(t, s.db, q, tenant, src)
		}
		return c
	}
	full := [5]int{25, 50, 2, 1, 1}
	if got := counts("acme", "1"); got != full {
		t.Fatalf("before: %v, want %v", got, full)
	}
	var removed []int64
	for {
		var n int64
		if err := s.db.Write(ctx, func(tx *Tx) error {
			var err error
			n, err = deleteHistoryOf(tx, "acme", "1", 10)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		removed = append(removed, n)
		if n == 0 {
			break
		}
	}
	if want := []int64{10 + 2 + 1, 10, 5, 0}; !reflect.DeepEqual(removed, want) {
		t.Fatalf("removed %v in turn, want %v", removed, want)
	}
	if err := s.db.Write(ctx, func(tx *Tx) error { return deleteValuesOf(tx, "acme", "1") }); err != nil {
		t.Fatal(err)
	}
	if got := counts("acme", "1"); got != [5]int{} {
		t.Fatalf("after: %v, want none", got)
	}
	if got := intOf(t, s.db, "SELECT count(*) FROM measurement_fragments WHERE id NOT IN (SELECT id FROM measurements)"); got != 0 {
		t.Fatalf("%d fragment rows left behind", got)
	}
	for _, other := range [][2]string{{"acme", "2"}, {"other", "1"}, {"other", "2"}} {
		if got := counts(other[0], other[1]); got != full {
			t.Fatalf("%s's source %s: %v, want %v", other[0], other[1], got, full)
		}
	}
}
