package sqlite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// newStore opens the engine over a store of the real schema in a fresh
// directory.
func newStore(t testing.TB) *Store {
	t.Helper()
	return New(open(t, t.TempDir(), Config{migrations: migrations}))
}

// bindEndpoint binds an endpoint as the creation of a device will.
func bindEndpoint(t testing.TB, s *Store, endpoint, tenant, id string) {
	t.Helper()
	err := s.db.Write(context.Background(), func(tx *Tx) error {
		_, err := tx.Exec("INSERT INTO endpoints (endpoint, tenant, device) VALUES (?, ?, ?)", endpoint, tenant, id)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestTenants(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	tn, err := s.CreateTenant(ctx, "acme", "admin", "secret")
	if err != nil {
		t.Fatal(err)
	}
	if tn.ID != "acme" || tn.Domain != "acme" || tn.CreationTime.IsZero() {
		t.Fatalf("created %+v", tn)
	}
	got, err := s.GetTenant(ctx, "acme")
	if err != nil || !reflect.DeepEqual(got, tn) {
		t.Fatalf("GetTenant: %+v, %v; want %+v", got, err, tn)
	}
	if err := s.CreateUser(ctx, "acme", "ops", "pw", nil); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name string
		do   func() error
		want error
	}{
		{"tenant id with capitals", func() error { _, err := s.CreateTenant(ctx, "Acme", "a", "p"); return err }, store.ErrInvalid},
		{"tenant id too long", func() error { _, err := s.CreateTenant(ctx, "a23456789012345678901234567890123", "a", "p"); return err }, store.ErrInvalid},
		{"tenant without admin", func() error { _, err := s.CreateTenant(ctx, "b", "", "p"); return err }, store.ErrInvalid},
		{"tenant without password", func() error { _, err := s.CreateTenant(ctx, "b", "a", ""); return err }, store.ErrInvalid},
		{"tenant taken", func() error { _, err := s.CreateTenant(ctx, "acme", "a", "p"); return err }, store.ErrConflict},
		{"unknown tenant", func() error { _, err := s.GetTenant(ctx, "nope"); return err }, store.ErrNotFound},
		{"user without name", func() error { return s.CreateUser(ctx, "acme", "", "p", nil) }, store.ErrInvalid},
		{"user without password", func() error { return s.CreateUser(ctx, "acme", "u", "", nil) }, store.ErrInvalid},
		{"user taken", func() error { return s.CreateUser(ctx, "acme", "ops", "p", nil) }, store.ErrConflict},
		{"empty new password", func() error { return s.SetPassword(ctx, "acme", "ops", "") }, store.ErrInvalid},
		{"password of unknown user", func() error { return s.SetPassword(ctx, "acme", "nobody", "p") }, store.ErrNotFound},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := c.do(); !errors.Is(err, c.want) {
				t.Fatalf("%v, want %v", err, c.want)
			}
		})
	}
	// A refused tenant leaves no admin behind.
	if _, err := s.Login(ctx, "b", "a", "p"); !errors.Is(err, store.ErrUnauthorized) {
		t.Fatalf("login to a refused tenant: %v", err)
	}
}

