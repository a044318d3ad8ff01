package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/config"
	"github.com/lwm2m-agent/lwm2m-agent/agent/simulator"
)

// upload posts a binary as Cumulocity clients do: a multipart form with
// the JSON part "object" and the part "file". It returns the status and
// the decoded answer.
func (h *harness) upload(user, pass string, object map[string]any, data []byte) (int, map[string]any) {
	h.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	if object != nil {
		ph := textproto.MIMEHeader{}
		ph.Set("Content-Disposition", `form-data; name="object"`)
		ph.Set("Content-Type", "application/json")
		pw, err := mw.CreatePart(ph)
		if err != nil {
			h.t.Fatal(err)
		}
		if err := json.NewEncoder(pw).Encode(object); err != nil {
			h.t.Fatal(err)
		}
	}
	fw, err := mw.CreateFormFile("file", "upload.bin")
	if err != nil {
		h.t.Fatal(err)
	}
	_, _ = fw.Write(data)
	_ = mw.Close()
	req, err := http.NewRequest("POST", h.base+"/inventory/binaries", &body)
	if err != nil {
		h.t.Fatal(err)
	}
	req.SetBasicAuth(user, pass)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("upload: %v", err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			h.t.Fatalf("upload: HTTP %d: %q: %v", resp.StatusCode, raw, err)
		}
	}
	return resp.StatusCode, out
}

// download gets a binary's bytes and content type.
func (h *harness) download(user, pass, id string) (int, string, []byte) {
	h.t.Helper()
	req, err := http.NewRequest("GET", h.base+"/inventory/binaries/"+id, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	req.SetBasicAuth(user, pass)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("download: %v", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatalf("download: %v", err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), data
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31 + i/251)
	}
	return b
}

func withMaxBinarySize(n int) option { return func(c *config.Config) { c.MaxBinarySize = n } }

// A binary of several chunks goes in and comes out the same; another
// tenant neither sees nor deletes it; one over the limit is refused with
// 413 and leaves nothing behind.
func TestBinariesUploadDownload(t *testing.T) {
	const limit = 800 << 10
	h := startAgent(t, withMaxBinarySize(limit))
	data := pattern(600 << 10) // three chunks of the store
	code, b := h.upload("management/admin", adminPassword,
		map[string]any{"name": "firmware-2.1.bin", "type": "application/x-firmware", "c8y_Version": "2.1"}, data)
	if code != http.StatusCreated {
		t.Fatalf("upload: HTTP %d %v", code, b)
	}
	id, _ := b["id"].(string)
	if id == "" || b["name"] != "firmware-2.1.bin" || b["type"] != "application/x-firmware" ||
		b["length"] != float64(len(data)) || b["c8y_Version"] != "2.1" || b["c8y_IsBinary"] == nil {
		t.Fatalf("upload answered %v", b)
	}

	code, ct, got := h.download("management/admin", adminPassword, id)
	if code != http.StatusOK || ct != "application/x-firmware" || !bytes.Equal(got, data) {
		t.Fatalf("download: HTTP %d, %s, %d bytes equal=%v; want the %d bytes uploaded", code, ct, len(got), bytes.Equal(got, data), len(data))
	}
	var list struct {
		ManagedObjects []map[string]any `json:"managedObjects"`
	}
	if code := h.call("GET", "/inventory/binaries?pageSize=100", nil, &list); code != 200 || len(list.ManagedObjects) != 1 || list.ManagedObjects[0]["id"] != id {
		t.Fatalf("list: HTTP %d %v", code, list.ManagedObjects)
	}

	// another tenant: 404 for reading, listing finds nothing, 404 for deleting
	h.createTenant("other", "boss", "Other-pass-1!")
	if code, _, _ := h.download("other/boss", "Other-pass-1!", id); code != http.StatusNotFound {
		t.Fatalf("another tenant's download: HTTP %d, want 404", code)
	}
	list.ManagedObjects = nil
	if code := h.callAs("other/boss", "Other-pass-1!", "GET", "/inventory/binaries", nil, &list); code != 200 || len(list.ManagedObjects) != 0 {
		t.Fatalf("another tenant's list: HTTP %d %v", code, list.ManagedObjects)
	}
	if code := h.callAs("other/boss", "Other-pass-1!", "DELETE", "/inventory/binaries/"+id, nil, nil); code != http.StatusNotFound {
		t.Fatalf("another tenant's delete: HTTP %d, want 404", code)
	}

	// one byte over the limit
	code, e := h.upload("management/admin", adminPassword, map[string]any{"name": "big.bin"}, pattern(limit+1))
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(fmt.Sprint(e["message"]), fmt.Sprint(limit)) {
		t.Fatalf("oversize upload: HTTP %d %v, want 413 naming the limit", code, e)
	}
	// exactly at the limit is fine
	if code, b := h.upload("management/admin", adminPassword, map[string]any{"name": "max.bin"}, pattern(limit)); code != http.StatusCreated {
		t.Fatalf("upload at the limit: HTTP %d %v", code, b)
	}
	list.ManagedObjects = nil
	h.call("GET", "/inventory/binaries?pageSize=100", nil, &list)
	if len(list.ManagedObjects) != 2 {
		t.Fatalf("after the refused upload the list has %d binaries, want 2", len(list.ManagedObjects))
	}

	if code := h.call("DELETE", "/inventory/binaries/"+id, nil, nil); code != http.StatusNoContent {
		t.Fatalf("delete: HTTP %d", code)
	}
	if code, _, _ := h.download("management/admin", adminPassword, id); code != http.StatusNotFound {
		t.Fatalf("download after delete: HTTP %d, want 404", code)
	}
}

