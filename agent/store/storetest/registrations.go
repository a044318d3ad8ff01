package storetest

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

var registrationCases = []suiteCase{
	{"SerializationSurvivesNewParameters", testSerializationSurvivesNewParameters},
	{"LiveRegistrations", testLiveRegistrations},
}

func testSerializationSurvivesNewParameters(t *testing.T, s store.Engine) {
	check(t, s.SaveDeviceRegistration(ctx, "t1", "10", store.DeviceRegistration{
		Params: map[string]any{"endpointId": "ep-10"}, PSKKey: []byte{1, 2},
	}))
	check(t, s.SetDeviceSerialization(ctx, "t1", "10", "TLV"))
	// a PUT of the bootstrap parameters or a re-import replaces them
	check(t, s.SaveDeviceRegistration(ctx, "t1", "10", store.DeviceRegistration{
		Params: map[string]any{"endpointId": "ep-10", "lwm2mRequestTimeout": int64(5000)},
	}))
	r := must(s.DeviceRegistrationOf(ctx, "t1", "10"))
	if r.Serialization != "TLV" || len(r.PSKKey) != 0 || r.Params["lwm2mRequestTimeout"] == nil {
		t.Fatalf("after new parameters: serialization %q, psk key %x, params %v", r.Serialization, r.PSKKey, r.Params)
	}
	check(t, s.SetDeviceSerialization(ctx, "t1", "10", ""))
	if r := must(s.DeviceRegistrationOf(ctx, "t1", "10")); r.Serialization != "" || r.Params["endpointId"] != "ep-10" {
		t.Fatalf("after removing: %+v", r)
	}

	// a device without parameters keeps only its serialization, and still
	// has no registration parameters
	check(t, s.SetDeviceSerialization(ctx, "t1", "20", "SENML_JSON"))
	if _, err := s.DeviceRegistrationOf(ctx, "t1", "20"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("registration of a device with only a serialization: %v, want not found", err)
	}
	if r := must(s.DeviceSettings(ctx, "t1", "20")); r.Serialization != "SENML_JSON" {
		t.Fatalf("settings: %+v", r)
	}
	for _, tc := range []struct{ name, tenant, id string }{
		{"another tenant's device", "t2", "20"},
		{"a device without a record", "t1", "30"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.DeviceSettings(ctx, tc.tenant, tc.id); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("DeviceSettings: %v, want ErrNotFound", err)
			}
			if _, err := s.DeviceRegistrationOf(ctx, tc.tenant, tc.id); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("DeviceRegistrationOf: %v, want ErrNotFound", err)
			}
		})
	}
}

func testLiveRegistrations(t *testing.T, s store.Engine) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	devices := []struct {
		tenant, endpoint, regID, serialization string
		withFragment                           bool
	}{
		{"acme", "live-1", "r1", "TLV", true},
		{"acme", "live-2", "r2", "", true},
		{"beta", "live-3", "r3", "", true},
		{"acme", "ended", "", "", true}, // de-registered or expired: empty registrationId
		{"acme", "never", "", "", false},
	}
	ids := map[string]string{}
	for _, d := range devices {
		id := must(s.CreateDevice(ctx, d.tenant, d.endpoint))
		ids[d.endpoint] = id
		if d.withFragment {
			check(t, s.UpdateFragments(ctx, d.tenant, id, map[string]any{"lwm2m": map[string]any{
				"endpoint": d.endpoint, "registrationId": d.regID, "lifetime": int64(300), "lastUpdate": at,
				"objects": []string{"/3/0", "/3303/0"},
			}}))
		}
		if d.serialization != "" {
			check(t, s.SetDeviceSerialization(ctx, d.tenant, id, d.serialization))
		}
	}
	// a record changed under a live registration is read as it is now,
	// and an object without one is read without it
	check(t, s.SaveDeviceRegistration(ctx, "acme", ids["live-2"], store.DeviceRegistration{
		Params: map[string]any{store.ParamSecurityMode: store.SecurityPSK, "lwm2mPskId": "live-2-id"}, PSKKey: []byte{1},
	}))
	check(t, s.UpdateFragments(ctx, "acme", must(s.CreateManagedObject(ctx, "acme", store.ManagedObject{Name: "bare"})).ID, map[string]any{"lwm2m": map[string]any{
		"endpoint": "bare", "registrationId": "r4", "lifetime": int64(300), "lastUpdate": at, "objects": []string{"/3/0", "/3303/0"},
	}}))
	type got struct {
		tenant, device, regID, serialization string
		record                               store.RecordAccess
		recorded                             bool
	}
	var all []got
	check(t, s.LiveRegistrations(ctx, func(l store.LiveRegistration) error {
		f := l.Fragment
		if f["lifetime"] != int64(300) || !f["lastUpdate"].(time.Time).Equal(at) || len(f["objects"].([]any)) != 2 {
			t.Errorf("fragment of %s: %v", l.DeviceID, f)
		}
		g := got{tenant: l.Tenant, device: l.DeviceID, regID: f["registrationId"].(string), serialization: l.Serialization}
		if l.Record != nil {
			g.record, g.recorded = *l.Record, true
		}
		if g.regID == "r4" {
			g.device = ""
		}
		all = append(all, g)
		return nil
	}))
	want := []got{
		{"acme", ids["live-1"], "r1", "TLV", store.RecordAccess{SecurityMode: store.SecurityNoSec}, true},
		{"acme", ids["live-2"], "r2", "", store.RecordAccess{SecurityMode: store.SecurityPSK, PSKIdentity: "live-2-id", Keyed: true}, true},
		{"beta", ids["live-3"], "r3", "", store.RecordAccess{SecurityMode: store.SecurityNoSec}, true},
		{"acme", "", "r4", "", store.RecordAccess{}, false},
	}
	slices.SortFunc(all, func(a, b got) int { return strings.Compare(a.regID, b.regID) })
	if !slices.Equal(all, want) {
		t.Fatalf("live registrations %+v, want %+v", all, want)
	}

	stop := errors.New("stop")
	n := 0
	err := s.LiveRegistrations(ctx, func(store.LiveRegistration) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("an error of fn: %v after %d calls, want it returned after 1", err, n)
	}
}
