package e2e

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/config"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

const pskHeader = "ID;IDTYPE;CREDENTIALS;TYPE;endpoint id;lwm2m server uri;securityMode;lwm2m psk_id;lwm2m psk_key;bootstrap psk_id;bootstrap psk_key\n"

// pskCSVLine is a PSK device whose identities are <ep>-id and <ep>-bs.
func pskCSVLine(ep, key string) string {
	return fmt.Sprintf("%s;c8y_Id;Secret-pass-1234!;c8y_lwm2m;%s;coaps://127.0.0.1:5784;PSK;%s-id;%s;%s-bs;%s\n", ep, ep, ep, key, ep, key)
}

// importOK imports a file as user and fails the test unless every line
// succeeded.
func (h *harness) importOK(user, pass, csv string) {
	h.t.Helper()
	code, res, raw := h.postCSV(user, pass, []byte(csv), false)
	if code != 201 || res.Failed != 0 {
		h.t.Fatalf("import: HTTP %d %s", code, raw)
	}
}

func (h *harness) bootstrap(id string) map[string]any {
	h.t.Helper()
	var b map[string]any
	if code := h.call("GET", "/lwm2m/devices/"+id+"/bootstrap", nil, &b); code != 200 {
		h.t.Fatalf("bootstrap of %s: HTTP %d %v", id, code, b)
	}
	return b
}

// pskHolder is the device a PSK identity names in handshakes, "" if none.
func (h *harness) pskHolder(kind, ident string) string {
	h.t.Helper()
	t, id, err := h.agent.Store.DeviceByPSKIdentity(h.ctx, kind, ident)
	if errors.Is(err, store.ErrNotFound) {
		return ""
	}
	if err != nil {
		h.t.Fatal(err)
	}
	return t + "/" + id
}

type apiErr struct {
	Error   string `json:"error"`
	Message string `json:"message"`
	Info    string `json:"info"`
}

