package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/lwm2m-agent/lwm2m-agent/agent/firmware"
	"github.com/lwm2m-agent/lwm2m-agent/agent/render"
	"github.com/lwm2m-agent/lwm2m-agent/agent/shell"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

func opJSON(r *http.Request, op store.Operation) map[string]any {
	return render.Operation(baseURL(r), op)
}

// createOperations queues a shell command or a firmware update.
//
// A c8y_Command text of several lines becomes one operation per line, all
// checked before any is stored. The answer is the first line's operation,
// with "additionalOperationIds" listing the others' IDs in line order (the
// member is absent for a single line). A malformed line answers 422
// devicecontrol/unprocessable naming the line and the problem; nothing is
// stored. Writes (write, cwrite, create, writeb) are typed by the
// tenant's definitions and checked against their resources' validation
// rules first (checkWrites): a refused value answers 422 naming it and
// the rule, and no line of the text is stored. Other top-level members of
// the body are stored with every operation.
func (a *API) createOperations(w http.ResponseWriter, r *http.Request, u store.User) {
	var body map[string]any
	if !a.readJSON(w, r, "devicecontrol", &body) {
		return
	}
	deviceID, _ := body["deviceId"].(string)
	if deviceID == "" {
		writeError(w, r, http.StatusUnprocessableEntity, "devicecontrol/unprocessable", "deviceId is required")
		return
	}
	frags := map[string]any{}
	for k, v := range body {
		switch k {
		// bulkOperationId is the agent's to set: it counts the operation
		// in the bulk operation's progress
		case "deviceId", "c8y_Command", "status", "id", "creationTime", "failureReason", "attempts", "self", store.BulkOperationIDField:
		default:
			frags[k] = store.JSONNumbers(v)
		}
	}
	var ops []store.Operation
	if cmd, ok := body["c8y_Command"]; ok {
		c, _ := cmd.(map[string]any)
		text, _ := c["text"].(string)
		if strings.TrimSpace(text) == "" {
			writeError(w, r, http.StatusUnprocessableEntity, "devicecontrol/unprocessable", "c8y_Command.text is required")
			return
		}
		cmds, err := shell.ParseText(text)
		if err != nil {
			writeError(w, r, http.StatusUnprocessableEntity, "devicecontrol/unprocessable", err.Error())
			return
		}
		var lines []int
		if len(cmds) > 1 {
			lines = commandLines(text)
		}
		if err := a.checkWrites(r.Context(), u.Tenant, deviceID, cmds, lines); err != nil {
			var ref *refusedWrites
			if errors.As(err, &ref) {
				writeError(w, r, http.StatusUnprocessableEntity, "devicecontrol/unprocessable", ref.Error())
				return
			}
			a.storeError(w, r, "devicecontrol", err)
			return
		}
		if !a.checkBinaries(w, r, u.Tenant, cmds) || !a.checkFirmwareSources(w, r, u.Tenant, cmds) {
			return
		}

		for _, c := range cmds {
			ops = append(ops, store.Operation{DeviceID: deviceID, HasCommand: true, Text: c.Raw, Fragments: frags})
		}
	} else if fw, ok := body["c8y_Firmware"].(map[string]any); ok {
		if msg := firmwareFragmentProblem(fw); msg != "" {
			writeError(w, r, http.StatusUnprocessableEntity, "devicecontrol/unprocessable", msg)
			return
		}
		if !a.checkFirmwareFragment(w, r, u.Tenant, body) {
			return
		}
		// the same firmware update as fwupdate: the runner reads it from
		// the fragment
		ops = append(ops, store.Operation{DeviceID: deviceID, Fragments: frags})
	} else {
		writeError(w, r, http.StatusUnprocessableEntity, "devicecontrol/unprocessable", "the operation needs c8y_Command {\"text\"} or c8y_Firmware {\"name\",\"version\",\"url\"}")
		return
	}
	stored, err := a.cfg.Store.CreateOperations(r.Context(), u.Tenant, ops)
	if err != nil {
		a.storeError(w, r, "devicecontrol", err)
		return
	}
	if a.cfg.Ops != nil {
		// The runner keeps working on them after this request ends.
		ctx := context.WithoutCancel(r.Context())
		for _, op := range stored {
			a.cfg.Ops.Submit(ctx, u.Tenant, op)
		}
	}
	out := opJSON(r, stored[0])
	if len(stored) > 1 {
		ids := make([]any, 0, len(stored)-1)
		for _, op := range stored[1:] {
			ids = append(ids, op.ID)
		}
		out["additionalOperationIds"] = ids
	}
	writeJSON(w, http.StatusCreated, out)
}

