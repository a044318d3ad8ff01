package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"

	"github.com/lwm2m-agent/lwm2m-agent/agent/registry"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// bootstrapJSON is the answer of GET and PUT /lwm2m/devices/{id}/bootstrap.
// The keys and credentials are write-only: they are not in Params and so
// never in an answer.
func bootstrapJSON(r *http.Request, id string, params map[string]any) map[string]any {
	out := make(map[string]any, len(params)+2)
	maps.Copy(out, params)
	out["deviceId"] = id
	out["self"] = self(r, "/lwm2m/devices/"+escape(id)+"/bootstrap")
	return out
}

// getBootstrap answers a device's registration and bootstrap parameters.
func (a *API) getBootstrap(w http.ResponseWriter, r *http.Request, u store.User) {
	id := r.PathValue("id")
	if _, err := a.cfg.Store.GetManagedObject(r.Context(), u.Tenant, id); err != nil {
		a.storeError(w, r, "lwm2m", err)
		return
	}
	reg, err := a.cfg.Store.DeviceRegistrationOf(r.Context(), u.Tenant, id)
	if err != nil {
		a.storeError(w, r, "lwm2m", err)
		return
	}
	writeJSON(w, http.StatusOK, bootstrapJSON(r, id, reg.Params))
}

// putBootstrap changes a device's registration and bootstrap parameters:
// the members given replace the stored ones, null removes one, the others
// keep their value; the result is checked whole with the rules of a line
// of the bulk registration file, and stored only if it passes. A device
// without parameters yet (an auto-registered one) gets them here.
func (a *API) putBootstrap(w http.ResponseWriter, r *http.Request, u store.User) {
	ctx, st, id := r.Context(), a.cfg.Store, r.PathValue("id")
	mo, err := st.GetManagedObject(ctx, u.Tenant, id)
	if err != nil {
		a.storeError(w, r, "lwm2m", err)
		return
	}
	var body map[string]any
	if !a.readJSON(w, r, "lwm2m", &body) {
		return
	}
	if body == nil {
		writeError(w, r, http.StatusBadRequest, "lwm2m/badRequest", "the body must be a JSON object of bootstrap parameters")
		return
	}
	// GET answers these two; a client that sends back what it read
	// changes nothing with them.
	if v, ok := body["deviceId"]; ok {
		if s, _ := v.(string); s != id {
			writeError(w, r, http.StatusUnprocessableEntity, "lwm2m/unprocessable",
				fmt.Sprintf("deviceId %v is not this device (%s); it cannot be changed", v, id))
			return
		}
		delete(body, "deviceId")
	}
	delete(body, "self")

	reg, err := st.DeviceRegistrationOf(ctx, u.Tenant, id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		a.internal(w, r, err)
		return
	}
	endpoint, err := a.deviceEndpoint(ctx, u.Tenant, id, mo, reg.Params)
	if err != nil {
		a.internal(w, r, err)
		return
	}
	if endpoint == "" {
		writeError(w, r, http.StatusUnprocessableEntity, "lwm2m/unprocessable",
			"the device has no LwM2M endpoint: register it by bulk registration or let it register first")
		return
	}
	if v, ok := body[registry.ParamEndpointID]; ok && v != endpoint {
		writeError(w, r, http.StatusUnprocessableEntity, "lwm2m/unprocessable", fmt.Sprintf(
			"endpointId cannot change (it is %q): the endpoint is the device's identity; register a new device for another endpoint", endpoint))
		return
	}
	base := registry.WithKeys(reg.Params, reg.PSKKey, reg.BootstrapPSKKey)
	base[registry.ParamEndpointID] = endpoint
	d, err := registry.ParseParams(registry.Merge(base, numbersIn(body)), a.registryOptions())
	if err != nil {
		writeError(w, r, http.StatusUnprocessableEntity, "lwm2m/unprocessable", "invalid bootstrap parameters: "+err.Error())
		return
	}

	owns, err := a.ownsEndpoint(ctx, u.Tenant, id, endpoint)
	if err != nil {
		a.internal(w, r, err)
		return
	}
	if owns {
		if err := a.checkPSKIdentities(ctx, u.Tenant, id, pskIdentities(d.Params())); err != nil {
			a.pskError(w, r, err)
			return
		}
	}
	params := d.Params()
	err = a.changeRegistration(ctx, u.Tenant, id, endpoint, reg, store.DeviceRegistration{
		Params: params, PSKKey: d.PSKKey, BootstrapPSKKey: d.BootstrapPSKKey, CredentialsHash: reg.CredentialsHash,
	}, owns, nil)
	if err != nil {
		a.pskError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, bootstrapJSON(r, id, params))
}

