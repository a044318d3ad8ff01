package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// answers records every answer body of a test, to look for secrets in.
type answers struct{ strings.Builder }

// rawAs makes a request and returns the status and the body as text.
func (h *harness) rawAs(seen *answers, user, pass, method, path string, body any) (int, string) {
	h.t.Helper()
	code, data := h.send(user, pass, method, path, body)
	seen.Write(data)
	return code, string(data)
}

// A user of one tenant neither reads nor changes another tenant's objects:
// every id of the other tenant answers 404, no list holds them, and no
// answer of either tenant shows a PSK key.
func TestTenantIsolation(t *testing.T) {
	h := startAgent(t) // auto-registered devices land in the management tenant: tenant A
	const bUser, bPass = "beta/admin", "Beta-pass-1234!"
	aUser, aPass := "management/admin", adminPassword
	var seen answers

	// tenant A: a live device with events, a measurement, an alarm and an
	// operation, and a bulk-registered PSK device with parameters and
	// external IDs
	h.simulate(1, nil)
	liveEP := strings.ReplaceAll(strings.ToLower(t.Name()), "/", "-") + "-0"
	live := h.device(liveEP).str("id")
	const keyA, bsKeyA = "5ec7e75ec7e75ec7", "b5b5b5b5c0c0c0c0"
	csvA := "ID;IDTYPE;CREDENTIALS;NAME;TYPE;endpoint id;lwm2m server uri;securityMode;lwm2m psk_id;lwm2m psk_key;bootstrap psk_id;bootstrap psk_key;external-c8y_Lwm2mPskId\n" +
		"iso-psk;c8y_Id;Secret-pass-1234!;Alpha meter;c8y_lwm2m;iso-psk;coaps://127.0.0.1:5784;PSK;iso-psk-id;" + keyA + ";iso-psk-bs;" + bsKeyA + ";iso-psk-id\n"
	if code, res, raw := h.postCSV(aUser, aPass, []byte(csvA), false); code != 201 || res.Created != 1 {
		t.Fatalf("tenant A import: HTTP %d %s", code, raw)
	}
	psk := h.device("iso-psk").str("id")
	mids, err := h.agent.Store.AddMeasurements(h.ctx, "management", []store.Measurement{{
		Source: live, Type: "c8y_Temperature", Time: time.Now().UTC(),
		Fragments: map[string]any{"c8y_Temperature": map[string]any{"T": store.SeriesValue(21.5, "C")}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	alarm, err := h.agent.Store.RaiseAlarm(h.ctx, "management", store.Alarm{
		Source: live, Type: "c8y_IsolationAlarm", Severity: "MAJOR", Status: "ACTIVE", Text: "hot", Time: time.Now().UTC(),
	})
	if err != nil {
		t.Fatal(err)
	}
	op := h.shell(live, "read /3/0/0", 10*time.Second)
	var evs struct {
		Events []struct{ ID string } `json:"events"`
	}
	if c := h.call("GET", "/event/events?source="+live, nil, &evs); c != 200 || len(evs.Events) == 0 {
		t.Fatalf("tenant A has no events of its device: HTTP %d", c)
	}
	event := evs.Events[0].ID

	if c := h.call("POST", "/tenant/tenants", map[string]any{"id": "beta", "adminName": "admin", "adminPass": bPass}, nil); c != 201 {
		t.Fatalf("create tenant beta: HTTP %d", c)
	}
	// tenant B registers the same endpoint: its own device, a duplicate
	if code, res, raw := h.postCSV(bUser, bPass, []byte(strings.ReplaceAll(csvA, "Alpha meter", "Beta meter")), false); code != 201 || res.Created != 1 || res.Failed != 0 {
		t.Fatalf("tenant B import of the same endpoint: HTTP %d %s", code, raw)
	}
	var extB struct {
		ManagedObject struct{ ID string } `json:"managedObject"`
	}
	h.callAs(bUser, bPass, "GET", "/identity/externalIds/c8y_Id/iso-psk", nil, &extB)
	if extB.ManagedObject.ID == "" || extB.ManagedObject.ID == psk {
		t.Fatalf("tenant B's device for the endpoint is %q (tenant A's is %s)", extB.ManagedObject.ID, psk)
	}

	notFound := []struct{ method, path string }{
		{"GET", "/inventory/managedObjects/" + live},
		{"GET", "/inventory/managedObjects/" + psk},
		{"PUT", "/inventory/managedObjects/" + psk},
		{"DELETE", "/inventory/managedObjects/" + live},
		{"GET", "/identity/globalIds/" + psk + "/externalIds"},
		{"POST", "/identity/globalIds/" + psk + "/externalIds"},
		{"GET", "/identity/externalIds/c8y_Id/" + liveEP},
		{"DELETE", "/identity/externalIds/c8y_Id/" + liveEP},
		{"GET", "/identity/externalIds/c8y_Lwm2mPskId/iso-psk-id-nope"},
		{"GET", "/measurement/measurements/" + mids[0]},
		{"GET", "/event/events/" + event},
		{"GET", "/alarm/alarms/" + alarm.ID},
		{"PUT", "/alarm/alarms/" + alarm.ID},
		{"GET", "/devicecontrol/operations/" + op.ID},
		{"POST", "/devicecontrol/operations"},
		{"GET", "/lwm2m/devices/" + psk + "/bootstrap"},
		{"PUT", "/lwm2m/devices/" + psk + "/bootstrap"},
		{"PUT", "/lwm2m/devices/" + live + "/bootstrap"},
		{"GET", "/lwm2m/devices/" + live + "/objects"},
		{"GET", "/lwm2m/devices/" + psk + "/objects"},
	}
	bodies := map[string]any{
		"PUT /inventory/managedObjects/" + psk:             map[string]any{"name": "stolen", "awakeTimeRegistrationParameter": 1},
		"POST /identity/globalIds/" + psk + "/externalIds": map[string]any{"type": "c8y_Serial", "externalId": "stolen"},
		"PUT /alarm/alarms/" + alarm.ID:                    map[string]any{"status": "CLEARED"},
		"POST /devicecontrol/operations":                   map[string]any{"deviceId": live, "c8y_Command": map[string]any{"text": "read /3/0"}},
		"PUT /lwm2m/devices/" + psk + "/bootstrap":         map[string]any{"registrationLifetime": 60},
		"PUT /lwm2m/devices/" + live + "/bootstrap":        map[string]any{"lwm2mServerUri": "coap://evil:5683", "securityMode": "NO_SEC"},
	}
	for _, rq := range notFound {
		t.Run(rq.method+" "+rq.path, func(t *testing.T) {
			code, body := h.rawAs(&seen, bUser, bPass, rq.method, rq.path, bodies[rq.method+" "+rq.path])
			if code != 404 {
				t.Errorf("tenant B: HTTP %d %s, want 404", code, body)
			}
		})
	}

	// lists of B hold none of A's objects
	lists := []struct{ path, member string }{
		{"/inventory/managedObjects?pageSize=2000", "managedObjects"},
		{"/measurement/measurements?pageSize=2000", "measurements"},
		{"/event/events?pageSize=2000", "events"},
		{"/alarm/alarms?pageSize=2000", "alarms"},
		{"/devicecontrol/operations?pageSize=2000", "operations"},
		{"/measurement/measurements?source=" + live, "measurements"},
		{"/event/events?source=" + live, "events"},
		{"/alarm/alarms?source=" + live, "alarms"},
		{"/devicecontrol/operations?deviceId=" + live, "operations"},
		{"/inventory/managedObjects?type=c8y_lwm2m&pageSize=2000", "managedObjects"},
	}
	aIDs := map[string]bool{live: true, psk: true, mids[0]: true, alarm.ID: true, op.ID: true, event: true}
	for _, l := range lists {
		code, body := h.rawAs(&seen, bUser, bPass, "GET", l.path, nil)
		var page map[string][]map[string]any
		_ = json.Unmarshal([]byte(body), &page)
		if code != 200 {
			t.Errorf("tenant B list %s: HTTP %d %s", l.path, code, body)
			continue
		}
		for _, item := range page[l.member] {
			id, _ := item["id"].(string)
			src, _ := item["source"].(map[string]any)
			if aIDs[id] || (src != nil && aIDs[fmt.Sprint(src["id"])]) || item["deviceId"] == live {
				t.Errorf("tenant B list %s holds tenant A's %v", l.path, item)
			}
		}
	}
	if _, body := h.rawAs(&seen, bUser, bPass, "GET", "/inventory/managedObjects?pageSize=2000", nil); strings.Contains(body, "Alpha meter") || strings.Contains(body, liveEP) {
		t.Error("tenant B's inventory shows tenant A's devices")
	}

	// nothing of A changed
	if mo := h.device("iso-psk"); mo.str("name") != "Alpha meter" || mo["awakeTimeRegistrationParameter"] != nil {
		t.Errorf("tenant A's device changed: %v", mo)
	}
	if c := h.call("GET", "/identity/externalIds/c8y_Id/"+liveEP, nil, nil); c != 200 {
		t.Errorf("tenant A's external ID: HTTP %d", c)
	}
	var al map[string]any
	if h.call("GET", "/alarm/alarms/"+alarm.ID, nil, &al); al["status"] != "ACTIVE" {
		t.Errorf("tenant A's alarm: %v", al)
	}
	if b := h.bootstrap(psk); b["registrationLifetime"] != nil || b["lwm2mPskId"] != "iso-psk-id" {
		t.Errorf("tenant A's bootstrap parameters: %v", b)
	}
	if r, err := h.agent.Store.DeviceRegistrationOf(h.ctx, "management", live); err != nil || r.Params["lwm2mServerUri"] != nil {
		t.Errorf("tenant B's PUT gave tenant A's device parameters: %v %v", r.Params, err)
	}
	var ops struct {
		Operations []map[string]any `json:"operations"`
	}
	if h.call("GET", "/devicecontrol/operations?deviceId="+live, nil, &ops); len(ops.Operations) != 1 {
		t.Errorf("tenant A's device has %d operations, want its own 1", len(ops.Operations))
	}
	if holder := h.pskHolder(store.PSKServer, "iso-psk-id"); holder != "management/"+psk {
		t.Errorf("tenant A's PSK identity held by %q", holder)
	}

	// tenant B sees its own duplicate and can change it; A cannot see it
	bID := extB.ManagedObject.ID
	if c, body := h.rawAs(&seen, bUser, bPass, "PUT", "/lwm2m/devices/"+bID+"/bootstrap", map[string]any{"registrationLifetime": 60}); c != 200 {
		t.Errorf("tenant B's own bootstrap PUT: HTTP %d %s", c, body)
	}
	for _, p := range []string{"/inventory/managedObjects/" + bID, "/lwm2m/devices/" + bID + "/bootstrap", "/identity/globalIds/" + bID + "/externalIds"} {
		if c, _ := h.rawAs(&seen, aUser, aPass, "GET", p, nil); c != 404 {
			t.Errorf("tenant A reads tenant B's %s: HTTP %d", p, c)
		}
	}

	// keys appear in no answer of either tenant
	for _, p := range []string{"/inventory/managedObjects/" + psk, "/lwm2m/devices/" + psk + "/bootstrap", "/identity/globalIds/" + psk + "/externalIds",
		"/inventory/managedObjects?pageSize=2000", "/alarm/alarms?pageSize=2000", "/event/events?pageSize=2000"} {
		h.rawAs(&seen, aUser, aPass, "GET", p, nil)
	}
	for _, p := range []string{"/inventory/managedObjects/" + bID, "/lwm2m/devices/" + bID + "/bootstrap", "/alarm/alarms?pageSize=2000"} {
		h.rawAs(&seen, bUser, bPass, "GET", p, nil)
	}
	all := seen.String()
	if len(all) < 1000 {
		t.Fatalf("only %d bytes of answers looked at", len(all))
	}
	for _, key := range []string{keyA, bsKeyA} {
		raw := make([]byte, len(key)/2)
		fmt.Sscanf(key, "%x", &raw)
		for _, form := range []string{key, strings.ToUpper(key), base64.StdEncoding.EncodeToString(raw)} {
			if strings.Contains(all, form) {
				t.Errorf("an answer shows the key %q", form)
			}
		}
	}
}
