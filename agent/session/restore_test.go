package session

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/lwm2m-agent/lwm2m-agent/agent/codec"
	"github.com/lwm2m-agent/lwm2m-agent/agent/lwm2m"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/mongo"
)

// throughStore is what the store answers for a fragment it was given:
// BSON there and back, then plain Go values.
func throughStore(t *testing.T, f bson.M) map[string]any {
	t.Helper()
	raw, err := bson.Marshal(bson.M{"lwm2m": f})
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := bson.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	out, _ := mongo.Plain(doc["lwm2m"]).(map[string]any)
	return out
}

func TestRegistrationFromFragment(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 123e6, time.UTC)
	base := lwm2m.Registration{
		ID: "a1b2", Endpoint: "urn:imei:1", Version: "1.1", Lifetime: 300 * time.Second, Binding: "UQ", Queue: true,
		Objects: []lwm2m.ObjectLink{
			{Path: node.ObjectPath(1)}, {Path: node.InstancePath(1, 0)},
			{Path: node.ObjectPath(3303), Version: "1.1"}, {Path: node.InstancePath(3303, 0)},
		},
		Address: "10.0.0.7:40001", Tenant: "acme", DeviceID: "42", RegisteredAt: at.Add(-time.Hour), UpdatedAt: at,
	}
	tests := []struct {
		name          string
		mod           func(*lwm2m.Registration)
		serialization string
	}{
		{"plain", func(*lwm2m.Registration) {}, ""},
		{"dtls", func(r *lwm2m.Registration) { r.Secure, r.PSKIdentity = true, "dev-42" }, ""},
		{"awake time, sms, content format, alternate root", func(r *lwm2m.Registration) {
			r.AwakeTime, r.HasAwakeTime, r.SMS, r.ContentFormat, r.RootPath = 30*time.Second, true, "+4912345", codec.SenMLCBOR, "/lwm2m/"
		}, ""},
		{"serialization set", func(r *lwm2m.Registration) { r.Serialization, r.HasSerialization = codec.TLV, true }, "TLV"},
		{"version 1.0, no awake time", func(r *lwm2m.Registration) { r.Version, r.Queue, r.Binding = "1.0", false, "U" }, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := base
			want.Objects = append([]lwm2m.ObjectLink(nil), base.Objects...)
			tc.mod(&want)
			got, err := RegistrationFromFragment(want.Tenant, want.DeviceID, throughStore(t, Fragment(want)), tc.serialization)
			if err != nil {
				t.Fatalf("RegistrationFromFragment: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("read back\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

func TestRegistrationFromFragmentRefusals(t *testing.T) {
	good := func() bson.M {
		return Fragment(lwm2m.Registration{ID: "a", Endpoint: "e", Lifetime: time.Minute, UpdatedAt: time.Now()})
	}
	tests := []struct {
		name string
		mod  func(bson.M)
		want string
	}{
		{"ended registration", func(f bson.M) { f["registrationId"] = "" }, "no registration"},
		{"no endpoint", func(f bson.M) { delete(f, "endpoint") }, "no registration"},
		{"no last update", func(f bson.M) { delete(f, "lastUpdate") }, "no lastUpdate"},
		{"bad object link", func(f bson.M) { f["objects"] = []string{"/3/0", "three"} }, `"three"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := good()
			tc.mod(f)
			_, err := RegistrationFromFragment("t", "d", throughStore(t, f), "")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one naming %s", err, tc.want)
			}
		})
	}
}
