package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/shell"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// BulkScheduler creates the operations of bulk operations; Wake tells
// it of a new one, so that one due at once does not wait for its poll.
type BulkScheduler interface {
	Wake()
}

const bulkOpsPath = "/devicecontrol/bulkoperations"

// MaxBulkDevices bounds the devices of one bulk operation: its devices
// are stored with it, and each costs an operation.
const MaxBulkDevices = 100_000

// maxRamp bounds creationRamp: a day between two devices is a campaign
// of years for a fleet.
const maxRamp = 24 * time.Hour

func (a *API) bulkOperationRoutes(auth func(string, func(http.ResponseWriter, *http.Request, store.User))) {
	auth("POST "+bulkOpsPath, a.createBulkOperation)
	auth("GET "+bulkOpsPath, a.listBulkOperations)
	auth("GET "+bulkOpsPath+"/{id}", a.getBulkOperation)
	auth("PUT "+bulkOpsPath+"/{id}", a.updateBulkOperation)
	auth("DELETE "+bulkOpsPath+"/{id}", a.deleteBulkOperation)
}

// generalStatus is Cumulocity's summary of a bulk operation for people.
func generalStatus(b store.BulkOperation) string {
	switch b.StatusNow() {
	case store.BulkActive:
		return "SCHEDULED"
	case store.BulkInProgress:
		if b.Progress.Failed > 0 {
			return "EXECUTING_WITH_ERROR"
		}
		return "EXECUTING"
	case store.BulkCompleted:
		if b.Progress.Failed > 0 {
			return "FAILED"
		}
		return "SUCCESSFUL"
	}
	return b.Status
}

func bulkJSON(r *http.Request, b store.BulkOperation) map[string]any {
	out := make(map[string]any, len(b.Fragments)+10)
	for k, v := range b.Fragments {
		out[k] = v
	}
	out["id"] = b.ID
	out["self"] = self(r, bulkOpsPath+"/"+escape(b.ID))
	out["groupId"] = b.GroupID
	out["startDate"] = jsonTime(b.StartDate)
	out["creationRamp"] = b.CreationRamp.Seconds()
	out["operationPrototype"] = b.Prototype
	out["status"] = b.StatusNow()
	out["generalStatus"] = generalStatus(b)
	out["creationTime"] = jsonTime(b.CreationTime)
	out["lastUpdated"] = jsonTime(b.LastUpdated)
	out["progress"] = map[string]any{
		"all": b.Total, "pending": b.Progress.Pending, "executing": b.Progress.Executing,
		"successful": b.Progress.Successful, "failed": b.Progress.Failed,
	}
	return out
}

func (a *API) unprocessable(w http.ResponseWriter, r *http.Request, format string, args ...any) {
	writeError(w, r, http.StatusUnprocessableEntity, "devicecontrol/unprocessable", fmt.Sprintf(format, args...))
}

