package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/logbuf"
	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/testbound"
	"github.com/lwm2m-agent/lwm2m-agent/agent/lwm2m"
	"github.com/lwm2m-agent/lwm2m-agent/agent/refusal"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/storetest"
)

// hooksWithState returns hooks over a fresh store whose state writer runs
// until the test ends, with events coalesced over interval.
func hooksWithState(t *testing.T, interval time.Duration) (*Hooks, store.Engine, *StateWriter, *refusal.Log, *logbuf.Buffer) {
	t.Helper()
	st := storetest.OpenTest(t)
	state := NewStateWriter(st, 64, time.Millisecond, nil)
	ctx, cancel := context.WithCancel(context.Background())
	go state.Run(ctx)
	t.Cleanup(func() { cancel(); <-state.Done() })
	logs := &logbuf.Buffer{}
	refused := refusal.New(slog.New(slog.NewTextHandler(logs, nil)), time.Hour)
	h := New(Config{Store: st, State: state, EventInterval: interval, Refused: refused, Logger: slog.New(slog.DiscardHandler)})
	return h, st, state, refused, logs
}

func eventsOf(t *testing.T, st store.Engine, tenant, id, typ string) []store.Event {
	t.Helper()
	evs, _, err := st.ListEvents(context.Background(), tenant, store.EventFilter{Source: id, Type: typ, Page: store.Page{Size: 100, Current: 1}})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// A hundred Registers of one device in a row store one registration
// event, and each state change still; the rest are counted and logged
// once. After a de-registration the next Register is recorded again.
func TestRegistrationEventsCoalesced(t *testing.T) {
	h, st, state, refused, logs := hooksWithState(t, time.Hour)
	ctx := context.Background()
	id, err := st.CreateDevice(ctx, "acme", "flooded")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if err := h.Persist(ctx, lwm2m.Registration{Endpoint: "flooded", Tenant: "acme", DeviceID: id, ID: fmt.Sprint("reg-", i),
			Address: fmt.Sprintf("127.0.0.%d:5683", i%200+1), Version: "1.1", Lifetime: time.Minute}, lwm2m.ChangeRegister); err != nil {
			t.Fatal(err)
		}
	}
	// each Register's state is stored when Persist returns
	mo, err := st.GetManagedObject(ctx, "acme", id)
	if lw, _ := mo.Fragments["lwm2m"].(map[string]any); err != nil || lw["registrationId"] != "reg-99" {
		t.Fatalf("lwm2m fragment %v (%v), want the last registration's", mo.Fragments["lwm2m"], err)
	}
	if n := len(eventsOf(t, st, "acme", id, EventRegistration)); n != 1 || state.Events() != 1 {
		t.Errorf("%d registration events stored (writer counted %d), want 1", n, state.Events())
	}
	if n := refused.Count(CauseRegistrationCoalesced); n != 99 {
		t.Errorf("%d held back, want 99", n)
	}
	if n := strings.Count(logs.String(), "cause="+CauseRegistrationCoalesced); n != 1 {
		t.Errorf("logged %d times, want once", n)
	}

	reg := lwm2m.Registration{Endpoint: "flooded", Tenant: "acme", DeviceID: id, ID: "reg-100"}
	if err := h.Persist(ctx, reg, lwm2m.ChangeDeregister); err != nil {
		t.Fatal(err)
	}
	if err := h.Persist(ctx, reg, lwm2m.ChangeRegister); err != nil {
		t.Fatal(err)
	}
	if n := len(eventsOf(t, st, "acme", id, EventRegistration)); n != 2 {
		t.Errorf("%d registration events after a de-registration and a Register, want 2", n)
	}
}

// On the plain port an unknown endpoint and a PSK device's endpoint are
// refused alike, however often: the PSK device gets one security event
// per interval, queued, and each cause is counted and logged once.
func TestAuthorizeRefusalsAlikeAndCoalesced(t *testing.T) {
	h, st, _, refused, logs := hooksWithState(t, time.Hour)
	ctx := context.Background()
	id, err := st.CreateDevice(ctx, "acme", "psk-dev")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SaveDeviceRegistration(ctx, "acme", id, store.DeviceRegistration{Params: map[string]any{"securityMode": "PSK"}, PSKKey: []byte{1}}); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		peer := &net.UDPAddr{IP: net.IPv4(127, 0, 0, byte(i+1)), Port: 5683}
		if _, err := h.Authorize(ctx, lwm2m.AuthRequest{Endpoint: "psk-dev", Peer: peer}); !errors.Is(err, ErrDTLSRequired) {
			t.Fatalf("psk-dev on the plain port: %v", err)
		}
		if _, err := h.Authorize(ctx, lwm2m.AuthRequest{Endpoint: "nobody", Peer: peer}); !errors.Is(err, ErrUnknownEndpoint) {
			t.Fatalf("unknown endpoint: %v", err)
		}
	}
	testbound.Until(t, 5*time.Second, "the security event", func() bool {
		return len(eventsOf(t, st, "acme", id, EventSecurity)) > 0
	})
	if n := len(eventsOf(t, st, "acme", id, EventSecurity)); n != 1 {
		t.Errorf("%d security events for 50 attempts, want 1", n)
	}
	for cause, want := range map[string]uint64{CausePSKWithoutDTLS: 50, CauseUnknownEndpoint: 50, CauseSecurityCoalesced: 49} {
		if n := refused.Count(cause); n != want {
			t.Errorf("%s counted %d, want %d", cause, n, want)
		}
		if n := strings.Count(logs.String(), "cause="+cause); n != 1 {
			t.Errorf("%s logged %d times, want once", cause, n)
		}
	}
}
