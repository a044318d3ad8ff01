package lwm2m

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// coapClient finds Debian's libcoap client (package libcoap3-bin), which
// installs it under a name per TLS library.
func coapClient() string {
	for _, name := range []string{"coap-client", "coap-client-notls", "coap-client-openssl", "coap-client-gnutls"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		if _, err := os.Stat("/usr/bin/" + name); err == nil {
			return "/usr/bin/" + name
		}
	}
	return ""
}

// TestInteropLibcoapRegister registers with libcoap's coap-client, an
// independent CoAP implementation, and checks the answer it prints. CI
// installs libcoap3-bin; elsewhere the test is skipped without it.
func TestInteropLibcoapRegister(t *testing.T) {
	bin := coapClient()
	if bin == "" {
		t.Skip("no libcoap coap-client binary (apt-get install libcoap3-bin); CI installs it")
	}
	s, h := startServer(t, Config{})
	port := s.Addr().(*net.UDPAddr).Port
	uri := fmt.Sprintf("coap://127.0.0.1:%d/rd?ep=interop&lt=60&lwm2m=1.1", port)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "-m", "post", "-t", "40", "-e", `</>;rt="oma.lwm2m";ct=112,</1/0>,</3/0>,</3303/0>`,
		"-v", "7", "-B", "5", uri).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", bin, err, out)
	}
	e := h.wait(t, "registered", 5*time.Second)
	if e.reg.Endpoint != "interop" || e.reg.Version != "1.1" || e.reg.Lifetime != time.Minute || len(e.reg.Objects) != 3 {
		t.Fatalf("registration = %+v", e.reg)
	}
	// libcoap prints the answer as
	// "v:1 t:ACK c:2.01 i:067b {01} [ Location-Path:rd, Location-Path:<id> ]".
	m := regexp.MustCompile(`t:ACK c:(\d\.\d\d) [^\[]*\[ Location-Path:([^,\s]+), Location-Path:([^,\s\]]+) \]`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no answer with Location-Path in coap-client output:\n%s", out)
	}
	if code, loc := string(m[1]), string(m[2])+"/"+string(m[3]); code != "2.01" || loc != "rd/"+e.reg.ID {
		t.Fatalf("coap-client got %s with Location-Path %s, want 2.01 and rd/%s", code, loc, e.reg.ID)
	}

	// Update and De-register from new source ports, as a device behind a
	// NAT would: both find the registration by its ID.
	base := fmt.Sprintf("coap://127.0.0.1:%d/rd/%s", port, e.reg.ID)
	for _, step := range []struct {
		args []string
		code string
		hook string
	}{
		{[]string{"-m", "post", base + "?lt=120"}, "2.04", "updated"},
		{[]string{"-m", "delete", base}, "2.02", "deregistered"},
		{[]string{"-m", "delete", base}, "4.04", ""},
	} {
		out, err := exec.CommandContext(ctx, bin, append([]string{"-v", "7", "-B", "5"}, step.args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", bin, step.args, err, out)
		}
		m := regexp.MustCompile(`t:ACK c:(\d\.\d\d)`).FindSubmatch(out)
		if m == nil || string(m[1]) != step.code {
			t.Fatalf("%v: want %s in coap-client output:\n%s", step.args, step.code, out)
		}
		if step.hook != "" {
			if ev := h.wait(t, step.hook, 5*time.Second); step.hook == "updated" && ev.reg.Lifetime != 2*time.Minute {
				t.Fatalf("updated lifetime = %v", ev.reg.Lifetime)
			}
		}
	}
	if _, ok := s.Registration("interop"); ok {
		t.Fatal("still registered after De-register")
	}
}

// TestInteropLibcoapDTLSPSK does a DTLS-PSK handshake and a Register with
// libcoap's DTLS builds (OpenSSL and GnuTLS), each an independent DTLS
// stack, then checks that a wrong key gets nothing registered.
func TestInteropLibcoapDTLSPSK(t *testing.T) {
	var bins []string
	for _, name := range []string{"coap-client-openssl", "coap-client-gnutls"} {
		if p, err := exec.LookPath(name); err == nil {
			bins = append(bins, p)
		} else if _, err := os.Stat("/usr/bin/" + name); err == nil {
			bins = append(bins, "/usr/bin/"+name)
		}
	}
	if len(bins) == 0 {
		t.Skip("no DTLS-capable libcoap coap-client (apt-get install libcoap3-bin); CI installs it")
	}
	for _, bin := range bins {
		t.Run(filepath.Base(bin), func(t *testing.T) {
			s, h := startSecureServer(t, Config{})
			port := s.SecureAddr().(*net.UDPAddr).Port
			uri := fmt.Sprintf("coaps://127.0.0.1:%d/rd?ep=interop-dtls&lt=60&lwm2m=1.1", port)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, bin, "-m", "post", "-u", "id-1", "-k", string(testKeys["id-1"]),
				"-e", `</>;rt="oma.lwm2m";ct=112,</1/0>,</3/0>`, "-v", "7", "-B", "5", uri).CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v\n%s", bin, err, out)
			}
			e := h.wait(t, "registered", 5*time.Second)
			if e.reg.Endpoint != "interop-dtls" || !e.reg.Secure || e.reg.PSKIdentity != "id-1" {
				t.Fatalf("registration = %+v", e.reg)
			}
			if !regexp.MustCompile(`t:ACK c:2\.01`).Match(out) {
				t.Fatalf("no 2.01 in coap-client output:\n%s", out)
			}

			ctx2, cancel2 := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel2()
			out, _ = exec.CommandContext(ctx2, bin, "-m", "post", "-u", "id-1", "-k", "wrong-key", "-B", "3",
				"-e", `</3/0>`, "-v", "7", strings.Replace(uri, "interop-dtls", "intruder", 1)).CombinedOutput()
			if regexp.MustCompile(`c:2\.01`).Match(out) {
				t.Fatalf("registered with a wrong key:\n%s", out)
			}
			h.none(t, "registered", 300*time.Millisecond)
		})
	}
}