// createBulkOperation checks everything, resolves the group's devices,
// and stores the bulk operation for the scheduler.
func (a *API) createBulkOperation(w http.ResponseWriter, r *http.Request, u store.User) {
	var body map[string]any
	if !a.readJSON(w, r, "devicecontrol", &body) {
		return
	}
	b := store.BulkOperation{Fragments: map[string]any{}}
	var problems []string
	switch g := body["groupId"].(type) {
	case string:
		b.GroupID = g
	case json.Number:
		b.GroupID = g.String()
	}
	if b.GroupID == "" {
		problems = append(problems, "groupId is required (the id of a device group)")
	}
	if s, _ := body["startDate"].(string); s == "" {
		problems = append(problems, "startDate is required (an ISO 8601 time)")
	} else if t, err := parseTime(s); err != nil {
		problems = append(problems, fmt.Sprintf("startDate %q is not an ISO 8601 time", s))
	} else {
		b.StartDate = t
	}
	switch v := body["creationRamp"].(type) {
	case nil:
	case json.Number:
		f, err := v.Float64()
		if err != nil || f < 0 || time.Duration(f*float64(time.Second)) > maxRamp {
			problems = append(problems, fmt.Sprintf("creationRamp %s must be a number of seconds from 0 to %d", v, int(maxRamp.Seconds())))
		} else {
			b.CreationRamp = time.Duration(f * float64(time.Second))
		}
	default:
		problems = append(problems, "creationRamp must be a number of seconds")
	}
	proto, ok := body["operationPrototype"].(map[string]any)
	if !ok {
		problems = append(problems, `operationPrototype is required: an operation, e.g. {"c8y_Command":{"text":"read /3/0/0"}}`)
	} else {
		cmds, msg := prototypeProblem(proto)
		if msg != "" {
			problems = append(problems, "operationPrototype: "+msg)
		} else if !a.checkBinaries(w, r, u.Tenant, cmds) || !a.checkFirmwareSources(w, r, u.Tenant, cmds) || !a.checkFirmwareFragment(w, r, u.Tenant, proto) {
			return
		}
		b.Prototype = store.JSONNumbers(proto).(map[string]any)
	}
	for k, v := range body {
		switch k {
		case "groupId", "startDate", "creationRamp", "operationPrototype", "id", "self", "status", "generalStatus", "progress",
			"creationTime", "lastUpdated":
		default:
			b.Fragments[k] = store.JSONNumbers(v)
		}
	}
	if len(problems) > 0 {
		a.unprocessable(w, r, "%s", strings.Join(problems, "; "))
		return
	}
	ctx := r.Context()
	group, err := a.cfg.Store.GetManagedObject(ctx, u.Tenant, b.GroupID)
	if errors.Is(err, store.ErrNotFound) {
		a.unprocessable(w, r, "group %q does not exist", b.GroupID)
		return
	}
	if err != nil {
		a.storeError(w, r, "devicecontrol", err)
		return
	}
	if _, isGroup := group.Fragments[store.GroupFragment]; !isGroup {
		a.unprocessable(w, r, "managed object %s is not a device group (it has no %s)", b.GroupID, store.GroupFragment)
		return
	}
	b.Targets, err = GroupDevices(ctx, a.cfg.Store, u.Tenant, b.GroupID, MaxBulkDevices)
	var tooMany *tooManyDevices
	switch {
	case errors.As(err, &tooMany):
		a.unprocessable(w, r, "group %s has more than %d devices, the most one bulk operation serves", b.GroupID, MaxBulkDevices)
		return
	case err != nil:
		a.storeError(w, r, "devicecontrol", err)
		return
	case len(b.Targets) == 0:
		a.unprocessable(w, r, "group %s has no devices, in it or in its subgroups", b.GroupID)
		return
	}
	stored, err := a.cfg.Store.CreateBulkOperation(ctx, u.Tenant, b)
	if err != nil {
		a.storeError(w, r, "devicecontrol", err)
		return
	}
	if a.cfg.Bulk != nil {
		a.cfg.Bulk.Wake()
	}
	w.Header().Set("Location", self(r, bulkOpsPath+"/"+escape(stored.ID)))
	writeJSON(w, http.StatusCreated, bulkJSON(r, stored))
}

// prototypeProblem checks an operation prototype as an operation is
// checked: one shell command (c8y_Command) or a firmware update
// (c8y_Firmware). Writes are checked against each device's validation
// rules when the device's operation is sent, not here.
func prototypeProblem(proto map[string]any) ([]shell.Command, string) {
	if cmd, ok := proto["c8y_Command"]; ok {
		c, _ := cmd.(map[string]any)
		text, _ := c["text"].(string)
		if strings.TrimSpace(text) == "" {
			return nil, "c8y_Command.text is required"
		}
		cmds, err := shell.ParseText(text)
		if err != nil {
			return nil, err.Error()
		}
		if len(cmds) != 1 {
			return nil, fmt.Sprintf("c8y_Command.text holds %d commands; a bulk operation sends one", len(cmds))
		}
		return cmds, ""
	}
	if fw, ok := proto["c8y_Firmware"].(map[string]any); ok {
		return nil, firmwareFragmentProblem(fw)
	}
	return nil, `it needs c8y_Command {"text"} or c8y_Firmware {"name","version","url"}`
}

// tooManyDevices stops GroupDevices at its bound.
type tooManyDevices struct{ max int }

func (e *tooManyDevices) Error() string { return fmt.Sprintf("more than %d devices", e.max) }

// GroupDevices lists the devices (objects with c8y_IsDevice) among the
// child assets of group and of its subgroups (child assets with
// c8y_IsDeviceGroup), at any depth, each once, in the order met, groups
// before their subgroups. A group met again (a cycle) is not read
// again. More than max devices is an error.
func GroupDevices(ctx context.Context, st store.References, tenant, group string, max int) ([]string, error) {
	seen := map[string]bool{group: true}
	queue := []string{group}
	var out []string
	for len(queue) > 0 {
		g := queue[0]
		queue = queue[1:]
		for page := 1; ; page++ {
			kids, _, err := st.ListChildren(ctx, tenant, store.ChildAssets, g, store.Page{Size: store.MaxPageSize, Current: page})
			if err != nil {
				return nil, fmt.Errorf("devices of group %s: %w", g, err)
			}
			for _, k := range kids {
				if seen[k.ID] {
					continue
				}
				seen[k.ID] = true
				if _, ok := k.Fragments[store.GroupFragment]; ok {
					queue = append(queue, k.ID)
				} else if _, ok := k.Fragments[store.DeviceFragment]; ok {
					if len(out) == max {
						return nil, &tooManyDevices{max}
					}
					out = append(out, k.ID)
				}
			}
			if len(kids) < store.MaxPageSize {
				break
			}
		}
	}
	return out, nil
}

