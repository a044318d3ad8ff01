package mongo

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/ferrettest"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// createPSKDevice creates the tenant's complete PSK device ep with both
// its identities bound, ep-id and ep-bs, and an external ID ep-ext.
func createPSKDevice(t *testing.T, ctx context.Context, s *Store, tenant, ep string) string {
	t.Helper()
	r := pskRegistration(ep, ep+"-id")
	r.Params["bootstrapPskId"] = ep + "-bs"
	id, err := s.CreateIncompleteDevice(ctx, tenant, store.NewDevice{
		Endpoint: ep, Fragments: map[string]any{"c8y_IsDevice": map[string]any{}},
		ExternalIDs:  []store.ExternalID{{Type: "c8y_Lwm2mPskId", ExternalID: ep + "-ext"}},
		Registration: r,
	})
	check(t, err)
	check(t, s.BindPSKIdentity(ctx, store.PSKServer, ep+"-id", tenant, id))
	check(t, s.BindPSKIdentity(ctx, store.PSKBootstrap, ep+"-bs", tenant, id))
	check(t, s.CompleteDevice(ctx, tenant, id))
	return id
}

// checkGone fails the test if anything of the tenant's device ep (made
// by createPSKDevice) is left.
func checkGone(t *testing.T, ctx context.Context, s *Store, tenant, id, ep string) {
	t.Helper()
	if _, err := s.GetManagedObject(ctx, tenant, id); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("managed object: %v, want not found", err)
	}
	if _, _, err := s.DeviceByEndpoint(ctx, ep); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("endpoint binding: %v, want not found", err)
	}
	for _, x := range [][2]string{{store.ExternalIDDevice, ep}, {"c8y_Lwm2mPskId", ep + "-ext"}} {
		if _, err := s.GetExternalID(ctx, tenant, x[0], x[1]); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("external id %v: %v, want not found", x, err)
		}
	}
	for _, p := range [][2]string{{store.PSKServer, ep + "-id"}, {store.PSKBootstrap, ep + "-bs"}} {
		if _, _, err := s.DeviceByPSKIdentity(ctx, p[0], p[1]); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s psk identity %s: %v, want released", p[0], p[1], err)
		}
	}
	if _, err := s.DeviceSettings(ctx, tenant, id); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("registration record: %v, want not found", err)
	}
}

// Deleting a device removes its endpoint binding, its external IDs, its
// PSK identities (an identity a change has yet to release too) and its
// registration record with it, and names the endpoint and lwm2m
// identities whose registrations and sessions end: another device, of
// another tenant even, claims them at once.
func TestDeleteDeviceFreesItsNames(t *testing.T) {
	ctx, s := openFresh(t)
	id := createPSKDevice(t, ctx, s, "acme", "del")
	check(t, s.UpdateFragments(ctx, "acme", id, bson.M{"lwm2m": bson.M{"endpoint": "del", "registrationId": "r1"}}))
	// a change of identity cut short before it released the old one
	check(t, s.BindPSKIdentity(ctx, store.PSKServer, "del-old", "acme", id))
	r, err := s.DeviceSettings(ctx, "acme", id)
	check(t, err)
	r.Release = map[string]string{store.PSKServer: "del-old"}
	check(t, s.SaveDeviceRegistration(ctx, "acme", id, r))

	gone, err := s.DeleteManagedObject(ctx, "acme", id)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(gone.Endpoints, []string{"del"}) || !slices.Equal(gone.Identities, []string{"del-id", "del-old"}) {
		t.Errorf("deleted %+v, want endpoint del and identities del-id, del-old", gone)
	}
	checkGone(t, ctx, s, "acme", id, "del")
	if _, _, err := s.DeviceByPSKIdentity(ctx, store.PSKServer, "del-old"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("identity left to release: %v, want released", err)
	}
	if err := s.LiveRegistrations(ctx, func(l store.LiveRegistration) error {
		t.Errorf("live registration of %s after the deletion", l.DeviceID)
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	again := createPSKDevice(t, ctx, s, "beta", "del")
	if tenant, owner, err := s.DeviceByEndpoint(ctx, "del"); err != nil || tenant != "beta" || owner != again {
		t.Errorf("endpoint of the new device: %s/%s %v", tenant, owner, err)
	}
	if tenant, owner, err := s.DeviceByPSKIdentity(ctx, store.PSKServer, "del-id"); err != nil || tenant != "beta" || owner != again {
		t.Errorf("identity of the new device: %s/%s %v", tenant, owner, err)
	}
	check(t, s.BindPSKIdentity(ctx, store.PSKServer, "del-old", "beta", again))

	// a deletion of what is not there writes nothing
	if _, err := s.DeleteManagedObject(ctx, "acme", id); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second deletion: %v, want not found", err)
	}
	if _, err := s.DeviceSettings(ctx, "acme", id); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("record after a second deletion: %v, want none", err)
	}
}