func (a *API) listOperations(w http.ResponseWriter, r *http.Request, u store.User) {
	p, ok := paging(w, r, "devicecontrol")
	if !ok {
		return
	}
	q := r.URL.Query()
	ops, total, err := a.cfg.Store.ListOperations(r.Context(), u.Tenant, store.OperationFilter{
		DeviceID: q.Get("deviceId"), Status: q.Get("status"), Page: p,
	})
	answerList(a, w, r, "devicecontrol", "operations", p, ops, total, err, opJSON)
}

func (a *API) getOperation(w http.ResponseWriter, r *http.Request, u store.User) {
	op, err := a.cfg.Store.GetOperation(r.Context(), u.Tenant, r.PathValue("id"))
	answerOne(a, w, r, "devicecontrol", op, err, opJSON)
}

// firmwareFragmentProblem says why an operation's c8y_Firmware cannot
// update a device, "" when it can; the package itself is checked by
// firmwareSourceProblem.
func firmwareFragmentProblem(fw map[string]any) string {
	for _, k := range []string{"name", "version", "url"} {
		if s, _ := fw[k].(string); strings.TrimSpace(s) == "" {
			return "c8y_Firmware." + k + " is required (a string)"
		}
	}
	url, _ := fw["url"].(string)
	if _, err := firmware.ParseSource(url); err != nil {
		return "c8y_Firmware.url: " + err.Error()
	}
	return ""
}

// checkFirmwareFragment answers 422 for an operation (or a prototype)
// whose c8y_Firmware names a package that cannot be had (see
// firmwareSourceProblem). It answers the error itself and returns false
// then.
func (a *API) checkFirmwareFragment(w http.ResponseWriter, r *http.Request, tenant string, op map[string]any) bool {
	fw, ok := op["c8y_Firmware"].(map[string]any)
	if !ok {
		return true
	}
	url, _ := fw["url"].(string)
	msg, err := a.firmwareSourceProblem(r.Context(), tenant, url)
	if err != nil {
		a.storeError(w, r, "devicecontrol", err)
		return false
	}
	if msg != "" {
		writeError(w, r, http.StatusUnprocessableEntity, "devicecontrol/unprocessable", "c8y_Firmware.url: "+msg)
		return false
	}
	return true
}

// firmwareSourceProblem says why a firmware update's package cannot be
// had, "" when it can: an agent binary (binary:<id>, or a URL ending in
// /inventory/binaries/<id>) must exist in the tenant and be within the
// firmware size limit; anything else must be an http(s) or coap(s) URL.
func (a *API) firmwareSourceProblem(ctx context.Context, tenant, raw string) (string, error) {
	src, err := firmware.ParseSource(raw)
	if err != nil {
		return err.Error(), nil
	}
	if src.BinaryID == "" {
		return "", nil
	}
	b, err := a.cfg.Store.GetBinary(ctx, tenant, src.BinaryID)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Sprintf("%q: there is no binary %s in this tenant (POST /inventory/binaries stores one)", raw, src.BinaryID), nil
	}
	if err != nil {
		return "", err
	}
	if max := a.cfg.FirmwareMaxSize; max > 0 && b.Length > max {
		return fmt.Sprintf("%q: binary %s is %d bytes, more than the %d bytes a firmware package may have", raw, src.BinaryID, b.Length, max), nil
	}
	return "", nil
}

