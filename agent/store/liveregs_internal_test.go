package store

import (
	"context"
	"reflect"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// The embedded store's live registrations, read from its SQLite file,
// are the fragments FerretDB answers for the same documents, value for
// value and type for type; a fragment holding a type the SQLite reader
// does not decode is read through FerretDB.
func TestLiveRegistrationsFromSQLite(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	at := time.Date(2026, 3, 1, 12, 0, 0, 123e6, time.UTC)
	cases := []struct {
		name string
		frag bson.M
	}{
		{"as Register writes it", bson.M{
			"endpoint": "ep-1", "registrationId": "r1", "lifetime": int64(300), "bindingMode": "U", "queueMode": false,
			"lwm2mVersion": "1.1", "address": "127.0.0.1:5000", "secure": false, "registered": at, "lastUpdate": at,
			"objects": []string{"/1/0", "/3/0", "/3303"}, "objectVersions": bson.M{"3303": "1.1"},
			"contentFormat": 112, "awakeTimeMs": int64(5000),
		}},
		{"secure, with a root path", bson.M{
			"endpoint": "ep-2", "registrationId": "r2", "lifetime": int64(86400), "secure": true, "pskIdentity": "id-2",
			"rootPath": "/lwm2m", "lastUpdate": at, "objects": []string{}, "objectVersions": bson.M{},
		}},
		{"numbers of every kind, null and nesting", bson.M{
			"endpoint": "ep-3", "registrationId": "r3", "lastUpdate": at, "int": int32(-7), "double": 2.5,
			"whole": float64(3), "none": nil, "nested": bson.M{"a": []any{int64(1), "x", true, bson.M{"t": at}}},
		}},
		{"a binary, read through FerretDB", bson.M{
			"endpoint": "ep-4", "registrationId": "r4", "lastUpdate": at, "blob": bson.Binary{Data: []byte{1, 2}},
		}},
	}
	want := map[string]map[string]any{}
	for _, c := range cases {
		id, err := s.CreateDevice(ctx, "acme", c.frag["endpoint"].(string))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.UpdateFragments(ctx, "acme", id, bson.M{"lwm2m": c.frag}); err != nil {
			t.Fatal(err)
		}
		var d struct {
			LwM2M map[string]any `bson:"lwm2m"`
		}
		if err := s.objects.FindOne(ctx, bson.D{{Key: "_id", Value: key("acme", id)}}).Decode(&d); err != nil {
			t.Fatal(err)
		}
		want[id], _ = Plain(d.LwM2M).(map[string]any)
	}
	got := map[string]map[string]any{}
	ok, err := s.sqlx.liveRegistrations(ctx, s, func(l LiveRegistration) error {
		got[l.DeviceID] = l.Fragment
		return nil
	})
	if err != nil || !ok {
		t.Fatalf("live registrations from SQLite: ok %v, %v", ok, err)
	}
	if len(got) != len(cases) {
		t.Fatalf("%d live registrations, want %d", len(got), len(cases))
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id := ""
			for k, f := range want {
				if f["endpoint"] == cases[i].frag["endpoint"] {
					id = k
				}
			}
			if !reflect.DeepEqual(got[id], want[id]) {
				t.Errorf("from SQLite:\n%#v\nfrom FerretDB:\n%#v", got[id], want[id])
			}
		})
	}
}

// What a restore reads of the registration records from the SQLite file
// is what FerretDB answers for them, for records of every shape: a field
// of another type reads as none, as DeviceRegistration's readers take it.
func TestLiveRegistrationRecordsFromSQLite(t *testing.T) {
	ctx, s := openFresh(t)
	records := map[string]*DeviceRegistration{
		"nosec":              {Params: map[string]any{ParamEndpointID: "nosec", ParamSecurityMode: SecurityNoSec}},
		"psk":                ptr(pskRegistration("psk", "psk-id")),
		"creating":           {Params: map[string]any{ParamSecurityMode: SecurityNoSec}, Incomplete: true},
		"deleting":           {Params: map[string]any{ParamSecurityMode: SecurityNoSec}, Deleting: true},
		"releasing":          {Params: map[string]any{ParamSecurityMode: SecurityNoSec}, Release: map[string]string{PSKServer: "old"}},
		"key only":           {Params: map[string]any{}, PSKKey: []byte{1}},
		"odd types":          {Params: map[string]any{ParamSecurityMode: int64(1), "lwm2mPskId": true}},
		"no params":          {},
		"serialization only": nil,
		"no record":          nil,
	}
	ids := map[string]string{}
	for name, r := range records {
		mo, err := s.CreateManagedObject(ctx, "acme", ManagedObject{Name: name})
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
		check(t, s.LiveRegistrations(ctx, func(l LiveRegistration) error {
			var r *recordInfo
			if l.Record != nil {
				r = &recordInfo{serialization: l.Serialization, access: *l.Record}
			}
			out[ids[l.DeviceID]] = r
			return nil
		}))
		return out
	}
	viaSQL := read()
	sqlx := s.sqlx
	s.sqlx = nil
	viaFerret := read()
	s.sqlx = sqlx
	want := map[string]*recordInfo{
		"nosec":              {access: RecordAccess{SecurityMode: SecurityNoSec}},
		"psk":                {serialization: "SENML_JSON", access: RecordAccess{SecurityMode: SecurityPSK, PSKIdentity: "psk-id", Keyed: true}},
		"creating":           {access: RecordAccess{SecurityMode: SecurityNoSec, Incomplete: true}},
		"deleting":           {access: RecordAccess{SecurityMode: SecurityNoSec, Incomplete: true}},
		"releasing":          {access: RecordAccess{SecurityMode: SecurityNoSec}},
		"key only":           {access: RecordAccess{Keyed: true}},
		"odd types":          {},
		"no params":          {},
		"serialization only": {serialization: "TLV"},
		"no record":          nil,
	}
	for name, w := range want {
		for via, got := range map[string]map[string]*recordInfo{"SQLite": viaSQL, "FerretDB": viaFerret} {
			if g, ok := got[name]; !ok || !reflect.DeepEqual(g, w) {
				t.Errorf("%s from %s: %+v (read: %v), want %+v", name, via, g, ok, w)
			}
		}
	}
}

func ptr[T any](v T) *T { return &v }
