package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/registry"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"golang.org/x/crypto/bcrypt"
)

// MaxBulkBody bounds a bulk registration file.
const MaxBulkBody = 64 << 20

const bulkPath = "/devicecontrol/bulkNewDeviceRequests"

// bulkFailure is one entry of failedCreationList.
type bulkFailure struct {
	DeviceID      string `json:"deviceId"`
	Line          int    `json:"line"`
	FailureReason string `json:"failureReason"`
}

// bulkRegister creates or updates the devices of a registration CSV:
// multipart form field "file", or the CSV as the body. Valid lines are
// stored even when others fail; a failed line writes nothing.
func (a *API) bulkRegister(w http.ResponseWriter, r *http.Request, u store.User) {
	body, closeBody, ok := bulkFile(w, r)
	if !ok {
		return
	}
	defer closeBody()
	res, err := registry.ParseCSV(body, registry.Options{MaxBytes: MaxBulkBody})
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, r, http.StatusRequestEntityTooLarge, "devicecontrol/tooLarge", fmt.Sprintf("the file is larger than %d bytes", MaxBulkBody))
			return
		}
		writeError(w, r, http.StatusUnprocessableEntity, "devicecontrol/unprocessable", err.Error())
		return
	}
	failed := make([]bulkFailure, 0, len(res.Failed))
	for _, f := range res.Failed {
		failed = append(failed, bulkFailure{DeviceID: f.DeviceID, Line: f.Line, FailureReason: f.Reason()})
	}
	created, updated := 0, 0
	for _, d := range res.Devices {
		isNew, err := a.importDevice(r.Context(), u.Tenant, d)
		if err != nil {
			a.log.Error("bulk registration", "tenant", u.Tenant, "device", d.ID, "line", d.Line, "err", err)
			failed = append(failed, bulkFailure{DeviceID: d.ID, Line: d.Line, FailureReason: "not stored: " + err.Error()})
			continue
		}
		if isNew {
			created++
		} else {
			updated++
		}
	}
	writeJSON(w, http.StatusCreated, map[string]any{
		"numberOfAll":              len(res.Devices) + len(res.Failed),
		"numberOfCreated":          created,
		"numberOfFailed":           len(failed),
		"numberOfSuccessful":       created + updated,
		"credentialUpdatedDevices": []string{},
		"failedCreationList":       failed,
	})
}

// bulkFile finds the CSV in the request.
func bulkFile(w http.ResponseWriter, r *http.Request) (io.Reader, func(), bool) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case mt == "multipart/form-data":
		if err := r.ParseMultipartForm(8 << 20); err != nil {
			writeError(w, r, http.StatusBadRequest, "devicecontrol/badRequest", "the multipart form cannot be read: "+err.Error())
			return nil, nil, false
		}
		f, _, err := r.FormFile("file")
		if err != nil {
			writeError(w, r, http.StatusBadRequest, "devicecontrol/badRequest", `the multipart form has no field "file"`)
			return nil, nil, false
		}
		return f, func() { _ = f.Close(); _ = r.MultipartForm.RemoveAll() }, true
	case mt == "text/csv" || mt == "text/plain" || mt == "application/octet-stream":
		return r.Body, func() {}, true
	}
	writeError(w, r, http.StatusUnsupportedMediaType, "devicecontrol/unsupportedMediaType",
		"send the CSV as multipart form field \"file\" or as a text/csv body")
	return nil, nil, false
}