// A deletion cut short after its first write leaves a device that no
// protocol layer lets in and that no change completes, and the store's
// next start removes the rest of it; a repeated DELETE finishes one that
// stopped after the managed object.
func TestDeletionCutShortIsFinished(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	uri := ferrettest.Start(t)
	s, err := Open(ctx, Config{URI: uri, SoleWriter: true})
	check(t, err)
	cut := createPSKDevice(t, ctx, s, "acme", "cut")
	tail := createPSKDevice(t, ctx, s, "acme", "tail")
	kept := createPSKDevice(t, ctx, s, "acme", "kept")
	mark := func(id string) {
		t.Helper()
		_, err := s.deviceRegs.UpdateOne(ctx, bson.D{{Key: "_id", Value: key("acme", id)}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "pending.delete", Value: true}}}})
		check(t, err)
	}
	// cut: stopped after the mark and the endpoint's unbinding
	mark(cut)
	_, err = s.endpoints.DeleteOne(ctx, bson.D{{Key: "_id", Value: "cut"}})
	check(t, err)
	if _, err := s.DeviceRegistrationOf(ctx, "acme", cut); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("record of a device being deleted, for the protocol layers: %v, want not found", err)
	}
	if r, err := s.DeviceSettings(ctx, "acme", cut); err != nil || !r.Incomplete || !r.Deleting {
		t.Errorf("settings of a device being deleted: %+v %v, want incomplete, deleting", r, err)
	}
	if err := s.CompleteDevice(ctx, "acme", cut); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("completing a device being deleted: %v, want not found", err)
	}
	if adopted, err := s.AdoptNoSecDevice(ctx, "acme", cut, "cut"); err != nil || adopted {
		t.Errorf("adopting a device being deleted: %v %v", adopted, err)
	}
	r, err := s.DeviceSettings(ctx, "acme", cut)
	check(t, err)
	r.Release = map[string]string{store.PSKBootstrap: "cut-bs-old"}
	r.Incomplete, r.Deleting = false, false
	check(t, s.SaveDeviceRegistration(ctx, "acme", cut, r))
	if r, err := s.DeviceSettings(ctx, "acme", cut); err != nil || !r.Deleting || r.Release[store.PSKBootstrap] != "cut-bs-old" {
		t.Errorf("a change of a device being deleted: %+v %v, want it still deleting", r, err)
	}

	// tail: stopped after the managed object; DELETE again finishes it
	mark(tail)
	_, err = s.objects.DeleteOne(ctx, bson.D{{Key: "_id", Value: key("acme", tail)}})
	check(t, err)
	if gone, err := s.DeleteManagedObject(ctx, "acme", tail); err != nil || !slices.Equal(gone.Identities, []string{"tail-id"}) {
		t.Errorf("DELETE of a deletion cut short: %+v %v, want it finished", gone, err)
	}
	checkGone(t, ctx, s, "acme", tail, "tail")

	check(t, s.Close(ctx))
	s, err = Open(ctx, Config{URI: uri, SoleWriter: true})
	check(t, err)
	defer s.Close(context.Background())
	checkGone(t, ctx, s, "acme", cut, "cut")
	if r, err := s.DeviceRegistrationOf(ctx, "acme", kept); err != nil || r.PSKIdentity(store.PSKServer) != "kept-id" {
		t.Errorf("record of a device nobody deleted: %+v %v", r, err)
	}
}