func TestLogin(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	if _, err := s.CreateTenant(ctx, "acme", "admin", "secret"); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateUser(ctx, "acme", "ops", "pw", []string{"ROLE_OPS"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, tenant, user, pass string
		want                     *store.User
	}{
		{"admin", "acme", "admin", "secret", &store.User{Tenant: "acme", UserName: "admin", Roles: []string{store.RoleAdmin}}},
		{"user", "acme", "ops", "pw", &store.User{Tenant: "acme", UserName: "ops", Roles: []string{"ROLE_OPS"}}},
		{"admin again, cached", "acme", "admin", "secret", &store.User{Tenant: "acme", UserName: "admin", Roles: []string{store.RoleAdmin}}},
		{"wrong password", "acme", "admin", "Secret", nil},
		{"unknown user", "acme", "root", "secret", nil},
		{"unknown tenant", "other", "admin", "secret", nil},
		{"empty password", "acme", "admin", "", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			u, err := s.Login(ctx, c.tenant, c.user, c.pass)
			if c.want == nil {
				if !errors.Is(err, store.ErrUnauthorized) {
					t.Fatalf("Login: %+v, %v; want ErrUnauthorized", u, err)
				}
				if err := s.Authenticate(ctx, c.tenant, c.user, c.pass); !errors.Is(err, store.ErrUnauthorized) {
					t.Fatalf("Authenticate: %v; want ErrUnauthorized", err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(u, *c.want) {
				t.Fatalf("Login: %+v, %v; want %+v", u, err, *c.want)
			}
		})
	}

	// A new password ends the cached login of the old one.
	if err := s.SetPassword(ctx, "acme", "admin", "new"); err != nil {
		t.Fatal(err)
	}
	if err := s.Authenticate(ctx, "acme", "admin", "secret"); !errors.Is(err, store.ErrUnauthorized) {
		t.Fatalf("old password after SetPassword: %v", err)
	}
	if err := s.Authenticate(ctx, "acme", "admin", "new"); err != nil {
		t.Fatalf("new password: %v", err)
	}
}

func TestEnsureManagement(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)

	m, err := s.EnsureManagement(ctx, "")
	if err != nil || m.Generated == "" || m.PasswordChanged {
		t.Fatalf("first start without a password: %+v, %v", m, err)
	}
	if err := s.Authenticate(ctx, store.ManagementTenant, "admin", m.Generated); err != nil {
		t.Fatalf("generated password: %v", err)
	}
	generated := m.Generated

	for _, c := range []struct {
		name    string
		pass    string
		want    store.Management
		working string
	}{
		{"no password keeps the stored one", "", store.Management{}, generated},
		{"a new password replaces it", "configured", store.Management{PasswordChanged: true}, "configured"},
		{"the same password again", "configured", store.Management{}, "configured"},
		{"another one", "other", store.Management{PasswordChanged: true}, "other"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, err := s.EnsureManagement(ctx, c.pass)
			if err != nil || m != c.want {
				t.Fatalf("%+v, %v; want %+v", m, err, c.want)
			}
			if err := s.Authenticate(ctx, store.ManagementTenant, "admin", c.working); err != nil {
				t.Fatalf("password %s: %v", c.working, err)
			}
		})
	}

	// A configured password on an empty store is neither generated nor
	// a change.
	s = newStore(t)
	if m, err := s.EnsureManagement(ctx, "configured"); err != nil || m != (store.Management{}) {
		t.Fatalf("first start with a password: %+v, %v", m, err)
	}
	if err := s.Authenticate(ctx, store.ManagementTenant, "admin", "configured"); err != nil {
		t.Fatal(err)
	}
}

func TestIdentities(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	bindEndpoint(t, s, "ep-1", "acme", "11")
	if tn, id, err := s.DeviceByEndpoint(ctx, "ep-1"); err != nil || tn != "acme" || id != "11" {
		t.Fatalf("DeviceByEndpoint: %s %s %v", tn, id, err)
	}
	if _, _, err := s.DeviceByEndpoint(ctx, "ep-2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown endpoint: %v", err)
	}

	for _, c := range []struct {
		name                           string
		kind, identity, tenant, device string
		want                           error
	}{
		{"first claim", store.PSKServer, "id-1", "acme", "11", nil},
		{"claimed again by its device", store.PSKServer, "id-1", "acme", "11", nil},
		{"another device of the tenant", store.PSKServer, "id-1", "acme", "12", store.ErrConflict},
		{"the same device id in another tenant", store.PSKServer, "id-1", "other", "11", store.ErrConflict},
		{"the other kind is apart", store.PSKBootstrap, "id-1", "acme", "12", nil},
		{"empty identity", store.PSKServer, "", "acme", "11", store.ErrInvalid},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := s.BindPSKIdentity(ctx, c.kind, c.identity, c.tenant, c.device); !errors.Is(err, c.want) {
				t.Fatalf("%v, want %v", err, c.want)
			}
		})
	}
	if tn, id, err := s.DeviceByPSKIdentity(ctx, store.PSKServer, "id-1"); err != nil || tn != "acme" || id != "11" {
		t.Fatalf("DeviceByPSKIdentity: %s %s %v", tn, id, err)
	}
	if tn, id, err := s.DeviceByPSKIdentity(ctx, store.PSKBootstrap, "id-1"); err != nil || tn != "acme" || id != "12" {
		t.Fatalf("DeviceByPSKIdentity of the bootstrap kind: %s %s %v", tn, id, err)
	}

	// Only the holder releases an identity; anyone else's release is a
	// no-op, as in the MongoDB engine.
	if err := s.UnbindPSKIdentity(ctx, store.PSKServer, "id-1", "acme", "12"); err != nil {
		t.Fatal(err)
	}
	if _, id, err := s.DeviceByPSKIdentity(ctx, store.PSKServer, "id-1"); err != nil || id != "11" {
		t.Fatalf("after another device's release: %s %v", id, err)
	}
	if err := s.UnbindPSKIdentity(ctx, store.PSKServer, "id-1", "acme", "11"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.DeviceByPSKIdentity(ctx, store.PSKServer, "id-1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after its release: %v", err)
	}
	if err := s.BindPSKIdentity(ctx, store.PSKServer, "id-1", "acme", "12"); err != nil {
		t.Fatalf("a released identity is free: %v", err)
	}
}