// importDevice creates the device of a CSV line, or updates the tenant's
// device with that ID, and reports whether it was created.
func (a *API) importDevice(ctx context.Context, tenant string, d registry.Device) (bool, error) {
	st := a.cfg.Store
	id, created := "", false
	x, err := st.GetExternalID(ctx, tenant, store.ExternalIDDevice, d.ID)
	switch {
	case err == nil:
		id = x.ManagedObjectID
	case errors.Is(err, store.ErrNotFound):
		id, err = st.CreateDevice(ctx, tenant, d.EndpointID)
		if err != nil && !errors.Is(err, store.ErrConflict) {
			return false, err
		}
		created = err == nil
	default:
		return false, err
	}
	ops := []any{}
	if d.Shell {
		ops = append(ops, "c8y_Command")
	}
	fields := map[string]any{
		"name":                    firstNonEmpty(d.Name, d.ID),
		"type":                    d.Type,
		"c8y_IsDevice":            map[string]any{},
		"c8y_SupportedOperations": ops,
	}
	if d.GenericUI != "" {
		var ui any
		if err := json.Unmarshal([]byte(d.GenericUI), &ui); err == nil {
			fields["c8y_GenericUi"] = ui
		}
	}
	if d.Agent {
		fields["com_cumulocity_model_Agent"] = map[string]any{}
	} else {
		fields["com_cumulocity_model_Agent"] = nil
	}
	if _, err := st.UpdateManagedObject(ctx, tenant, id, fields); err != nil {
		return created, err
	}
	for typ, ext := range map[string]string{"c8y_Lwm2mPskId": d.ExternalLwM2MPSKID, "c8y_BootstrapPskId": d.ExternalBootstrapPSKID} {
		if ext == "" {
			continue
		}
		err := st.CreateExternalID(ctx, tenant, store.ExternalID{Type: typ, ExternalID: ext, ManagedObjectID: id})
		if errors.Is(err, store.ErrConflict) {
			if cur, err2 := st.GetExternalID(ctx, tenant, typ, ext); err2 == nil && cur.ManagedObjectID == id {
				err = nil
			} else {
				err = fmt.Errorf("%s %q belongs to another device", typ, ext)
			}
		}
		if err != nil {
			return created, err
		}
	}
	if err := a.flagDuplicate(ctx, tenant, id, d.EndpointID); err != nil {
		return created, err
	}
	if err := a.bindPSKIdentities(ctx, tenant, id, d); err != nil {
		return created, err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(d.Credentials), bcrypt.DefaultCost)
	if err != nil {
		return created, fmt.Errorf("hash credentials: %w", err)
	}
	return created, st.SaveDeviceRegistration(ctx, tenant, id, store.DeviceRegistration{
		Params: d.Params(), PSKKey: d.PSKKey, BootstrapPSKKey: d.BootstrapPSKKey, CredentialsHash: hash,
	})
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if strings.TrimSpace(v) != "" {
			return v
		}
	}
	return ""
}

// DuplicateEndpointAlarm is raised on a device whose endpoint another
// tenant registered first: that tenant's device is the one the LwM2M
// client binds to, so this one never connects.
const DuplicateEndpointAlarm = "c8y_LWM2MDuplicateEndpoint"

func (a *API) flagDuplicate(ctx context.Context, tenant, id, endpoint string) error {
	owner, _, err := a.cfg.Store.DeviceByEndpoint(ctx, endpoint)
	if err != nil || owner == tenant {
		if errors.Is(err, store.ErrNotFound) {
			err = nil
		}
		return err
	}
	// the other tenant is not named: tenants never learn of each other
	_, err = a.cfg.Store.RaiseAlarm(ctx, tenant, store.Alarm{
		Source: id, Type: DuplicateEndpointAlarm, Severity: "MAJOR", Status: "ACTIVE", Time: time.Now().UTC(),
		Text: fmt.Sprintf("A device with endpoint %q already exists; this device will not be connected", endpoint),
	})
	return err
}

// getBootstrap answers a device's registration and bootstrap parameters.
// The keys and credentials are write-only: they are not in Params and so
// never in an answer.
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
	out := make(map[string]any, len(reg.Params)+2)
	for k, v := range reg.Params {
		out[k] = v
	}
	out["deviceId"] = id
	out["self"] = self(r, r.URL.Path)
	writeJSON(w, http.StatusOK, out)
}

// bindPSKIdentities makes the line's PSK identities name the device in
// DTLS handshakes, and releases identities an earlier import gave it. A
// duplicate (its endpoint bound in another tenant) binds nothing: it never
// connects.
func (a *API) bindPSKIdentities(ctx context.Context, tenant, id string, d registry.Device) error {
	st := a.cfg.Store
	idents := map[string]string{store.PSKServer: d.PSKID, store.PSKBootstrap: d.BootstrapPSKID}
	paramOf := map[string]string{store.PSKServer: "lwm2mPskId", store.PSKBootstrap: "bootstrapPskId"}
	prev, err := st.DeviceRegistrationOf(ctx, tenant, id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	for kind, ident := range idents {
		if old, _ := prev.Params[paramOf[kind]].(string); old != "" && old != ident {
			if err := st.UnbindPSKIdentity(ctx, kind, old, tenant, id); err != nil {
				return err
			}
		}
	}
	owner, ownerID, err := st.DeviceByEndpoint(ctx, d.EndpointID)
	if err != nil || owner != tenant || ownerID != id {
		return nil
	}
	for kind, ident := range idents {
		if ident == "" {
			continue
		}
		if err := st.BindPSKIdentity(ctx, kind, ident, tenant, id); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return fmt.Errorf("%s PSK identity %q belongs to another device", kind, ident)
			}
			return err
		}
	}
	return nil
}
