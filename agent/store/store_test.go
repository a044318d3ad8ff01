package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/storetest"
)

var ctx = context.Background()

// must unwraps a result in test setup; a failure panics, failing the test
// with the stack of the call.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func check(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestTenantsAndAuthentication(t *testing.T) {
	s := storetest.OpenTest(t)
	pw := must(s.EnsureManagement(ctx, "")).Generated
	if len(pw) < 16 {
		t.Fatalf("generated password %q is too short", pw)
	}
	if again := must(s.EnsureManagement(ctx, "")); again != (store.Management{}) {
		t.Fatalf("second EnsureManagement without a password: %+v", again)
	}
	must(s.CreateTenant(ctx, "acme", "boss", "secret-1"))
	if _, err := s.CreateTenant(ctx, "acme", "x", "y"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate tenant: %v, want ErrConflict", err)
	}
	for _, bad := range []string{"", "Acme", "a/b", "-a", "a b"} {
		if _, err := s.CreateTenant(ctx, bad, "x", "y"); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("tenant %q: %v, want ErrInvalid", bad, err)
		}
	}
	tests := []struct {
		name, tenant, user, pass string
		ok                       bool
	}{
		{"management admin", "management", "admin", pw, true},
		{"acme admin", "acme", "boss", "secret-1", true},
		{"wrong password", "acme", "boss", "secret-2", false},
		{"unknown user", "acme", "nobody", "secret-1", false},
		{"user of another tenant", "management", "boss", "secret-1", false},
		{"unknown tenant", "nope", "boss", "secret-1", false},
		{"empty password", "acme", "boss", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for range 2 { // the second round answers from the cache
				err := s.Authenticate(ctx, tc.tenant, tc.user, tc.pass)
				if tc.ok && err != nil {
					t.Fatalf("Authenticate: %v", err)
				}
				if !tc.ok && !errors.Is(err, store.ErrUnauthorized) {
					t.Fatalf("Authenticate: %v, want ErrUnauthorized", err)
				}
			}
		})
	}
	u := must(s.Login(ctx, "acme", "boss", "secret-1"))
	if !u.IsAdmin() || u.Tenant != "acme" {
		t.Fatalf("Login: %+v", u)
	}
	// A changed password ends cached logins at once.
	if err := s.SetPassword(ctx, "acme", "boss", "secret-2"); err != nil {
		t.Fatal(err)
	}
	if err := s.Authenticate(ctx, "acme", "boss", "secret-1"); !errors.Is(err, store.ErrUnauthorized) {
		t.Fatalf("old password after change: %v", err)
	}
	if err := s.Authenticate(ctx, "acme", "boss", "secret-2"); err != nil {
		t.Fatalf("new password: %v", err)
	}
}

func TestEnsureManagementGivenPassword(t *testing.T) {
	s := storetest.OpenTest(t)
	if m := must(s.EnsureManagement(ctx, "given")); m != (store.Management{}) {
		t.Fatalf("first start with a password: %+v", m)
	}
	if err := s.Authenticate(ctx, store.ManagementTenant, "admin", "given"); err != nil {
		t.Fatal(err)
	}
}

// A configured password that differs from the stored one replaces it, and
// the old one stops working at once (no cached login survives); the same
// password again, or none, changes nothing.
func TestEnsureManagementChangesPassword(t *testing.T) {
	s := storetest.OpenTest(t)
	must(s.EnsureManagement(ctx, "first-Pass-1!"))
	if err := s.Authenticate(ctx, store.ManagementTenant, "admin", "first-Pass-1!"); err != nil {
		t.Fatal(err) // cached from here on
	}
	for _, tc := range []struct {
		given   string
		changed bool
		valid   string
	}{
		{"first-Pass-1!", false, "first-Pass-1!"},
		{"", false, "first-Pass-1!"},
		{"second-Pass-2!", true, "second-Pass-2!"},
		{"second-Pass-2!", false, "second-Pass-2!"},
	} {
		m := must(s.EnsureManagement(ctx, tc.given))
		if m.PasswordChanged != tc.changed || m.Generated != "" {
			t.Errorf("EnsureManagement(%q) = %+v, want changed %v", tc.given, m, tc.changed)
		}
		if err := s.Authenticate(ctx, store.ManagementTenant, "admin", tc.valid); err != nil {
			t.Errorf("after EnsureManagement(%q): %q refused: %v", tc.given, tc.valid, err)
		}
	}
	if err := s.Authenticate(ctx, store.ManagementTenant, "admin", "first-Pass-1!"); !errors.Is(err, store.ErrUnauthorized) {
		t.Errorf("the replaced password still works: %v", err)
	}
}

