package api

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/registry"
	"github.com/lwm2m-agent/lwm2m-agent/agent/render"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// managesTenants answers 403 unless u administers the management tenant,
// the one that sees and creates the others.
func managesTenants(w http.ResponseWriter, r *http.Request, u store.User, what string) bool {
	if u.Tenant != store.ManagementTenant || !u.IsAdmin() {
		writeError(w, r, http.StatusForbidden, "security/Forbidden", "only an administrator of the management tenant "+what+" tenants")
		return false
	}
	return true
}

func tenantJSON(r *http.Request, t store.Tenant) map[string]any {
	return map[string]any{
		"id": t.ID, "domain": t.Domain, "creationTime": jsonTime(t.CreationTime),
		"status": "ACTIVE", "self": self(r, "/tenant/tenants/"+escape(t.ID)),
	}
}

// listTenants answers every tenant, for the management tenant's
// administrators; the others learn of no tenant but their own.
func (a *API) listTenants(w http.ResponseWriter, r *http.Request, u store.User) {
	if !managesTenants(w, r, u, "lists") {
		return
	}
	p, ok := paging(w, r, "tenant")
	if !ok {
		return
	}
	tenants, total, err := a.cfg.Store.ListTenants(r.Context(), p)
	answerList(a, w, r, "tenant", "tenants", p, tenants, total, err, tenantJSON)
}

func (a *API) createTenant(w http.ResponseWriter, r *http.Request, u store.User) {
	if !managesTenants(w, r, u, "creates") {
		return
	}
	var body struct {
		ID        string `json:"id"`
		AdminName string `json:"adminName"`
		AdminPass string `json:"adminPass"`
	}
	if !a.readJSON(w, r, "tenant", &body) {
		return
	}
	t, err := a.cfg.Store.CreateTenant(r.Context(), body.ID, body.AdminName, body.AdminPass)
	if err != nil {
		a.storeError(w, r, "tenant", err)
		return
	}
	out := tenantJSON(r, t)
	out["adminName"] = body.AdminName
	writeJSON(w, http.StatusCreated, out)
}

func moJSON(r *http.Request, mo store.ManagedObject) map[string]any {
	return render.ManagedObject(baseURL(r), mo)
}

func (a *API) listManagedObjects(w http.ResponseWriter, r *http.Request, u store.User) {
	p, ok := paging(w, r, "inventory")
	if !ok || !nameParams(w, r, "inventory", "fragmentType") {
		return
	}
	q := r.URL.Query()
	mos, total, err := a.cfg.Store.ListManagedObjects(r.Context(), u.Tenant, store.ManagedObjectFilter{
		Type: q.Get("type"), FragmentType: q.Get("fragmentType"), Query: q.Get("query"), Page: p,
	})
	answerList(a, w, r, "inventory", "managedObjects", p, mos, total, err, moJSON)
}

// splitBody separates name and type from the fragments of a managed
// object body.
func splitBody(body map[string]any) (name, typ string, fragments map[string]any) {
	name, _ = body["name"].(string)
	typ, _ = body["type"].(string)
	fragments = map[string]any{}
	for k, v := range body {
		if k != "name" && k != "type" {
			fragments[k] = store.JSONNumbers(v)
		}
	}
	return name, typ, fragments
}

func (a *API) createManagedObject(w http.ResponseWriter, r *http.Request, u store.User) {
	var body map[string]any
	if !a.readJSON(w, r, "inventory", &body) {
		return
	}
	name, typ, frags := splitBody(body)
	if !a.checkFirmware(w, r, u, typ, name, true, frags) {
		return
	}
	mo, err := a.cfg.Store.CreateManagedObject(r.Context(), u.Tenant, store.ManagedObject{Name: name, Type: typ, Fragments: frags})
	if err != nil {
		a.storeError(w, r, "inventory", err)
		return
	}
	a.answerObject(w, r, u, http.StatusCreated, mo)
}

// checkFirmware answers 422 for a firmware repository object that lacks
// what it needs (firmwareProblem); false when it answered.
func (a *API) checkFirmware(w http.ResponseWriter, r *http.Request, u store.User, typ, name string, nameSet bool, frags map[string]any) bool {
	msg, err := a.firmwareProblem(r.Context(), u.Tenant, typ, name, r.Method == http.MethodPost, nameSet, frags)
	if err != nil {
		a.storeError(w, r, "inventory", err)
		return false
	}
	if msg != "" {
		writeError(w, r, http.StatusUnprocessableEntity, "inventory/unprocessable", msg)
		return false
	}
	return true
}

