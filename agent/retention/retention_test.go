package retention_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lwm2m-agent/lwm2m-agent/agent/retention"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/storetest"
)

// A running runner deletes, in batches, what its rules say is too old,
// leaves the rest and the kinds without a rule, and counts what it did.
func TestRunExpiresByRule(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := storetest.OpenTest(t)
	now := time.Now().UTC().Truncate(time.Millisecond)
	var evs []store.Event
	for i := range 25 {
		evs = append(evs, store.Event{Source: "1", Type: "e", Text: "old", Time: now.Add(-10*24*time.Hour + time.Duration(i)*time.Second)})
	}
	evs = append(evs, store.Event{Source: "1", Type: "e", Text: "young", Time: now.Add(-time.Hour)})
	if _, err := s.CreateEvents(ctx, "acme", evs); err != nil {
		t.Fatal(err)
	}
	old := store.Measurement{Source: "1", Type: "t", Time: now.Add(-10 * 24 * time.Hour), Fragments: map[string]any{"c8y_T": map[string]any{"T": store.SeriesValue(1, "C")}}}
	if _, err := s.AddMeasurements(ctx, "acme", []store.Measurement{old}); err != nil {
		t.Fatal(err)
	}
	r := retention.New(retention.Config{Store: s, Batch: 10, First: time.Millisecond, Interval: time.Hour,
		Rules: []retention.Rule{{Kind: store.DataEvent, MaxAge: 7 * 24 * time.Hour}, {Kind: store.DataMeasurement}}})
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()

	deadline := time.Now().Add(10 * time.Second)
	for {
		left, _, err := s.ListEvents(ctx, "acme", store.EventFilter{Page: store.Page{Size: 100, Current: 1}})
		if err != nil {
			t.Fatal(err)
		}
		if len(left) == 1 {
			if left[0].Text != "young" {
				t.Fatalf("left %+v, want the young event", left[0])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events left after 10 s, want 1", len(left))
		}
		time.Sleep(5 * time.Millisecond)
	}
	if ms, _, err := s.ListMeasurements(ctx, "acme", store.MeasurementFilter{Page: store.Page{Size: 10, Current: 1}}); err != nil || len(ms) != 1 {
		t.Errorf("measurements %d, %v: a kind without a maximum age is kept", len(ms), err)
	}
	cancel()
	<-done
	reg := prometheus.NewRegistry()
	reg.MustRegister(r.Collector())
	want := `
# HELP lwm2m_agent_retention_deleted_total Records deleted for their age, by kind (MEASUREMENT, EVENT, ALARM, OPERATION).
# TYPE lwm2m_agent_retention_deleted_total counter
lwm2m_agent_retention_deleted_total{kind="EVENT"} 25
lwm2m_agent_retention_deleted_total{kind="MEASUREMENT"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "lwm2m_agent_retention_deleted_total"); err != nil {
		t.Error(err)
	}
}

// Without a maximum age nothing runs: Run returns at once.
func TestRunWithoutRules(t *testing.T) {
	r := retention.New(retention.Config{Rules: []retention.Rule{{Kind: store.DataEvent}}})
	if r.Active() {
		t.Fatal("a rule without a maximum age is active")
	}
	r.Run(context.Background()) // returns, or the test times out
}
