package api

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
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
	res, err := registry.ParseCSV(body, a.registryOptions())
	if err != nil {
		var mbe *http.MaxBytesError
		var le *registry.LimitError
		switch {
		case errors.As(err, &mbe):
			writeError(w, r, http.StatusRequestEntityTooLarge, "devicecontrol/tooLarge", fmt.Sprintf("the file is larger than %d bytes", MaxBulkBody))
		case errors.As(err, &le):
			code := http.StatusUnprocessableEntity
			if le.Cause == registry.CauseLine {
				code = http.StatusRequestEntityTooLarge
			}
			a.refuse(w, r, code, "devicecontrol", le.Cause, settingOf[le.Cause], le.Error()+"; nothing of it was stored")
		default:
			writeError(w, r, http.StatusUnprocessableEntity, "devicecontrol/unprocessable", err.Error())
		}
		return
	}
	failed := make([]bulkFailure, 0, len(res.Failed))
	for _, f := range res.Failed {
		failed = append(failed, bulkFailure{DeviceID: f.DeviceID, Line: f.Line, FailureReason: f.Reason()})
	}
	// An identical repeat of a line (the parser lets it through) is
	// imported once and shares the first line's outcome, as an update.
	devices, repeatOf := make([]registry.Device, 0, len(res.Devices)), make(map[int]string)
	firstOf := make(map[string]bool, len(res.Devices))
	for _, d := range res.Devices {
		if firstOf[d.ID] {
			repeatOf[d.Line] = d.ID
			continue
		}
		firstOf[d.ID] = true
		devices = append(devices, d)
	}
	devices, refused := claimsRepeated(devices)
	failed = append(failed, refused...)
	outcomes := a.importAll(r.Context(), u.Tenant, devices)
	if len(repeatOf) > 0 {
		byID := make(map[string]importOutcome, len(devices)+len(refused))
		for i, d := range devices {
			byID[d.ID] = importOutcome{err: outcomes[i].err}
		}
		for _, f := range refused {
			byID[f.DeviceID] = importOutcome{err: &lineFailure{reason: f.FailureReason}}
		}
		for _, d := range res.Devices {
			if _, ok := repeatOf[d.Line]; ok {
				outcomes = append(outcomes, byID[d.ID])
				devices = append(devices, d)
			}
		}
	}
	created, updated := 0, 0
	for i, out := range outcomes {
		d := devices[i]
		var lf *lineFailure
		switch {
		case errors.As(out.err, &lf):
			failed = append(failed, bulkFailure{DeviceID: d.ID, Line: d.Line, FailureReason: lf.reason})
		case out.err != nil:
			a.log.Error("bulk registration", "tenant", u.Tenant, "device", d.ID, "line", d.Line, "err", out.err)
			failed = append(failed, bulkFailure{DeviceID: d.ID, Line: d.Line, FailureReason: "not stored: " + out.err.Error()})
		case out.created:
			created++
		default:
			updated++
		}
	}
	slices.SortFunc(failed, func(x, y bulkFailure) int { return cmp.Compare(x.Line, y.Line) })
	writeJSON(w, http.StatusCreated, map[string]any{
		"numberOfAll":              len(res.Devices) + len(res.Failed),
		"numberOfCreated":          created,
		"numberOfFailed":           len(failed),
		"numberOfSuccessful":       created + updated,
		"credentialUpdatedDevices": []string{},
		"failedCreationList":       failed,
	})
}

// lineFailure is a line refused for a reason its operator can fix; nothing
// of it was written.
type lineFailure struct{ reason string }

func (e *lineFailure) Error() string { return e.reason }

// claimsRepeated refuses the lines that claim a PSK identity or external
// ID an earlier line of the file claims: the store would refuse all but
// one, and lines are stored concurrently, so which one would be luck.
func claimsRepeated(devs []registry.Device) ([]registry.Device, []bulkFailure) {
	type claim struct{ kind, value string }
	first := make(map[claim]int, len(devs))
	kept := devs[:0:0]
	var failed []bulkFailure
	for _, d := range devs {
		var reasons []string
		claims := []struct {
			c    claim
			name string
		}{
			{claim{store.PSKServer, d.PSKID}, "lwm2m psk_id"},
			{claim{store.PSKBootstrap, d.BootstrapPSKID}, "bootstrap psk_id"},
			{claim{"c8y_Lwm2mPskId", d.ExternalLwM2MPSKID}, "external-c8y_Lwm2mPskId"},
			{claim{"c8y_BootstrapPskId", d.ExternalBootstrapPSKID}, "external-c8y_BootstrapPskId"},
		}
		for _, c := range claims {
			if c.c.value == "" {
				continue
			}
			if line, ok := first[c.c]; ok {
				reasons = append(reasons, fmt.Sprintf("%s %q already appears on line %d", c.name, c.c.value, line))
			}
		}
		if len(reasons) > 0 {
			failed = append(failed, bulkFailure{DeviceID: d.ID, Line: d.Line, FailureReason: strings.Join(reasons, "; ")})
			continue
		}
		for _, c := range claims {
			if c.c.value != "" {
				first[c.c] = d.Line
			}
		}
		kept = append(kept, d)
	}
	return kept, failed
}

