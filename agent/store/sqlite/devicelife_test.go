package sqlite

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

func check(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func pskRegistration(ep, identity string) store.DeviceRegistration {
	return store.DeviceRegistration{
		Params: map[string]any{store.ParamEndpointID: ep, store.ParamSecurityMode: store.SecurityPSK, "lwm2mPskId": identity},
		PSKKey: []byte{1, 2, 3, 4},
	}
}

// createPSKDevice creates the tenant's PSK device ep as an import does,
// with its identities ep-id and ep-bs bound and an external ID ep-ext;
// complete says whether the import finished.
func createPSKDevice(t testing.TB, s *Store, tenant, ep string, complete bool) string {
	t.Helper()
	ctx := context.Background()
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
	if complete {
		check(t, s.CompleteDevice(ctx, tenant, id))
	}
	return id
}

// checkGone fails the test if anything of the tenant's device ep (made
// by createPSKDevice) is left.
func checkGone(t testing.TB, s *Store, tenant, id, ep string) {
	t.Helper()
	ctx := context.Background()
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

// rowsOf counts what the store holds of the tenant's device id in each
// table, as a map for one comparison.
func rowsOf(t testing.TB, s *Store, tenant, id string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for table, key := range map[string]string{
		"managed_objects": "id", "external_ids": "device", "endpoints": "device", "psk_identities": "device", "registrations": "device",
	} {
		out[table] = intOf(t, s.db, "SELECT count(*) FROM "+table+" WHERE tenant = ? AND "+key+" = ?", tenant, id)
	}
	return out
}

// Deleting a device removes its endpoint binding, its external IDs, its
// PSK identities (one a change has yet to release too, and one bound
// without the record naming it) and its record, and names the endpoint
// and lwm2m identities whose registrations and sessions end: another
// device, of another tenant even, claims them at once.
func TestDeleteDeviceFreesItsNames(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	id := createPSKDevice(t, s, "acme", "del", true)
	check(t, s.UpdateFragments(ctx, "acme", id, map[string]any{"lwm2m": map[string]any{"endpoint": "del", "registrationId": "r1"}}))
	// a change of identity cut short before it released the old one
	check(t, s.BindPSKIdentity(ctx, store.PSKServer, "del-old", "acme", id))
	r, err := s.DeviceSettings(ctx, "acme", id)
	check(t, err)
	r.Release = map[string]string{store.PSKServer: "del-old"}
	check(t, s.SaveDeviceRegistration(ctx, "acme", id, r))
	// bound without the record naming it
	check(t, s.BindPSKIdentity(ctx, store.PSKServer, "del-stray", "acme", id))
	bindEndpoint(t, s, "del-alias", "acme", id)
	other := createPSKDevice(t, s, "acme", "kept", true)

	gone, err := s.DeleteManagedObject(ctx, "acme", id)
	check(t, err)
	if !slices.Equal(gone.Endpoints, []string{"del", "del-alias"}) || !slices.Equal(gone.Identities, []string{"del-id", "del-old", "del-stray"}) {
		t.Errorf("deleted %+v, want endpoints del, del-alias and identities del-id, del-old, del-stray", gone)
	}
	checkGone(t, s, "acme", id, "del")
	if want := map[string]int{"managed_objects": 0, "external_ids": 0, "endpoints": 0, "psk_identities": 0, "registrations": 0}; !mapsEqual(rowsOf(t, s, "acme", id), want) {
		t.Errorf("rows left of the deleted device: %v", rowsOf(t, s, "acme", id))
	}
	if want := map[string]int{"managed_objects": 1, "external_ids": 2, "endpoints": 1, "psk_identities": 2, "registrations": 1}; !mapsEqual(rowsOf(t, s, "acme", other), want) {
		t.Errorf("rows of the other device: %v, want %v", rowsOf(t, s, "acme", other), want)
	}
	check(t, s.LiveRegistrations(ctx, func(l store.LiveRegistration) error {
		t.Errorf("live registration of %s after the deletion", l.DeviceID)
		return nil
	}))

	again := createPSKDevice(t, s, "beta", "del", true)
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

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// A deletion is one change: if any of its statements fails, nothing of
// the device is removed.
func TestDeleteDeviceIsWhole(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	id := createPSKDevice(t, s, "acme", "whole", true)
	before := rowsOf(t, s, "acme", id)
	deviceCleanup = append(deviceCleanup, func(tx *Tx, tenant, device string) error {
		_, err := tx.Exec("DELETE FROM no_such_table WHERE tenant = ? AND device = ?", tenant, device)
		return err
	})
	t.Cleanup(func() { deviceCleanup = deviceCleanup[:len(deviceCleanup)-1] })
	if _, err := s.DeleteManagedObject(ctx, "acme", id); err == nil || !strings.Contains(err.Error(), "no_such_table") {
		t.Fatalf("deletion with a failing statement: %v", err)
	}
	if after := rowsOf(t, s, "acme", id); !mapsEqual(after, before) {
		t.Fatalf("rows after a failed deletion: %v, were %v", after, before)
	}
}

// A record marked as being deleted whose object is gone (a deletion the
// MongoDB engine cut short, or a record saved with Deleting) is finished
// by a DELETE; a record without that mark is no object.
func TestDeleteFinishesMarkedDeletion(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	tail := createPSKDevice(t, s, "acme", "tail", true)
	r, err := s.DeviceSettings(ctx, "acme", tail)
	check(t, err)
	r.Deleting = true
	check(t, s.SaveDeviceRegistration(ctx, "acme", tail, r))
	check(t, s.db.Write(ctx, func(tx *Tx) error {
		return tx.execOne("DELETE FROM managed_objects WHERE tenant = 'acme' AND id = ?", tail)
	}))
	gone, err := s.DeleteManagedObject(ctx, "acme", tail)
	if err != nil || !slices.Equal(gone.Identities, []string{"tail-id"}) || !slices.Equal(gone.Endpoints, []string{"tail"}) {
		t.Errorf("DELETE of a deletion cut short: %+v %v, want it finished", gone, err)
	}
	checkGone(t, s, "acme", tail, "tail")

	check(t, s.SaveDeviceRegistration(ctx, "acme", "99", store.DeviceRegistration{Params: map[string]any{}}))
	if _, err := s.DeleteManagedObject(ctx, "acme", "99"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DELETE of a record without object: %v, want ErrNotFound", err)
	}
	if _, err := s.DeviceSettings(ctx, "acme", "99"); err != nil {
		t.Errorf("record after a refused DELETE: %v", err)
	}
}

// An import line is all or nothing: a creation that finds one of its
// names taken writes nothing, and names the holder of the endpoint.
func TestCreateIncompleteDeviceIsWhole(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	first := createPSKDevice(t, s, "acme", "first", true)
	seq := intOf(t, s.db, "SELECT value FROM counters WHERE name = 'ids'")
	for _, tc := range []struct {
		name   string
		d      store.NewDevice
		holder string
	}{
		{"taken external id", store.NewDevice{Endpoint: "second", ExternalIDs: []store.ExternalID{{Type: "c8y_Lwm2mPskId", ExternalID: "first-ext"}}}, ""},
		{"taken endpoint", store.NewDevice{Endpoint: "first"}, first},
		{"external ids twice", store.NewDevice{Endpoint: "second", ExternalIDs: []store.ExternalID{{Type: "t", ExternalID: "x"}, {Type: "t", ExternalID: "x"}}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := s.CreateIncompleteDevice(ctx, "acme", tc.d)
			if !errors.Is(err, store.ErrConflict) || id != tc.holder {
				t.Fatalf("%q %v, want %q and ErrConflict", id, err, tc.holder)
			}
			for table, n := range map[string]int{"managed_objects": 1, "external_ids": 2, "endpoints": 1, "psk_identities": 2, "registrations": 1} {
				if got := intOf(t, s.db, "SELECT count(*) FROM "+table); got != n {
					t.Errorf("%d rows in %s, want %d", got, table, n)
				}
			}
		})
	}
	if got := intOf(t, s.db, "SELECT value FROM counters WHERE name = 'ids'"); got != seq {
		t.Errorf("id counter at %d after refused creations, was %d", got, seq)
	}
	if _, err := s.CreateIncompleteDevice(ctx, "acme", store.NewDevice{}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("device without endpoint: %v, want ErrInvalid", err)
	}
	if _, err := s.CreateIncompleteDevice(ctx, "acme", store.NewDevice{Endpoint: "x", Fragments: map[string]any{"a.b": 1}}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("device with a dotted fragment: %v, want ErrInvalid", err)
	}
}

// Until CompleteDevice, a device is created but incomplete: the protocol
// layers do not see its record; RemoveIncompleteDevice removes it whole,
// a complete one never.
func TestIncompleteDevice(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	half := createPSKDevice(t, s, "acme", "half", false)
	if _, err := s.DeviceRegistrationOf(ctx, "acme", half); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("registration of a device being created: %v, want not found", err)
	}
	if r, err := s.DeviceSettings(ctx, "acme", half); err != nil || !r.Incomplete || r.Deleting {
		t.Errorf("settings of a device being created: %+v %v, want incomplete", r, err)
	}
	mo, err := s.GetManagedObject(ctx, "acme", half)
	if err != nil || mo.Name != "half" || mo.Type != store.DeviceType || mo.Fragments["c8y_IsDevice"] == nil {
		t.Errorf("object of a device being created: %+v %v", mo, err)
	}
	check(t, s.RemoveIncompleteDevice(ctx, "acme", half))
	checkGone(t, s, "acme", half, "half")

	whole := createPSKDevice(t, s, "acme", "whole", true)
	for _, id := range []string{whole, "no-such-device"} {
		if err := s.RemoveIncompleteDevice(ctx, "acme", id); !errors.Is(err, store.ErrComplete) {
			t.Errorf("removing %s: %v, want ErrComplete", id, err)
		}
	}
	if _, err := s.DeviceRegistrationOf(ctx, "acme", whole); err != nil {
		t.Errorf("complete device: %v", err)
	}
}

// The start removes what an import left unfinished (a device created
// and never completed, with the identities bound meanwhile), finishes a
// deletion marked on a record, and releases the identities a change left
// to release; complete devices stay as they are. More unfinished records
// than one page of the repair are all found.
func TestStartRepairsUnfinishedDevices(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	e, err := OpenEngine(ctx, Config{Dir: dir})
	check(t, err)
	s := e.Store
	half := createPSKDevice(t, s, "acme", "half", false)
	whole := createPSKDevice(t, s, "acme", "whole", true)
	deleting := createPSKDevice(t, s, "beta", "deleting", true)
	r, err := s.DeviceSettings(ctx, "beta", deleting)
	check(t, err)
	r.Deleting = true
	check(t, s.SaveDeviceRegistration(ctx, "beta", deleting, r))
	moved := createPSKDevice(t, s, "acme", "moved", true)
	check(t, s.BindPSKIdentity(ctx, store.PSKServer, "moved-new", "acme", moved))
	r = pskRegistration("moved", "moved-new")
	r.Release = map[string]string{store.PSKServer: "moved-id"}
	check(t, s.SaveDeviceRegistration(ctx, "acme", moved, r))
	var many []string
	for i := range 300 {
		id, err := s.CreateIncompleteDevice(ctx, "many", store.NewDevice{Endpoint: fmt.Sprint("many-", i)})
		check(t, err)
		many = append(many, id)
	}
	check(t, e.Close(ctx))

	e, err = OpenEngine(ctx, Config{Dir: dir})
	check(t, err)
	defer e.Close(ctx)
	s = e.Store
	checkGone(t, s, "acme", half, "half")
	checkGone(t, s, "beta", deleting, "deleting")
	if want := map[string]int{"managed_objects": 0, "external_ids": 0, "endpoints": 0, "psk_identities": 0, "registrations": 0}; !mapsEqual(rowsOf(t, s, "acme", half), want) {
		t.Errorf("rows left of the unfinished device: %v", rowsOf(t, s, "acme", half))
	}
	if _, err := s.GetManagedObject(ctx, "acme", whole); err != nil {
		t.Errorf("complete device: %v", err)
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
	if r, err := s.DeviceRegistrationOf(ctx, "acme", moved); err != nil || len(r.Release) != 0 || r.Incomplete {
		t.Errorf("record after the release: %+v %v", r, err)
	}
	if n := intOf(t, s.db, "SELECT count(*) FROM managed_objects WHERE tenant = 'many'"); n != 0 {
		t.Errorf("%d of %d unfinished devices left", n, len(many))
	}
	if n := intOf(t, s.db, "SELECT count(*) FROM registrations WHERE pending_create OR pending_delete OR pending_release IS NOT NULL"); n != 0 {
		t.Errorf("%d unfinished records left", n)
	}
}

// Each statement of a device's creation and removal is served by an
// index, without a sort.
func TestDevicePlans(t *testing.T) {
	cases := []planCase{
		{"device of an endpoint", sqlDeviceOfEndpoint, "USING PRIMARY KEY (tenant=? AND type=? AND external_id=?)"},
		{"endpoint ids of a device", sqlEndpointIDsOf, "INDEX external_ids_device (tenant=? AND device=? AND type=?)"},
		{"unbind endpoints", sqlUnbindEndpoints, "INDEX endpoints_device (tenant=? AND device=?)"},
		{"unbind identities", sqlUnbindIdentities, "INDEX psk_identities_device (tenant=? AND device=?)"},
		{"unfinished records", selectPending, "USING INDEX registrations_pending"},
	}
	for _, q := range removeDeviceRows {
		want := "USING PRIMARY KEY (tenant=? AND device=?)"
		switch {
		case strings.Contains(q, "external_ids"):
			want = "INDEX external_ids_device (tenant=? AND device=?)"
		case strings.Contains(q, "managed_objects"):
			want = "USING PRIMARY KEY (tenant=? AND id=?)"
		}
		cases = append(cases, planCase{q, q, want})
	}
	db := newStore(t).db
	for _, tc := range cases {
		// a value for each parameter, which does not change the plan
		args := make([]any, strings.Count(tc.query, "?"))
		for i := range args {
			args[i] = ""
		}
		if plan := explain(t, db, tc.query, args...); !strings.Contains(plan, tc.want) || strings.Contains(plan, "TEMP B-TREE") {
			t.Errorf("%s: plan\n%s\nwant %q and no temporary b-tree", tc.name, plan, tc.want)
		}
	}
}
