package session

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/lwm2m"
	"github.com/lwm2m-agent/lwm2m-agent/agent/psk"
	"github.com/lwm2m-agent/lwm2m-agent/agent/refusal"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/storetest"
)

// Only a device whose record says NO_SEC, complete, registers in plain
// CoAP: one whose record says PSK, says nothing of its security, or is
// still being written is refused, with auto-registration on too, except
// that auto-registration gives its own tenant's devices without a word
// on their security the NO_SEC record it gives new ones.
func TestAuthorizeFailsClosed(t *testing.T) {
	st := storetest.OpenTest(t)
	ctx, cancel := context.WithCancel(context.Background())
	state := NewStateWriter(st, 64, time.Millisecond, nil)
	go state.Run(ctx)
	t.Cleanup(func() { cancel(); <-state.Done() })
	refused := refusal.New(nil, 0)
	hooks := func(auto bool) *Hooks {
		return New(Config{Store: st, State: state, AutoRegister: auto, Refused: refused})
	}
	device := func(tenant, ep string, reg *store.DeviceRegistration, complete bool) string {
		t.Helper()
		d := store.NewDevice{Endpoint: ep}
		if reg != nil {
			d.Registration = *reg
		}
		id, err := st.CreateIncompleteDevice(ctx, tenant, d)
		if err != nil {
			t.Fatal(err)
		}
		if complete {
			if err := st.CompleteDevice(ctx, tenant, id); err != nil {
				t.Fatal(err)
			}
		}
		return id
	}
	noSec := &store.DeviceRegistration{Params: map[string]any{"endpointId": "x", "securityMode": "NO_SEC"}}
	pskReg := &store.DeviceRegistration{Params: map[string]any{"securityMode": "PSK", "lwm2mPskId": "psk-id"}, PSKKey: []byte{1, 2}}
	awake := &store.DeviceRegistration{Params: map[string]any{"awakeTimeRegistrationParameter": int64(0)}}
	device("acme", "plain", noSec, true)
	device("acme", "half-plain", noSec, false)
	device("acme", "half-psk", pskReg, false)
	pskID := device("acme", "psk", pskReg, true)
	if err := st.BindPSKIdentity(ctx, store.PSKServer, "psk-id", "acme", pskID); err != nil {
		t.Fatal(err)
	}
	device("acme", "unset", awake, true)
	device("acme", "no-record", nil, true)
	device(ManagementTenant, "mgmt-unset", awake, true)

	for _, auto := range []bool{false, true} {
		h := hooks(auto)
		for _, tc := range []struct {
			ep   string
			want error // nil: accepted
		}{
			{"plain", nil},
			{"half-plain", ErrIncomplete},
			{"half-psk", ErrDTLSRequired},
			{"psk", ErrDTLSRequired},
			{"unset", ErrIncomplete},
			{"no-record", ErrIncomplete},
		} {
			_, err := h.Authorize(ctx, lwm2m.AuthRequest{Endpoint: tc.ep})
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("auto-registration %v: plain Register of %s: %v, want %v", auto, tc.ep, err, tc.want)
			}
		}
	}

	// auto-registration's own tenant: adopted as auto-registered
	if _, err := hooks(false).Authorize(ctx, lwm2m.AuthRequest{Endpoint: "mgmt-unset"}); !errors.Is(err, ErrIncomplete) {
		t.Errorf("without auto-registration: %v, want refused", err)
	}
	id, err := hooks(true).Authorize(ctx, lwm2m.AuthRequest{Endpoint: "mgmt-unset"})
	if err != nil {
		t.Fatalf("with auto-registration: %v", err)
	}
	if r, err := st.DeviceRegistrationOf(ctx, ManagementTenant, id.DeviceID); err != nil || r.SecurityMode() != "NO_SEC" {
		t.Errorf("record after adoption: %+v %v", r, err)
	}

	// over DTLS, the identity must be the one the record names
	h := hooks(false)
	if _, err := h.Authorize(ctx, lwm2m.AuthRequest{Endpoint: "psk", Secure: true, PSKIdentity: "psk-id"}); err != nil {
		t.Errorf("DTLS Register with the record's identity: %v", err)
	}
	if err := st.BindPSKIdentity(ctx, store.PSKServer, "stale-id", "acme", pskID); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Authorize(ctx, lwm2m.AuthRequest{Endpoint: "psk", Secure: true, PSKIdentity: "stale-id"}); !errors.Is(err, ErrIncomplete) {
		t.Errorf("DTLS Register with an identity the record does not name: %v, want refused", err)
	}
	// 3 plain refusals twice, the one without auto-registration, the DTLS one
	if n := refused.Count(CauseIncomplete); n != 8 {
		t.Errorf("%d refusals counted as %s, want 8", n, CauseIncomplete)
	}
	keys := Keys(st, store.PSKServer)
	if k, err := keys(ctx, "psk-id"); err != nil || len(k) != 2 {
		t.Errorf("key of the record's identity: %x %v", k, err)
	}
	if _, err := keys(ctx, "stale-id"); !errors.Is(err, psk.ErrUnknownIdentity) {
		t.Errorf("key of an identity the record does not name: %v, want not found", err)
	}
}
