package bootstrap

import (
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/coapfront"
	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/dtlsprobe"
	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/rawcoap"
	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/testbound"
	"github.com/lwm2m-agent/lwm2m-agent/agent/psk"
	"github.com/lwm2m-agent/lwm2m-agent/agent/refusal"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// TestAdversarialOnlyBootstrapRequestsGetState: on the plain port, a
// datagram other than a Bootstrap-Request from an address without state
// is dropped unanswered and counted, and 10,000 such addresses leave no
// goroutine behind; go-coap's own UDP server kept a connection and a
// goroutine for each.
func TestAdversarialOnlyBootstrapRequestsGetState(t *testing.T) {
	testbound.Bound(t, time.Minute)
	refused := refusal.New(nil, 0)
	ts := startServer(t, func(c *Config) { c.Refused = refused })
	for _, d := range []rawcoap.Datagram{
		{Name: "GET /bs", Bytes: []byte{0x40, 0x01, 0x00, 0x01, 0xb2, 'b', 's'}},
		{Name: "POST /rd", Bytes: []byte{0x40, 0x02, 0x00, 0x01, 0xb2, 'r', 'd', 0x47, 'e', 'p', '=', 'd', 'e', 'v', '1'}},
		{Name: "ACK", Bytes: []byte{0x60, 0x44, 0x00, 0x01}},
		{Name: "ping", Bytes: []byte{0x40, 0x00, 0x00, 0x01}},
	} {
		t.Run(d.Name, func(t *testing.T) { rawcoap.AssertDropped(t, ts.srv.Addr(), "bs", d.Bytes) })
	}

	const n = 10000
	heap0, g0 := rawcoap.Memory()
	counted := func() uint64 { return refused.Count(coapfront.CauseUnknownPeer) }
	got := rawcoap.Flood(t, ts.srv.Addr(), n, func(i int) []byte {
		return []byte{0x40, 0x01, byte(i >> 8), byte(i), 0xb2, 'b', 's'} // CON GET /bs
	}, counted)
	heap1, g1 := rawcoap.Memory()
	t.Logf("flood of %d addresses (%d dropped): heap %.1f MB -> %.1f MB, goroutines %d -> %d",
		n, got, rawcoap.MB(heap0), rawcoap.MB(heap1), g0, g1)
	if got < n*95/100 {
		t.Fatalf("%d of %d datagrams dropped and counted", got, n)
	}
	if g1 > g0+16 {
		t.Errorf("goroutines grew from %d to %d", g0, g1)
	}
}

// TestAdversarialForgedClientHellosSecurePort: the DTLS bootstrap port
// answers ClientHellos from 3,000 forged addresses with a
// HelloVerifyRequest each and keeps nothing for them: no association, no
// handshake. A device then handshakes and bootstraps at once.
func TestAdversarialForgedClientHellosSecurePort(t *testing.T) {
	testbound.Bound(t, time.Minute)
	ts := startServer(t, nil)
	l := ts.srv.secure.(*psk.Listener)
	const n = 3000
	got := rawcoap.Flood(t, ts.srv.SecureAddr(), n, dtlsprobe.ForgedHello, l.HelloVerifyRequests)
	if got != n || l.Associations() != 0 || l.Handshakes() != 0 {
		t.Fatalf("%d forged ClientHellos: %d answered, %d associations, %d handshakes; want %d, 0, 0", n, got, l.Associations(), l.Handshakes(), n)
	}
	ts.device(t, tenant, map[string]any{
		"endpointId": "psk-f", "lwm2mServerUri": "coaps://lwm2m.example.com:5784", "securityMode": "PSK",
		"lwm2mPskId": "psk-f-id", "bootstrapPskId": "psk-f-bs",
	}, []byte{1}, []byte{0xf1})
	c := newClient(t, "1.1")
	if err := c.handshake(ts.srv.SecureAddr(), "psk-f-bs", []byte{0xf1}, 2*time.Second); err != nil {
		t.Fatalf("a device's handshake after the flood: %v", err)
	}
	if code, _, err := c.request("ep=psk-f"); err != nil || code != codes.Changed {
		t.Fatalf("Bootstrap-Request after the flood: %v %v", code, err)
	}
}
