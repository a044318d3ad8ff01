package lwm2m

import (
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/mbedtlsclient"
)

// TestInteropMbedTLSDTLSPSK registers over DTLS-PSK with an mbedTLS
// client: mbedTLS's default cipher suites (many, CCM_8 among them),
// server_name with the server's IP literal, encrypt_then_mac,
// extended_master_secret and session_ticket, the ClientHello at record
// version DTLS 1.0. A wrong key registers nothing. A client that comes
// back from the same local port without having ended its session, as a
// device that rebooted, handshakes again and registers.
func TestInteropMbedTLSDTLSPSK(t *testing.T) {
	bin := mbedtlsclient.Build(t)
	version, err := mbedtlsclient.Run(t, bin, "-version")
	if err != nil {
		t.Fatalf("%s -version: %v\n%s", bin, err, version)
	}
	t.Logf("client: %s", strings.TrimSpace(version))
	register := func(port int, key, ep string, flags ...string) []string {
		return append(flags, "127.0.0.1", fmt.Sprint(port), "id-1", key, "rd", "ep="+ep, "lt=60", "lwm2m=1.1")
	}
	location := regexp.MustCompile(`(?m)^code=2\.01\nlocation=rd\nlocation=(\S+)$`)

	t.Run("register", func(t *testing.T) {
		s, h := startSecureServer(t, Config{})
		port := s.SecureAddr().(*net.UDPAddr).Port
		out, err := mbedtlsclient.Run(t, bin, register(port, string(testKeys["id-1"]), "interop-mbedtls")...)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		e := h.wait(t, "registered", 5*time.Second)
		if e.reg.Endpoint != "interop-mbedtls" || !e.reg.Secure || e.reg.PSKIdentity != "id-1" || e.reg.Version != "1.1" || len(e.reg.Objects) != 3 {
			t.Fatalf("registration = %+v", e.reg)
		}
		if m := location.FindStringSubmatch(out); m == nil || m[1] != e.reg.ID {
			t.Fatalf("want 2.01 with Location-Path rd/%s in client output:\n%s", e.reg.ID, out)
		}
	})

	t.Run("wrong key", func(t *testing.T) {
		s, h := startSecureServer(t, Config{})
		port := s.SecureAddr().(*net.UDPAddr).Port
		// A Finished under a wrong key fails its MAC and is discarded
		// without an alert (RFC 6347, section 4.1.2.7): the client times out.
		out, err := mbedtlsclient.Run(t, bin, register(port, "wrong-key", "intruder", "-timeout", "1000")...)
		if err == nil || strings.Contains(out, "code=") {
			t.Fatalf("handshake with a wrong key succeeded:\n%s", out)
		}
		h.none(t, "registered", 300*time.Millisecond)
	})

	// A device that rebooted comes back from the same port while the
	// agent still holds its session; its new ClientHello must be answered
	// and the new session replaces the old one.
	t.Run("same port without close_notify", func(t *testing.T) {
		s, h := startSecureServer(t, Config{})
		port := s.SecureAddr().(*net.UDPAddr).Port
		local := mbedtlsclient.FreeUDPPort(t)
		for i := range 2 {
			out, err := mbedtlsclient.Run(t, bin, register(port, string(testKeys["id-1"]), "mbedtls-reboot", "-local", local, "-noclose", "-timeout", "4000")...)
			if err != nil {
				t.Fatalf("run %d: %v\n%s", i+1, err, out)
			}
			e := h.wait(t, "registered", 5*time.Second)
			if m := location.FindStringSubmatch(out); m == nil || m[1] != e.reg.ID || e.reg.PSKIdentity != "id-1" {
				t.Fatalf("run %d: registration %+v, client output:\n%s", i+1, e.reg, out)
			}
		}
		// the first session ended when the second handshake took its address
		deadline := time.Now().Add(5 * time.Second)
		for open, _, _ := s.Sessions(); open != 1; open, _, _ = s.Sessions() {
			if time.Now().After(deadline) {
				t.Fatalf("open sessions %d, want 1", open)
			}
			time.Sleep(10 * time.Millisecond)
		}
	})

	t.Run("connection id", func(t *testing.T) {
		if !strings.Contains(version, "cid=1") {
			// Debian's mbedTLS 2.28 is built without
			// MBEDTLS_SSL_DTLS_CONNECTION_ID; psk's ClientHello tests cover
			// the extension (RFC 9146's type 54 and the draft's 254).
			t.Skipf("mbedTLS without MBEDTLS_SSL_DTLS_CONNECTION_ID (%s)", strings.TrimSpace(version))
		}
		// mbedTLS 2.28 sends the draft's extension type 254 unless built
		// with MBEDTLS_TLS_EXT_CID 54; pion knows only 54 and ignores 254,
		// so the handshake succeeds either way, with or without a CID.
		s, h := startSecureServer(t, Config{})
		port := s.SecureAddr().(*net.UDPAddr).Port
		out, err := mbedtlsclient.Run(t, bin, register(port, string(testKeys["id-1"]), "mbedtls-cid", "-cid")...)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if e := h.wait(t, "registered", 5*time.Second); e.reg.PSKIdentity != "id-1" || !location.MatchString(out) {
			t.Fatalf("registration %+v, client output:\n%s", e.reg, out)
		}
	})
}
