package e2e

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"
)

// A mapping plugin declared in the plugins file, a real process started
// by the agent, gets the devices' values in batches after the agent's own
// mapping; what it returns is stored as the device's measurements.
func TestMappingPluginProcess(t *testing.T) {
	h := agentWithPlugin(t, "numbers", "mapping", "mapping")
	h.simulate(1, nil)
	id := h.device("testmappingpluginprocess-0").str("id")
	if op := h.shell(id, "observe /3303/0/5700", 10*time.Second); op.Status != "SUCCESSFUL" {
		t.Fatalf("observe: %s %s", op.Status, op.FailureReason)
	}
	typ := url.QueryEscape("c8y_/3303/0/5700") // what the test plugin names them
	h.eventually(10*time.Second, func() error {
		var res struct {
			Measurements []map[string]any `json:"measurements"`
		}
		h.call("GET", "/measurement/measurements?pageSize=100&source="+id+"&type="+typ, nil, &res)
		if len(res.Measurements) < 3 {
			return fmt.Errorf("%d measurements from the plugin", len(res.Measurements))
		}
		return nil
	})
	text, err := h.metrics()
	if err != nil {
		t.Fatal(err)
	}
	if want := "\n" + `lwm2m_agent_plugin_calls_total{kind="mapping",plugin="numbers"} `; !strings.Contains(text, want) {
		t.Errorf("/metrics lacks %s", want)
	}
}

// A resource whose customAction names a custom action plugin
// (plugin:<name>:<action>) has its values run through that plugin process,
// and what it returns is stored.
func TestCustomActionPluginProcess(t *testing.T) {
	h := agentWithPlugin(t, "acts", "customaction", "customaction")
	// the test plugin answers each batch with an event named after the action
	h.setFunctionality("management/admin", adminPassword, "3303/resources/5700",
		map[string]any{"customAction": "plugin:acts:c8y_TemperatureSeen", "autoObserve": true})
	h.simulate(1, nil)
	id := h.device("testcustomactionpluginprocess-0").str("id")
	h.eventually(10*time.Second, func() error {
		if n := len(h.events(id, "c8y_TemperatureSeen")); n < 2 {
			return fmt.Errorf("%d events from the custom action plugin", n)
		}
		return nil
	})
}
