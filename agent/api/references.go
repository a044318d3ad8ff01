package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	neturl "net/url"
	"strings"

	"github.com/lwm2m-agent/lwm2m-agent/agent/render"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

func (a *API) referenceRoutes(auth func(string, func(http.ResponseWriter, *http.Request, store.User))) {
	for _, kind := range store.ReferenceKinds {
		base := "/inventory/managedObjects/{id}/" + kind
		auth("POST "+base, func(w http.ResponseWriter, r *http.Request, u store.User) { a.addReferences(w, r, u, kind) })
		auth("GET "+base, func(w http.ResponseWriter, r *http.Request, u store.User) { a.listReferences(w, r, u, kind) })
		auth("DELETE "+base+"/{child}", func(w http.ResponseWriter, r *http.Request, u store.User) { a.removeReference(w, r, u, kind) })
	}
}

// refJSON is a reference as Cumulocity shows it: the child, and the
// reference's own link.
func refJSON(r *http.Request, kind, parent string, child map[string]any) map[string]any {
	return render.Reference(baseURL(r), kind, parent, child)
}

// refBody is a reference to add: {"managedObject":{"id"}}, or a
// collection of them {"references":[...]}.
type refBody struct {
	ManagedObject *struct {
		ID json.Number `json:"id"`
	} `json:"managedObject"`
	References []refBody `json:"references"`
}

func (b refBody) ids() []string {
	var out []string
	if b.ManagedObject != nil {
		out = append(out, b.ManagedObject.ID.String())
	}
	for _, r := range b.References {
		out = append(out, r.ids()...)
	}
	return out
}

// addReferences adds one child (201 with the reference) or a collection
// of them (201 with the collection), all checked before any is added.
func (a *API) addReferences(w http.ResponseWriter, r *http.Request, u store.User, kind string) {
	var body refBody
	if !a.readJSON(w, r, "inventory", &body) {
		return
	}
	ids := body.ids()
	parent := r.PathValue("id")
	if len(ids) == 0 || len(ids) > store.MaxPageSize {
		writeError(w, r, http.StatusUnprocessableEntity, "inventory/unprocessable",
			fmt.Sprintf(`the body needs {"managedObject":{"id":"..."}} or {"references":[{"managedObject":{"id":"..."}}, ...]} (at most %d)`, store.MaxPageSize))
		return
	}
	ctx := r.Context()
	if _, err := a.cfg.Store.GetManagedObject(ctx, u.Tenant, parent); err != nil {
		a.storeError(w, r, "inventory", err)
		return
	}
	children := make([]store.ManagedObject, len(ids))
	for i, id := range ids {
		mo, err := a.cfg.Store.GetManagedObject(ctx, u.Tenant, id)
		if errors.Is(err, store.ErrNotFound) {
			noChild(w, r, id)
			return
		}
		if err != nil {
			a.storeError(w, r, "inventory", err)
			return
		}
		if id == parent {
			writeError(w, r, http.StatusUnprocessableEntity, "inventory/unprocessable", fmt.Sprintf("managed object %s cannot be its own child", id))
			return
		}
		children[i] = mo
	}
	refs := make([]map[string]any, len(ids))
	for i, id := range ids {
		err := a.cfg.Store.AddChildReference(ctx, u.Tenant, kind, parent, id)
		if errors.Is(err, store.ErrNotFound) {
			// deleted meanwhile
			noChild(w, r, id)
			return
		}
		if err != nil {
			a.storeError(w, r, "inventory", err)
			return
		}
		refs[i] = refJSON(r, kind, parent, moJSON(r, children[i]))
	}
	if body.ManagedObject != nil && len(body.References) == 0 {
		writeJSON(w, http.StatusCreated, refs[0])
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"references": refs, "self": self(r, r.URL.Path)})
}

// noChild refuses a reference to an object the tenant does not have.
func noChild(w http.ResponseWriter, r *http.Request, id string) {
	writeError(w, r, http.StatusUnprocessableEntity, "inventory/unprocessable", fmt.Sprintf("managed object %q does not exist", id))
}