// changeRegistration replaces the registration record prev of the
// tenant's device with next, and the PSK identities prev names with those
// next names (binding them only when bind is set: the device holds its
// endpoint). The order keeps the device with one complete record at every
// moment, across a crash too: the new identities are bound first (they
// open no session while the record names others, see session.Keys), then
// between runs (the other writes of a change, nil for none), then the
// record is replaced in one write that also names the identities it
// gives up, which are released last (the store's start releases them
// after a crash). A failure before the record is written unbinds what
// was bound. When the device's security mode, key or identity changed,
// its live registrations, made under the old ones, end.
func (a *API) changeRegistration(ctx context.Context, tenant, id, endpoint string, prev, next store.DeviceRegistration, bind bool, between func() error) error {
	st := a.cfg.Store
	if len(prev.Release) > 0 {
		// what an earlier change cut short gave up goes first
		if err := st.ReleasePendingIdentities(ctx, tenant, id); err != nil {
			return err
		}
	}
	old, nextIDs := pskIdentities(prev.Params), pskIdentities(next.Params)
	bound, err := a.bindPSKIdentities(ctx, tenant, id, old, nextIDs, bind)
	if err != nil {
		return err
	}
	unbind := func(err error) error {
		for _, kind := range bound {
			if uerr := st.UnbindPSKIdentity(context.WithoutCancel(ctx), kind, nextIDs[kind], tenant, id); uerr != nil {
				a.log.Error("unbind psk identity of a change that failed", "tenant", tenant, "device", id, "kind", kind, "err", uerr)
			}
		}
		return err
	}
	if between != nil {
		if err := between(); err != nil {
			return unbind(err)
		}
	}
	next.Release = nil
	for kind, ident := range old {
		if ident != nextIDs[kind] {
			if next.Release == nil {
				next.Release = map[string]string{}
			}
			next.Release[kind] = ident
		}
	}
	if err := st.SaveDeviceRegistration(ctx, tenant, id, next); err != nil {
		return unbind(err)
	}
	if securityChanged(prev, next) && a.cfg.Security != nil {
		a.cfg.Security.SecurityChanged(ctx, tenant, id, endpoint, old[store.PSKServer])
	}
	if len(next.Release) > 0 {
		if err := st.ReleasePendingIdentities(ctx, tenant, id); err != nil {
			return err
		}
	}
	return nil
}

// securityChanged tells whether a device registered under prev may no
// longer be registered under next: its security mode, its key or its
// identity changed.
func securityChanged(prev, next store.DeviceRegistration) bool {
	return prev.SecurityMode() != next.SecurityMode() || !bytes.Equal(prev.PSKKey, next.PSKKey) ||
		prev.PSKIdentity(store.PSKServer) != next.PSKIdentity(store.PSKServer)
}

func (a *API) pskError(w http.ResponseWriter, r *http.Request, err error) {
	var pc *pskConflictError
	if errors.As(err, &pc) {
		writeError(w, r, http.StatusConflict, "lwm2m/Duplicate", err.Error()+"; nothing was changed")
		return
	}
	a.internal(w, r, err)
}

// numbersIn converts the json.Number members of a body (read with
// UseNumber) into numbers, leaving text and nulls as they are.
func numbersIn(body map[string]any) map[string]any {
	out := make(map[string]any, len(body))
	for k, v := range body {
		out[k] = store.JSONNumbers(v)
	}
	return out
}

// deviceEndpoint is the LwM2M endpoint of a device: from its parameters,
// else its c8y_Id external ID, else its live registration; "" when it has
// none.
func (a *API) deviceEndpoint(ctx context.Context, tenant, id string, mo store.ManagedObject, params map[string]any) (string, error) {
	if ep, _ := params[registry.ParamEndpointID].(string); ep != "" {
		return ep, nil
	}
	xs, err := a.cfg.Store.ExternalIDsOf(ctx, tenant, id)
	if err != nil {
		return "", err
	}
	for _, x := range xs {
		if x.Type == store.ExternalIDDevice {
			return x.ExternalID, nil
		}
	}
	if lw, ok := mo.Fragments["lwm2m"].(map[string]any); ok {
		ep, _ := lw["endpoint"].(string)
		return ep, nil
	}
	return "", nil
}

