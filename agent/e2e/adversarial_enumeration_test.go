package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/config"
	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/dtlsprobe"
	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/rawcoap"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// refusedCount reads lwm2m_agent_refused_total{cause} from /metrics (0
// when the cause was never counted).
func (h *harness) refusedCount(cause string) int {
	h.t.Helper()
	text, err := h.metrics()
	if err != nil {
		h.t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^lwm2m_agent_refused_total\{cause="` + regexp.QuoteMeta(cause) + `"\} (\d+)$`).FindStringSubmatch(text)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// floodRegister sends n Registers naming ep from senders addresses in
// 127.0.0.0/8, each sender waiting for its answer before the next, and
// counts the answers by code.
func floodRegister(t *testing.T, server net.Addr, ep string, senders, n int) map[codes.Code]int {
	t.Helper()
	answers, _ := rawcoap.Answers(t, server, senders, n, func(s, i int, mid uint16) []byte {
		return rawcoap.Post(mid, []byte{byte(s), byte(i)}, "rd", []string{"ep=" + ep, "lwm2m=1.1", "lt=300"}, []byte("</3/0>"))
	})
	return answers
}

// TestAdversarialRegisterFlood: 6,000 unauthenticated Registers naming
// one NO_SEC endpoint, from 60 addresses, leave one registration event,
// not one each: a few are accepted (the burst, and one per interval
// while the flood lasts), their events coalesced into one; the rest are
// answered 4.29 before any store lookup. Both are on /metrics. The device
// registers again once the interval has passed.
func TestAdversarialRegisterFlood(t *testing.T) {
	h := startAgent(t, withAutoRegister(false), func(c *config.Config) { c.EndpointRegisterInterval = 2 * time.Second })
	csv := "ID,IDTYPE,CREDENTIALS,NAME,TYPE,SHELL,endpoint id,lwm2m server uri,securityMode\n" +
		"flooded,c8y_Id,Secret-pass-1234!,Flooded,c8y_lwm2m,1,flooded,coap://127.0.0.1:5783,NO_SEC\n"
	if code, res, raw := h.postCSV("management/admin", adminPassword, []byte(csv), false); code != 201 || res.Created != 1 {
		t.Fatalf("import: HTTP %d %s", code, raw)
	}
	id := h.device("flooded").str("id")

	start := time.Now()
	answers := floodRegister(t, h.agent.CoAPAddr, "flooded", 60, 6000)
	took := time.Since(start)
	created, limited := answers[codes.Created], answers[codes.TooManyRequests]
	t.Logf("6000 Registers in %v: %d created, %d answered 4.29", took.Round(time.Millisecond), created, limited)
	if created+limited != 6000 {
		t.Fatalf("answers %v, want 2.01 or 4.29 for all 6000", answers)
	}
	if most := 5 + int(took/(2*time.Second)) + 1; created < 5 || created > most {
		t.Errorf("%d Registers accepted in %v, want the burst of 5 and at most one per 2 s beyond (%d)", created, took, most)
	}
	h.eventually(10*time.Second, func() error {
		if n := h.refusedCount("register_rate_endpoint"); n != limited {
			return fmt.Errorf("register_rate_endpoint %d, want %d", n, limited)
		}
		if n := h.refusedCount("registration_event_coalesced"); n != created-1 {
			return fmt.Errorf("registration_event_coalesced %d, want %d", n, created-1)
		}
		return nil
	})
	if evs := h.events(id, "c8y_LWM2MDeviceRegistration"); len(evs) != 1 {
		t.Errorf("%d registration events stored for 6000 Registers, want 1", len(evs))
	}

	// the device itself, from its own address, after the flood
	dev, err := net.DialUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}, h.agent.CoAPAddr.(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	h.eventually(5*time.Second, func() error {
		ans := rawcoap.Exchange(t, h.agent.CoAPAddr, rawcoap.Post(1, []byte{1}, "rd", []string{"ep=flooded", "lwm2m=1.1", "lt=300"}, []byte("</3/0>")))
		if ans[1] != byte(codes.Created) {
			return fmt.Errorf("the device's Register answered %v", codes.Code(ans[1]))
		}
		return nil
	})
	h.eventually(5*time.Second, func() error {
		if st := h.device("flooded").str("c8y_Availability", "status"); st != "AVAILABLE" {
			return fmt.Errorf("flooded is %q", st)
		}
		return nil
	})
}

// TestAdversarialEnumerationPlainPorts: without credentials, the plain
// ports answer an endpoint nobody registered exactly as they answer a PSK
// device's endpoint or an incomplete account: the bootstrap server 4.00
// without a diagnostic, the LwM2M server 4.03, byte for byte. /metrics
// counts each reason apart.
func TestAdversarialEnumerationPlainPorts(t *testing.T) {
	h := startAgent(t, withAutoRegister(false))
	if code, res, raw := h.postCSV("management/admin", adminPassword, []byte(pskCSV), false); code != 201 || res.Created != 3 {
		t.Fatalf("import: HTTP %d %s", code, raw)
	}
	if _, err := h.agent.Store.CreateDevice(context.Background(), "management", "no-params"); err != nil {
		t.Fatal(err)
	}
	compare := func(what string, server net.Addr, path string, cases []string, payload []byte, code codes.Code) {
		t.Helper()
		var first []byte
		for _, ep := range cases {
			ans := rawcoap.Exchange(t, server, rawcoap.Post(0x7777, []byte{0xee}, path, []string{"ep=" + ep}, payload))
			if len(ans) < 2 || ans[1] != byte(code) {
				t.Errorf("%s: %s answered % x, want %v", what, ep, ans, code)
			}
			if first == nil {
				first = ans
			} else if !bytes.Equal(ans, first) {
				t.Errorf("%s: %s answered % x, %s % x", what, ep, ans, cases[0], first)
			}
		}
	}
	compare("bootstrap", h.agent.BootstrapAddr, "bs", []string{"nobody", "psk-a", "no-params"}, nil, codes.BadRequest)
	compare("register", h.agent.CoAPAddr, "rd", []string{"nobody", "psk-a"}, []byte("</3/0>"), codes.Forbidden)
	h.eventually(5*time.Second, func() error {
		for _, cause := range []string{"bootstrap_unknown_endpoint", "bootstrap_psk_without_dtls", "bootstrap_incomplete_account",
			"register_unknown_endpoint", "register_psk_without_dtls"} {
			if n := h.refusedCount(cause); n != 1 {
				return fmt.Errorf("%s counted %d times, want 1", cause, n)
			}
		}
		return nil
	})
}

// TestAdversarialDTLSIdentityProbe: on the LwM2M and the bootstrap DTLS
// ports, a handshake with an identity nobody holds looks like one with a
// known identity and a wrong key: the same records from the server, no
// alert, and the client gives up after as long. /metrics counts both.
func TestAdversarialDTLSIdentityProbe(t *testing.T) {
	h := startAgent(t, withAutoRegister(false), func(c *config.Config) { c.DTLSHandshakeTimeout = time.Second })
	csv := "ID,IDTYPE,CREDENTIALS,NAME,TYPE,SHELL,endpoint id,lwm2m server uri,securityMode,lwm2m psk_id,lwm2m psk_key,bootstrap psk_id,bootstrap psk_key\n" +
		"probed,c8y_Id,Secret-pass-1234!,Probed,c8y_lwm2m,1,probed,coaps://127.0.0.1:5784,PSK,probed-id,000102030405060708090a0b0c0d0e0f,probed-bs,0f0e0d0c0b0a09080706050403020100\n"
	if code, res, raw := h.postCSV("management/admin", adminPassword, []byte(csv), false); code != 201 || res.Created != 1 {
		t.Fatalf("import: HTTP %d %s", code, raw)
	}
	wrong := []byte("0123456789abcdef")
	ports := []struct {
		name     string
		addr     net.Addr
		identity string
	}{
		{"lwm2m", h.agent.CoAPSAddr, "probed-id"},
		{"bootstrap", h.agent.BootstrapSAddr, "probed-bs"},
	}
	var wg sync.WaitGroup
	outcomes := make([][2]dtlsprobe.Outcome, len(ports))
	for i, p := range ports {
		wg.Go(func() { outcomes[i][0] = dtlsprobe.Handshake(t, p.addr, "nobody-"+p.name, wrong, 2*time.Second) })
		wg.Go(func() { outcomes[i][1] = dtlsprobe.Handshake(t, p.addr, p.identity, wrong, 2*time.Second) })
	}
	wg.Wait()
	for i, p := range ports {
		unknown, known := outcomes[i][0], outcomes[i][1]
		if unknown.Err == nil || known.Err == nil || unknown.Alerted() || !slices.Equal(unknown.Records, known.Records) {
			t.Errorf("%s port:\nunknown identity %v (%v)\nwrong key        %v (%v)", p.name, unknown.Records, unknown.Err, known.Records, known.Err)
		}
		if d := unknown.Took - known.Took; d > 500*time.Millisecond || d < -500*time.Millisecond {
			t.Errorf("%s port: unknown identity failed after %v, wrong key after %v", p.name, unknown.Took, known.Took)
		}
	}
	h.eventually(5*time.Second, func() error {
		for _, cause := range []string{"dtls_unknown_identity", "dtls_wrong_key"} {
			if n := h.refusedCount(cause); n != len(ports) {
				return fmt.Errorf("%s counted %d times, want %d", cause, n, len(ports))
			}
		}
		return nil
	})
}
