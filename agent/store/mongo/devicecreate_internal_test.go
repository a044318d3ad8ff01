package mongo

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/ferrettest"
)

func pskRegistration(ep, identity string) store.DeviceRegistration {
	return store.DeviceRegistration{
		Params: map[string]any{store.ParamEndpointID: ep, store.ParamSecurityMode: store.SecurityPSK, "lwm2mPskId": identity},
		PSKKey: []byte{1, 2, 3, 4},
	}
}

// A device whose creation a crash cut short (its record still
// incomplete) is no device for the protocol layers while it is written,
// and the store's next start removes everything of it: the managed
// object, the external IDs, the endpoint binding, the PSK identities and
// the record. A change cut short before it released the identity it gave
// up has it released. Complete devices stay as they are.
func TestStartRemovesUnfinishedDevices(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	uri := ferrettest.Start(t)
	s, err := Open(ctx, Config{URI: uri, SoleWriter: true})
	if err != nil {
		t.Fatal(err)
	}
	create := func(ep string, complete bool) string {
		t.Helper()
		id, err := s.CreateIncompleteDevice(ctx, "acme", store.NewDevice{
			Endpoint: ep, Fragments: map[string]any{"c8y_IsDevice": map[string]any{}},
			ExternalIDs:  []store.ExternalID{{Type: "c8y_Lwm2mPskId", ExternalID: ep + "-ext"}},
			Registration: pskRegistration(ep, ep+"-id"),
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.BindPSKIdentity(ctx, store.PSKServer, ep+"-id", "acme", id); err != nil {
			t.Fatal(err)
		}
		if complete {
			if err := s.CompleteDevice(ctx, "acme", id); err != nil {
				t.Fatal(err)
			}
		}
		return id
	}
	half, whole, moved := create("half", false), create("whole", true), create("moved", true)

	// while written, the device is not there for the protocol layers
	if _, err := s.DeviceRegistrationOf(ctx, "acme", half); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("registration of a device being created: %v, want not found", err)
	}
	if r, err := s.DeviceSettings(ctx, "acme", half); err != nil || !r.Incomplete {
		t.Errorf("settings of a device being created: %+v %v, want incomplete", r, err)
	}
	if err := s.RemoveIncompleteDevice(ctx, "acme", whole); !errors.Is(err, store.ErrComplete) {
		t.Errorf("removing a complete device: %v, want store.ErrComplete", err)
	}

	// a change of identity stored, its release cut short
	if err := s.BindPSKIdentity(ctx, store.PSKServer, "moved-new", "acme", moved); err != nil {
		t.Fatal(err)
	}
	r := pskRegistration("moved", "moved-new")
	r.Release = map[string]string{store.PSKServer: "moved-id"}
	if err := s.SaveDeviceRegistration(ctx, "acme", moved, r); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}

	if s, err = Open(ctx, Config{URI: uri, SoleWriter: true}); err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	if _, err := s.GetManagedObject(ctx, "acme", half); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("managed object of the unfinished device: %v, want not found", err)
	}
	if _, _, err := s.DeviceByEndpoint(ctx, "half"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("endpoint of the unfinished device: %v, want not found", err)
	}
	for _, x := range [][2]string{{store.ExternalIDDevice, "half"}, {"c8y_Lwm2mPskId", "half-ext"}} {
		if _, err := s.GetExternalID(ctx, "acme", x[0], x[1]); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("external id %v of the unfinished device: %v, want not found", x, err)
		}
	}
	if _, _, err := s.DeviceByPSKIdentity(ctx, store.PSKServer, "half-id"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("psk identity of the unfinished device: %v, want not found", err)
	}
	if _, err := s.DeviceSettings(ctx, "acme", half); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("record of the unfinished device: %v, want not found", err)
	}

	if _, err := s.GetManagedObject(ctx, "acme", whole); err != nil {
		t.Errorf("complete device: %v", err)
	}
	if _, id, err := s.DeviceByEndpoint(ctx, "whole"); err != nil || id != whole {
		t.Errorf("endpoint of the complete device: %s %v", id, err)
	}
	if r, err := s.DeviceRegistrationOf(ctx, "acme", whole); err != nil || r.SecurityMode() != store.SecurityPSK {
		t.Errorf("record of the complete device: %+v %v", r, err)
	}

	if _, _, err := s.DeviceByPSKIdentity(ctx, store.PSKServer, "moved-id"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("identity the change gave up: %v, want released", err)
	}
	if _, id, err := s.DeviceByPSKIdentity(ctx, store.PSKServer, "moved-new"); err != nil || id != moved {
		t.Errorf("identity the change took: %s %v", id, err)
	}
	if r, err := s.DeviceRegistrationOf(ctx, "acme", moved); err != nil || len(r.Release) != 0 || r.PSKIdentity(store.PSKServer) != "moved-new" {
		t.Errorf("record after the release: %+v %v", r, err)
	}

	again := create("again", false)
	pending, err := s.pendingRegistrations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{key("acme", again)}; !slices.Equal(pending, want) {
		t.Errorf("unfinished records: %v, want %v", pending, want)
	}
}