func (a *API) getManagedObject(w http.ResponseWriter, r *http.Request, u store.User) {
	mo, err := a.cfg.Store.GetManagedObject(r.Context(), u.Tenant, r.PathValue("id"))
	if err != nil {
		a.storeError(w, r, "inventory", err)
		return
	}
	a.answerObject(w, r, u, http.StatusOK, mo)
}

func (a *API) updateManagedObject(w http.ResponseWriter, r *http.Request, u store.User) {
	var body map[string]any
	if !a.readJSON(w, r, "inventory", &body) {
		return
	}
	for k := range body {
		if secret(k) {
			// Credentials have their own write-only resources; storing
			// them as fragments would make them readable.
			writeError(w, r, http.StatusUnprocessableEntity, "inventory/unprocessable", "fragment "+k+" looks like a credential and is not accepted here")
			return
		}
	}
	id := r.PathValue("id")
	if _, fw := body[store.FirmwareType]; fw || body["type"] != nil || body["name"] != nil {
		// a firmware repository object keeps what it needs
		cur, err := a.cfg.Store.GetManagedObject(r.Context(), u.Tenant, id)
		if err != nil {
			a.storeError(w, r, "inventory", err)
			return
		}
		typ, name := cur.Type, cur.Name
		if t, ok := body["type"].(string); ok {
			typ = t
		}
		n, nameSet := body["name"].(string)
		if nameSet {
			name = n
		}
		if !a.checkFirmware(w, r, u, typ, name, nameSet, body) {
			return
		}
	}
	var awake *store.DeviceRegistration
	if v, ok := body[registry.ParamAwakeTime]; ok {
		// The awake time is a registration parameter too: operations are
		// delivered by it, and the bootstrap resource shows it. It is
		// checked before anything is written.
		reg, value, ok := a.awakeTimeChange(w, r, u.Tenant, id, v)
		if !ok {
			return
		}
		awake = &reg
		body[registry.ParamAwakeTime] = value
	}
	mo, err := a.cfg.Store.UpdateManagedObject(r.Context(), u.Tenant, id, store.JSONNumbers(body).(map[string]any))
	if err != nil {
		a.storeError(w, r, "inventory", err)
		return
	}
	if awake != nil {
		if err := a.cfg.Store.SaveDeviceRegistration(r.Context(), u.Tenant, id, *awake); err != nil {
			a.storeError(w, r, "inventory", err)
			return
		}
	}
	a.answerObject(w, r, u, http.StatusOK, mo)
}

// deleteManagedObject deletes the object; a device's live registrations
// and DTLS sessions end with it, so that nothing more of a device that
// is gone is answered, and its endpoint and identities are free for a
// new device.
func (a *API) deleteManagedObject(w http.ResponseWriter, r *http.Request, u store.User) {
	id := r.PathValue("id")
	gone, err := a.cfg.Store.DeleteManagedObject(r.Context(), u.Tenant, id)
	if err != nil {
		a.storeError(w, r, "inventory", err)
		return
	}
	if a.cfg.Security != nil && (len(gone.Endpoints) > 0 || len(gone.Identities) > 0) {
		a.cfg.Security.DeviceDeleted(r.Context(), u.Tenant, id, gone.Endpoints, gone.Identities)
	}
	w.WriteHeader(http.StatusNoContent)
}

func extJSON(r *http.Request, x store.ExternalID) map[string]any {
	return map[string]any{
		"externalId": x.ExternalID, "type": x.Type,
		"self": self(r, "/identity/externalIds/"+escape(x.Type)+"/"+escape(x.ExternalID)),
		"managedObject": map[string]any{
			"id": x.ManagedObjectID, "self": self(r, "/inventory/managedObjects/"+escape(x.ManagedObjectID)),
		},
	}
}

func (a *API) getExternalID(w http.ResponseWriter, r *http.Request, u store.User) {
	x, err := a.cfg.Store.GetExternalID(r.Context(), u.Tenant, r.PathValue("type"), r.PathValue("externalId"))
	if err != nil {
		a.storeError(w, r, "identity", err)
		return
	}
	writeJSON(w, http.StatusOK, extJSON(r, x))
}

