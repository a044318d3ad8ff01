package bootstrap

import (
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/mbedtlsclient"
)

// TestInteropMbedTLSBootstrapRequest sends a Bootstrap-Request over
// DTLS-PSK from an mbedTLS client (its default cipher suites, server_name
// with the server's IP literal) with the bootstrap key from the store,
// then again from the same local port without having ended the first
// session, as a device that rebooted: both are answered 2.04.
func TestInteropMbedTLSBootstrapRequest(t *testing.T) {
	bin := mbedtlsclient.Build(t)
	ts := startServer(t, nil)
	ts.device(t, tenant, map[string]any{
		"endpointId": "mbedtls-bs", "lwm2mServerUri": "coaps://lwm2m.example.com:5784", "securityMode": "PSK",
		"lwm2mPskId": "mbedtls-id", "bootstrapPskId": "mbedtls-bs-id",
	}, []byte("lwm2m-key"), []byte("bootstrap-key"))
	port := ts.srv.SecureAddr().(*net.UDPAddr).Port

	local := mbedtlsclient.FreeUDPPort(t)
	for i := range 2 {
		out, err := mbedtlsclient.Run(t, bin, "-local", local, "-noclose", "-timeout", "4000",
			"127.0.0.1", fmt.Sprint(port), "mbedtls-bs-id", "bootstrap-key", "bs", "ep=mbedtls-bs")
		if err != nil {
			t.Fatalf("run %d: %v\n%s", i+1, err, out)
		}
		if !strings.Contains(out, "code=2.04\n") {
			t.Fatalf("run %d: no 2.04 in client output:\n%s", i+1, out)
		}
	}
}