// checkFirmwareSources answers 422 for a fwupdate whose package cannot be
// had (see firmwareSourceProblem), so that the operation is refused when
// it is created. It answers the error itself and returns false then.
func (a *API) checkFirmwareSources(w http.ResponseWriter, r *http.Request, tenant string, cmds []shell.Command) bool {
	for _, c := range cmds {
		if c.Kind != shell.FirmwareUpdate {
			continue
		}
		msg, err := a.firmwareSourceProblem(r.Context(), tenant, c.Firmware.URL)
		if err != nil {
			a.storeError(w, r, "devicecontrol", err)
			return false
		}
		if msg != "" {
			writeError(w, r, http.StatusUnprocessableEntity, "devicecontrol/unprocessable", c.Raw+": "+msg)
			return false
		}
	}
	return true
}

// Cancellations hears of operations an operator set FAILED, so that the
// work under way on them stops (a firmware update resets the device).
type Cancellations interface {
	Cancelled(ctx context.Context, tenant string, op store.Operation)
}

// updateOperation is PUT /devicecontrol/operations/{id}: as Cumulocity
// has it, an operator sets a PENDING or EXECUTING operation FAILED, with
// an optional failureReason; that cancels it. Nothing else may change.
func (a *API) updateOperation(w http.ResponseWriter, r *http.Request, u store.User) {
	var body map[string]any
	if !a.readJSON(w, r, "devicecontrol", &body) {
		return
	}
	status, _ := body["status"].(string)
	if status != store.OpFailed {
		writeError(w, r, http.StatusUnprocessableEntity, "devicecontrol/unprocessable",
			fmt.Sprintf("status %q: an operation can only be set FAILED (to cancel it)", status))
		return
	}
	for k := range body {
		if k != "status" && k != "failureReason" && k != "id" && k != "self" {
			writeError(w, r, http.StatusUnprocessableEntity, "devicecontrol/unprocessable",
				fmt.Sprintf("%s: only status and failureReason of an operation can be changed", k))
			return
		}
	}
	reason, ok := body["failureReason"].(string)
	if _, present := body["failureReason"]; present && !ok {
		writeError(w, r, http.StatusUnprocessableEntity, "devicecontrol/unprocessable", "failureReason must be a string")
		return
	}
	if strings.TrimSpace(reason) == "" {
		reason = "cancelled by " + u.UserName
	}
	id := r.PathValue("id")
	// the runner may move the operation on meanwhile (PENDING to
	// EXECUTING): read it again and retry once
	for range 2 {
		op, err := a.cfg.Store.GetOperation(r.Context(), u.Tenant, id)
		if err != nil {
			a.storeError(w, r, "devicecontrol", err)
			return
		}
		if op.Status != store.OpPending && op.Status != store.OpExecuting {
			writeError(w, r, http.StatusUnprocessableEntity, "devicecontrol/unprocessable",
				fmt.Sprintf("operation %s is %s: only a PENDING or EXECUTING operation can be set FAILED", id, op.Status))
			return
		}
		err = a.cfg.Store.SetStatusFrom(r.Context(), u.Tenant, id, op.Status, store.OpFailed, "", reason)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			a.storeError(w, r, "devicecontrol", err)
			return
		}
		if c, ok := a.cfg.Ops.(Cancellations); ok {
			c.Cancelled(context.WithoutCancel(r.Context()), u.Tenant, op)
		}
		done, err := a.cfg.Store.GetOperation(r.Context(), u.Tenant, id)
		answerOne(a, w, r, "devicecontrol", done, err, opJSON)
		return
	}
	writeError(w, r, http.StatusConflict, "devicecontrol/conflict", fmt.Sprintf("operation %s changed while it was cancelled; try again", id))
}