func (a *API) deleteExternalID(w http.ResponseWriter, r *http.Request, u store.User) {
	if err := a.cfg.Store.DeleteExternalID(r.Context(), u.Tenant, r.PathValue("type"), r.PathValue("externalId")); err != nil {
		a.storeError(w, r, "identity", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) listExternalIDs(w http.ResponseWriter, r *http.Request, u store.User) {
	id := r.PathValue("id")
	if _, err := a.cfg.Store.GetManagedObject(r.Context(), u.Tenant, id); err != nil {
		a.storeError(w, r, "identity", err)
		return
	}
	xs, err := a.cfg.Store.ExternalIDsOf(r.Context(), u.Tenant, id)
	if err != nil {
		a.storeError(w, r, "identity", err)
		return
	}
	items := make([]map[string]any, len(xs))
	for i, x := range xs {
		items[i] = extJSON(r, x)
	}
	writeJSON(w, http.StatusOK, map[string]any{"externalIds": items, "self": self(r, r.URL.Path)})
}

func (a *API) createExternalID(w http.ResponseWriter, r *http.Request, u store.User) {
	var body struct {
		Type       string `json:"type"`
		ExternalID string `json:"externalId"`
	}
	if !a.readJSON(w, r, "identity", &body) {
		return
	}
	x := store.ExternalID{Type: body.Type, ExternalID: body.ExternalID, ManagedObjectID: r.PathValue("id")}
	if err := a.cfg.Store.CreateExternalID(r.Context(), u.Tenant, x); err != nil {
		a.storeError(w, r, "identity", err)
		return
	}
	writeJSON(w, http.StatusCreated, extJSON(r, x))
}

func measurementJSON(r *http.Request, m store.Measurement) map[string]any {
	return render.Measurement(baseURL(r), m)
}

func (a *API) listMeasurements(w http.ResponseWriter, r *http.Request, u store.User) {
	p, from, to, ok := timeRangeList(w, r, "measurement")
	if !ok || !nameParams(w, r, "measurement", "valueFragmentType", "valueFragmentSeries") {
		return
	}
	q := r.URL.Query()
	ms, total, err := a.cfg.Store.ListMeasurements(r.Context(), u.Tenant, store.MeasurementFilter{
		Source: q.Get("source"), Type: q.Get("type"),
		ValueFragmentType: q.Get("valueFragmentType"), ValueFragmentSeries: q.Get("valueFragmentSeries"),
		DateFrom: from, DateTo: to, Revert: q.Get("revert") == "true", Page: p,
	})
	answerList(a, w, r, "measurement", "measurements", p, ms, total, err, measurementJSON)
}

// createMeasurement stores one measurement of a managed object of the
// tenant, as Cumulocity's POST /measurement/measurements: source.id and
// type are required, time defaults to now, every other member is a
// fragment.
func (a *API) createMeasurement(w http.ResponseWriter, r *http.Request, u store.User) {
	var body map[string]any
	if !a.readJSON(w, r, "measurement", &body) {
		return
	}
	src, _ := body["source"].(map[string]any)
	source, _ := src["id"].(string)
	typ, _ := body["type"].(string)
	if source == "" || typ == "" {
		writeError(w, r, http.StatusUnprocessableEntity, "measurement/unprocessable", `a measurement needs "source": {"id": "<managed object id>"} and "type"`)
		return
	}
	var at time.Time
	if s, ok := body["time"].(string); ok {
		var err error
		if at, err = parseTime(s); err != nil {
			writeError(w, r, http.StatusUnprocessableEntity, "measurement/unprocessable", "time "+strconv.Quote(s)+" is not an ISO 8601 date")
			return
		}
	} else if body["time"] != nil {
		writeError(w, r, http.StatusUnprocessableEntity, "measurement/unprocessable", "time must be an ISO 8601 date string")
		return
	}
	if _, err := a.cfg.Store.GetManagedObject(r.Context(), u.Tenant, source); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			// the same answer for another tenant's object as for none
			writeError(w, r, http.StatusUnprocessableEntity, "measurement/unprocessable", "source "+strconv.Quote(source)+" is no managed object of the tenant")
			return
		}
		a.storeError(w, r, "measurement", err)
		return
	}
	frags := map[string]any{}
	for k, v := range body {
		switch k {
		case "source", "type", "time", "id", "self", "creationTime":
		default:
			frags[k] = store.JSONNumbers(v)
		}
	}
	m := store.Measurement{Source: source, Type: typ, Time: at, Fragments: frags}
	if m.Time.IsZero() {
		m.Time = time.Now().UTC().Truncate(time.Millisecond)
	}
	ids, err := a.cfg.Store.AddMeasurements(r.Context(), u.Tenant, []store.Measurement{m})
	if err != nil {
		a.storeError(w, r, "measurement", err)
		return
	}
	m.ID = ids[0]
	writeJSON(w, http.StatusCreated, measurementJSON(r, m))
}

