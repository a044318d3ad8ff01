package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/simulator"
)

type bulkResult struct {
	All        int `json:"numberOfAll"`
	Created    int `json:"numberOfCreated"`
	Failed     int `json:"numberOfFailed"`
	Successful int `json:"numberOfSuccessful"`
	Failures   []struct {
		DeviceID string `json:"deviceId"`
		Line     int    `json:"line"`
		Reason   string `json:"failureReason"`
	} `json:"failedCreationList"`
}

// postCSV sends a registration file as a text/csv body or as the
// multipart field "file".
func (h *harness) postCSV(user, pass string, csv []byte, asMultipart bool) (int, bulkResult, string) {
	h.t.Helper()
	body, ctype := bytes.NewReader(csv), "text/csv"
	if asMultipart {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		fw, err := mw.CreateFormFile("file", "devices.csv")
		if err != nil {
			h.t.Fatal(err)
		}
		_, _ = fw.Write(csv)
		_ = mw.Close()
		body, ctype = bytes.NewReader(buf.Bytes()), mw.FormDataContentType()
	}
	req, _ := http.NewRequest("POST", h.base+"/devicecontrol/bulkNewDeviceRequests", body)
	req.SetBasicAuth(user, pass)
	req.Header.Set("Content-Type", ctype)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var res bulkResult
	_ = json.Unmarshal(raw, &res)
	return resp.StatusCode, res, string(raw)
}

// example reads a registration file of the repository's examples folder,
// the files the README's quickstart imports.
func example(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "examples", name))
	if err != nil {
		t.Fatalf("the repository's example: %v", err)
	}
	return b
}

// everything an admin can list, as text, to look for secrets in
func (h *harness) everything(ids ...string) string {
	var all strings.Builder
	get := func(path string) {
		var v any
		h.call("GET", path, nil, &v)
		b, _ := json.Marshal(v)
		all.Write(b)
	}
	get("/inventory/managedObjects?pageSize=2000")
	get("/event/events?pageSize=2000")
	get("/alarm/alarms?pageSize=2000")
	for _, id := range ids {
		get("/identity/globalIds/" + id + "/externalIds")
		get("/inventory/managedObjects/" + id)
		get("/lwm2m/devices/" + id + "/objects")
		get("/lwm2m/devices/" + id + "/bootstrap")
	}
	return all.String()
}

