package e2e

import (
	"context"
	"encoding/hex"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/config"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// A DTLS device's idle session is parked; an operation made through the
// API resumes it from the agent's side and reaches the device, the
// device's next Update resumes it from its side, and after a restart
// the device carries on with the same session: no handshake but the
// first, each Update answered 2.04.
func TestDTLSSessionParkedAndResumed(t *testing.T) {
	dir, coap, coaps := t.TempDir(), freeUDPAddr(t), freeUDPAddr(t)
	opts := []option{withSecureAddr(coaps), withRequestTimeout(2 * time.Second), withAutoRegister(false),
		func(c *config.Config) { c.DTLSParkAfter = 300 * time.Millisecond }}
	h, stop := startAgentIn(t, dir, coap, opts...)
	if code, res, raw := h.postCSV("management/admin", adminPassword, []byte(pskCSV), false); code != 201 || res.Created != 3 {
		t.Fatalf("import: HTTP %d %s", code, raw)
	}
	c, err := dialPSK(t, h.agent.CoAPSAddr, "identity-a", keyA)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	code, location := registerAt(t, c, "psk-a")
	if code != codes.Created {
		t.Fatalf("register: %v", code)
	}
	id := h.device("psk-a").str("id")
	parked := func(h *harness, n float64) func() error {
		return func() error {
			if got := h.metric("lwm2m_agent_dtls_parks_total"); got < n {
				return fmt.Errorf("%v sessions parked, want %v", got, n)
			}
			if got := h.metric("lwm2m_agent_dtls_sessions"); got != 0 {
				return fmt.Errorf("%v sessions active", got)
			}
			return nil
		}
	}
	h.eventually(10*time.Second, parked(h, 1))
	if op := h.shell(id, "read /3/0/0", 10*time.Second); op.Status != "SUCCESSFUL" || !strings.Contains(op.Command.Result, "Secure Meters Ltd") {
		t.Fatalf("read over the parked session: %s %s %s", op.Status, op.Command.Result, op.FailureReason)
	}
	h.eventually(10*time.Second, parked(h, 2))
	if code := update(t, c, location); code != codes.Changed {
		t.Fatalf("Update over the parked session: %v, want 2.04", code)
	}
	if n := h.metric("lwm2m_agent_dtls_handshakes_total"); n != 1 {
		t.Fatalf("%v handshakes, want the first only", n)
	}
	text, err := h.metrics()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, `lwm2m_agent_dtls_sessions_resumed_total{from="memory"} 2`) {
		t.Fatalf("resumed from memory not 2:\n%s", grepLines(text, "lwm2m_agent_dtls"))
	}

	stop()
	h2, _ := startAgentIn(t, dir, coap, opts...)
	if code := update(t, c, location); code != codes.Changed {
		t.Fatalf("Update after the restart: %v, want 2.04", code)
	}
	if n := h2.metric("lwm2m_agent_dtls_handshakes_total"); n != 0 {
		t.Fatalf("%v handshakes after the restart, want none", n)
	}
	if op := h2.shell(id, "read /3/0/0", 10*time.Second); op.Status != "SUCCESSFUL" {
		t.Fatalf("read after the restart: %s %s", op.Status, op.FailureReason)
	}
	if got := h2.metric("lwm2m_agent_registers_total"); got != 0 {
		t.Errorf("%v Registers after the restart, want 0", got)
	}
}

func grepLines(text, prefix string) string {
	var out []string
	for l := range strings.SplitSeq(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// Debian's libcoap client (OpenSSL), an independent DTLS stack, sends a
// Register, waits a second, past the park delay, and sends it again on
// the same session (-G): the agent parks the session in between and
// resumes it for the second without a handshake.
func TestDTLSParkedLibcoapClient(t *testing.T) {
	bin, err := exec.LookPath("coap-client-openssl")
	if err != nil {
		t.Skip("coap-client-openssl not installed (apt-get install libcoap3-bin)")
	}
	dir, coap, coaps := t.TempDir(), freeUDPAddr(t), freeUDPAddr(t)
	h, _ := startAgentIn(t, dir, coap, withSecureAddr(coaps), withAutoRegister(false),
		func(c *config.Config) { c.DTLSParkAfter = 200 * time.Millisecond })
	const ep, key = "libcoap-park", "park-secret-key"
	h.importOK("management/admin", adminPassword, pskHeader+pskCSVLine(ep, hex.EncodeToString([]byte(key))))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// -G 3: three Registers a second apart on one session; -B bounds the
	// wait for each answer
	cmd := exec.CommandContext(ctx, bin, "-m", "post", "-G", "3", "-B", "5", "-u", ep+"-id", "-k", key,
		"-t", "40", "-e", "</3/0>", "coaps://"+h.agent.CoAPSAddr.String()+"/rd?ep="+ep+"&lt=300&lwm2m=1.1&b=U")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("coap-client-openssl: %v\n%s", err, out)
	}
	if n := h.metric("lwm2m_agent_registers_total"); n != 3 {
		t.Fatalf("%v Registers answered, want 3\n%s", n, out)
	}
	if n := h.metric("lwm2m_agent_dtls_handshakes_total"); n != 1 {
		t.Errorf("%v handshakes, want 1", n)
	}
	text, err := h.metrics()
	if err != nil {
		t.Fatal(err)
	}
	if h.metricWith("lwm2m_agent_dtls_sessions_resumed_total", `from="memory"`) < 1 {
		t.Errorf("no session resumed from memory:\n%s", grepLines(text, "lwm2m_agent_dtls"))
	}
}
