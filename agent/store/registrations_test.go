package store_test

import (
	"errors"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/storetest"
)

func TestPSKIdentityBelongsToFirstClaim(t *testing.T) {
	s := storetest.OpenTest(t)
	check(t, s.BindPSKIdentity(ctx, store.PSKServer, "id-a", "t1", "10"))
	// the same device again is fine (re-import)
	check(t, s.BindPSKIdentity(ctx, store.PSKServer, "id-a", "t1", "10"))
	if err := s.BindPSKIdentity(ctx, store.PSKServer, "id-a", "t2", "10"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("other tenant claiming the identity: %v, want conflict", err)
	}
	// kinds are separate name spaces
	check(t, s.BindPSKIdentity(ctx, store.PSKBootstrap, "id-a", "t2", "20"))

	tenant, id, err := s.DeviceByPSKIdentity(ctx, store.PSKServer, "id-a")
	if err != nil || tenant != "t1" || id != "10" {
		t.Fatalf("lookup: %q %q %v", tenant, id, err)
	}
	// only the holder releases it
	check(t, s.UnbindPSKIdentity(ctx, store.PSKServer, "id-a", "t2", "10"))
	if _, _, err := s.DeviceByPSKIdentity(ctx, store.PSKServer, "id-a"); err != nil {
		t.Fatalf("released by a non-holder: %v", err)
	}
	check(t, s.UnbindPSKIdentity(ctx, store.PSKServer, "id-a", "t1", "10"))
	if _, _, err := s.DeviceByPSKIdentity(ctx, store.PSKServer, "id-a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after release: %v", err)
	}
	if err := s.BindPSKIdentity(ctx, store.PSKServer, "", "t1", "10"); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("empty identity: %v", err)
	}
}