func TestBootstrapParametersPut(t *testing.T) {
	h := startAgent(t, withAutoRegister(false))
	h.importOK("management/admin", adminPassword, pskHeader+pskCSVLine("pp-1", "00112233")+pskCSVLine("pp-2", "44556677"))
	id, id2 := h.device("pp-1").str("id"), h.device("pp-2").str("id")
	path := "/lwm2m/devices/" + id + "/bootstrap"
	var seen strings.Builder // every answer, to look for keys

	// a change merges into what is stored and moves the identity
	var got map[string]any
	code := h.call("PUT", path, map[string]any{
		"registrationLifetime": 600, "bindingMode": "U", "lwm2mPskId": "pp-1-new", "lwm2mPskKey": "a1b2c3d4",
	}, &got)
	fmt.Fprint(&seen, got)
	if code != 200 || got["registrationLifetime"] != float64(600) || got["bindingMode"] != "U" || got["lwm2mPskId"] != "pp-1-new" ||
		got["securityMode"] != "PSK" || got["bootstrapPskId"] != "pp-1-bs" || got["endpointId"] != "pp-1" || got["deviceId"] != id {
		t.Fatalf("PUT: HTTP %d %v", code, got)
	}
	for k := range got {
		if strings.Contains(strings.ToLower(k), "key") || strings.Contains(strings.ToLower(k), "credential") {
			t.Errorf("PUT answers %q", k)
		}
	}
	if b := h.bootstrap(id); b["registrationLifetime"] != float64(600) || b["lwm2mPskId"] != "pp-1-new" {
		t.Errorf("GET after PUT: %v", b)
	}
	if holder := h.pskHolder(store.PSKServer, "pp-1-new"); holder != "management/"+id {
		t.Errorf("new identity held by %q, want management/%s", holder, id)
	}
	if holder := h.pskHolder(store.PSKServer, "pp-1-id"); holder != "" {
		t.Errorf("old identity still held by %q", holder)
	}
	reg, err := h.agent.Store.DeviceRegistrationOf(h.ctx, "management", id)
	if err != nil || fmt.Sprintf("%x", reg.PSKKey) != "a1b2c3d4" || fmt.Sprintf("%x", reg.BootstrapPSKKey) != "00112233" || len(reg.CredentialsHash) == 0 {
		t.Errorf("stored keys %x %x, credentials kept: %v (%v)", reg.PSKKey, reg.BootstrapPSKKey, len(reg.CredentialsHash) > 0, err)
	}

	// null removes an optional parameter; what GET answers may be sent back
	b := h.bootstrap(id)
	b["registrationLifetime"] = nil
	got = nil
	if code := h.call("PUT", path, b, &got); code != 200 || got["registrationLifetime"] != nil || got["bindingMode"] != "U" {
		t.Errorf("PUT of the GET answer with a null: HTTP %d %v", code, got)
	}

	refused := []struct {
		name string
		body map[string]any
		code int
		want []string // in the message
	}{
		{"every problem together", map[string]any{"registrationLifetime": 0, "bindingMode": "X", "colour": "red"}, 422,
			[]string{"colour", "registrationLifetime 0 must be 1 or more", `bindingMode "X" must be U or UQ`}},
		{"unknown member", map[string]any{"lifetime": 60}, 422, []string{"unknown parameter lifetime"}},
		{"credentials are not a parameter", map[string]any{"CREDENTIALS": "Secret-pass-1234!"}, 422, []string{"CREDENTIALS"}},
		{"endpoint change", map[string]any{"endpointId": "other"}, 422, []string{"endpointId cannot change", "identity"}},
		{"endpoint removal", map[string]any{"endpointId": nil}, 422, []string{"endpointId cannot change"}},
		{"request timeout above the maximum", map[string]any{"lwm2mRequestTimeout": 300001}, 422, []string{"lwm2mRequestTimeout 300001 ms is above the maximum of 300000 ms"}},
		{"key removed from a PSK device", map[string]any{"lwm2mPskKey": nil}, 422, []string{"lwm2mPskKey is missing"}},
		{"key not hex", map[string]any{"lwm2mPskKey": "xyz"}, 422, []string{"lwm2mPskKey is not hexadecimal"}},
		{"wrong type", map[string]any{"notificationIfDisabled": "maybe", "defaultMinimumPeriod": true}, 422,
			[]string{`notificationIfDisabled "maybe" must be true or false`, "defaultMinimumPeriod must be a whole number, not a boolean"}},
		{"NO_SEC keeping keys", map[string]any{"securityMode": "NO_SEC", "lwm2mServerUri": "coap://127.0.0.1:5783"}, 422,
			[]string{"securityMode NO_SEC must not carry keys", "lwm2mPskKey"}},
		{"another device's identity", map[string]any{"lwm2mPskId": "pp-2-id"}, 409, []string{`lwm2mPskId "pp-2-id" belongs to another device`}},
		{"another device's bootstrap identity", map[string]any{"lwm2mPskId": "pp-1-newer", "bootstrapPskId": "pp-2-bs"}, 409, []string{`bootstrapPskId "pp-2-bs" belongs to another device`}},
		{"another device id", map[string]any{"deviceId": id2}, 422, []string{"not this device"}},
	}
	before := h.bootstrap(id)
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			var e apiErr
			code := h.call("PUT", path, tc.body, &e)
			fmt.Fprint(&seen, e)
			if code != tc.code || e.Error == "" || e.Info == "" {
				t.Fatalf("HTTP %d %+v, want %d in the error shape", code, e, tc.code)
			}
			for _, w := range tc.want {
				if !strings.Contains(e.Message, w) {
					t.Errorf("message %q does not say %q", e.Message, w)
				}
			}
			if after := h.bootstrap(id); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Errorf("a refused PUT changed the parameters:\n%v\n%v", before, after)
			}
		})
	}
	if holder := h.pskHolder(store.PSKServer, "pp-1-newer"); holder != "" {
		t.Errorf("a refused PUT bound an identity to %q", holder)
	}
	if holder := h.pskHolder(store.PSKServer, "pp-1-new"); holder != "management/"+id {
		t.Errorf("a refused PUT released the identity: %q", holder)
	}
	if holder := h.pskHolder(store.PSKBootstrap, "pp-2-bs"); holder != "management/"+id2 {
		t.Errorf("the other device lost its identity: %q", holder)
	}
	if c := h.call("PUT", "/lwm2m/devices/nope/bootstrap", map[string]any{"bindingMode": "U"}, nil); c != 404 {
		t.Errorf("PUT of an unknown device: HTTP %d", c)
	}

	// to NO_SEC: the keys and identities go with nulls
	got = nil
	code = h.call("PUT", path, map[string]any{
		"securityMode": "NO_SEC", "lwm2mServerUri": "coap://127.0.0.1:5783",
		"lwm2mPskId": nil, "lwm2mPskKey": nil, "bootstrapPskId": nil, "bootstrapPskKey": nil,
	}, &got)
	if code != 200 || got["securityMode"] != "NO_SEC" || got["lwm2mPskId"] != nil {
		t.Fatalf("to NO_SEC: HTTP %d %v", code, got)
	}
	if h.pskHolder(store.PSKServer, "pp-1-new") != "" || h.pskHolder(store.PSKBootstrap, "pp-1-bs") != "" {
		t.Error("a NO_SEC device still holds PSK identities")
	}
	if reg, _ := h.agent.Store.DeviceRegistrationOf(h.ctx, "management", id); len(reg.PSKKey) != 0 || len(reg.BootstrapPSKKey) != 0 {
		t.Errorf("a NO_SEC device keeps keys %x %x", reg.PSKKey, reg.BootstrapPSKKey)
	}

	fmt.Fprint(&seen, h.everything(id, id2))
	for _, key := range []string{"00112233", "44556677", "a1b2c3d4", "ABEiMw", "obLD1A"} {
		if strings.Contains(seen.String(), key) {
			t.Errorf("an answer shows the key %q", key)
		}
	}
}