func names(mos []store.ManagedObject) []string {
	var out []string
	for _, m := range mos {
		out = append(out, m.Name)
	}
	return out
}

func TestManagedObjects(t *testing.T) {
	s := storetest.OpenTest(t)
	var ids []string
	for i, n := range []string{"alpha", "beta", "gamma", "delta", "epsilon"} {
		f := map[string]any{"c8y_Level": map[string]any{"value": int64(i)}}
		if i%2 == 0 {
			f["c8y_IsDevice"] = map[string]any{}
		}
		mo := must(s.CreateManagedObject(ctx, "a", store.ManagedObject{Name: n, Type: []string{"t1", "t2"}[i%2], Fragments: f}))
		ids = append(ids, mo.ID)
	}
	must(s.CreateManagedObject(ctx, "b", store.ManagedObject{Name: "alpha", Type: "t1"}))

	got := must(s.GetManagedObject(ctx, "a", ids[0]))
	if got.Name != "alpha" || got.Type != "t1" || got.CreationTime.IsZero() || got.Fragments["c8y_IsDevice"] == nil {
		t.Fatalf("get: %+v", got)
	}

	upd := must(s.UpdateManagedObject(ctx, "a", ids[0], map[string]any{
		"name": "alpha2", "c8y_New": map[string]any{"x": "y"}, "c8y_Level": nil, "id": "999",
	}))
	if upd.Name != "alpha2" || upd.ID != ids[0] || upd.Fragments["c8y_Level"] != nil || upd.Fragments["c8y_IsDevice"] == nil {
		t.Fatalf("update did not merge: %+v", upd)
	}
	if !upd.LastUpdated.After(got.LastUpdated) && !upd.LastUpdated.Equal(got.LastUpdated) {
		t.Fatalf("lastUpdated went back: %v -> %v", got.LastUpdated, upd.LastUpdated)
	}
	if _, err := s.UpdateManagedObject(ctx, "a", ids[0], map[string]any{"bad.name": 1}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("fragment with a dot: %v", err)
	}

	tests := []struct {
		name string
		f    store.ManagedObjectFilter
		want []string
	}{
		{"all", store.ManagedObjectFilter{Page: store.Page{Size: 10}}, []string{"alpha2", "beta", "gamma", "delta", "epsilon"}},
		{"type", store.ManagedObjectFilter{Type: "t2"}, []string{"beta", "delta"}},
		{"fragmentType", store.ManagedObjectFilter{FragmentType: "c8y_IsDevice"}, []string{"alpha2", "gamma", "epsilon"}},
		{"query eq", store.ManagedObjectFilter{Query: "name eq 'gamma'"}, []string{"gamma"}},
		{"query wildcard", store.ManagedObjectFilter{Query: "name eq '*ta'"}, []string{"beta", "delta"}},
		{"query and has", store.ManagedObjectFilter{Query: "has(c8y_IsDevice) and type eq 't1'"}, []string{"alpha2", "gamma", "epsilon"}},
		{"query or", store.ManagedObjectFilter{Query: "name eq 'beta' or name eq 'delta'"}, []string{"beta", "delta"}},
		{"query not", store.ManagedObjectFilter{Query: "not(has(c8y_IsDevice))"}, []string{"beta", "delta"}},
		{"query nested number", store.ManagedObjectFilter{Query: "c8y_Level.value ge 3"}, []string{"delta", "epsilon"}},
		{"query filter orderby", store.ManagedObjectFilter{Query: "$filter=(type eq 't1') $orderby=name desc"}, []string{"gamma", "epsilon", "alpha2"}},
		{"page 2", store.ManagedObjectFilter{Page: store.Page{Size: 2, Current: 2}}, []string{"gamma", "delta"}},
		{"page past end", store.ManagedObjectFilter{Page: store.Page{Size: 2, Current: 4}}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mos, _, err := s.ListManagedObjects(ctx, "a", tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(names(mos), tc.want) {
				t.Fatalf("got %v, want %v", names(mos), tc.want)
			}
		})
	}
	_, total, err := s.ListManagedObjects(ctx, "a", store.ManagedObjectFilter{Page: store.Page{Size: 2, WithTotal: true}})
	if err != nil || total != 5 || store.TotalPages(total, 2) != 3 {
		t.Fatalf("total %d (%v), want 5 in 3 pages", total, err)
	}

	if _, err := s.DeleteManagedObject(ctx, "a", ids[1]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetManagedObject(ctx, "a", ids[1]); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted object: %v", err)
	}
}

