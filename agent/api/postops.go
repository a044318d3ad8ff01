package api

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/lwm2m-agent/lwm2m-agent/agent/shell"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

const postOpsPath = "/lwm2m/postoperations"

func postOpsJSON(r *http.Request, cmds []string) map[string]any {
	list := make([]any, len(cmds))
	for i, c := range cmds {
		list[i] = c
	}
	return map[string]any{"commands": list, "self": self(r, postOpsPath)}
}

// getPostOperations answers the tenant's post-registration commands.
func (a *API) getPostOperations(w http.ResponseWriter, r *http.Request, u store.User) {
	cmds, err := a.cfg.Store.PostOperations(r.Context(), u.Tenant)
	if err != nil {
		a.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, postOpsJSON(r, cmds))
}

// putPostOperations replaces the tenant's post-registration commands:
// shell commands queued, in order, for every device of the tenant on each
// of its full registrations. Every command is checked with the shell's
// grammar; a malformed one answers 422 naming its place in the list and
// the problem, and nothing is stored. An empty list removes them.
func (a *API) putPostOperations(w http.ResponseWriter, r *http.Request, u store.User) {
	var body map[string]any
	if !a.readJSON(w, r, "lwm2m", &body) {
		return
	}
	raw, ok := body["commands"]
	if !ok {
		writeError(w, r, http.StatusUnprocessableEntity, "lwm2m/unprocessable", `the body needs "commands": a list of shell commands`)
		return
	}
	list, ok := raw.([]any)
	if !ok && raw != nil {
		writeError(w, r, http.StatusUnprocessableEntity, "lwm2m/unprocessable", `"commands" must be a list of shell commands`)
		return
	}
	if len(list) > store.MaxPostOperations {
		writeError(w, r, http.StatusUnprocessableEntity, "lwm2m/unprocessable",
			fmt.Sprintf("%d commands; at most %d post-registration commands are allowed", len(list), store.MaxPostOperations))
		return
	}
	cmds := make([]string, 0, len(list))
	var errs []string
	for i, v := range list {
		line := "command " + strconv.Itoa(i+1)
		text, ok := v.(string)
		if !ok {
			errs = append(errs, line+": not a string")
			continue
		}
		if len(text) > store.MaxPostOperationLength {
			errs = append(errs, fmt.Sprintf("%s: longer than %d bytes", line, store.MaxPostOperationLength))
			continue
		}
		c, err := shell.Parse(text)
		if err != nil {
			errs = append(errs, line+": "+err.Error())
			continue
		}
		cmds = append(cmds, c.Raw)
	}
	if len(errs) > 0 {
		writeError(w, r, http.StatusUnprocessableEntity, "lwm2m/unprocessable",
			strings.Join(errs, "\n")+"\nnothing was stored")
		return
	}
	if err := a.cfg.Store.SetPostOperations(r.Context(), u.Tenant, cmds); err != nil {
		if errors.Is(err, store.ErrInvalid) {
			writeError(w, r, http.StatusUnprocessableEntity, "lwm2m/unprocessable", err.Error())
			return
		}
		a.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, postOpsJSON(r, cmds))
}