// An auto-registered device has the parameters auto-registration gives
// it (its endpoint, securityMode NO_SEC) until a PUT completes them.
func TestBootstrapParametersOfAutoRegisteredDevice(t *testing.T) {
	h := startAgent(t)
	h.simulate(1, nil)
	ep := strings.ReplaceAll(strings.ToLower(t.Name()), "/", "-") + "-0"
	id := h.device(ep).str("id")
	path := "/lwm2m/devices/" + id + "/bootstrap"
	if b := h.bootstrap(id); b["endpointId"] != ep || b["securityMode"] != "NO_SEC" || b["lwm2mServerUri"] != nil {
		t.Errorf("GET of an auto-registered device: %v", b)
	}
	var e apiErr
	if c := h.call("PUT", path, map[string]any{"bindingMode": "UQ"}, &e); c != 422 || !strings.Contains(e.Message, "lwm2mServerUri is missing") {
		t.Errorf("PUT without the mandatory parameters: HTTP %d %+v", c, e)
	}
	var got map[string]any
	c := h.call("PUT", path, map[string]any{"lwm2mServerUri": "coap://127.0.0.1:5783", "securityMode": "NO_SEC", "awakeTimeRegistrationParameter": 0}, &got)
	if c != 200 || got["endpointId"] != ep || got["awakeTimeRegistrationParameter"] != float64(0) {
		t.Fatalf("first PUT: HTTP %d %v", c, got)
	}
	if b := h.bootstrap(id); b["endpointId"] != ep || b["securityMode"] != "NO_SEC" {
		t.Errorf("GET after the first PUT: %v", b)
	}
	// a plain managed object is no LwM2M device
	var mo map[string]any
	h.call("POST", "/inventory/managedObjects", map[string]any{"name": "a building"}, &mo)
	if c := h.call("PUT", fmt.Sprintf("/lwm2m/devices/%v/bootstrap", mo["id"]), map[string]any{"lwm2mServerUri": "coap://h:1", "securityMode": "NO_SEC"}, &e); c != 422 || !strings.Contains(e.Message, "no LwM2M endpoint") {
		t.Errorf("PUT for an object without endpoint: HTTP %d %+v", c, e)
	}
}

func TestAwakeTimeOnManagedObject(t *testing.T) {
	h := startAgent(t)
	h.importOK("management/admin", adminPassword, "ID;IDTYPE;CREDENTIALS;TYPE;endpoint id;lwm2m server uri;securityMode;awakeTimeRegistrationParameter\n"+
		"sleepy;c8y_Id;Secret-pass-1234!;c8y_lwm2m;sleepy;coap://127.0.0.1:5783;NO_SEC;5000\n")
	id := h.device("sleepy").str("id")
	mo := "/inventory/managedObjects/" + id

	var got map[string]any
	if c := h.call("PUT", mo, map[string]any{"awakeTimeRegistrationParameter": 180000, "name": "Sleepy meter"}, &got); c != 200 || got["name"] != "Sleepy meter" {
		t.Fatalf("PUT: HTTP %d %v", c, got)
	}
	if b := h.bootstrap(id); b["awakeTimeRegistrationParameter"] != float64(180000) || b["securityMode"] != "NO_SEC" {
		t.Errorf("bootstrap parameters after the PUT: %v", b)
	}
	for _, bad := range []any{-1, "soon", 1.5, 3000000000, map[string]any{"ms": 1}} {
		var e apiErr
		c := h.call("PUT", mo, map[string]any{"awakeTimeRegistrationParameter": bad, "name": "renamed"}, &e)
		if c != 422 || !strings.Contains(e.Message, "awakeTimeRegistrationParameter") {
			t.Errorf("awake time %v: HTTP %d %+v, want 422 naming it", bad, c, e)
		}
	}
	if m := h.device("sleepy"); m.str("name") != "Sleepy meter" {
		t.Errorf("a refused PUT renamed the device to %q", m.str("name"))
	}
	if b := h.bootstrap(id); b["awakeTimeRegistrationParameter"] != float64(180000) {
		t.Errorf("a refused PUT changed the awake time: %v", b)
	}
	if c := h.call("PUT", mo, map[string]any{"awakeTimeRegistrationParameter": nil}, nil); c != 200 {
		t.Errorf("removing the awake time: HTTP %d", c)
	}
	if b := h.bootstrap(id); b["awakeTimeRegistrationParameter"] != nil || b["endpointId"] != "sleepy" {
		t.Errorf("after removing the awake time: %v", b)
	}

	// a device without parameters gets a record holding the awake time
	h.simulate(1, nil)
	ep := strings.ReplaceAll(strings.ToLower(t.Name()), "/", "-") + "-0"
	sid := h.device(ep).str("id")
	if c := h.call("PUT", "/inventory/managedObjects/"+sid, map[string]any{"awakeTimeRegistrationParameter": 0}, nil); c != 200 {
		t.Fatalf("PUT on an auto-registered device: HTTP %d", c)
	}
	if b := h.bootstrap(sid); b["awakeTimeRegistrationParameter"] != float64(0) || b["endpointId"] != ep {
		t.Errorf("auto-registered device's parameters: %v", b)
	}
}

