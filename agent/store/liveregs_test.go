package store_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/storetest"
)

func TestLiveRegistrations(t *testing.T) {
	s := storetest.OpenTest(t)
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
			check(t, s.UpdateFragments(ctx, d.tenant, id, bson.M{"lwm2m": bson.M{
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
	check(t, s.UpdateFragments(ctx, "acme", must(s.CreateManagedObject(ctx, "acme", store.ManagedObject{Name: "bare"})).ID, bson.M{"lwm2m": bson.M{
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