func TestParseQueryErrors(t *testing.T) {
	tests := []struct{ name, q string }{
		{"no operator", "name 'x'"},
		{"unknown operator", "name like 'x'"},
		{"unterminated string", "name eq 'x"},
		{"missing paren", "(name eq 'x'"},
		{"trailing", "name eq 'x' 'y'"},
		{"has without name", "has()"},
		{"bad field", "$where eq 1"},
		{"bad orderby", "$orderby=name sideways"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := store.ParseQuery(tc.q); !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("ParseQuery(%q) = %v, want ErrInvalid", tc.q, err)
			}
		})
	}
}

func TestDevicesAndExternalIDs(t *testing.T) {
	s := storetest.OpenTest(t)
	idA := must(s.CreateDevice(ctx, "a", "urn:imei:1"))
	dev := must(s.GetManagedObject(ctx, "a", idA))
	if dev.Name != "urn:imei:1" || dev.Type != store.DeviceType || dev.Fragments["c8y_IsDevice"] == nil {
		t.Fatalf("device: %+v", dev)
	}
	if ops, _ := dev.Fragments["c8y_SupportedOperations"].([]any); !slices.Equal(ops, []any{"c8y_Command"}) {
		t.Fatalf("c8y_SupportedOperations = %v", dev.Fragments["c8y_SupportedOperations"])
	}
	again, err := s.CreateDevice(ctx, "a", "urn:imei:1")
	if !errors.Is(err, store.ErrConflict) || again != idA {
		t.Fatalf("duplicate device: %q %v, want %q and ErrConflict", again, err, idA)
	}
	idB := must(s.CreateDevice(ctx, "b", "urn:imei:1"))
	tenant, id, err := s.DeviceByEndpoint(ctx, "urn:imei:1")
	if err != nil || tenant != "a" || id != idA {
		t.Fatalf("binding: %s %s %v, want the first tenant's device", tenant, id, err)
	}
	x := must(s.GetExternalID(ctx, "b", store.ExternalIDDevice, "urn:imei:1"))
	if x.ManagedObjectID != idB {
		t.Fatalf("b's external id points to %s", x.ManagedObjectID)
	}
	if err := s.CreateExternalID(ctx, "a", store.ExternalID{Type: "c8y_Serial", ExternalID: "s/1", ManagedObjectID: idA}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateExternalID(ctx, "b", store.ExternalID{Type: "c8y_Serial", ExternalID: "s/1", ManagedObjectID: idA}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("external id for another tenant's object: %v", err)
	}
	xs := must(s.ExternalIDsOf(ctx, "a", idA))
	if len(xs) != 2 || xs[0].Type != "c8y_Id" || xs[1].ExternalID != "s/1" {
		t.Fatalf("external ids: %+v", xs)
	}
	if _, _, err := s.DeviceByEndpoint(ctx, "urn:imei:2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown endpoint: %v", err)
	}
	// Deleting the bound device frees the endpoint and its external IDs.
	if _, err := s.DeleteManagedObject(ctx, "a", idA); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.DeviceByEndpoint(ctx, "urn:imei:1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("binding after delete: %v", err)
	}
	if _, err := s.GetExternalID(ctx, "a", "c8y_Serial", "s/1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("external id after delete: %v", err)
	}
}