type importOutcome struct {
	created bool
	err     error
}

// importAll hashes the credentials and stores the devices, on a bounded
// pool of workers: hashing is CPU (at most GOMAXPROCS at once), storing
// waits on the store, so more workers than cores keep both busy. The
// outcomes are in the order of devs.
// importWorkers is the lines of a bulk file in flight by default: enough
// that the embedded engine commits tens of lines' writes at once, few
// enough that a file does not crowd other requests out of the store.
const importWorkers = 32

func (a *API) importAll(ctx context.Context, tenant string, devs []registry.Device) []importOutcome {
	out := make([]importOutcome, len(devs))
	hashing := make(chan struct{}, runtime.GOMAXPROCS(0))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(a.cfg.ImportWorkers, len(devs)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(devs) {
					return
				}
				if err := ctx.Err(); err != nil {
					out[i].err = err
					continue
				}
				hashing <- struct{}{}
				hash, err := bcrypt.GenerateFromPassword([]byte(devs[i].Credentials), a.cfg.CredentialsHashCost)
				<-hashing
				if err != nil {
					out[i].err = &lineFailure{reason: "CREDENTIALS cannot be hashed: " + err.Error()}
					continue
				}
				out[i].created, out[i].err = a.importDevice(ctx, tenant, devs[i], hash)
			}
		})
	}
	wg.Wait()
	return out
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
// device with that ID, and reports whether it was created. Everything that
// can refuse the line (identities and external IDs other devices hold) is
// checked before the first write, so that a refused line writes nothing.
// A line's writes are all or nothing for every reader, across a crash
// too: a new device is created around an incomplete registration record
// (see store.CreateIncompleteDevice) that only the line's last write
// completes; an existing device keeps a complete record throughout, the
// old one until the new one replaces it in one write (changeRegistration).
func (a *API) importDevice(ctx context.Context, tenant string, d registry.Device, hash []byte) (bool, error) {
	st := a.cfg.Store
	id := ""
	x, err := st.GetExternalID(ctx, tenant, store.ExternalIDDevice, d.ID)
	switch {
	case err == nil:
		id = x.ManagedObjectID
	case !errors.Is(err, store.ErrNotFound):
		return false, err
	}
	var prev store.DeviceRegistration
	if id != "" {
		prev, err = st.DeviceSettings(ctx, tenant, id)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return false, err
		}
		if prev.Incomplete {
			// What a failed line left and could not remove (the store's
			// start removes it otherwise): this line creates it anew.
			if err := st.RemoveIncompleteDevice(ctx, tenant, id); err != nil {
				return false, err
			}
			id, prev = "", store.DeviceRegistration{}
		}
	}
	owner, ownerID, err := st.DeviceByEndpoint(ctx, d.EndpointID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return false, err
	}
	// a new device binds a free endpoint when it is created
	owns := owner == "" || (owner == tenant && ownerID == id && id != "")
	next := pskIdentities(d.Params())
	if owns {
		if err := a.checkPSKIdentities(ctx, tenant, id, next); err != nil {
			return false, asLineFailure(err)
		}
	}
	var exts []store.ExternalID
	for _, e := range []store.ExternalID{
		{Type: "c8y_Lwm2mPskId", ExternalID: d.ExternalLwM2MPSKID},
		{Type: "c8y_BootstrapPskId", ExternalID: d.ExternalBootstrapPSKID},
	} {
		if e.ExternalID == "" {
			continue
		}
		exts = append(exts, e)
		cur, err := st.GetExternalID(ctx, tenant, e.Type, e.ExternalID)
		if err == nil && (id == "" || cur.ManagedObjectID != id) {
			return false, &lineFailure{reason: fmt.Sprintf("external ID %s %q belongs to another device", e.Type, e.ExternalID)}
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return false, err
		}
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
	}
	reg := store.DeviceRegistration{Params: d.Params(), PSKKey: d.PSKKey, BootstrapPSKKey: d.BootstrapPSKKey, CredentialsHash: hash}

	if id == "" {
		newID, err := a.createDevice(ctx, tenant, d, fields, exts, reg, owner)
		if err == nil {
			return true, nil
		}
		var conflict *createConflict
		if !errors.As(err, &conflict) {
			return false, err
		}
		// another request created the device first: this line updates it
		id = newID
		if prev, err = st.DeviceRegistrationOf(ctx, tenant, id); err != nil && !errors.Is(err, store.ErrNotFound) {
			return false, err
		}
		if owns, err = a.ownsEndpoint(ctx, tenant, id, d.EndpointID); err != nil {
			return false, err
		}
	}

	if !d.Agent {
		fields["com_cumulocity_model_Agent"] = nil
	}
	writeObject := func() error {
		if _, err := st.UpdateManagedObject(ctx, tenant, id, fields); err != nil {
			return err
		}
		for _, e := range exts {
			e.ManagedObjectID = id
			err := st.CreateExternalID(ctx, tenant, e)
			if errors.Is(err, store.ErrConflict) {
				if cur, err2 := st.GetExternalID(ctx, tenant, e.Type, e.ExternalID); err2 == nil && cur.ManagedObjectID == id {
					err = nil
				} else {
					err = fmt.Errorf("%s %q belongs to another device", e.Type, e.ExternalID)
				}
			}
			if err != nil {
				return err
			}
		}
		return nil
	}
	if err := a.changeRegistration(ctx, tenant, id, d.EndpointID, prev, reg, owns, writeObject); err != nil {
		return false, asLineFailure(err)
	}
	if owner != "" && owner != tenant {
		if err := a.flagDuplicate(ctx, tenant, id, d.EndpointID); err != nil {
			return false, err
		}
	}
	return false, nil
}

