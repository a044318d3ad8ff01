package storetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

var retentionCases = []suiteCase{
	{"History", testExpireHistory},
	{"OpenAlarmsAndUnfinishedOperationsStay", testExpireKeepsWhatIsOpen},
	{"Limit", testExpireLimit},
	{"Invalid", testExpireInvalid},
}

// expireAll runs Expire until it says that nothing is left, and returns
// what it deleted in all.
func expireAll(t *testing.T, s store.Engine, kind store.DataKind, before time.Time) int {
	t.Helper()
	total := 0
	for range 100 {
		n, err := s.Expire(ctx, kind, before, 1000)
		check(t, err)
		if n == 0 {
			return total
		}
		total += n
	}
	t.Fatalf("expire %s: still deleting after 100 calls", kind)
	return 0
}

// Measurements and events older than the time go, in every tenant;
// younger ones stay.
func testExpireHistory(t *testing.T, s store.Engine) {
	now := time.Now().UTC().Truncate(time.Millisecond)
	old, young := now.Add(-48*time.Hour), now.Add(-time.Minute)
	for _, tenant := range []string{"a", "b"} {
		var ms []store.Measurement
		for i := range 3 {
			for _, src := range []string{"1", "2"} {
				ms = append(ms, store.Measurement{Source: src, Type: "t", Time: old.Add(time.Duration(i) * time.Second),
					Fragments: map[string]any{"c8y_T": map[string]any{"T": store.SeriesValue(float64(i), "C")}}})
			}
		}
		ms = append(ms, store.Measurement{Source: "1", Type: "t", Time: young, Fragments: map[string]any{"c8y_T": map[string]any{"T": store.SeriesValue(9, "C")}}})
		must(s.AddMeasurements(ctx, tenant, ms))
		must(s.CreateEvents(ctx, tenant, []store.Event{
			{Source: "1", Type: "e", Text: "old", Time: old},
			{Source: "2", Type: "e", Text: "old", Time: old.Add(time.Second)},
			{Source: "1", Type: "e", Text: "young", Time: young},
		}))
	}
	if n := expireAll(t, s, store.DataMeasurement, now.Add(-24*time.Hour)); n != 12 {
		t.Errorf("expired %d measurements, want the 12 old ones", n)
	}
	if n := expireAll(t, s, store.DataEvent, now.Add(-24*time.Hour)); n != 4 {
		t.Errorf("expired %d events, want the 4 old ones", n)
	}
	for _, tenant := range []string{"a", "b"} {
		ms, _, err := s.ListMeasurements(ctx, tenant, store.MeasurementFilter{Page: store.Page{Size: 100, Current: 1}})
		check(t, err)
		if len(ms) != 1 || !ms[0].Time.Equal(young) {
			t.Errorf("%s: measurements left %+v, want the young one", tenant, ms)
		}
		evs, _, err := s.ListEvents(ctx, tenant, store.EventFilter{Page: store.Page{Size: 100, Current: 1}})
		check(t, err)
		if len(evs) != 1 || evs[0].Text != "young" {
			t.Errorf("%s: events left %+v, want the young one", tenant, evs)
		}
	}
}

// An alarm goes once CLEARED, an operation once SUCCESSFUL or FAILED;
// whatever is still open or to do stays, however old.
func testExpireKeepsWhatIsOpen(t *testing.T, s store.Engine) {
	old := time.Now().UTC().Add(-48 * time.Hour).Truncate(time.Millisecond)
	for _, typ := range []string{"cleared", "active", "acknowledged"} {
		must(s.RaiseAlarm(ctx, "a", store.Alarm{Source: "1", Type: typ, Text: typ, Time: old}))
	}
	must(s.ClearAlarm(ctx, "a", "1", "cleared"))
	ack := must2(s.ListAlarms(ctx, "a", store.AlarmFilter{Type: "acknowledged", Page: store.Page{Size: 1, Current: 1}}))
	must(s.UpdateAlarm(ctx, "a", ack[0].ID, store.AlarmUpdate{Status: store.AlarmAcknowledged}))

	dev := device(s, "a", "ep-retention")
	ops := must(s.CreateOperations(ctx, "a", commands(dev, 4)))
	check(t, s.SetStatus(ctx, "a", ops[0].ID, store.OpSuccessful, "ok", ""))
	check(t, s.SetStatus(ctx, "a", ops[1].ID, store.OpFailed, "", "4.04"))
	check(t, s.SetStatus(ctx, "a", ops[2].ID, store.OpExecuting, "", ""))

	// the operations' last update is now: expire what is older than a
	// moment from now
	later := time.Now().Add(time.Second)
	if n := expireAll(t, s, store.DataAlarm, later); n != 1 {
		t.Errorf("expired %d alarms, want the cleared one", n)
	}
	if n := expireAll(t, s, store.DataOperation, later); n != 2 {
		t.Errorf("expired %d operations, want the 2 finished ones", n)
	}
	var left []string
	for _, a := range must2(s.ListAlarms(ctx, "a", store.AlarmFilter{Page: store.Page{Size: 10, Current: 1}})) {
		left = append(left, a.Type)
	}
	slices.Sort(left)
	if !slices.Equal(left, []string{"acknowledged", "active"}) {
		t.Errorf("alarms left %v, want acknowledged and active", left)
	}
	got := opIDs(must2(s.ListOperations(ctx, "a", store.OperationFilter{DeviceID: dev, Page: store.Page{Size: 10, Current: 1}})))
	slices.Sort(got)
	want := []string{ops[2].ID, ops[3].ID}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("operations left %v, want the executing and the pending one %v", got, want)
	}
}

// limit bounds one call's deletions, and the calls after it go on where
// it stopped, until 0 says that nothing is left.
func testExpireLimit(t *testing.T, s store.Engine) {
	old := time.Now().UTC().Add(-48 * time.Hour).Truncate(time.Millisecond)
	var evs []store.Event
	for i := range 5 {
		evs = append(evs, store.Event{Source: "1", Type: "e", Text: "old", Time: old.Add(time.Duration(i) * time.Second)})
	}
	must(s.CreateEvents(ctx, "a", evs[:3]))
	must(s.CreateEvents(ctx, "b", evs[3:]))
	var got []int
	for range 5 {
		got = append(got, must(s.Expire(ctx, store.DataEvent, time.Now(), 2)))
	}
	if want := []int{2, 2, 1, 0, 0}; !slices.Equal(got, want) {
		t.Errorf("deleted per call %v, want %v", got, want)
	}
}

func testExpireInvalid(t *testing.T, s store.Engine) {
	if _, err := s.Expire(ctx, "AUDIT", time.Now(), 10); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("unknown kind: %v, want ErrInvalid", err)
	}
	if _, err := s.Expire(ctx, store.DataEvent, time.Now(), 0); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("limit 0: %v, want ErrInvalid", err)
	}
}
