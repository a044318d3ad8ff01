package mongo

import (
	"reflect"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// What a restore reads of the registration records from the SQLite file
// is what FerretDB answers for them, for records of every shape: a field
// of another type reads as none, as DeviceRegistration's readers take it.
func TestLiveRegistrationRecordsFromSQLite(t *testing.T) {
	ctx, s := openFresh(t)
	records := map[string]*store.DeviceRegistration{
		"nosec":              {Params: map[string]any{store.ParamEndpointID: "nosec", store.ParamSecurityMode: store.SecurityNoSec}},
		"psk":                ptr(pskRegistration("psk", "psk-id")),
		"creating":           {Params: map[string]any{store.ParamSecurityMode: store.SecurityNoSec}, Incomplete: true},
		"deleting":           {Params: map[string]any{store.ParamSecurityMode: store.SecurityNoSec}, Deleting: true},
		"releasing":          {Params: map[string]any{store.ParamSecurityMode: store.SecurityNoSec}, Release: map[string]string{store.PSKServer: "old"}},
		"key only":           {Params: map[string]any{}, PSKKey: []byte{1}},
		"odd types":          {Params: map[string]any{store.ParamSecurityMode: int64(1), "lwm2mPskId": true}},
		"no params":          {},
		"serialization only": nil,
		"no record":          nil,
	}
	ids := map[string]string{}
	for name, r := range records {
		mo, err := s.CreateManagedObject(ctx, "acme", store.ManagedObject{Name: name})
		check(t, err)
		ids[mo.ID] = name
		check(t, s.UpdateFragments(ctx, "acme", mo.ID, bson.M{"lwm2m": bson.M{"endpoint": name, "registrationId": "r" + mo.ID}}))
		if r != nil {
			check(t, s.SaveDeviceRegistration(ctx, "acme", mo.ID, *r))
		}
		switch name {
		case "serialization only":
			check(t, s.SetDeviceSerialization(ctx, "acme", mo.ID, "TLV"))
		case "psk":
			check(t, s.SetDeviceSerialization(ctx, "acme", mo.ID, "SENML_JSON"))
		}
	}
	read := func() map[string]*recordInfo {
		t.Helper()
		out := map[string]*recordInfo{}
		check(t, s.LiveRegistrations(ctx, func(l store.LiveRegistration) error {
			var r *recordInfo
			if l.Record != nil {
				r = &recordInfo{serialization: l.Serialization, access: *l.Record}
			}
			out[ids[l.DeviceID]] = r
			return nil
		}))
		return out
	}
	got := read()
	want := map[string]*recordInfo{
		"nosec":              {access: store.RecordAccess{SecurityMode: store.SecurityNoSec}},
		"psk":                {serialization: "SENML_JSON", access: store.RecordAccess{SecurityMode: store.SecurityPSK, PSKIdentity: "psk-id", Keyed: true}},
		"creating":           {access: store.RecordAccess{SecurityMode: store.SecurityNoSec, Incomplete: true}},
		"deleting":           {access: store.RecordAccess{SecurityMode: store.SecurityNoSec, Incomplete: true}},
		"releasing":          {access: store.RecordAccess{SecurityMode: store.SecurityNoSec}},
		"key only":           {access: store.RecordAccess{Keyed: true}},
		"odd types":          {},
		"no params":          {},
		"serialization only": {serialization: "TLV"},
		"no record":          nil,
	}
	for name, w := range want {
		if g, ok := got[name]; !ok || !reflect.DeepEqual(g, w) {
			t.Errorf("%s: %+v (read: %v), want %+v", name, g, ok, w)
		}
	}
}

func ptr[T any](v T) *T { return &v }