// ownsEndpoint reports whether the endpoint is bound to this device (and
// not to another tenant's, which registered it first).
func (a *API) ownsEndpoint(ctx context.Context, tenant, id, endpoint string) (bool, error) {
	t, did, err := a.cfg.Store.DeviceByEndpoint(ctx, endpoint)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil && t == tenant && did == id, err
}

// pskParam names each kind of PSK identity as the parameters do.
var pskParam = map[string]string{store.PSKServer: registry.ParamLwM2MPSKID, store.PSKBootstrap: registry.ParamBootstrapPSKID}

// pskIdentities are the PSK identities that parameters name, by kind.
func pskIdentities(params map[string]any) map[string]string {
	out := make(map[string]string, 2)
	for kind, name := range pskParam {
		if s, _ := params[name].(string); s != "" {
			out[kind] = s
		}
	}
	return out
}

// pskConflictError is an identity another device holds.
type pskConflictError struct{ param, identity string }

func (e *pskConflictError) Error() string {
	return fmt.Sprintf("%s %q belongs to another device", e.param, e.identity)
}

func (e *pskConflictError) Unwrap() error { return store.ErrConflict }

// checkPSKIdentities reports, without changing anything, an identity of
// next that a device other than id holds (id "" for a device not yet
// created: any holder).
func (a *API) checkPSKIdentities(ctx context.Context, tenant, id string, next map[string]string) error {
	for _, kind := range []string{store.PSKServer, store.PSKBootstrap} {
		ident := next[kind]
		if ident == "" {
			continue
		}
		t, did, err := a.cfg.Store.DeviceByPSKIdentity(ctx, kind, ident)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if id == "" || t != tenant || did != id {
			return &pskConflictError{param: pskParam[kind], identity: ident}
		}
	}
	return nil
}

// bindPSKIdentities binds the identities of next that prev does not name
// (when bind is set) and returns their kinds; a failed binding undoes the
// others of this call.
func (a *API) bindPSKIdentities(ctx context.Context, tenant, id string, prev, next map[string]string, bind bool) ([]string, error) {
	if !bind {
		return nil, nil
	}
	st := a.cfg.Store
	var bound []string
	for _, kind := range []string{store.PSKServer, store.PSKBootstrap} {
		ident := next[kind]
		if ident == "" || prev[kind] == ident {
			continue
		}
		if err := st.BindPSKIdentity(ctx, kind, ident, tenant, id); err != nil {
			for _, k := range bound {
				_ = st.UnbindPSKIdentity(context.WithoutCancel(ctx), k, next[k], tenant, id)
			}
			if errors.Is(err, store.ErrConflict) {
				return nil, &pskConflictError{param: pskParam[kind], identity: ident}
			}
			return nil, err
		}
		bound = append(bound, kind)
	}
	return bound, nil
}

// awakeTimeChange checks a managed object update's
// awakeTimeRegistrationParameter with the rule of the bulk file and
// returns the registration that stores it, and the value for the
// fragment; nothing is written. ok is false after an answered error.
func (a *API) awakeTimeChange(w http.ResponseWriter, r *http.Request, tenant, id string, v any) (reg store.DeviceRegistration, value any, ok bool) {
	ctx := r.Context()
	mo, err := a.cfg.Store.GetManagedObject(ctx, tenant, id)
	if err != nil {
		a.storeError(w, r, "inventory", err)
		return reg, nil, false
	}
	if v != nil {
		d, err := registry.CheckParams(map[string]any{registry.ParamAwakeTime: v}, a.registryOptions())
		if err != nil || d.AwakeTime == nil {
			writeError(w, r, http.StatusUnprocessableEntity, "inventory/unprocessable", fmt.Sprintf(
				"%v; it is the awake time in milliseconds, a whole number of 0 or more (0: always online)", err))
			return reg, nil, false
		}
		value = d.AwakeTime.Milliseconds()
	}
	reg, err = a.cfg.Store.DeviceRegistrationOf(ctx, tenant, id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		a.internal(w, r, err)
		return reg, nil, false
	}
	params := maps.Clone(reg.Params)
	if params == nil {
		params = map[string]any{}
		ep, err := a.deviceEndpoint(ctx, tenant, id, mo, nil)
		if err != nil {
			a.internal(w, r, err)
			return reg, nil, false
		}
		if ep != "" {
			params[registry.ParamEndpointID] = ep
		}
	}
	if value == nil {
		delete(params, registry.ParamAwakeTime)
	} else {
		params[registry.ParamAwakeTime] = value
	}
	reg.Params = params
	return reg, value, true
}