func TestBulkRegistrationExamples(t *testing.T) {
	h := startAgent(t, withAutoRegister(false))
	admin, pass := "management/admin", adminPassword

	code, res, raw := h.postCSV(admin, pass, example(t, "devices-nosec.csv"), false)
	if code != 201 || res.All != 2 || res.Created != 2 || res.Failed != 0 || res.Successful != 2 {
		t.Fatalf("NO_SEC file: HTTP %d %s", code, raw)
	}
	mo := h.device("nosec_sleepy")
	if mo.str("name") != "nosec_sleepy" || mo.str("type") != "c8y_lwm2m" || mo["c8y_IsDevice"] == nil || mo["com_cumulocity_model_Agent"] == nil {
		t.Errorf("device from the file: %v", mo)
	}
	if ops, _ := mo["c8y_SupportedOperations"].([]any); len(ops) != 1 || ops[0] != "c8y_Command" {
		t.Errorf("SHELL=1 device supports %v, want c8y_Command", mo["c8y_SupportedOperations"])
	}
	// importing again updates; nothing new is created
	code, res, raw = h.postCSV(admin, pass, example(t, "devices-nosec.csv"), true)
	if code != 201 || res.Created != 0 || res.Successful != 2 || res.Failed != 0 {
		t.Errorf("re-import: HTTP %d %s", code, raw)
	}

	code, res, raw = h.postCSV(admin, pass, example(t, "devices-psk.csv"), true)
	if code != 201 || res.Created != 1 || res.Failed != 0 {
		t.Fatalf("PSK file: HTTP %d %s", code, raw)
	}
	id := h.device("psk_device").str("id")
	var ext struct {
		ManagedObject struct{ ID string } `json:"managedObject"`
	}
	if c := h.call("GET", "/identity/externalIds/c8y_Lwm2mPskId/psk_device_id", nil, &ext); c != 200 || ext.ManagedObject.ID != id {
		t.Errorf("c8y_Lwm2mPskId: HTTP %d → %q, want device %s", c, ext.ManagedObject.ID, id)
	}
	if c := h.call("GET", "/identity/externalIds/c8y_BootstrapPskId/psk_device_bs", nil, &ext); c != 200 || ext.ManagedObject.ID != id {
		t.Errorf("c8y_BootstrapPskId: HTTP %d → %q, want device %s", c, ext.ManagedObject.ID, id)
	}
	var boot map[string]any
	if c := h.call("GET", "/lwm2m/devices/"+id+"/bootstrap", nil, &boot); c != 200 ||
		boot["endpointId"] != "psk_device" || boot["securityMode"] != "PSK" || boot["lwm2mPskId"] != "psk_device_id" ||
		boot["lwm2mShortServerId"] != float64(1) || boot["generateBootstrapServerConfig"] != true {
		t.Errorf("bootstrap parameters: HTTP %d %v", c, boot)
	}
	for k := range boot {
		if strings.Contains(strings.ToLower(k), "key") || strings.Contains(strings.ToLower(k), "credential") {
			t.Errorf("bootstrap answer has %q", k)
		}
	}
	if c := h.callAs("nobody/admin", "x", "GET", "/lwm2m/devices/"+id+"/bootstrap", nil, nil); c != 401 {
		t.Errorf("bootstrap without valid credentials: HTTP %d", c)
	}
	seen := h.everything(id)
	for _, key := range []string{"000102030405060708090a0b0c0d0e0f", "0f0e0d0c0b0a09080706050403020100", "AAECAwQFBgcICQoLDA0ODw", "Secret-pass-1234!"} {
		if strings.Contains(seen, key) {
			t.Errorf("the API shows the secret %q", key)
		}
	}

	code, res, raw = h.postCSV(admin, pass, example(t, "devices-bad.csv"), false)
	if code != 201 || res.Failed == 0 || res.Successful != 2 || res.All != res.Failed+res.Successful {
		t.Fatalf("bad file: HTTP %d %s", code, raw)
	}
	lines := map[int]bool{}
	for _, f := range res.Failures {
		if f.Line < 2 || f.Reason == "" || lines[f.Line] {
			t.Errorf("failure %+v: want its own line and a reason", f)
		}
		lines[f.Line] = true
	}
	if c := h.call("GET", "/identity/externalIds/c8y_Id/weak_password", nil, nil); c != 404 {
		t.Errorf("a failed line created its device: HTTP %d", c)
	}

	// every column the format knows, each reaching the device's parameters
	code, res, raw = h.postCSV(admin, pass, example(t, "devices-all-fields.csv"), false)
	if code != 201 || res.Created != 2 || res.Failed != 0 {
		t.Fatalf("all-fields file: HTTP %d %s", code, raw)
	}
	meter := h.device("meter_0001")
	if meter.str("name") != "Water meter 0001" {
		t.Errorf("meter_0001: %v", meter)
	}
	boot = nil
	if c := h.call("GET", "/lwm2m/devices/"+meter.str("id")+"/bootstrap", nil, &boot); c != 200 ||
		boot["awakeTimeRegistrationParameter"] != float64(60000) || boot["bootstrapShortServerId"] != float64(100) ||
		boot["registrationLifetime"] != float64(3600) || boot["defaultMaximumPeriod"] != float64(900) ||
		boot["bindingMode"] != "UQ" || boot["binaryDeliveryEncoding"] != "TLV" || boot["lwm2mRequestTimeout"] != float64(30000) ||
		boot["fwUpdateDeliveryMethod"] != "PULL" || boot["fwUpdateURL"] != "http://127.0.0.1:8000/firmware/" {
		t.Errorf("meter_0001 bootstrap parameters: HTTP %d %v", c, boot)
	}
	if seen := h.everything(meter.str("id")); strings.Contains(seen, "00112233445566778899aabbccddeeff") || strings.Contains(seen, "Meter-pass-2024!") {
		t.Errorf("the API shows a secret of the all-fields example")
	}

	// a file that is not a registration file at all
	code, _, raw = h.postCSV(admin, pass, []byte("just,some\nwords,here\n"), false)
	if code != 422 || !strings.Contains(raw, "message") {
		t.Errorf("not a registration file: HTTP %d %s", code, raw)
	}
}

