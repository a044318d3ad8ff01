package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

var firmwareGrantCases = []suiteCase{
	{"RoundTrip", testGrantRoundTrip},
	{"Expiry", testGrantExpiry},
	{"Revoke", testGrantRevoke},
	{"Sweep", testGrantSweep},
}

// ms is a time at the store's precision, so that what is read back
// compares equal.
func ms(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }

func grant(key, tenant, op string, expires time.Time) store.FirmwareGrant {
	return store.FirmwareGrant{Key: key, Tenant: tenant, DeviceID: "d-" + op, Endpoint: "ep-" + op, OperationID: op,
		Scheme: "coaps", BinaryID: "b1", Expires: ms(expires)}
}

func testGrantRoundTrip(t *testing.T, s store.Engine) {
	now := time.Now()
	g := grant("k1", "acme", "op1", now.Add(time.Hour))
	check(t, s.PutFirmwareGrant(ctx, g))
	got, err := s.FirmwareGrant(ctx, "k1", now)
	check(t, err)
	if got != g {
		t.Fatalf("read back %+v, stored %+v", got, g)
	}
	// a put replaces: a copy's expiry is extended this way
	c := store.FirmwareGrant{Key: "copy/acme/x", Tenant: "acme", BinaryID: "b2", URL: "https://example.com/fw.bin", Expires: ms(now.Add(time.Minute))}
	check(t, s.PutFirmwareGrant(ctx, c))
	c.Expires = ms(now.Add(2 * time.Hour))
	check(t, s.PutFirmwareGrant(ctx, c))
	got, err = s.FirmwareGrant(ctx, c.Key, now)
	check(t, err)
	if got != c || !got.IsCopy() {
		t.Fatalf("replaced copy reads %+v, want %+v", got, c)
	}
	if _, err := s.FirmwareGrant(ctx, "k2", now); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown key: %v, want ErrNotFound", err)
	}
	for _, bad := range []store.FirmwareGrant{{Tenant: "acme"}, {Key: "k"}} {
		if err := s.PutFirmwareGrant(ctx, bad); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("put %+v: %v, want ErrInvalid", bad, err)
		}
	}
}

func testGrantExpiry(t *testing.T, s store.Engine) {
	now := time.Now()
	check(t, s.PutFirmwareGrant(ctx, grant("k1", "acme", "op1", now.Add(time.Second))))
	if _, err := s.FirmwareGrant(ctx, "k1", now); err != nil {
		t.Fatalf("before its expiry: %v", err)
	}
	for _, at := range []time.Time{now.Add(time.Second), now.Add(time.Hour)} {
		if _, err := s.FirmwareGrant(ctx, "k1", at); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("at %v after its expiry: %v, want ErrNotFound", at.Sub(now), err)
		}
	}
}

func testGrantRevoke(t *testing.T, s store.Engine) {
	now := time.Now()
	exp := now.Add(time.Hour)
	check(t, s.PutFirmwareGrant(ctx, grant("a1", "acme", "op1", exp)))
	check(t, s.PutFirmwareGrant(ctx, grant("a2", "acme", "op1", exp))) // the other scheme of BOTH
	check(t, s.PutFirmwareGrant(ctx, grant("a3", "acme", "op2", exp)))
	check(t, s.PutFirmwareGrant(ctx, grant("b1", "globex", "op1", exp)))
	check(t, s.PutFirmwareGrant(ctx, store.FirmwareGrant{Key: "copy/acme/x", Tenant: "acme", BinaryID: "b9", Expires: ms(exp)}))

	// another tenant's operation of the same id is not touched
	n, err := s.RevokeFirmwareGrants(ctx, "acme", "op1")
	check(t, err)
	if n != 2 {
		t.Fatalf("revoked %d grants, want 2", n)
	}
	for key, want := range map[string]bool{"a1": false, "a2": false, "a3": true, "b1": true, "copy/acme/x": true} {
		_, err := s.FirmwareGrant(ctx, key, now)
		if have := err == nil; have != want {
			t.Errorf("grant %s after revoking acme's op1: present %v (%v), want %v", key, have, err, want)
		}
	}
	if n, err := s.RevokeFirmwareGrants(ctx, "acme", "op1"); err != nil || n != 0 {
		t.Fatalf("revoking again: %d, %v; want 0, nil", n, err)
	}
	if _, err := s.RevokeFirmwareGrants(ctx, "acme", ""); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("revoke without an operation: %v, want ErrInvalid (it would remove the copies)", err)
	}
}

func testGrantSweep(t *testing.T, s store.Engine) {
	now := ms(time.Now())
	for i, key := range []string{"k0", "k1", "k2", "k3"} {
		// k0 expired longest ago; k3 is still valid
		check(t, s.PutFirmwareGrant(ctx, grant(key, []string{"acme", "globex"}[i%2], key, now.Add(time.Duration(i-3)*time.Minute+time.Second))))
	}
	got, err := s.ExpiredFirmwareGrants(ctx, now, 2)
	check(t, err)
	if len(got) != 2 || got[0].Key != "k0" || got[1].Key != "k1" {
		t.Fatalf("first page of expired grants: %+v, want k0 and k1", got)
	}
	all, err := s.ExpiredFirmwareGrants(ctx, now, 10)
	check(t, err)
	if len(all) != 3 {
		t.Fatalf("%d expired grants, want 3 (across tenants, the valid one left out)", len(all))
	}
	// a grant extended since it was listed stays
	ext := all[2]
	ext.Expires = now.Add(time.Hour)
	check(t, s.PutFirmwareGrant(ctx, ext))
	for _, g := range all {
		deleted, err := s.DeleteFirmwareGrant(ctx, g.Key, g.Expires)
		check(t, err)
		if want := g.Key != ext.Key; deleted != want {
			t.Errorf("delete %s: deleted %v, want %v", g.Key, deleted, want)
		}
	}
	if _, err := s.FirmwareGrant(ctx, ext.Key, now); err != nil {
		t.Fatalf("extended grant: %v", err)
	}
	if left, err := s.ExpiredFirmwareGrants(ctx, now, 10); err != nil || len(left) != 0 {
		t.Fatalf("left after the sweep: %+v, %v", left, err)
	}
}