func (a *API) listBulkOperations(w http.ResponseWriter, r *http.Request, u store.User) {
	p, ok := paging(w, r, "devicecontrol")
	if !ok {
		return
	}
	bs, total, err := a.cfg.Store.ListBulkOperations(r.Context(), u.Tenant, p)
	answerList(a, w, r, "devicecontrol", "bulkOperations", p, bs, total, err, bulkJSON)
}

func (a *API) getBulkOperation(w http.ResponseWriter, r *http.Request, u store.User) {
	b, err := a.cfg.Store.GetBulkOperation(r.Context(), u.Tenant, r.PathValue("id"))
	answerOne(a, w, r, "devicecontrol", b, err, bulkJSON)
}

// updateBulkOperation takes {"status":"CANCELED"}: nothing else of a
// bulk operation changes once it is stored.
func (a *API) updateBulkOperation(w http.ResponseWriter, r *http.Request, u store.User) {
	var body map[string]any
	if !a.readJSON(w, r, "devicecontrol", &body) {
		return
	}
	if s, _ := body["status"].(string); s != store.BulkCanceled {
		a.unprocessable(w, r, `a bulk operation changes only by {"status":"CANCELED"}`)
		return
	}
	b, ok := a.stopBulk(w, r, u, store.BulkCanceled)
	if ok {
		writeJSON(w, http.StatusOK, bulkJSON(r, b))
	}
}

func (a *API) deleteBulkOperation(w http.ResponseWriter, r *http.Request, u store.User) {
	if _, ok := a.stopBulk(w, r, u, store.BulkDeleted); ok {
		w.WriteHeader(http.StatusNoContent)
	}
}

// stopBulk cancels or deletes a bulk operation: it creates no more
// operations, and those of it still PENDING are FAILED, saying why.
// Those under way (EXECUTING) run to their end.
func (a *API) stopBulk(w http.ResponseWriter, r *http.Request, u store.User, status string) (store.BulkOperation, bool) {
	ctx, id := r.Context(), r.PathValue("id")
	cur, err := a.cfg.Store.GetBulkOperation(ctx, u.Tenant, id)
	if err != nil {
		a.storeError(w, r, "devicecontrol", err)
		return cur, false
	}
	if now := cur.StatusNow(); status == store.BulkCanceled && store.BulkFinal(now) {
		a.unprocessable(w, r, "bulk operation %s is %s already", id, now)
		return cur, false
	}
	b := cur
	if cur.Status != store.BulkDeleted {
		b, err = a.cfg.Store.SetBulkStatus(ctx, u.Tenant, id, status)
		if errors.Is(err, store.ErrInvalid) {
			a.unprocessable(w, r, "bulk operation %s: %v", id, err)
			return b, false
		}
		if err != nil {
			a.storeError(w, r, "devicecontrol", err)
			return b, false
		}
	}
	reason := fmt.Sprintf("bulk operation %s was %s", id, strings.ToLower(status))
	if err := failPending(ctx, a.cfg.Store, u.Tenant, id, reason); err != nil {
		a.storeError(w, r, "devicecontrol", err)
		return b, false
	}
	if b, err = a.cfg.Store.GetBulkOperation(ctx, u.Tenant, id); err != nil {
		a.storeError(w, r, "devicecontrol", err)
		return b, false
	}
	return b, true
}

// failPending fails the PENDING operations of a bulk operation that
// stopped, a batch at a time; one that left PENDING meanwhile (sent) is
// left to finish.
func failPending(ctx context.Context, st store.Engine, tenant, id, reason string) error {
	for {
		ids, err := st.BulkOperationIDs(ctx, tenant, id, store.OpPending, 500)
		if err != nil || len(ids) == 0 {
			return err
		}
		failed := 0
		for _, op := range ids {
			err := st.SetStatusFrom(ctx, tenant, op, store.OpPending, store.OpFailed, "", reason)
			if err == nil {
				failed++
			} else if !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrInvalid) && !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		if failed == 0 {
			// what is left moved on meanwhile
			return nil
		}
	}
}