func (a *API) getMeasurement(w http.ResponseWriter, r *http.Request, u store.User) {
	m, err := a.cfg.Store.GetMeasurement(r.Context(), u.Tenant, r.PathValue("id"))
	answerOne(a, w, r, "measurement", m, err, measurementJSON)
}

func eventJSON(r *http.Request, e store.Event) map[string]any {
	return render.Event(baseURL(r), e)
}

func (a *API) listEvents(w http.ResponseWriter, r *http.Request, u store.User) {
	p, from, to, ok := timeRangeList(w, r, "event")
	if !ok {
		return
	}
	q := r.URL.Query()
	es, total, err := a.cfg.Store.ListEvents(r.Context(), u.Tenant, store.EventFilter{
		Source: q.Get("source"), Type: q.Get("type"), DateFrom: from, DateTo: to,
		Revert: q.Get("revert") == "true", Page: p,
	})
	answerList(a, w, r, "event", "events", p, es, total, err, eventJSON)
}

func (a *API) getEvent(w http.ResponseWriter, r *http.Request, u store.User) {
	e, err := a.cfg.Store.GetEvent(r.Context(), u.Tenant, r.PathValue("id"))
	answerOne(a, w, r, "event", e, err, eventJSON)
}

func alarmJSON(r *http.Request, al store.Alarm) map[string]any {
	return render.Alarm(baseURL(r), al)
}

func (a *API) listAlarms(w http.ResponseWriter, r *http.Request, u store.User) {
	p, from, to, ok := timeRangeList(w, r, "alarm")
	if !ok {
		return
	}
	q := r.URL.Query()
	var statuses []string
	if s := q.Get("status"); s != "" {
		// Cumulocity accepts a comma-separated list.
		for st := range strings.SplitSeq(s, ",") {
			st = strings.TrimSpace(st)
			if !store.ValidAlarmStatus(st) {
				writeError(w, r, http.StatusUnprocessableEntity, "alarm/unprocessable", "status "+st+" is not ACTIVE, ACKNOWLEDGED or CLEARED")
				return
			}
			statuses = append(statuses, st)
		}
	}
	as, total, err := a.cfg.Store.ListAlarms(r.Context(), u.Tenant, store.AlarmFilter{
		Source: q.Get("source"), Type: q.Get("type"), Status: statuses, Severity: q.Get("severity"),
		DateFrom: from, DateTo: to, Revert: q.Get("revert") == "true", Page: p,
	})
	answerList(a, w, r, "alarm", "alarms", p, as, total, err, alarmJSON)
}

func (a *API) getAlarm(w http.ResponseWriter, r *http.Request, u store.User) {
	al, err := a.cfg.Store.GetAlarm(r.Context(), u.Tenant, r.PathValue("id"))
	answerOne(a, w, r, "alarm", al, err, alarmJSON)
}

func (a *API) updateAlarm(w http.ResponseWriter, r *http.Request, u store.User) {
	var body struct {
		Status   string `json:"status"`
		Severity string `json:"severity"`
		Text     string `json:"text"`
	}
	if !a.readJSON(w, r, "alarm", &body) {
		return
	}
	al, err := a.cfg.Store.UpdateAlarm(r.Context(), u.Tenant, r.PathValue("id"),
		store.AlarmUpdate{Status: body.Status, Severity: body.Severity, Text: body.Text})
	if err != nil {
		a.storeError(w, r, "alarm", err)
		return
	}
	writeJSON(w, http.StatusOK, alarmJSON(r, al))
}

// timeRangeList reads what every list of time-stamped objects takes:
// paging and the dateFrom/dateTo range. On a bad parameter it has answered
// and returns false.
func timeRangeList(w http.ResponseWriter, r *http.Request, area string) (p store.Page, from, to time.Time, ok bool) {
	if p, ok = paging(w, r, area); !ok {
		return
	}
	if from, ok = dateParam(w, r, area, "dateFrom"); !ok {
		return
	}
	to, ok = dateParam(w, r, area, "dateTo")
	return
}
