package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	neturl "net/url"
	"strings"

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
		if !a.checkBinaries(w, r, u.Tenant, cmds) {
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
// update a device, "" when it can.
func firmwareFragmentProblem(fw map[string]any) string {
	for _, k := range []string{"name", "version", "url"} {
		if s, _ := fw[k].(string); strings.TrimSpace(s) == "" {
			return "c8y_Firmware." + k + " is required (a string)"
		}
	}
	// checked as the shell checks fwupdate's URL
	url, _ := fw["url"].(string)
	if msg := firmwareURLProblem(url); msg != "" {
		return "c8y_Firmware.url: " + msg
	}
	return ""
}

// firmwareURLProblem says why a firmware update's URL cannot be sent to a
// device as its Package URI, "" when it can: the device downloads it, so
// it must be an absolute URI of a protocol devices pull firmware with.
// binary:<id>, a binary stored in the agent, would need the push method
// or a download service of the agent's own.
func firmwareURLProblem(raw string) string {
	if strings.HasPrefix(raw, "binary:") {
		return fmt.Sprintf("%q: firmware from a stored binary is not supported; give a URL the device downloads from (http, https, coap, coaps)", raw)
	}
	u, err := neturl.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Sprintf("%q is not an absolute URL the device can download from", raw)
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https", "coap", "coaps", "coap+tcp", "coaps+tcp":
		return ""
	}
	return fmt.Sprintf("%q: scheme %q is none of http, https, coap, coaps, coap+tcp, coaps+tcp", raw, u.Scheme)
}
