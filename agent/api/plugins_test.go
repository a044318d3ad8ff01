package api_test

import (
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/api"
	"github.com/lwm2m-agent/lwm2m-agent/agent/plugins"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

type fixedPlugins struct{ oldest time.Time }

func (f fixedPlugins) PluginStats() []plugins.Stats {
	return []plugins.Stats{{Name: "frame-svc", Kind: "decoder", Via: "grpc", Up: false, Calls: 7, Errors: 7,
		Restarts: 2, RestartsBy: map[string]uint64{"crash": 0, "hang": 2, "start": 0}}}
}

func (f fixedPlugins) DecodeBacklog() ([]store.DecodeBacklogStat, map[string]int64) {
	return []store.DecodeBacklogStat{{Decoder: "frame-svc", Waiting: 40, Oldest: f.oldest}}, map[string]int64{"full": 1, "expired": 0, "store": 0}
}

// Every administrator sees the plugins and their status; the decode
// backlog, counted across tenants, only the management tenant's.
func TestPluginsStatus(t *testing.T) {
	oldest := time.Now().Add(-time.Minute)
	e := newEnv(t, func(c *api.Config) { c.PluginStatus = fixedPlugins{oldest} })

	mgmt := e.want(e.do("GET", "/lwm2m/plugins", store.ManagementTenant, nil), 200).body
	ps := mgmt["plugins"].([]any)
	if len(ps) != 1 {
		t.Fatalf("plugins %v", ps)
	}
	p := ps[0].(map[string]any)
	if p["name"] != "frame-svc" || p["up"] != false || p["restarts"] != 2.0 || p["restartsBy"].(map[string]any)["hang"] != 2.0 {
		t.Errorf("plugin %v", p)
	}
	bl, ok := mgmt["decodeBacklog"].(map[string]any)
	if !ok {
		t.Fatalf("no decodeBacklog for the management tenant: %v", mgmt)
	}
	d := bl["decoders"].([]any)[0].(map[string]any)
	if d["decoder"] != "frame-svc" || d["waiting"] != 40.0 || d["oldestAgeSeconds"].(float64) < 59 {
		t.Errorf("decoder backlog %v", d)
	}
	if bl["dropped"].(map[string]any)["full"] != 1.0 {
		t.Errorf("dropped %v", bl["dropped"])
	}

	other := e.want(e.do("GET", "/lwm2m/plugins", "a", nil), 200).body
	if _, ok := other["decodeBacklog"]; ok {
		t.Errorf("tenant a sees the decode backlog of every tenant: %v", other)
	}
	if len(other["plugins"].([]any)) != 1 {
		t.Errorf("tenant a's plugins: %v", other["plugins"])
	}
	e.want(e.do("GET", "/lwm2m/plugins", "", nil), 401)
}
