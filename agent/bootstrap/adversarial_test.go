package bootstrap

import (
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/coapfront"
	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/rawcoap"
	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/testbound"
	"github.com/lwm2m-agent/lwm2m-agent/agent/refusal"
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