func (a *API) listReferences(w http.ResponseWriter, r *http.Request, u store.User, kind string) {
	p, ok := paging(w, r, "inventory")
	if !ok {
		return
	}
	parent := r.PathValue("id")
	if _, err := a.cfg.Store.GetManagedObject(r.Context(), u.Tenant, parent); err != nil {
		a.storeError(w, r, "inventory", err)
		return
	}
	mos, total, err := a.cfg.Store.ListChildren(r.Context(), u.Tenant, kind, parent, p)
	answerList(a, w, r, "inventory", "references", p, mos, total, err, func(r *http.Request, mo store.ManagedObject) map[string]any {
		return refJSON(r, kind, parent, moJSON(r, mo))
	})
}

func (a *API) removeReference(w http.ResponseWriter, r *http.Request, u store.User, kind string) {
	if err := a.cfg.Store.RemoveChildReference(r.Context(), u.Tenant, kind, r.PathValue("id"), r.PathValue("child")); err != nil {
		a.storeError(w, r, "inventory", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// withReferences adds to an object's answer its references as
// Cumulocity shows them (render.WithReferences).
func (a *API) withReferences(ctx context.Context, r *http.Request, tenant string, out map[string]any) error {
	return render.WithReferences(ctx, baseURL(r), a.cfg.Store, tenant, out)
}

// answerObject writes an object with its references.
func (a *API) answerObject(w http.ResponseWriter, r *http.Request, u store.User, code int, mo store.ManagedObject) {
	out := moJSON(r, mo)
	if err := a.withReferences(r.Context(), r, u.Tenant, out); err != nil {
		a.storeError(w, r, "inventory", err)
		return
	}
	writeJSON(w, code, out)
}

// firmwareProblem says what a firmware repository object lacks, "" when
// nothing: a firmware (c8y_Firmware) needs a name, a version
// (c8y_FirmwareBinary) its c8y_Firmware version and url, the url an
// agent binary (binary:<id>, or .../inventory/binaries/<id>) or an
// external http, https, coap or coaps URL. typ is the object's type
// after the change, frags what the change sets; an update that leaves
// c8y_Firmware as it is keeps it.
func (a *API) firmwareProblem(ctx context.Context, tenant, typ, name string, creating, nameSet bool, frags map[string]any) (string, error) {
	switch typ {
	case store.FirmwareType:
		if nameSet && strings.TrimSpace(name) == "" {
			return "a firmware (type c8y_Firmware) needs a name", nil
		}
	case store.FirmwareBinaryType:
		v, present := frags[store.FirmwareType]
		if !present && !creating {
			return "", nil
		}
		fw, _ := v.(map[string]any)
		for _, k := range []string{"version", "url"} {
			if s, _ := fw[k].(string); strings.TrimSpace(s) == "" {
				return "a firmware version (type c8y_FirmwareBinary) needs c8y_Firmware." + k + " (a string)", nil
			}
		}
		url, _ := fw["url"].(string)
		return a.firmwareURLRefused(ctx, tenant, url)
	}
	return "", nil
}

// firmwareURLRefused says why a firmware version's url is refused, ""
// when it is not; a binary of the agent must exist in the tenant.
func (a *API) firmwareURLRefused(ctx context.Context, tenant, raw string) (string, error) {
	binID := ""
	if id, ok := strings.CutPrefix(raw, "binary:"); ok {
		binID = id
	} else {
		u, err := neturl.Parse(raw)
		if err != nil || u.Host == "" {
			return fmt.Sprintf("c8y_Firmware.url %q is neither binary:<id> nor an absolute URL", raw), nil
		}
		switch strings.ToLower(u.Scheme) {
		case "http", "https", "coap", "coaps":
		default:
			return fmt.Sprintf("c8y_Firmware.url %q: scheme %q is none of http, https, coap, coaps", raw, u.Scheme), nil
		}
		return "", nil
	}
	if binID == "" {
		return "c8y_Firmware.url binary: names no binary", nil
	}
	if _, err := a.cfg.Store.GetBinary(ctx, tenant, binID); errors.Is(err, store.ErrNotFound) {
		return fmt.Sprintf("c8y_Firmware.url %q: no binary %s in this tenant", raw, binID), nil
	} else if err != nil {
		return "", err
	}
	return "", nil
}