func TestBindPSKIdentityConcurrent(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	const n = 16
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.BindPSKIdentity(ctx, store.PSKServer, "shared", "acme", fmt.Sprint(100+i))
		}()
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("devices %d and %d both hold the identity", 100+winner, 100+i)
		case err == nil:
			winner = i
		case !errors.Is(err, store.ErrConflict):
			t.Fatalf("device %d: %v, want ErrConflict", 100+i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no device holds the identity")
	}
	if _, id, err := s.DeviceByPSKIdentity(ctx, store.PSKServer, "shared"); err != nil || id != fmt.Sprint(100+winner) {
		t.Fatalf("holder %s, %v; want %d", id, err, 100+winner)
	}
}

func TestRegistrations(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	reg := store.DeviceRegistration{
		Params:          map[string]any{store.ParamEndpointID: "ep", store.ParamSecurityMode: store.SecurityPSK, "lwm2mPskId": "id-1", "lifetime": 300.0},
		PSKKey:          []byte{1, 2, 3},
		BootstrapPSKKey: []byte{4},
	}
	if err := s.SaveDeviceRegistration(ctx, "acme", "7", reg); err != nil {
		t.Fatal(err)
	}
	got, err := s.DeviceRegistrationOf(ctx, "acme", "7")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Params, reg.Params) || !bytes.Equal(got.PSKKey, reg.PSKKey) || !bytes.Equal(got.BootstrapPSKKey, reg.BootstrapPSKKey) ||
		got.CredentialsHash != nil || got.Incomplete || got.Deleting || got.Release != nil || got.Updated.IsZero() {
		t.Fatalf("read back %+v", got)
	}
	if got.PSKIdentity(store.PSKServer) != "id-1" {
		t.Fatalf("psk identity %q", got.PSKIdentity(store.PSKServer))
	}

	// The serialization survives a save, and a save clears the keys it
	// does not carry.
	if err := s.SetDeviceSerialization(ctx, "acme", "7", "TLV"); err != nil {
		t.Fatal(err)
	}
	reg.PSKKey = nil
	if err := s.SaveDeviceRegistration(ctx, "acme", "7", reg); err != nil {
		t.Fatal(err)
	}
	if got, err := s.DeviceSettings(ctx, "acme", "7"); err != nil || got.Serialization != "TLV" || got.PSKKey != nil {
		t.Fatalf("after a save: %+v, %v", got, err)
	}

	// A device with only a serialization has settings but no
	// registration; removing the serialization keeps the record.
	if err := s.SetDeviceSerialization(ctx, "acme", "8", "SENML_JSON"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.DeviceSettings(ctx, "acme", "8"); err != nil || got.Serialization != "SENML_JSON" || got.Params != nil || !got.Updated.IsZero() {
		t.Fatalf("settings of a serialization alone: %+v, %v", got, err)
	}
	if _, err := s.DeviceRegistrationOf(ctx, "acme", "8"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("registration of a serialization alone: %v", err)
	}
	if err := s.SetDeviceSerialization(ctx, "acme", "8", ""); err != nil {
		t.Fatal(err)
	}
	if got, err := s.DeviceSettings(ctx, "acme", "8"); err != nil || got.Serialization != "" {
		t.Fatalf("after removing the serialization: %+v, %v", got, err)
	}
	// Removing the serialization of a device without a record makes none.
	if err := s.SetDeviceSerialization(ctx, "acme", "9", ""); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name, tenant, id string
	}{
		{"unknown device", "acme", "9"},
		{"another tenant's device", "other", "7"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := s.DeviceSettings(ctx, c.tenant, c.id); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("DeviceSettings: %v", err)
			}
			if _, err := s.DeviceRegistrationOf(ctx, c.tenant, c.id); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("DeviceRegistrationOf: %v", err)
			}
			if err := s.CompleteDevice(ctx, c.tenant, c.id); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("CompleteDevice: %v", err)
			}
			if err := s.ReleasePendingIdentities(ctx, c.tenant, c.id); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("ReleasePendingIdentities: %v", err)
			}
		})
	}
}

