package storetest

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

var isolationCases = []suiteCase{
	{"TenantIsolation", testTenantIsolation},
}

// Tenant b can neither read nor change what tenant a stored: every
// method given a's ids from b answers ErrNotFound or nothing, and a's
// data is as it was.
func testTenantIsolation(t *testing.T, s store.Engine) {
	dev := must(s.CreateDevice(ctx, "a", "ep"))
	check(t, s.CreateExternalID(ctx, "a", store.ExternalID{Type: "c8y_Serial", ExternalID: "s1", ManagedObjectID: dev}))
	check(t, s.SaveDeviceRegistration(ctx, "a", dev, store.DeviceRegistration{Params: map[string]any{"endpointId": "ep"}}))
	check(t, s.SaveValues(ctx, "a", dev, []store.ResourceValue{{Path: "/3/0/1", Value: "m", Type: "STRING", Time: time.Now()}}))
	ev := must(s.CreateEvent(ctx, "a", store.Event{Source: dev, Type: "x"}))
	al := must(s.RaiseAlarm(ctx, "a", store.Alarm{Source: dev, Type: "x"}))
	op := must(s.CreateOperation(ctx, "a", store.Operation{DeviceID: dev, HasCommand: true, Text: "read /3"}))
	done := must(s.CreateOperation(ctx, "a", store.Operation{DeviceID: dev, HasCommand: true, Text: "read /4"}))
	check(t, s.SetStatus(ctx, "a", done.ID, store.OpSuccessful, "ok", ""))
	ms := must(s.AddMeasurements(ctx, "a", []store.Measurement{temp(dev, time.Time{}, 1)}))
	bin := must(s.CreateBinary(ctx, "a", store.Binary{Name: "fw.bin"}, bytes.NewReader([]byte("fw")), 10))
	check(t, s.SetPostOperations(ctx, "a", []string{"read /3/0"}))
	opOfA := op
	opOfA.Status = store.OpPending

	tests := append([]refused{
		{"get managed object", func() error { _, err := s.GetManagedObject(ctx, "b", dev); return err }},
		{"update managed object", func() error { _, err := s.UpdateManagedObject(ctx, "b", dev, map[string]any{"x": 1}); return err }},
		{"update fragments", func() error { return s.UpdateFragments(ctx, "b", dev, map[string]any{"x": 1}) }},
		{"update fragments many", func() error {
			return settled(s.UpdateFragmentsMany(ctx, "b", map[string]map[string]any{dev: {"x": 1}}))
		}},
		{"update fields many", func() error {
			return settled(s.UpdateFieldsMany(ctx, "b", map[string]map[string]any{dev: {"x.y": 1}}))
		}},
		{"save states", func() error {
			return statesSettled(s.SaveStates(ctx, "b", map[string]map[string]any{dev: {"x": 1}}, nil))
		}},
		{"delete managed object", func() error { _, err := s.DeleteManagedObject(ctx, "b", dev); return err }},
		{"get external id", func() error { _, err := s.GetExternalID(ctx, "b", "c8y_Serial", "s1"); return err }},
		{"delete external id", func() error { return s.DeleteExternalID(ctx, "b", "c8y_Serial", "s1") }},
		{"registration", func() error { _, err := s.DeviceRegistrationOf(ctx, "b", dev); return err }},
		{"settings", func() error { _, err := s.DeviceSettings(ctx, "b", dev); return err }},
		{"release identities", func() error { return s.ReleasePendingIdentities(ctx, "b", dev) }},
		{"get event", func() error { _, err := s.GetEvent(ctx, "b", ev.ID); return err }},
		{"get alarm", func() error { _, err := s.GetAlarm(ctx, "b", al.ID); return err }},
		{"update alarm", func() error {
			_, err := s.UpdateAlarm(ctx, "b", al.ID, store.AlarmUpdate{Status: store.AlarmCleared})
			return err
		}},
		{"get measurement", func() error { _, err := s.GetMeasurement(ctx, "b", ms[0]); return err }},
		{"get binary", func() error { _, err := s.GetBinary(ctx, "b", bin.ID); return err }},
		{"open binary", func() error { _, _, err := s.OpenBinary(ctx, "b", bin.ID); return err }},
		{"read binary", func() error { _, _, err := s.ReadBinary(ctx, "b", bin.ID, 10); return err }},
		{"delete binary", func() error { return s.DeleteBinary(ctx, "b", bin.ID) }},
	}, operationsRefused(s, opOfA)...)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.do(); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("got %v, want ErrNotFound", err)
			}
		})
	}
	lists := append([]unseen{
		{"managed objects", func() (int, error) {
			l, _, err := s.ListManagedObjects(ctx, "b", store.ManagedObjectFilter{})
			return len(l), err
		}},
		{"external ids", func() (int, error) { l, err := s.ExternalIDsOf(ctx, "b", dev); return len(l), err }},
		{"events", func() (int, error) { l, _, err := s.ListEvents(ctx, "b", store.EventFilter{}); return len(l), err }},
		{"alarms", func() (int, error) { l, _, err := s.ListAlarms(ctx, "b", store.AlarmFilter{}); return len(l), err }},
		{"measurements", func() (int, error) {
			l, _, err := s.ListMeasurements(ctx, "b", store.MeasurementFilter{})
			return len(l), err
		}},
		{"values", func() (int, error) { l, err := s.Values(ctx, "b", dev); return len(l), err }},
		{"operations", func() (int, error) {
			l, _, err := s.ListOperations(ctx, "b", store.OperationFilter{})
			return len(l), err
		}},
		{"binaries", func() (int, error) { l, _, err := s.ListBinaries(ctx, "b", store.Page{}); return len(l), err }},
		{"post operations", func() (int, error) { l, err := s.PostOperations(ctx, "b"); return len(l), err }},
	}, operationsUnseen(s, dev)...)
	for _, tc := range lists {
		t.Run("list "+tc.name, func(t *testing.T) {
			n, err := tc.n()
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				t.Fatal(err)
			}
			if n != 0 {
				t.Fatalf("tenant b sees %d", n)
			}
		})
	}
	// ClearAlarm of b is no error (there may be nothing to clear) and no change to a.
	if cleared := must(s.ClearAlarm(ctx, "b", dev, "x")); cleared.ID != "" {
		t.Fatalf("b cleared %+v", cleared)
	}
	if a := must(s.GetAlarm(ctx, "a", al.ID)); a.Status != store.AlarmActive {
		t.Fatalf("a's alarm changed: %+v", a)
	}
	if o := must(s.GetOperation(ctx, "a", op.ID)); o.Status != store.OpPending || o.Fragments["progress"] != nil {
		t.Fatalf("a's operation changed: %+v", o)
	}
	if mo := must(s.GetManagedObject(ctx, "a", dev)); mo.Fragments["x"] != nil {
		t.Fatalf("a's device changed: %+v", mo)
	}
	if _, err := s.GetExternalID(ctx, "a", "c8y_Serial", "s1"); err != nil {
		t.Fatalf("a's external id: %v", err)
	}
	if _, err := s.GetBinary(ctx, "a", bin.ID); err != nil {
		t.Fatalf("a's binary: %v", err)
	}
}