// Devices registered in bulk may register over LwM2M with auto-registration
// off; the endpoint stays bound to the tenant that registered it first.
func TestBulkRegisteredDevicesConnect(t *testing.T) {
	h := startAgent(t, withAutoRegister(false))
	csv := "ID;IDTYPE;CREDENTIALS;NAME;TYPE;SHELL;endpoint id;lwm2m server uri;securityMode\n"
	for i := 0; i < 2; i++ {
		csv += fmt.Sprintf("bulk-%d;c8y_Id;Secret-pass-1234!;Meter %d;c8y_lwm2m;1;bulk-%d;coap://127.0.0.1:5783;NO_SEC\n", i, i, i)
	}
	if code, res, raw := h.postCSV("management/admin", adminPassword, []byte(csv), false); code != 201 || res.Created != 2 {
		t.Fatalf("import: HTTP %d %s", code, raw)
	}
	if code := h.call("POST", "/tenant/tenants", map[string]any{"id": "acme", "adminName": "admin", "adminPass": "Acme-pass-1234!"}, nil); code != 201 {
		t.Fatalf("create tenant: HTTP %d", code)
	}
	if code, res, raw := h.postCSV("acme/admin", "Acme-pass-1234!", []byte(csv), false); code != 201 || res.Created != 2 {
		t.Fatalf("import in a second tenant: HTTP %d %s", code, raw)
	}

	h.simulate(2, func(c *simulator.Config) { c.Prefix = "bulk" })
	h.eventually(5*time.Second, func() error {
		mo := h.device("bulk-1")
		if mo.str("name") != "Meter 1" || mo.str("c8y_Availability", "status") != "AVAILABLE" {
			return fmt.Errorf("bulk-1: name %q, availability %q", mo.str("name"), mo.str("c8y_Availability", "status"))
		}
		return nil
	})
	var ext struct {
		ManagedObject struct{ ID string } `json:"managedObject"`
	}
	h.callAs("acme/admin", "Acme-pass-1234!", "GET", "/identity/externalIds/c8y_Id/bulk-1", nil, &ext)
	var acmeDev managedObject
	h.callAs("acme/admin", "Acme-pass-1234!", "GET", "/inventory/managedObjects/"+ext.ManagedObject.ID, nil, &acmeDev)
	if acmeDev.str("name") != "Meter 1" || acmeDev["c8y_Availability"] != nil {
		t.Errorf("the second tenant's duplicate was bound to the client: %v", acmeDev)
	}
	var alarms struct {
		Alarms []map[string]any `json:"alarms"`
	}
	h.callAs("acme/admin", "Acme-pass-1234!", "GET", "/alarm/alarms?source="+ext.ManagedObject.ID, nil, &alarms)
	if len(alarms.Alarms) != 1 || alarms.Alarms[0]["severity"] != "MAJOR" || !strings.Contains(fmt.Sprint(alarms.Alarms[0]["text"]), "already exists") {
		t.Errorf("duplicate's alarms: %v, want one MAJOR saying the endpoint already exists", alarms.Alarms)
	}
	if strings.Contains(fmt.Sprint(alarms.Alarms), "management") {
		t.Error("the alarm names the other tenant")
	}
	mgmtID := h.device("bulk-1").str("id")
	if c := h.callAs("acme/admin", "Acme-pass-1234!", "GET", "/lwm2m/devices/"+mgmtID+"/bootstrap", nil, nil); c != 404 {
		t.Errorf("another tenant's bootstrap parameters: HTTP %d, want 404", c)
	}
	h.call("GET", "/alarm/alarms?pageSize=100", nil, &alarms)
	if len(alarms.Alarms) != 0 {
		t.Errorf("the first tenant's devices got alarms: %v", alarms.Alarms)
	}
}
