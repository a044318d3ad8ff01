package api

import (
	"net/http"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/plugins"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// PluginStatus is what GET /lwm2m/plugins shows: the figures the agent's
// /metrics exposes of its plugins and of the decode backlog.
type PluginStatus interface {
	// PluginStats are the counters of every plugin, sorted by name.
	PluginStats() []plugins.Stats
	// DecodeBacklog is the last count of the values waiting for each
	// decoder, across tenants, and the values dropped by reason.
	DecodeBacklog() ([]store.DecodeBacklogStat, map[string]int64)
}

const pluginsPath = "/lwm2m/plugins"

// listPlugins answers the plugins with their status, for administrators:
// plugins serve every tenant, and their names are what any tenant's
// device protocols name. The decode backlog is counted across tenants,
// so only the management tenant's administrators see it.
func (a *API) listPlugins(w http.ResponseWriter, r *http.Request, u store.User) {
	if !u.IsAdmin() {
		writeError(w, r, http.StatusForbidden, "security/Forbidden", "only an administrator sees the plugins")
		return
	}
	list := []map[string]any{}
	var backlog []store.DecodeBacklogStat
	var dropped map[string]int64
	if a.cfg.PluginStatus != nil {
		for _, s := range a.cfg.PluginStatus.PluginStats() {
			list = append(list, map[string]any{
				"name": s.Name, "kind": s.Kind, "via": s.Via, "up": s.Up,
				"calls": s.Calls, "errors": s.Errors, "restarts": s.Restarts, "restartsBy": s.RestartsBy,
			})
		}
		backlog, dropped = a.cfg.PluginStatus.DecodeBacklog()
	}
	out := map[string]any{"plugins": list, "self": self(r, pluginsPath)}
	if u.Tenant == store.ManagementTenant {
		now := time.Now()
		decoders := []map[string]any{}
		for _, s := range backlog {
			d := map[string]any{"decoder": s.Decoder, "waiting": s.Waiting}
			if s.Waiting > 0 && !s.Oldest.IsZero() {
				d["oldest"] = jsonTime(s.Oldest)
				d["oldestAgeSeconds"] = max(0, now.Sub(s.Oldest).Seconds())
			}
			decoders = append(decoders, d)
		}
		if dropped == nil {
			dropped = map[string]int64{}
		}
		out["decodeBacklog"] = map[string]any{"decoders": decoders, "dropped": dropped}
	}
	writeJSON(w, http.StatusOK, out)
}
