package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/lwm2m-agent/lwm2m-agent/agent/coalesce"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// StoreHooks are the Hooks of the agent: accounts are the devices'
// registrations in the store, and events go to the owning tenant's
// device.
type StoreHooks struct {
	store store.Engine
	log   *slog.Logger
}

var _ Hooks = (*StoreHooks)(nil)

// NewStoreHooks returns hooks over st; log may be nil.
func NewStoreHooks(st store.Engine, log *slog.Logger) *StoreHooks {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &StoreHooks{store: st, log: log.With("component", "bootstrap")}
}

// AccountByEndpoint finds the device by its endpoint name. An unknown
// endpoint costs the same reads as a known one, so that the time of the
// answer does not tell which endpoints exist.
func (h *StoreHooks) AccountByEndpoint(ctx context.Context, endpoint string) (Account, error) {
	tenant, id, err := h.store.DeviceByEndpoint(ctx, endpoint)
	if errors.Is(err, store.ErrNotFound) {
		// keyed by the endpoint as the LwM2M server's Authorize keys it,
		// so that a store cache answers it exactly when it answers the
		// endpoint's lookup
		_, _ = h.store.DeviceRegistrationOf(ctx, "", "endpoint/"+endpoint)
		return Account{}, fmt.Errorf("endpoint %q: %w", endpoint, ErrUnknownEndpoint)
	}
	if err != nil {
		return Account{}, fmt.Errorf("find endpoint %q: %w", endpoint, err)
	}
	return h.account(ctx, tenant, id, endpoint)
}

// AccountByIdentity finds the device that holds a bootstrap PSK identity.
func (h *StoreHooks) AccountByIdentity(ctx context.Context, identity string) (Account, error) {
	tenant, id, err := h.store.DeviceByPSKIdentity(ctx, store.PSKBootstrap, identity)
	if errors.Is(err, store.ErrNotFound) {
		return Account{}, fmt.Errorf("bootstrap psk identity %q: %w", identity, ErrUnknownEndpoint)
	}
	if err != nil {
		return Account{}, fmt.Errorf("find bootstrap psk identity %q: %w", identity, err)
	}
	return h.account(ctx, tenant, id, "")
}

// account reads the device's registration. The endpoint is the
// registration's endpointId, or the one it was found by.
func (h *StoreHooks) account(ctx context.Context, tenant, id, endpoint string) (Account, error) {
	reg, err := h.store.DeviceRegistrationOf(ctx, tenant, id)
	if errors.Is(err, store.ErrNotFound) {
		return Account{Tenant: tenant, DeviceID: id, Endpoint: endpoint},
			fmt.Errorf("device %s: %w: no registration parameters", id, ErrIncomplete)
	}
	if err != nil {
		return Account{}, fmt.Errorf("read bootstrap account of %s: %w", id, err)
	}
	if ep, _ := reg.Params["endpointId"].(string); ep != "" {
		endpoint = ep
	}
	acct := Account{Tenant: tenant, DeviceID: id, Endpoint: endpoint, PSKKey: reg.PSKKey, BootstrapPSKKey: reg.BootstrapPSKKey}
	if acct.Params, err = ParseParams(reg.Params); err != nil {
		return acct, fmt.Errorf("device %s: %w", id, err)
	}
	return acct, nil
}

// Event stores ev on the account's device, in its tenant.
func (h *StoreHooks) Event(ctx context.Context, acct Account, ev Event) {
	frag := map[string]any{"step": ev.Step}
	for k, v := range map[string]string{
		"path": ev.Path, "code": ev.Code, "reason": ev.Reason, "transport": ev.Transport,
		"lwm2mVersion": ev.Version, "contentFormat": ev.Format, "endpoint": acct.Endpoint,
	} {
		if v != "" {
			frag[k] = v
		}
	}
	frags := map[string]any{"c8y_LWM2MBootstrap": frag}
	if ev.Held.Count > 0 {
		frags[coalesce.Fragment] = ev.Held.Fragment()
	}
	_, err := h.store.CreateEvent(ctx, acct.Tenant, store.Event{
		Source: acct.DeviceID, Type: ev.Kind.Type(), Text: ev.Text, Time: ev.Time, Fragments: frags,
	})
	if err != nil {
		h.log.Error("cannot store bootstrap event", "endpoint", acct.Endpoint, "device", acct.DeviceID, "type", ev.Kind.Type(), "err", err)
	}
}
