package e2e

import (
	"fmt"
	"testing"
)

// A functionality may name only the plugins the agent has: a decoder or
// custom action plugin that the plugins file does not declare (with that
// kind) is refused at once with 422 naming those it does, instead of
// failing later on every value. What was stored before the plugins file
// lost the plugin still loads after a restart; only new writes are
// refused.
func TestFunctionalityNamesConfiguredPlugins(t *testing.T) {
	dir := t.TempDir()
	// Plugins reached over the network are declared without being
	// started: nothing needs to listen for their names to count.
	before := writeFile(t, "before.json", `{"plugins":[
	  {"name":"pressure","kind":"decoder","url":"http://127.0.0.1:9/decode"},
	  {"name":"frame","kind":"decoder","address":"127.0.0.1:9"},
	  {"name":"acts","kind":"customaction","address":"127.0.0.1:9"}]}`)
	after := writeFile(t, "after.json", `{"plugins":[{"name":"cbor","kind":"decoder","address":"127.0.0.1:9"}]}`)
	const admin = "management/admin"
	fpath := func(r int) string { return fmt.Sprintf("/lwm2m/deviceprotocols/3303/resources/%d/functionalities", r) }

	h, stop := startAgentIn(t, dir, freeUDPAddr(t), withPluginsConfig(before))
	for _, ok := range []struct {
		res    int
		action string
	}{{5700, "decoder:pressure"}, {5701, "decoder:frame:c8y_Temperature"}, {5750, "plugin:acts:c8y_Seen"}} {
		if code, p, e := h.put(admin, adminPassword, fpath(ok.res), map[string]any{"customAction": ok.action}); code != 200 {
			t.Fatalf("%s: HTTP %d %+v", ok.action, code, e)
		} else if r, _ := p.resource(ok.res); r.Functionalities.CustomAction != ok.action {
			t.Fatalf("%s: stored %+v", ok.action, r.Functionalities)
		}
	}
	for _, bad := range []struct{ action, msg string }{
		{"decoder:pressur", `invalid functionality: customAction "decoder:pressur": no decoder "pressur" is configured; the decoders: frame, pressure (did you mean "pressure"?)`},
		{"decoder:acts", `invalid functionality: customAction "decoder:acts": no decoder "acts" is configured; acts is a custom action plugin: plugin:acts`},
		{"plugin:pressure", `invalid functionality: customAction "plugin:pressure": no custom action plugin "pressure" is configured; pressure is a decoder: decoder:pressure`},
		{"plugin:mapping:x", `invalid functionality: customAction "plugin:mapping:x": no custom action plugin "mapping" is configured; the custom action plugins: acts`},
	} {
		code, _, e := h.put(admin, adminPassword, fpath(5601), map[string]any{"customAction": bad.action, "autoObserve": true})
		if code != 422 || e.Error != "lwm2m/unprocessable" || e.Message != bad.msg {
			t.Errorf("%s: HTTP %d %+v\nwant 422 %s", bad.action, code, e, bad.msg)
		}
	}
	stop()

	// The plugins file changed: pressure, frame and acts are gone.
	h, _ = startAgentIn(t, dir, freeUDPAddr(t), withPluginsConfig(after))
	var p protocol
	if code := h.call("GET", "/lwm2m/deviceprotocols/3303", nil, &p); code != 200 {
		t.Fatalf("GET after the restart: HTTP %d", code)
	}
	for res, want := range map[int]string{5700: "decoder:pressure", 5701: "decoder:frame:c8y_Temperature", 5750: "plugin:acts:c8y_Seen", 5601: ""} {
		if r, _ := p.resource(res); r.Functionalities.CustomAction != want {
			t.Errorf("/3303/x/%d after the restart: %+v, want %q", res, r.Functionalities, want)
		}
	}
	if f, err := h.agent.Protocols.Functionalities(h.ctx, "management", 3303); err != nil || f[5700].CustomAction != "decoder:pressure" {
		t.Errorf("the pipeline's lookup after the restart: %+v %v", f, err)
	}
	// storing the same again is a new write, and refused
	code, _, e := h.put(admin, adminPassword, fpath(5700), map[string]any{"customAction": "decoder:pressure"})
	if want := `invalid functionality: customAction "decoder:pressure": no decoder "pressure" is configured; the decoders: cbor`; code != 422 || e.Message != want {
		t.Errorf("decoder:pressure after the restart: HTTP %d %+v, want 422 %s", code, e, want)
	}
	// the rest of a stored protocol can still be changed
	if code, _, e := h.put(admin, adminPassword, fpath(5601), map[string]any{"customAction": "decoder:cbor"}); code != 200 {
		t.Errorf("decoder:cbor after the restart: HTTP %d %+v", code, e)
	}
}
