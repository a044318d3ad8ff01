package e2e

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/config"
	"github.com/lwm2m-agent/lwm2m-agent/agent/simulator"
	piondtls "github.com/pion/dtls/v3"
	"github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"
)

// pskCSV registers two PSK devices and one NO_SEC device.
const pskCSV = `ID,IDTYPE,CREDENTIALS,NAME,TYPE,SHELL,endpoint id,lwm2m server uri,securityMode,lwm2m psk_id,lwm2m psk_key
psk-a,c8y_Id,Secret-pass-1234!,Meter A,c8y_lwm2m,1,psk-a,coaps://127.0.0.1:5784,PSK,identity-a,000102030405060708090a0b0c0d0e0f
psk-b,c8y_Id,Secret-pass-1234!,Meter B,c8y_lwm2m,1,psk-b,coaps://127.0.0.1:5784,PSK,identity-b,101112131415161718191a1b1c1d1e1f
plain-c,c8y_Id,Secret-pass-1234!,Meter C,c8y_lwm2m,1,plain-c,coap://127.0.0.1:5783,NO_SEC,,
`

var (
	keyA = []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
	keyB = []byte{16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31}
)

// answering is a router of a minimal client that answers reads of /3/0/0.
func answering() *mux.Router {
	r := mux.NewRouter()
	r.DefaultHandle(mux.HandlerFunc(func(w mux.ResponseWriter, m *mux.Message) {
		if p, _ := m.Options().Path(); p == "/3/0/0" && m.Code() == codes.GET {
			_ = w.SetResponse(codes.Content, message.TextPlain, strings.NewReader("Secure Meters Ltd"))
			return
		}
		_ = w.SetResponse(codes.NotFound, message.TextPlain, nil)
	}))
	return r
}

