package mongo_test

import (
	"bytes"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/mapping"
	"github.com/lwm2m-agent/lwm2m-agent/agent/model"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/storetest"
)

// Device protocols, which only this engine stores, come through a dump
// with their functionalities and validation rules.
func TestProtocolsDump(t *testing.T) {
	src := storetest.OpenMongo(t)
	ps := store.NewProtocols[mapping.Functionality](src)
	must(ps.SaveProtocol(ctx, "acme", coreDef(t, 3303), "3303.xml"))
	must(ps.SetFunctionality(ctx, "acme", 3303, 5700, tempMeasurement))
	must(ps.SetFunctionality(ctx, "acme", 3303, 5601, tempAlarm))
	limits := store.ValidationRules{Groups: [][]store.ValidationRule{{{Type: "NUMBER", Rule: "GREATER_THAN", Value: 1.5}, {Type: "NUMBER", Rule: "LOWER_THAN", Value: int64(40)}}}}
	must(ps.SetValidation(ctx, "acme", 3303, 5750, notTest))
	must(ps.SaveProtocol(ctx, "acme", coreDef(t, 1), "1.xml"))
	must(ps.SetValidation(ctx, "acme", 1, 1, limits)) // Lifetime, an integer
	must(ps.SaveProtocol(ctx, store.ManagementTenant, coreDef(t, 3), "3.xml"))

	var buf bytes.Buffer
	counts := must(store.ExportDump(ctx, src, &buf, store.DumpHeader{}, nil))
	if counts[store.KindProtocol] != 3 {
		t.Fatalf("exported %v, want 3 protocols", counts)
	}
	dst := storetest.OpenMongo(t)
	must(store.ImportDump(ctx, dst, &buf, store.ImportOptions{}))
	pd := store.NewProtocols[mapping.Functionality](dst)
	for _, k := range []struct {
		tenant string
		object uint16
	}{{"acme", 3303}, {"acme", 1}, {store.ManagementTenant, 3}} {
		want := must(ps.OwnProtocol(ctx, k.tenant, k.object))
		got := must(pd.OwnProtocol(ctx, k.tenant, k.object))
		if !reflect.DeepEqual(got, want) {
			t.Errorf("protocol %d of %s:\n%+v\nwant\n%+v", k.object, k.tenant, got, want)
		}
	}
	// and what inherits from them
	if p := must(pd.Protocol(ctx, "beta", 3)); p.Tenant != store.ManagementTenant {
		t.Errorf("beta inherits object 3 from %q, want the management tenant", p.Tenant)
	}
}

// Measurements of the embedded engine, numbered one by one, do not fit
// this engine's buckets: they are stored with new ids, those that fit
// keep theirs, and none is lost.
func TestMeasurementIDsThatDoNotFitBuckets(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	m := func(id, source string, sec int, v float64) store.Record {
		return &store.MeasurementRecord{Tenant: "acme", ID: id, Source: source, Type: "t", Time: store.DumpTime(at.Add(time.Duration(sec) * time.Second)),
			Fragments: store.DumpDoc{"c8y_T": map[string]any{"T": map[string]any{"value": v}}}}
	}
	var buf bytes.Buffer
	w := must(store.NewDumpWriter(&buf, store.DumpHeader{}))
	for _, r := range []store.Record{
		&store.TenantRecord{ID: "acme", Domain: "acme"},
		&store.CounterRecord{Name: store.CounterIDs, Value: 2000},
		m("5", "a", 0, 1), m("6", "b", 1, 2), m("7", "a", 2, 3), // mixed sources, not from a bucket's start
		m("1000", "a", 3, 4), m("1001", "a", 4, 5), // a bucket's start and its next
		m("1002", "b", 5, 6), // its next place, another source
		m("1003", "a", 1, 7), // its next place, older than the one before
	} {
		check(t, w.Write(r))
	}
	check(t, w.Close())
	s := storetest.OpenMongo(t)
	must(store.ImportDump(ctx, s, &buf, store.ImportOptions{BatchRecords: 3}))
	got, total := must2t(s.ListMeasurements(ctx, "acme", store.MeasurementFilter{Page: store.Page{Size: 100, WithTotal: true}}))
	var values []float64
	ids := map[string]bool{}
	for _, x := range got {
		values = append(values, x.Fragments["c8y_T"].(map[string]any)["T"].(map[string]any)["value"].(float64))
		ids[x.ID] = true
	}
	slices.Sort(values)
	if total != 7 || len(ids) != 7 || !slices.Equal(values, []float64{1, 2, 3, 4, 5, 6, 7}) {
		t.Fatalf("measurements %v (total %d, %d ids), want the 7 values under 7 ids", values, total, len(ids))
	}
	for id, v := range map[string]float64{"1000": 4, "1001": 5} {
		x, err := s.GetMeasurement(ctx, "acme", id)
		if err != nil || x.Fragments["c8y_T"].(map[string]any)["T"].(map[string]any)["value"] != v {
			t.Errorf("measurement %s, which fits: %+v %v", id, x, err)
		}
	}
	for _, id := range []string{"5", "6", "7", "1002", "1003"} {
		if _, err := s.GetMeasurement(ctx, "acme", id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("measurement %s, which does not fit: %v, want it under a new id", id, err)
		}
	}
}

func must2t[T any](v T, total int64, err error) (T, int64) {
	if err != nil {
		panic(err)
	}
	return v, total
}

func coreDef(t *testing.T, id uint16) model.ObjectDef {
	t.Helper()
	d, ok := model.Core().Object(id)
	if !ok {
		t.Fatalf("no built-in object %d", id)
	}
	return d
}

var (
	tempMeasurement = mapping.Functionality{Measurement: &mapping.Measurement{Type: "c8y_Temperature", Series: "T", Unit: "C"}}
	tempAlarm       = mapping.Functionality{Alarm: &mapping.Alarm{Type: "c8y_HighTemperature", Severity: "MAJOR", Text: "Temperature {value}", RaiseWhen: "value > 40"}, AutoObserve: true}
	notTest         = store.ValidationRules{Groups: [][]store.ValidationRule{
		{{Type: "STRING", Rule: "EQUALS_NOT", Value: "test"}},
		{{Type: "REGEX", Rule: "EQUALS", Value: ".*asd$"}, {Type: "STRING", Rule: "EQUALS", Resource: "/3/0/15"}},
	}}
)