func TestPendingMarkers(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	params := map[string]any{store.ParamEndpointID: "ep"}
	settings := func(id string) store.DeviceRegistration {
		t.Helper()
		r, err := s.DeviceSettings(ctx, "acme", id)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	// A creation: incomplete until completed, and a save meanwhile does
	// not complete it.
	if err := s.SaveDeviceRegistration(ctx, "acme", "1", store.DeviceRegistration{Params: params, Incomplete: true}); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveDeviceRegistration(ctx, "acme", "1", store.DeviceRegistration{Params: params}); err != nil {
		t.Fatal(err)
	}
	if r := settings("1"); !r.Incomplete || r.Deleting {
		t.Fatalf("creation under way: %+v", r)
	}
	if _, err := s.DeviceRegistrationOf(ctx, "acme", "1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("registration of an incomplete device: %v", err)
	}
	if err := s.ReleasePendingIdentities(ctx, "acme", "1"); err == nil {
		t.Fatal("identities of an incomplete device released")
	}
	if err := s.CompleteDevice(ctx, "acme", "1"); err != nil {
		t.Fatal(err)
	}
	if r := settings("1"); r.Incomplete || r.Deleting {
		t.Fatalf("completed: %+v", r)
	}

	// A deletion reads as incomplete, is not completed, and a save does
	// not clear it.
	if err := s.SaveDeviceRegistration(ctx, "acme", "1", store.DeviceRegistration{Params: params, Incomplete: true, Deleting: true}); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveDeviceRegistration(ctx, "acme", "1", store.DeviceRegistration{Params: params}); err != nil {
		t.Fatal(err)
	}
	if r := settings("1"); !r.Incomplete || !r.Deleting {
		t.Fatalf("deletion under way: %+v", r)
	}
	if err := s.CompleteDevice(ctx, "acme", "1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("completing a device being deleted: %v", err)
	}

	// A change of identities: the old ones are released, but not one the
	// record names again nor one another device holds.
	for _, b := range []struct{ kind, identity, device string }{
		{store.PSKServer, "old", "2"}, {store.PSKBootstrap, "kept", "2"}, {store.PSKServer, "theirs", "3"},
	} {
		if err := s.BindPSKIdentity(ctx, b.kind, b.identity, "acme", b.device); err != nil {
			t.Fatal(err)
		}
	}
	r := store.DeviceRegistration{
		Params:  map[string]any{store.ParamEndpointID: "ep2", "lwm2mPskId": "new", "bootstrapPskId": "kept"},
		Release: map[string]string{store.PSKServer: "old", store.PSKBootstrap: "kept"},
	}
	if err := s.SaveDeviceRegistration(ctx, "acme", "2", r); err != nil {
		t.Fatal(err)
	}
	// A save without Release keeps the stored one.
	r.Release = nil
	if err := s.SaveDeviceRegistration(ctx, "acme", "2", r); err != nil {
		t.Fatal(err)
	}
	if got := settings("2"); got.Incomplete || !reflect.DeepEqual(got.Release, map[string]string{store.PSKServer: "old", store.PSKBootstrap: "kept"}) {
		t.Fatalf("identities to release: %+v", got)
	}
	if err := s.ReleasePendingIdentities(ctx, "acme", "2"); err != nil {
		t.Fatal(err)
	}
	if got := settings("2"); got.Release != nil {
		t.Fatalf("released, still named: %+v", got.Release)
	}
	if _, _, err := s.DeviceByPSKIdentity(ctx, store.PSKServer, "old"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("old identity: %v", err)
	}
	if _, id, err := s.DeviceByPSKIdentity(ctx, store.PSKBootstrap, "kept"); err != nil || id != "2" {
		t.Fatalf("identity named again: %s %v", id, err)
	}
}

// The registration keys and passwords never reach an error message.
func TestNoSecretsInErrors(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	if err := s.BindPSKIdentity(ctx, store.PSKServer, "secret-identity", "acme", "1"); err != nil {
		t.Fatal(err)
	}
	errs := []error{s.BindPSKIdentity(ctx, store.PSKServer, "secret-identity", "acme", "2")}
	_, _, err := s.DeviceByPSKIdentity(ctx, store.PSKServer, "secret-identity-2")
	errs = append(errs, err)
	_, err = s.Login(ctx, "acme", "u", "secret-password")
	errs = append(errs, err)
	for _, err := range errs {
		if err == nil || bytes.Contains([]byte(err.Error()), []byte("secret")) {
			t.Fatalf("error %v", err)
		}
	}
}