// dialPSK opens a DTLS session with identity and key, written here from
// pion and go-coap directly rather than through the simulator.
func dialPSK(t *testing.T, addr net.Addr, identity string, key []byte) (*udpClient.Conn, error) {
	t.Helper()
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	dc, err := piondtls.ClientWithOptions(pc, addr,
		piondtls.WithPSK(func([]byte) ([]byte, error) { return key, nil }),
		piondtls.WithPSKIdentityHint([]byte(identity)),
		piondtls.WithCipherSuites(piondtls.TLS_PSK_WITH_AES_128_CCM_8),
	)
	if err != nil {
		_ = pc.Close()
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := dc.HandshakeContext(ctx); err != nil {
		_ = dc.Close()
		return nil, err
	}
	c := dtls.Client(dc, options.WithMux(answering()))
	t.Cleanup(func() { _ = c.Close() })
	return c, nil
}

func register(t *testing.T, c *udpClient.Conn, ep string) codes.Code {
	t.Helper()
	code, _ := registerAt(t, c, ep)
	return code
}

func TestPSKDevicesConnectOnlyAsThemselves(t *testing.T) {
	h := startAgent(t, withAutoRegister(false), func(c *config.Config) { c.DTLSHandshakeTimeout = time.Second })
	if code, res, raw := h.postCSV("management/admin", adminPassword, []byte(pskCSV), false); code != 201 || res.Created != 3 {
		t.Fatalf("import: HTTP %d %s", code, raw)
	}
	secure := h.agent.CoAPSAddr
	devA, devB := h.device("psk-a").str("id"), h.device("psk-b").str("id")

	// the device with its own identity registers and answers over DTLS
	a, err := dialPSK(t, secure, "identity-a", keyA)
	if err != nil {
		t.Fatalf("handshake of psk-a: %v", err)
	}
	if code := register(t, a, "psk-a"); code != codes.Created {
		t.Fatalf("psk-a over DTLS: %v, want 2.01", code)
	}
	h.eventually(5*time.Second, func() error {
		if st := h.device("psk-a").str("c8y_Availability", "status"); st != "AVAILABLE" {
			return fmt.Errorf("psk-a is %q", st)
		}
		return nil
	})
	if mo := h.device("psk-a"); fmt.Sprint(mo["lwm2m"].(map[string]any)["secure"]) != "true" {
		t.Errorf("lwm2m fragment does not say secure: %v", mo["lwm2m"])
	}
	if op := h.shell(devA, "read /3/0/0", 10*time.Second); op.Status != "SUCCESSFUL" || !strings.Contains(op.Command.Result, "Secure Meters Ltd") {
		t.Fatalf("read over DTLS: %s %s %s", op.Status, op.Command.Result, op.FailureReason)
	}

	// identity A posing as endpoint B
	if code := register(t, a, "psk-b"); code != codes.Forbidden {
		t.Fatalf("identity-a registering as psk-b: %v, want 4.03", code)
	}
	// B without DTLS
	plain, err := udp.Dial(h.agent.CoAPAddr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if code := register(t, plain, "psk-b"); code != codes.Forbidden {
		t.Fatalf("psk-b on the plain port: %v, want 4.03", code)
	}
	// B with a wrong key: no session at all
	if _, err := dialPSK(t, secure, "identity-b", keyA); err == nil {
		t.Fatal("handshake of identity-b with identity-a's key succeeded")
	}
	// a NO_SEC device on the plain port is fine
	if code := register(t, plain, "plain-c"); code != codes.Created {
		t.Fatalf("plain-c: %v, want 2.01", code)
	}

	h.eventually(5*time.Second, func() error {
		if n := len(h.events(devA, "c8y_LWM2MSecurityEvent")); n != 1 {
			return fmt.Errorf("%d security events on psk-a (whose identity was used), want 1", n)
		}
		if n := len(h.events(devB, "c8y_LWM2MSecurityEvent")); n != 1 {
			return fmt.Errorf("%d security events on psk-b (plain attempt), want 1", n)
		}
		return nil
	})
	if mo := h.device("psk-b"); mo["c8y_Availability"] != nil {
		t.Errorf("psk-b got connected: %v", mo["c8y_Availability"])
	}
	// and B with its own key is welcome
	b, err := dialPSK(t, secure, "identity-b", keyB)
	if err != nil {
		t.Fatalf("handshake of psk-b: %v", err)
	}
	if code := register(t, b, "psk-b"); code != codes.Created {
		t.Fatalf("psk-b over DTLS: %v, want 2.01", code)
	}
	h.eventually(5*time.Second, func() error {
		text, err := h.metrics()
		if err != nil {
			return err
		}
		// the wrong key's client may retransmit its hello into a second
		// failed handshake
		if !strings.Contains(text, "\nlwm2m_agent_dtls_sessions 2\n") ||
			strings.Contains(text, "\nlwm2m_agent_dtls_handshake_failures_total 0\n") ||
			!strings.Contains(text, "\nlwm2m_agent_dtls_hello_verify_requests_total ") ||
			strings.Contains(text, "\nlwm2m_agent_dtls_hello_verify_requests_total 0\n") {
			return fmt.Errorf("/metrics, want 2 sessions, failed handshakes and HelloVerifyRequests:\n%s", grepDTLS(text))
		}
		return nil
	})
}

func grepDTLS(text string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "lwm2m_agent_dtls") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// A simulated PSK device whose address changes (a NAT rebinding) keeps its
// DTLS session thanks to the Connection ID: no new handshake, and the
// agent reaches it at the new address.
func TestPSKDeviceKeepsSessionAcrossAddressChange(t *testing.T) {
	h := startAgent(t, withAutoRegister(false))
	if code, res, raw := h.postCSV("management/admin", adminPassword, []byte(pskCSV), false); code != 201 || res.Created != 3 {
		t.Fatalf("import: HTTP %d %s", code, raw)
	}
	sim := h.simulate(1, func(c *simulator.Config) {
		c.Server = ""
		c.Devices = []simulator.DeviceConfig{{
			Endpoint: "psk-a", ServerURI: "coaps://" + h.agent.CoAPSAddr.String(), PSKIdentity: "identity-a", PSK: keyA,
		}}
	})
	id := h.device("psk-a").str("id")
	before := h.device("psk-a").str("lwm2m", "address")
	if _, err := sim.Device("psk-a").Rebind(); err != nil {
		t.Fatal(err)
	}
	sim.Device("psk-a").Update()
	h.eventually(5*time.Second, func() error {
		if now := h.device("psk-a").str("lwm2m", "address"); now == before {
			return fmt.Errorf("address still %s", now)
		}
		return nil
	})
	if op := h.shell(id, "read /3/0/0", 10*time.Second); op.Status != "SUCCESSFUL" {
		t.Fatalf("read after the address change: %s %s", op.Status, op.FailureReason)
	}
	text, err := h.metrics()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "\nlwm2m_agent_dtls_sessions 1\n") {
		t.Fatalf("want the one session:\n%s", grepDTLS(text))
	}
	if n := len(h.events(id, "c8y_LWM2MDeviceRegistration")); n != 1 {
		t.Fatalf("%d registrations, want 1 (no new handshake, no re-register)", n)
	}
}

// When a silent device's DTLS session is closed, only the device can open
// a new one: an operation created meanwhile waits PENDING (it does not
// fail), and runs once the device connects and registers again.
func TestOperationWaitsForClosedDTLSSession(t *testing.T) {
	h := startAgent(t, withAutoRegister(false), withRequestTimeout(time.Second), func(c *config.Config) {
		c.DTLSSessionIdleTimeout = 2 * time.Second
	})
	if code, res, raw := h.postCSV("management/admin", adminPassword, []byte(pskCSV), false); code != 201 || res.Created != 3 {
		t.Fatalf("import: HTTP %d %s", code, raw)
	}
	a, err := dialPSK(t, h.agent.CoAPSAddr, "identity-a", keyA)
	if err != nil {
		t.Fatal(err)
	}
	if code := register(t, a, "psk-a"); code != codes.Created {
		t.Fatalf("register: %v", code)
	}
	id := h.device("psk-a").str("id")
	h.eventually(10*time.Second, func() error {
		text, err := h.metrics()
		if err != nil {
			return err
		}
		if !strings.Contains(text, "\nlwm2m_agent_dtls_sessions 0\n") {
			return fmt.Errorf("session still open:\n%s", grepDTLS(text))
		}
		return nil
	})
	var op operation
	if code := h.call("POST", "/devicecontrol/operations", map[string]any{"deviceId": id, "c8y_Command": map[string]string{"text": "read /3/0/0"}}, &op); code != 201 {
		t.Fatalf("create operation: HTTP %d", code)
	}
	time.Sleep(1500 * time.Millisecond) // longer than the request timeout
	h.call("GET", "/devicecontrol/operations/"+op.ID, nil, &op)
	if op.Status != "PENDING" {
		t.Fatalf("operation for a device without a session is %s (%s), want PENDING", op.Status, op.FailureReason)
	}
	// the device comes back: a new handshake and a Register
	again, err := dialPSK(t, h.agent.CoAPSAddr, "identity-a", keyA)
	if err != nil {
		t.Fatal(err)
	}
	if code := register(t, again, "psk-a"); code != codes.Created {
		t.Fatalf("register again: %v", code)
	}
	h.eventually(10*time.Second, func() error {
		h.call("GET", "/devicecontrol/operations/"+op.ID, nil, &op)
		if op.Status != "SUCCESSFUL" || !strings.Contains(op.Command.Result, "Secure Meters Ltd") {
			return fmt.Errorf("operation %s %q %s", op.Status, op.Command.Result, op.FailureReason)
		}
		return nil
	})
}