func TestEvents(t *testing.T) {
	s := storetest.OpenTest(t)
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
		name string
		f    store.EventFilter
		want []string
	}{
		{"newest first", store.EventFilter{Page: store.Page{Size: 3}}, []string{"e5", "e4", "e3"}},
		{"revert", store.EventFilter{Revert: true, Page: store.Page{Size: 3}}, []string{"e0", "e1", "e2"}},
		{"source", store.EventFilter{Source: "2"}, []string{"e5", "e3", "e1"}},
		{"type", store.EventFilter{Type: "tA"}, []string{"e3", "e0"}},
		{"range", store.EventFilter{DateFrom: t0.Add(time.Minute), DateTo: t0.Add(3 * time.Minute)}, []string{"e2", "e1"}},
		{"page 2", store.EventFilter{Page: store.Page{Size: 4, Current: 2}}, []string{"e1", "e0"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			es, _, err := s.ListEvents(ctx, "a", tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(texts(es), tc.want) {
				t.Fatalf("got %v, want %v", texts(es), tc.want)
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
}

func TestAlarms(t *testing.T) {
	s := storetest.OpenTest(t)
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
	if err := s.ClearAlarm(ctx, "a", "1", "c8y_High"); err != nil {
		t.Fatal(err)
	}
	if a := must(s.GetAlarm(ctx, "a", a1.ID)); a.Status != store.AlarmCleared {
		t.Fatalf("cleared alarm: %+v", a)
	}
	a4 := must(s.RaiseAlarm(ctx, "a", store.Alarm{Source: "1", Type: "c8y_High"}))
	if a4.ID == a1.ID || a4.Count != 1 || a4.Status != store.AlarmActive {
		t.Fatalf("raise after clear: %+v", a4)
	}
	if _, err := s.UpdateAlarm(ctx, "a", a1.ID, store.AlarmUpdate{Status: store.AlarmActive}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("reopen cleared: %v", err)
	}
	for _, bad := range []store.AlarmUpdate{{Status: "OPEN"}, {Severity: "HUGE"}} {
		if _, err := s.UpdateAlarm(ctx, "a", a4.ID, bad); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("update %+v: %v", bad, err)
		}
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

func temp(src string, at time.Time, v float64) store.Measurement {
	return store.Measurement{Source: src, Type: "c8y_Temperature", Time: at,
		Fragments: map[string]any{"c8y_Temperature": map[string]any{"T": store.SeriesValue(v, "C")}}}
}

func value(m store.Measurement) float64 {
	return m.Fragments["c8y_Temperature"].(map[string]any)["T"].(map[string]any)["value"].(float64)
}

func TestMeasurements(t *testing.T) {
	s := storetest.OpenTest(t)
	t0 := time.Date(2026, 1, 1, 0, 30, 0, 0, time.UTC)
	var ms []store.Measurement
	// 2500 values over three hours: several buckets per hour and window.
	for i := range 2500 {
		ms = append(ms, temp("1", t0.Add(time.Duration(i)*5*time.Second), float64(i)))
	}
	ms = append(ms, store.Measurement{Source: "1", Type: "c8y_Battery", Time: t0,
		Fragments: map[string]any{"c8y_Battery": map[string]any{"level": store.SeriesValue(90, "%")}}})
	ms = append(ms, temp("2", t0, -1))
	ids := must(s.AddMeasurements(ctx, "a", ms))
	if len(ids) != len(ms) || len(slices.Compact(slices.Clone(ids))) != len(ids) {
		t.Fatalf("ids not unique: %d of %d", len(slices.Compact(slices.Clone(ids))), len(ms))
	}
	m := must(s.GetMeasurement(ctx, "a", ids[1234]))
	if value(m) != 1234 || m.Source != "1" || !m.Time.Equal(t0.Add(1234*5*time.Second)) || m.ID != ids[1234] {
		t.Fatalf("GetMeasurement: %+v", m)
	}
	if _, err := s.GetMeasurement(ctx, "b", ids[0]); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("other tenant's measurement: %v", err)
	}

	tests := []struct {
		name   string
		f      store.MeasurementFilter
		values []float64
		total  int64
	}{
		{"oldest first", store.MeasurementFilter{Source: "1", Type: "c8y_Temperature", Page: store.Page{Size: 3, WithTotal: true}}, []float64{0, 1, 2}, 2500},
		{"revert", store.MeasurementFilter{Source: "1", Type: "c8y_Temperature", Revert: true, Page: store.Page{Size: 2}}, []float64{2499, 2498}, -1},
		{"page across buckets", store.MeasurementFilter{Source: "1", ValueFragmentType: "c8y_Temperature", Page: store.Page{Size: 400, Current: 3}}, nil, -1},
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
			if tc.name == "page across buckets" {
				if len(got) != 400 || value(got[0]) != 800 || value(got[399]) != 1199 {
					t.Fatalf("page 3 of 400: %d values from %v", len(got), value(got[0]))
				}
				return
			}
			if tc.values == nil {
				return
			}
			var vs []float64
			for _, m := range got {
				vs = append(vs, value(m))
			}
			if !slices.Equal(vs, tc.values) && !(len(vs) == 0 && len(tc.values) == 0) {
				t.Fatalf("got %v, want %v", vs, tc.values)
			}
		})
	}
	if got, _, _ := s.ListMeasurements(ctx, "b", store.MeasurementFilter{}); len(got) != 0 {
		t.Fatalf("tenant b sees %d measurements of a", len(got))
	}
}

func TestValues(t *testing.T) {
	s := storetest.OpenTest(t)
	t1 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := s.SaveValues(ctx, "a", "7", []store.ResourceValue{
		{Path: "/3/0/13", Value: t1, Type: "TIME", Time: t1},
		{Path: "/3/0/1", Value: "model", Type: "STRING", Time: t1},
		{Path: "/3303/0/5700", Value: 21.5, Type: "FLOAT", Time: t1},
		{Path: "/3/0/7/1", Value: int64(3800), Type: "INTEGER", Time: t1},
		{Path: "/3/0/2", Value: []byte{0xca, 0xfe}, Type: "OPAQUE", Time: t1},
	}); err != nil {
		t.Fatal(err)
	}
	t2 := t1.Add(time.Minute)
	if err := s.SaveValues(ctx, "a", "7", []store.ResourceValue{{Path: "/3303/0/5700", Value: 22.0, Type: "FLOAT", Time: t2}}); err != nil {
		t.Fatal(err)
	}
	vs := must(s.Values(ctx, "a", "7"))
	var paths []string
	for _, v := range vs {
		paths = append(paths, v.Path)
	}
	if want := []string{"/3/0/1", "/3/0/2", "/3/0/7/1", "/3/0/13", "/3303/0/5700"}; !slices.Equal(paths, want) {
		t.Fatalf("paths %v, want %v", paths, want)
	}
	if vs[4].Value != 22.0 || !vs[4].Time.Equal(t2) || vs[4].Type != "FLOAT" {
		t.Fatalf("overwritten value: %+v", vs[4])
	}
	if !slices.Equal(vs[1].Value.([]byte), []byte{0xca, 0xfe}) || !vs[3].Value.(time.Time).Equal(t1) && vs[3].Path == "/3/0/13" {
		t.Fatalf("typed values: %+v", vs)
	}
	if vs[2].Value != int64(3800) {
		t.Fatalf("integer value %T %v", vs[2].Value, vs[2].Value)
	}
	if got := must(s.Values(ctx, "b", "7")); len(got) != 0 {
		t.Fatalf("tenant b sees a's values: %+v", got)
	}
	if err := s.SaveValues(ctx, "a", "7", []store.ResourceValue{{Path: "3/x"}}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("bad path: %v", err)
	}
}

func TestOperations(t *testing.T) {
	dir := t.TempDir()
	s, err := store.Open(ctx, store.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	dev := must(s.CreateDevice(ctx, "a", "ep"))
	other := must(s.CreateDevice(ctx, "a", "ep2"))
	devB := must(s.CreateDevice(ctx, "b", "epb"))
	ops := must(s.CreateOperations(ctx, "a", []store.Operation{
		{DeviceID: dev, HasCommand: true, Text: "read /3/0"},
		{DeviceID: dev, HasCommand: true, Text: "read /3/0/1"},
		{DeviceID: other, Fragments: map[string]any{"c8y_Firmware": map[string]any{"name": "fw", "version": "2", "url": "http://x"}}},
		{DeviceID: dev, HasCommand: true, Text: "execute /3/0/4"},
	}))
	for _, op := range ops {
		if op.Status != store.OpPending {
			t.Fatalf("new operation: %+v", op)
		}
	}
	if _, err := s.CreateOperation(ctx, "a", store.Operation{DeviceID: devB, Text: "read /3/0"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("operation for another tenant's device: %v", err)
	}
	pendingTexts := func(tenant, id string, limit int) (out []string) {
		t.Helper()
		for _, op := range must(s.Pending(ctx, tenant, id, limit)) {
			out = append(out, op.Text)
		}
		return out
	}
	if got := pendingTexts("a", dev, 2); !slices.Equal(got, []string{"read /3/0", "read /3/0/1"}) {
		t.Fatalf("pending: %v", got)
	}
	if err := s.SetStatus(ctx, "a", ops[0].ID, store.OpExecuting, "", ""); err != nil {
		t.Fatal(err)
	}
	if got := pendingTexts("a", dev, 0); !slices.Equal(got, []string{"read /3/0/1", "execute /3/0/4"}) {
		t.Fatalf("pending while executing: %v", got)
	}
	// A timed-out request goes back to the queue, in creation order.
	if err := s.SetStatus(ctx, "a", ops[0].ID, store.OpPending, "", ""); err != nil {
		t.Fatal(err)
	}
	if got := pendingTexts("a", dev, 1); !slices.Equal(got, []string{"read /3/0"}) {
		t.Fatalf("pending after requeue: %v", got)
	}
	check(t, s.SetStatus(ctx, "a", ops[0].ID, store.OpExecuting, "", ""))
	check(t, s.SetStatus(ctx, "a", ops[0].ID, store.OpSuccessful, "/3/0/0 = acme", ""))
	check(t, s.SetStatus(ctx, "a", ops[1].ID, store.OpFailed, "", "4.04 Not Found"))
	got := must(s.GetOperation(ctx, "a", ops[0].ID))
	if got.Status != store.OpSuccessful || got.Result != "/3/0/0 = acme" || got.Attempts != 2 || got.Text != "read /3/0" {
		t.Fatalf("successful operation: %+v", got)
	}
	if f := must(s.GetOperation(ctx, "a", ops[1].ID)); f.FailureReason != "4.04 Not Found" {
		t.Fatalf("failed operation: %+v", f)
	}
	if err := s.SetStatus(ctx, "a", ops[0].ID, store.OpPending, "", ""); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("status after final: %v", err)
	}
	if err := s.SetStatus(ctx, "b", ops[2].ID, store.OpFailed, "", ""); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("other tenant's SetStatus: %v", err)
	}
	if n := must(s.PendingCount(ctx, "a", dev)); n != 1 {
		t.Fatalf("PendingCount = %d, want 1", n)
	}
	list, total, err := s.ListOperations(ctx, "a", store.OperationFilter{DeviceID: dev, Page: store.Page{WithTotal: true}})
	if err != nil || total != 3 || len(list) != 3 || list[0].ID != ops[0].ID || list[2].ID != ops[3].ID {
		t.Fatalf("list: %d %v %+v", total, err, list)
	}
	list, _, _ = s.ListOperations(ctx, "a", store.OperationFilter{Status: store.OpPending})
	if len(list) != 2 || list[0].Fragments["c8y_Firmware"] == nil || list[1].Text != "execute /3/0/4" {
		t.Fatalf("pending list: %+v", list)
	}
	if l, _, _ := s.ListOperations(ctx, "b", store.OperationFilter{}); len(l) != 0 {
		t.Fatalf("tenant b lists a's operations: %+v", l)
	}
	// Operations and queues survive a restart.
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	s, err = store.Open(ctx, store.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	if got := pendingTexts("a", other, 0); len(got) != 1 {
		t.Fatalf("pending after restart: %v", got)
	}
}

// TestTenantIsolation checks, per resource kind, that tenant b can neither
// read nor change what tenant a stored.
func TestTenantIsolation(t *testing.T) {
	s := storetest.OpenTest(t)
	dev := must(s.CreateDevice(ctx, "a", "ep"))
	ev := must(s.CreateEvent(ctx, "a", store.Event{Source: dev, Type: "x"}))
	al := must(s.RaiseAlarm(ctx, "a", store.Alarm{Source: dev, Type: "x"}))
	op := must(s.CreateOperation(ctx, "a", store.Operation{DeviceID: dev, HasCommand: true, Text: "read /3"}))
	ms := must(s.AddMeasurements(ctx, "a", []store.Measurement{temp(dev, time.Time{}, 1)}))
	tests := []struct {
		name string
		do   func() error
	}{
		{"get managed object", func() error { _, err := s.GetManagedObject(ctx, "b", dev); return err }},
		{"update managed object", func() error { _, err := s.UpdateManagedObject(ctx, "b", dev, map[string]any{"x": 1}); return err }},
		{"update fragments", func() error { return s.UpdateFragments(ctx, "b", dev, bson.M{"x": 1}) }},
		{"delete managed object", func() error { _, err := s.DeleteManagedObject(ctx, "b", dev); return err }},
		{"external id", func() error { _, err := s.GetExternalID(ctx, "b", "c8y_Id", "ep"); return err }},
		{"get event", func() error { _, err := s.GetEvent(ctx, "b", ev.ID); return err }},
		{"get alarm", func() error { _, err := s.GetAlarm(ctx, "b", al.ID); return err }},
		{"update alarm", func() error {
			_, err := s.UpdateAlarm(ctx, "b", al.ID, store.AlarmUpdate{Status: store.AlarmCleared})
			return err
		}},
		{"get operation", func() error { _, err := s.GetOperation(ctx, "b", op.ID); return err }},
		{"set operation status", func() error { return s.SetStatus(ctx, "b", op.ID, store.OpFailed, "", "") }},
		{"get measurement", func() error { _, err := s.GetMeasurement(ctx, "b", ms[0]); return err }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.do(); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("got %v, want ErrNotFound", err)
			}
		})
	}
	lists := []struct {
		name string
		n    func() int
	}{
		{"managed objects", func() int { l, _, _ := s.ListManagedObjects(ctx, "b", store.ManagedObjectFilter{}); return len(l) }},
		{"external ids", func() int { l, _ := s.ExternalIDsOf(ctx, "b", dev); return len(l) }},
		{"events", func() int { l, _, _ := s.ListEvents(ctx, "b", store.EventFilter{}); return len(l) }},
		{"alarms", func() int { l, _, _ := s.ListAlarms(ctx, "b", store.AlarmFilter{}); return len(l) }},
		{"measurements", func() int { l, _, _ := s.ListMeasurements(ctx, "b", store.MeasurementFilter{}); return len(l) }},
		{"operations", func() int { l, _, _ := s.ListOperations(ctx, "b", store.OperationFilter{}); return len(l) }},
		{"pending", func() int { l, _ := s.Pending(ctx, "b", dev, 0); return len(l) }},
	}
	for _, tc := range lists {
		t.Run("list "+tc.name, func(t *testing.T) {
			if n := tc.n(); n != 0 {
				t.Fatalf("tenant b sees %d", n)
			}
		})
	}
	// And a's data is untouched.
	if a := must(s.GetAlarm(ctx, "a", al.ID)); a.Status != store.AlarmActive {
		t.Fatalf("a's alarm changed: %+v", a)
	}
	if o := must(s.GetOperation(ctx, "a", op.ID)); o.Status != store.OpPending {
		t.Fatalf("a's operation changed: %+v", o)
	}
}

// A pool of its own shares the store's data and caches, and closing it
// leaves the store working.
func TestPool(t *testing.T) {
	s := storetest.OpenTest(t)
	p, err := s.Pool(2)
	if err != nil {
		t.Fatal(err)
	}
	mo := must(p.CreateManagedObject(ctx, "t1", store.ManagedObject{Name: "through the pool", Type: "x"}))
	got, err := s.GetManagedObject(ctx, "t1", mo.ID)
	if err != nil || got.Name != "through the pool" {
		t.Fatalf("read through the store: %+v %v", got, err)
	}
	// IDs come from one allocator: none given twice
	other := must(s.CreateManagedObject(ctx, "t1", store.ManagedObject{Name: "direct", Type: "x"}))
	if other.ID == mo.ID {
		t.Fatalf("both got id %s", mo.ID)
	}
	check(t, p.Close(ctx))
	if _, err := s.GetManagedObject(ctx, "t1", other.ID); err != nil {
		t.Fatalf("store after the pool closed: %v", err)
	}
}

// UpdateFieldsMany sets the fields it names and leaves the fragment's
// other fields as they are, creates a fragment that is not there, and
// refuses keys that are not fragment.field.
func TestUpdateFieldsMany(t *testing.T) {
	s := storetest.OpenTest(t)
	id := must(s.CreateDevice(ctx, "a", "ep"))
	check(t, settled(s.UpdateFragmentsMany(ctx, "a", map[string]map[string]any{id: {"c8y_Hardware": map[string]any{"model": "m1", "serialNumber": "s1"}}})))
	check(t, settled(s.UpdateFieldsMany(ctx, "a", map[string]map[string]any{id: {"c8y_Hardware.model": "m2", "c8y_Mobile.cellId": "42"}})))
	mo := must(s.GetManagedObject(ctx, "a", id))
	hw, _ := mo.Fragments["c8y_Hardware"].(map[string]any)
	if hw["model"] != "m2" || hw["serialNumber"] != "s1" {
		t.Errorf("c8y_Hardware after setting its model: %v", hw)
	}
	if mobile, _ := mo.Fragments["c8y_Mobile"].(map[string]any); mobile["cellId"] != "42" {
		t.Errorf("c8y_Mobile created by a field: %v", mo.Fragments["c8y_Mobile"])
	}
	for _, k := range []string{"c8y_Hardware.", "c8y_Hardware.a.b", "c8y_Hardware.$x", "$set.x", ".x"} {
		if _, err := s.UpdateFieldsMany(ctx, "a", map[string]map[string]any{id: {k: 1}}); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("key %q: %v, want ErrInvalid", k, err)
		}
	}
}