// writeb PATH binary:<id> sends the stored bytes to the device, block-wise
// for a payload above one block; an ID the tenant has no binary of is
// refused at creation.
func TestWriteStoredBinary(t *testing.T) {
	h := startAgent(t)
	sim := h.simulate(1, func(c *simulator.Config) { c.NotifyInterval = 0 })
	ep := sim.Endpoints()[0]
	id := h.device(ep).str("id")
	pkg := pattern(20 << 10)
	code, b := h.upload("management/admin", adminPassword, map[string]any{"name": "pkg.bin"}, pkg)
	if code != http.StatusCreated {
		t.Fatalf("upload: HTTP %d %v", code, b)
	}
	bin := b["id"].(string)

	op := h.shell(id, "writeb /5/0/0 binary:"+bin, 30*time.Second)
	if op.Status != "SUCCESSFUL" || !strings.Contains(op.Command.Result, fmt.Sprintf("%d bytes", len(pkg))) {
		t.Fatalf("writeb binary: %s %q %q", op.Status, op.Command.Result, op.FailureReason)
	}
	if n, sum := sim.Device(ep).Package(); n != int64(len(pkg)) || sum != sha256.Sum256(pkg) {
		t.Fatalf("the device received %d bytes (SHA-256 %x), want the %d of binary %s", n, sum, len(pkg), bin)
	}

	// unknown ID, and another tenant's binary: 422 when the operation is
	// created, nothing queued
	h.createTenant("other", "boss", "Other-pass-1!")
	_, ob := h.upload("other/boss", "Other-pass-1!", map[string]any{"name": "theirs.bin"}, []byte("x"))
	for _, bad := range []string{"999999999", ob["id"].(string)} {
		var e apiErr
		body := map[string]any{"deviceId": id, "c8y_Command": map[string]string{"text": "writeb /5/0/0 binary:" + bad}}
		if code := h.call("POST", "/devicecontrol/operations", body, &e); code != http.StatusUnprocessableEntity || !strings.Contains(e.Message, "binary:"+bad) {
			t.Fatalf("writeb binary:%s: HTTP %d %q, want 422 naming it", bad, code, e.Message)
		}
	}
	var ops struct {
		Operations []operation `json:"operations"`
	}
	h.call("GET", "/devicecontrol/operations?pageSize=100&deviceId="+id, nil, &ops)
	if len(ops.Operations) != 1 {
		t.Fatalf("%d operations stored, want only the one that was accepted", len(ops.Operations))
	}
}

// createTenant creates a tenant with its admin user.
func (h *harness) createTenant(id, admin, pass string) {
	h.t.Helper()
	if code := h.call("POST", "/tenant/tenants", map[string]any{"id": id, "adminName": admin, "adminPass": pass}, nil); code != 201 {
		h.t.Fatalf("create tenant %s: HTTP %d", id, code)
	}
}