func TestMaxRequestTimeoutFromConfig(t *testing.T) {
	h := startAgent(t, func(c *config.Config) { c.MaxRequestTimeout = 10 * time.Second })
	csv := "ID;IDTYPE;CREDENTIALS;TYPE;endpoint id;lwm2m server uri;securityMode;lwm2mRequestTimeout\n" +
		"rt-ok;c8y_Id;Secret-pass-1234!;c8y_lwm2m;rt-ok;coap://127.0.0.1:5783;NO_SEC;10000\n" +
		"rt-long;c8y_Id;Secret-pass-1234!;c8y_lwm2m;rt-long;coap://127.0.0.1:5783;NO_SEC;10001\n"
	code, res, raw := h.postCSV("management/admin", adminPassword, []byte(csv), false)
	if code != 201 || res.Successful != 1 || res.Failed != 1 || res.Failures[0].Line != 3 ||
		!strings.Contains(res.Failures[0].Reason, "lwm2mRequestTimeout 10001 ms is above the maximum of 10000 ms") {
		t.Fatalf("import: HTTP %d %s", code, raw)
	}
	id := h.device("rt-ok").str("id")
	var e apiErr
	if c := h.call("PUT", "/lwm2m/devices/"+id+"/bootstrap", map[string]any{"lwm2mRequestTimeout": 10001}, &e); c != 422 ||
		!strings.Contains(e.Message, "above the maximum of 10000 ms") {
		t.Errorf("PUT above the maximum: HTTP %d %+v", c, e)
	}
	var got map[string]any
	if c := h.call("PUT", "/lwm2m/devices/"+id+"/bootstrap", map[string]any{"lwm2mRequestTimeout": 9000}, &got); c != 200 || got["lwm2mRequestTimeout"] != float64(9000) {
		t.Errorf("PUT below the maximum: HTTP %d %v", c, got)
	}
}

