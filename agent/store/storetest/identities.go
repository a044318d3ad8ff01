package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

var identityCases = []suiteCase{
	{"PSKIdentityBelongsToFirstClaim", testPSKIdentityBelongsToFirstClaim},
	{"ConcurrentPSKIdentityClaim", testConcurrentPSKIdentityClaim},
	{"ReleasePendingIdentities", testReleasePendingIdentities},
}

func testPSKIdentityBelongsToFirstClaim(t *testing.T, s store.Engine) {
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

// Devices of several tenants claiming one identity at once: exactly one
// holds it, every other claim is ErrConflict.
func testConcurrentPSKIdentityClaim(t *testing.T, s store.Engine) {
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = s.BindPSKIdentity(ctx, store.PSKServer, "contested", fmt.Sprint("t", i), "10") })
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner < 0:
			winner = i
		case err == nil:
			t.Fatalf("claims of t%d and t%d both won", winner, i)
		case !errors.Is(err, store.ErrConflict):
			t.Fatalf("a losing claim: %v, want ErrConflict", err)
		}
	}
	if winner < 0 {
		t.Fatal("no claim won")
	}
	if tenant, _, err := s.DeviceByPSKIdentity(ctx, store.PSKServer, "contested"); err != nil || tenant != fmt.Sprint("t", winner) {
		t.Fatalf("identity held by %q (%v), want t%d", tenant, err, winner)
	}
}

// A change of a device's record names the identity it took away; the
// release frees that one and keeps the one the record names now.
func testReleasePendingIdentities(t *testing.T, s store.Engine) {
	dev := must(s.CreateDevice(ctx, "a", "ep"))
	check(t, s.BindPSKIdentity(ctx, store.PSKServer, "old-id", "a", dev))
	check(t, s.BindPSKIdentity(ctx, store.PSKServer, "new-id", "a", dev))
	check(t, s.SaveDeviceRegistration(ctx, "a", dev, store.DeviceRegistration{
		Params: map[string]any{store.ParamSecurityMode: store.SecurityPSK, "lwm2mPskId": "new-id"}, PSKKey: []byte{1},
		Release: map[string]string{store.PSKServer: "old-id"},
	}))
	check(t, s.ReleasePendingIdentities(ctx, "a", dev))
	if _, _, err := s.DeviceByPSKIdentity(ctx, store.PSKServer, "old-id"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("released identity: %v, want ErrNotFound", err)
	}
	if _, id, err := s.DeviceByPSKIdentity(ctx, store.PSKServer, "new-id"); err != nil || id != dev {
		t.Fatalf("the record's identity: %q %v, want %q", id, err, dev)
	}
	if r := must(s.DeviceSettings(ctx, "a", dev)); len(r.Release) != 0 || r.Incomplete {
		t.Fatalf("record after the release: %+v", r)
	}
	if err := s.ReleasePendingIdentities(ctx, "a", "no-such-device"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("release of a device without a record: %v, want ErrNotFound", err)
	}
}
