package api

import (
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

	prev, next := pskIdentities(reg.Params), pskIdentities(d.Params())
	owns, err := a.ownsEndpoint(ctx, u.Tenant, id, endpoint)
	if err != nil {
		a.internal(w, r, err)
		return
	}
	if owns {
		if err := a.checkPSKIdentities(ctx, u.Tenant, id, next); err != nil {
			a.pskError(w, r, err)
			return
		}
	}
	if err := a.rebindPSKIdentities(ctx, u.Tenant, id, prev, next, owns); err != nil {
		a.pskError(w, r, err)
		return
	}
	params := d.Params()
	err = st.SaveDeviceRegistration(ctx, u.Tenant, id, store.DeviceRegistration{
		Params: params, PSKKey: d.PSKKey, BootstrapPSKKey: d.BootstrapPSKKey, CredentialsHash: reg.CredentialsHash,
	})
	if err != nil {
		// the identities go back to what the stored parameters say
		if rerr := a.rebindPSKIdentities(context.WithoutCancel(ctx), u.Tenant, id, next, prev, owns); rerr != nil {
			a.log.Error("restore psk identities", "tenant", u.Tenant, "device", id, "err", rerr)
		}
		a.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, bootstrapJSON(r, id, params))
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
		out[k] = numbers(v)
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

// rebindPSKIdentities makes next's identities name the device in DTLS
// handshakes (when bind is set: the device owns its endpoint; a duplicate
// of another tenant's never connects and binds nothing), then releases
// those of prev it no longer has. New identities are bound before old ones
// are released, and a failed binding undoes the others of this call, so
// that an error leaves the bindings as they were.
func (a *API) rebindPSKIdentities(ctx context.Context, tenant, id string, prev, next map[string]string, bind bool) error {
	st := a.cfg.Store
	if bind {
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
					return &pskConflictError{param: pskParam[kind], identity: ident}
				}
				return err
			}
			bound = append(bound, kind)
		}
	}
	for kind, old := range prev {
		if old != "" && old != next[kind] {
			if err := st.UnbindPSKIdentity(ctx, kind, old, tenant, id); err != nil {
				return err
			}
		}
	}
	return nil
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
