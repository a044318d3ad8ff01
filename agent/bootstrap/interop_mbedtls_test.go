package bootstrap

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// buildMbedTLSClient compiles the LwM2M server's mbedTLS test client (a
// DTLS-PSK CoAP client on mbedTLS as constrained devices use it) into a
// temporary directory. CI installs gcc and libmbedtls-dev; elsewhere the
// test is skipped without them.
func buildMbedTLSClient(t *testing.T) string {
	t.Helper()
	cc, err := exec.LookPath("cc")
	if err != nil {
		t.Skip("no C compiler (apt-get install gcc libmbedtls-dev); CI installs it")
	}
	bin := filepath.Join(t.TempDir(), "mbedtls-client")
	src := filepath.Join("..", "lwm2m", "testdata", "mbedtls-client", "client.c")
	out, err := exec.Command(cc, "-std=c99", "-Wall", "-o", bin, src, "-lmbedtls", "-lmbedx509", "-lmbedcrypto").CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "mbedtls/") || strings.Contains(string(out), "-lmbed") {
			t.Skipf("no mbedTLS headers or libraries (apt-get install libmbedtls-dev); CI installs it:\n%s", out)
		}
		t.Fatalf("build mbedtls client: %v\n%s", err, out)
	}
	return bin
}

// TestInteropMbedTLSBootstrapRequest sends a Bootstrap-Request over
// DTLS-PSK from an mbedTLS client (its default cipher suites, server_name
// with the server's IP literal) with the bootstrap key from the store,
// then again from the same local port without having ended the first
// session, as a device that rebooted: both are answered 2.04.
func TestInteropMbedTLSBootstrapRequest(t *testing.T) {
	bin := buildMbedTLSClient(t)
	ts := startServer(t, nil)
	ts.device(t, tenant, map[string]any{
		"endpointId": "mbedtls-bs", "lwm2mServerUri": "coaps://lwm2m.example.com:5784", "securityMode": "PSK",
		"lwm2mPskId": "mbedtls-id", "bootstrapPskId": "mbedtls-bs-id",
	}, []byte("lwm2m-key"), []byte("bootstrap-key"))
	port := ts.srv.SecureAddr().(*net.UDPAddr).Port

	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	local := fmt.Sprint(pc.LocalAddr().(*net.UDPAddr).Port)
	_ = pc.Close()
	for i := range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, bin, "-local", local, "-noclose", "-timeout", "4000",
			"127.0.0.1", fmt.Sprint(port), "mbedtls-bs-id", "bootstrap-key", "bs", "ep=mbedtls-bs").CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("run %d: %v\n%s", i+1, err, out)
		}
		if !strings.Contains(string(out), "code=2.04\n") {
			t.Fatalf("run %d: no 2.04 in client output:\n%s", i+1, out)
		}
	}
}
