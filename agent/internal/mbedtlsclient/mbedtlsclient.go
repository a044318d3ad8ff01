// Package mbedtlsclient builds and runs, for interop tests, a DTLS-PSK
// CoAP client on mbedTLS as constrained devices use it (Zephyr, nRF
// Connect, Anjay): mbedTLS's default cipher suites, server_name with the
// server's IP literal, encrypt_then_mac, extended_master_secret and
// session_ticket, a ClientHello at record version DTLS 1.0. The C source
// is in testdata/client.c; its usage is at the top of that file.
package mbedtlsclient

import (
	"context"
	_ "embed"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/testproc"
)

//go:embed testdata/client.c
var source []byte

// Build compiles the client into the test's temporary directory and
// returns its path. CI installs gcc and libmbedtls-dev; elsewhere the test
// is skipped with a message saying what to install.
func Build(t testing.TB) string {
	t.Helper()
	cc, err := exec.LookPath("cc")
	if err != nil {
		t.Skip("no C compiler (apt-get install gcc libmbedtls-dev); CI installs it")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "client.c")
	if err := os.WriteFile(src, source, 0o600); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "mbedtls-client")
	out, err := exec.Command(cc, "-std=c99", "-Wall", "-o", bin, src, "-lmbedtls", "-lmbedx509", "-lmbedcrypto").CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "mbedtls/") || strings.Contains(string(out), "-lmbed") {
			t.Skipf("no mbedTLS headers or libraries (apt-get install libmbedtls-dev); CI installs it:\n%s", out)
		}
		t.Fatalf("build mbedtls client: %v\n%s", err, out)
	}
	return bin
}

// Run runs the client with args, bounded in time, and returns its output
// and exit error.
func Run(t testing.TB, bin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	return string(out), err
}

// FreeUDPPort returns a loopback UDP port nothing is bound to now, for a
// client that binds a fixed local port as a rebooting device does.
func FreeUDPPort(t testing.TB) string {
	t.Helper()
	_, port, _ := net.SplitHostPort(testproc.FreeUDPAddr(t))
	return port
}