// settled turns UpdateFragmentsMany's answer into an error: one for any
// object missing.
func settled(missing []string, err error) error {
	if err == nil && len(missing) > 0 {
		return fmt.Errorf("objects missing: %v", missing)
	}
	return err
}

// Every refused login costs one bcrypt comparison, whether the tenant,
// the user or only the password is wrong, so that answer times do not
// tell which tenants and users exist; a cached valid login costs none.
func TestLoginComparesEvenForUnknownUsers(t *testing.T) {
	s := storetest.OpenTest(t)
	must(s.CreateTenant(ctx, "acme", "boss", "Boss-pass-1234!"))
	for _, tc := range []struct {
		name, tenant, user, pass string
		checks                   int64
		ok                       bool
	}{
		{"unknown tenant", "nobody", "boss", "Boss-pass-1234!", 1, false},
		{"unknown user", "acme", "nobody", "Boss-pass-1234!", 1, false},
		{"wrong password", "acme", "boss", "Wrong-pass-1234!", 1, false},
		{"right password", "acme", "boss", "Boss-pass-1234!", 1, true},
		{"right password again, cached", "acme", "boss", "Boss-pass-1234!", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := store.PasswordChecks()
			err := s.Authenticate(ctx, tc.tenant, tc.user, tc.pass)
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, store.ErrUnauthorized)) {
				t.Errorf("Authenticate: %v, want ok %v", err, tc.ok)
			}
			if n := store.PasswordChecks() - before; n != tc.checks {
				t.Errorf("%d bcrypt comparisons, want %d", n, tc.checks)
			}
		})
	}
}
