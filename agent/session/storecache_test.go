package session

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/lwm2m"
	"github.com/lwm2m-agent/lwm2m-agent/agent/psk"
	"github.com/lwm2m-agent/lwm2m-agent/agent/refusal"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/cache"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/storetest"
)

// counting is the store beneath the cache, counting the lookups that
// reach it.
type counting struct {
	store.Engine
	reads atomic.Int64
}

func (c *counting) DeviceByEndpoint(ctx context.Context, ep string) (string, string, error) {
	c.reads.Add(1)
	return c.Engine.DeviceByEndpoint(ctx, ep)
}

func (c *counting) DeviceByPSKIdentity(ctx context.Context, kind, identity string) (string, string, error) {
	c.reads.Add(1)
	return c.Engine.DeviceByPSKIdentity(ctx, kind, identity)
}

func (c *counting) DeviceSettings(ctx context.Context, tenant, id string) (store.DeviceRegistration, error) {
	c.reads.Add(1)
	return c.Engine.DeviceSettings(ctx, tenant, id)
}

func (c *counting) DeviceRegistrationOf(ctx context.Context, tenant, id string) (store.DeviceRegistration, error) {
	c.reads.Add(1)
	return c.Engine.DeviceRegistrationOf(ctx, tenant, id)
}

// Behind the store cache, a known device's DTLS handshake and Register
// read nothing from the store once the device was seen, and an unknown
// endpoint or identity costs what a known one does: the same reads the
// first time, none after.
func TestRegisterFromCache(t *testing.T) {
	raw := &counting{Engine: storetest.OpenTest(t)}
	st := cache.New(cache.Config{Size: 1000}).Wrap(raw)
	ctx, cancel := context.WithCancel(context.Background())
	state := NewStateWriter(st, 64, time.Millisecond, nil)
	go state.Run(ctx)
	t.Cleanup(func() { cancel(); <-state.Done() })
	h := New(Config{Store: st, State: state, Refused: refusal.New(nil, 0)})
	keys := Keys(st, store.PSKServer)

	device := func(ep string, reg store.DeviceRegistration) string {
		t.Helper()
		id, err := st.CreateIncompleteDevice(ctx, "acme", store.NewDevice{Endpoint: ep, Registration: reg})
		if err != nil {
			t.Fatal(err)
		}
		if err := st.CompleteDevice(ctx, "acme", id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	device("plain", store.DeviceRegistration{Params: map[string]any{"endpointId": "plain", "securityMode": "NO_SEC"}})
	pskID := device("psk", store.DeviceRegistration{Params: map[string]any{"endpointId": "psk", "securityMode": "PSK", "lwm2mPskId": "psk-id"}, PSKKey: []byte{1, 2}})
	if err := st.BindPSKIdentity(ctx, store.PSKServer, "psk-id", "acme", pskID); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		do   func() error
		want error
		cold int64 // reads the first time
	}{
		{"handshake of a known identity", func() error { _, err := keys(ctx, "psk-id"); return err }, nil, 2},
		{"handshake of an unknown identity", func() error { _, err := keys(ctx, "nobody-id"); return err }, psk.ErrUnknownIdentity, 2},
		// the handshake read the identity and the record
		{"DTLS Register of a known device", func() error {
			_, err := h.Authorize(ctx, lwm2m.AuthRequest{Endpoint: "psk", Secure: true, PSKIdentity: "psk-id"})
			return err
		}, nil, 1},
		{"plain Register of a known device", func() error { _, err := h.Authorize(ctx, lwm2m.AuthRequest{Endpoint: "plain"}); return err }, nil, 2},
		{"plain Register of an unknown endpoint", func() error { _, err := h.Authorize(ctx, lwm2m.AuthRequest{Endpoint: "nobody"}); return err }, ErrUnknownEndpoint, 2},
		{"plain Register of a PSK device", func() error { _, err := h.Authorize(ctx, lwm2m.AuthRequest{Endpoint: "psk"}); return err }, ErrDTLSRequired, 0},
	} {
		for round, want := range []int64{tc.cold, 0} {
			before := raw.reads.Load()
			if err := tc.do(); tc.want == nil && err != nil || !errors.Is(err, tc.want) {
				t.Fatalf("%s: %v, want %v", tc.name, err, tc.want)
			}
			if n := raw.reads.Load() - before; n != want {
				t.Errorf("%s, round %d: %d store reads, want %d", tc.name, round+1, n, want)
			}
		}
	}

	// a change through the cache is seen at the next Register
	if err := st.SaveDeviceRegistration(ctx, "acme", pskID, store.DeviceRegistration{
		Params: map[string]any{"endpointId": "psk", "securityMode": "PSK", "lwm2mPskId": "other-id"}, PSKKey: []byte{1, 2},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := keys(ctx, "psk-id"); !errors.Is(err, psk.ErrUnknownIdentity) {
		t.Fatalf("handshake with the identity the record no longer names: %v", err)
	}
}