// Bulk registration binds a PSK device's identities for the DTLS layer;
// a duplicate of the endpoint in another tenant binds nothing, and an
// identity another device holds fails the line without writing anything.
func TestBulkPSKIdentitiesBound(t *testing.T) {
	h := startAgent(t, withAutoRegister(false))
	h.importOK("management/admin", adminPassword, pskHeader+pskCSVLine("bound-1", "0a0b0c0d"))
	id := h.device("bound-1").str("id")
	for kind, ident := range map[string]string{store.PSKServer: "bound-1-id", store.PSKBootstrap: "bound-1-bs"} {
		if holder := h.pskHolder(kind, ident); holder != "management/"+id {
			t.Errorf("%s identity %s held by %q, want management/%s", kind, ident, holder, id)
		}
	}
	if c := h.call("POST", "/tenant/tenants", map[string]any{"id": "acme", "adminName": "admin", "adminPass": "Acme-pass-1234!"}, nil); c != 201 {
		t.Fatalf("create tenant: HTTP %d", c)
	}
	// the same endpoint in another tenant: created, flagged, binds nothing
	h.importOK("acme/admin", "Acme-pass-1234!", pskHeader+pskCSVLine("bound-1", "0a0b0c0d"))
	for kind, ident := range map[string]string{store.PSKServer: "bound-1-id", store.PSKBootstrap: "bound-1-bs"} {
		if holder := h.pskHolder(kind, ident); holder != "management/"+id {
			t.Errorf("after the duplicate: %s identity %s held by %q", kind, ident, holder)
		}
	}
	// another endpoint claiming the identity fails and creates nothing
	line := strings.Replace(pskCSVLine("thief", "0a0b0c0d"), "thief-id", "bound-1-id", 1)
	code, res, raw := h.postCSV("acme/admin", "Acme-pass-1234!", []byte(pskHeader+line), false)
	if code != 201 || res.Failed != 1 || res.Successful != 0 || !strings.Contains(res.Failures[0].Reason, `"bound-1-id" belongs to another device`) {
		t.Fatalf("identity of another device: HTTP %d %s", code, raw)
	}
	if c := h.callAs("acme/admin", "Acme-pass-1234!", "GET", "/identity/externalIds/c8y_Id/thief", nil, nil); c != 404 {
		t.Errorf("the failed line created its device: HTTP %d", c)
	}
	if holder := h.pskHolder(store.PSKBootstrap, "thief-bs"); holder != "" {
		t.Errorf("the failed line bound its bootstrap identity to %q", holder)
	}
	// two lines of one file claiming one identity: the later fails
	file := pskHeader + pskCSVLine("twin-1", "01020304") + strings.Replace(pskCSVLine("twin-2", "01020304"), "twin-2-id", "twin-1-id", 1)
	code, res, raw = h.postCSV("management/admin", adminPassword, []byte(file), false)
	if code != 201 || res.Successful != 1 || res.Failed != 1 || res.Failures[0].Line != 3 || !strings.Contains(res.Failures[0].Reason, "already appears on line 2") {
		t.Fatalf("repeated identity in one file: HTTP %d %s", code, raw)
	}
	if c := h.call("GET", "/identity/externalIds/c8y_Id/twin-2", nil, nil); c != 404 {
		t.Errorf("the repeated line created its device: HTTP %d", c)
	}
	// an identical repeat of a line is no conflict with itself
	file = pskHeader + pskCSVLine("same-1", "05060708") + pskCSVLine("same-1", "05060708")
	code, res, raw = h.postCSV("management/admin", adminPassword, []byte(file), false)
	if code != 201 || res.All != 2 || res.Created != 1 || res.Successful != 2 || res.Failed != 0 {
		t.Fatalf("identical repeat: HTTP %d %s", code, raw)
	}
	// re-importing the file changes nothing and fails nothing
	h.importOK("management/admin", adminPassword, pskHeader+pskCSVLine("bound-1", "0a0b0c0d"))
	if holder := h.pskHolder(store.PSKServer, "bound-1-id"); holder != "management/"+id {
		t.Errorf("after re-import: held by %q", holder)
	}
}

// A key and identity changed at the bootstrap resource are the ones the
// DTLS port accepts from then on; the old ones open no session.
func TestPSKChangeTakesEffectOverDTLS(t *testing.T) {
	h := startAgent(t, withAutoRegister(false), func(c *config.Config) { c.DTLSHandshakeTimeout = time.Second })
	h.importOK("management/admin", adminPassword, pskHeader+pskCSVLine("rekey", "00010203"))
	id := h.device("rekey").str("id")
	if _, err := dialPSK(t, h.agent.CoAPSAddr, "rekey-id", []byte{0, 1, 2, 3}); err != nil {
		t.Fatalf("handshake with the imported identity and key: %v", err)
	}
	if c := h.call("PUT", "/lwm2m/devices/"+id+"/bootstrap", map[string]any{"lwm2mPskId": "rekey-2", "lwm2mPskKey": "f0f1f2f3f4f5"}, nil); c != 200 {
		t.Fatalf("PUT: HTTP %d", c)
	}
	if _, err := dialPSK(t, h.agent.CoAPSAddr, "rekey-id", []byte{0, 1, 2, 3}); err == nil {
		t.Error("the old identity still opens a session")
	}
	if _, err := dialPSK(t, h.agent.CoAPSAddr, "rekey-2", []byte{0, 1, 2, 3}); err == nil {
		t.Error("the new identity opens a session with the old key")
	}
	c, err := dialPSK(t, h.agent.CoAPSAddr, "rekey-2", []byte{0xf0, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5})
	if err != nil {
		t.Fatalf("handshake with the new identity and key: %v", err)
	}
	if code := register(t, c, "rekey"); code != codes.Created {
		t.Fatalf("register with the new credentials: %v, want 2.01", code)
	}
}