// A creation that fails after its first write (a name too large for a
// document) leaves nothing behind: no managed object, external ID,
// endpoint binding or record.
func TestCreateIncompleteDeviceFailsWhole(t *testing.T) {
	ctx, s := openFresh(t)
	_, err := s.CreateIncompleteDevice(ctx, "acme", store.NewDevice{
		Endpoint: "huge", Name: strings.Repeat("n", 60<<20),
		Registration: pskRegistration("huge", "huge-id"),
	})
	if err == nil {
		t.Fatal("a managed object larger than a document was stored")
	}
	if _, _, err := s.DeviceByEndpoint(ctx, "huge"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("endpoint binding: %v, want not found", err)
	}
	if _, err := s.GetExternalID(ctx, "acme", store.ExternalIDDevice, "huge"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("external id: %v, want not found", err)
	}
	if mos, _, err := s.ListManagedObjects(ctx, "acme", store.ManagedObjectFilter{Page: store.Page{Size: 10, Current: 1}}); err != nil || len(mos) != 0 {
		t.Errorf("managed objects: %d %v, want none", len(mos), err)
	}
	if keys, err := s.pendingRegistrations(ctx); err != nil || len(keys) != 0 {
		t.Errorf("records left: %v %v, want none", keys, err)
	}
}

// Auto-registration gives a new device a complete NO_SEC record, and one
// auto-registered before such records existed the same one, unless its
// record says anything of its security or is being written.
func TestAutoRegisteredDevicesHaveNoSecRecords(t *testing.T) {
	ctx, s := openFresh(t)
	id, err := s.CreateDevice(ctx, "management", "auto")
	if err != nil {
		t.Fatal(err)
	}
	if r, err := s.DeviceRegistrationOf(ctx, "management", id); err != nil || r.Incomplete || r.SecurityMode() != store.SecurityNoSec || r.Params[store.ParamEndpointID] != "auto" {
		t.Fatalf("record of an auto-registered device: %+v %v", r, err)
	}

	for _, tc := range []struct {
		name  string
		setup func(id string)
		want  bool
	}{
		{"no record", func(id string) {
			if _, err := s.deviceRegs.DeleteOne(ctx, map[string]any{"_id": key("management", id)}); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"only a serialization", func(id string) {
			if _, err := s.deviceRegs.DeleteOne(ctx, map[string]any{"_id": key("management", id)}); err != nil {
				t.Fatal(err)
			}
			check(t, s.SetDeviceSerialization(ctx, "management", id, "TLV"))
		}, true},
		{"an awake time", func(id string) {
			check(t, s.SaveDeviceRegistration(ctx, "management", id, store.DeviceRegistration{Params: map[string]any{"awakeTimeRegistrationParameter": int64(0)}}))
		}, true},
		{"PSK", func(id string) {
			check(t, s.SaveDeviceRegistration(ctx, "management", id, pskRegistration("x", "x-id")))
		}, false},
		{"a key without a mode", func(id string) {
			check(t, s.SaveDeviceRegistration(ctx, "management", id, store.DeviceRegistration{Params: map[string]any{}, PSKKey: []byte{1}}))
		}, false},
		{"being written", func(id string) {
			check(t, s.SaveDeviceRegistration(ctx, "management", id, store.DeviceRegistration{Params: map[string]any{}, Incomplete: true}))
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ep := strings.ReplaceAll(tc.name, " ", "-")
			id, err := s.CreateDevice(ctx, "management", ep)
			if err != nil {
				t.Fatal(err)
			}
			tc.setup(id)
			before, _ := s.DeviceSettings(ctx, "management", id)
			adopted, err := s.AdoptNoSecDevice(ctx, "management", id, ep)
			if err != nil || adopted != tc.want {
				t.Fatalf("adopted %v %v, want %v", adopted, err, tc.want)
			}
			after, _ := s.DeviceSettings(ctx, "management", id)
			if tc.want && (after.SecurityMode() != store.SecurityNoSec || after.Params[store.ParamEndpointID] != ep || after.Serialization != before.Serialization) {
				t.Errorf("record after adoption: %+v", after)
			}
			if !tc.want && after.SecurityMode() != before.SecurityMode() {
				t.Errorf("record changed: %+v, was %+v", after, before)
			}
		})
	}
}

// openFresh opens an embedded store in a new directory for the test, and
// a context bounding its calls; the test's end closes both.
func openFresh(t *testing.T) (context.Context, *Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	s, err := Open(ctx, Config{URI: ferrettest.Start(t), SoleWriter: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return ctx, s
}

func check(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