// createConflict is a device another request created first; created is
// its ID.
type createConflict struct{ err error }

func (e *createConflict) Error() string { return e.err.Error() }
func (e *createConflict) Unwrap() error { return e.err }

// createDevice creates the device of a line, all or nothing: the store
// creates it around an incomplete record, the PSK identities are bound,
// and completing the record is the last write; a failure removes what was
// written. The error is a *createConflict, with the ID of the device,
// when another request created it first.
func (a *API) createDevice(ctx context.Context, tenant string, d registry.Device, fields map[string]any, exts []store.ExternalID, reg store.DeviceRegistration, owner string) (string, error) {
	st := a.cfg.Store
	id, err := st.CreateIncompleteDevice(ctx, tenant, store.NewDevice{
		Endpoint: d.EndpointID, Name: fields["name"].(string), Fragments: fields, ExternalIDs: exts, Registration: reg,
	})
	if errors.Is(err, store.ErrConflict) && id != "" {
		return id, &createConflict{err: err}
	}
	if err != nil {
		return "", err
	}
	fail := func(err error) (string, error) {
		if rerr := st.RemoveIncompleteDevice(context.WithoutCancel(ctx), tenant, id); rerr != nil {
			a.log.Error("remove a device whose import failed; the next start removes it", "tenant", tenant, "device", id, "err", rerr)
		}
		return "", err
	}
	owns := false
	if owner == "" {
		// the endpoint was free; whoever created first holds it now
		if owns, err = a.ownsEndpoint(ctx, tenant, id, d.EndpointID); err != nil {
			return fail(err)
		}
	}
	if _, err := a.bindPSKIdentities(ctx, tenant, id, nil, pskIdentities(reg.Params), owns); err != nil {
		return fail(asLineFailure(err))
	}
	if err := st.CompleteDevice(ctx, tenant, id); err != nil {
		return fail(err)
	}
	if owner != "" && owner != tenant {
		if err := a.flagDuplicate(ctx, tenant, id, d.EndpointID); err != nil {
			// the device is complete; only its alarm is missing
			a.log.Error("raise duplicate endpoint alarm", "tenant", tenant, "device", id, "err", err)
		}
	}
	return id, nil
}

// asLineFailure turns a PSK identity conflict into a reason for the line.
func asLineFailure(err error) error {
	var pc *pskConflictError
	if errors.As(err, &pc) {
		return &lineFailure{reason: pc.Error()}
	}
	return err
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

// flagDuplicate raises the duplicate alarm on the tenant's device, whose
// endpoint another tenant holds.
func (a *API) flagDuplicate(ctx context.Context, tenant, id, endpoint string) error {
	// the other tenant is not named: tenants never learn of each other
	_, err := a.cfg.Store.RaiseAlarm(ctx, tenant, store.Alarm{
		Source: id, Type: DuplicateEndpointAlarm, Severity: "MAJOR", Status: "ACTIVE", Time: time.Now().UTC(),
		Text: fmt.Sprintf("A device with endpoint %q already exists; this device will not be connected", endpoint),
	})
	return err
}
