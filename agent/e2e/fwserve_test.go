package e2e

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/firmware"
)

// TestFirmwareServedAcrossRestart grants a device a package over CoAP
// and over HTTP, restarts the agent, and fetches both with the grants of
// before the restart: libcoap's coap-client block-wise on the LwM2M
// port, an HTTP client on the API's port without credentials. Revoking
// ends both.
func TestFirmwareServedAcrossRestart(t *testing.T) {
	client, err := exec.LookPath("coap-client-openssl")
	if err != nil {
		t.Skip("no libcoap coap-client (apt-get install libcoap3-bin); CI installs it")
	}
	dir, coap := t.TempDir(), freeUDPAddr(t)
	h, stop := startAgentIn(t, dir, coap)
	data := pattern(300 << 10) // two chunks of the store
	code, b := h.upload("management/admin", adminPassword, map[string]any{"name": "fw-3.0.bin"}, data)
	if code != http.StatusCreated {
		t.Fatalf("upload: HTTP %d %v", code, b)
	}
	src, err := firmware.ParseSource(h.base + "/inventory/binaries/" + b["id"].(string))
	if err != nil {
		t.Fatal(err)
	}
	grant := func(scheme string) string {
		uri, err := h.agent.Firmware.Grant(context.Background(), firmware.Grant{Tenant: "management", DeviceID: "1", Endpoint: "ep-1",
			OperationID: "77", Source: src, Scheme: scheme, Expires: time.Now().Add(time.Hour)})
		if err != nil {
			t.Fatalf("grant %s: %v", scheme, err)
		}
		return uri
	}
	coapURI, httpURI := grant("coap"), grant("http")
	if !strings.HasPrefix(coapURI, "coap://"+coap+"/fw/") || !strings.HasPrefix(httpURI, h.base+"/fw/") {
		t.Fatalf("URIs %s and %s", coapURI, httpURI)
	}
	stop()

	h, _ = startAgentIn(t, dir, coap)
	httpURI = h.base + httpURI[strings.Index(httpURI, "/fw/"):] // the HTTP port is a new one
	pull := func() ([]byte, []byte) {
		out := filepath.Join(t.TempDir(), "fw.bin")
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if msg, err := exec.CommandContext(ctx, client, "-m", "get", "-b", "1024", "-B", "30", "-o", out, coapURI).CombinedOutput(); err != nil {
			t.Logf("coap-client: %v %s", err, msg)
		}
		got, _ := os.ReadFile(out)
		resp, err := http.Get(httpURI)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			body = nil
		}
		return got, body
	}
	viaCoAP, viaHTTP := pull()
	if !bytes.Equal(viaCoAP, data) || !bytes.Equal(viaHTTP, data) {
		t.Fatalf("after the restart: %d bytes over CoAP, %d over HTTP, want the %d uploaded", len(viaCoAP), len(viaHTTP), len(data))
	}
	if err := h.agent.Firmware.Revoke(context.Background(), "management", "77"); err != nil {
		t.Fatal(err)
	}
	if viaCoAP, viaHTTP = pull(); len(viaCoAP) != 0 || viaHTTP != nil {
		t.Fatalf("after revoking: %d bytes over CoAP, %d over HTTP", len(viaCoAP), len(viaHTTP))
	}
}
