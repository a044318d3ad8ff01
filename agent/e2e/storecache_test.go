package e2e

import (
	"regexp"
	"strconv"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/rawcoap"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// cacheCount reads lwm2m_agent_store_cache_<what>_total{cache} from
// /metrics.
func (h *harness) cacheCount(what, cache string) int {
	h.t.Helper()
	text, err := h.metrics()
	if err != nil {
		h.t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^lwm2m_agent_store_cache_` + what + `_total\{cache="` + cache + `"\} (\d+)$`).FindStringSubmatch(text)
	if m == nil {
		h.t.Fatalf("no lwm2m_agent_store_cache_%s_total{cache=%q} on /metrics", what, cache)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestStoreCacheServesRegisters: a known device's Registers after its
// first are answered from the store cache (its endpoint and its
// registration parameters are hits on /metrics), and a change of its
// parameters through the API reaches the LwM2M server at once: made PSK,
// the device's next plain Register is refused.
func TestStoreCacheServesRegisters(t *testing.T) {
	h := startAgent(t, withAutoRegister(false))
	id, err := h.agent.Store.CreateDevice(h.ctx, "management", "cached-ep")
	if err != nil {
		t.Fatal(err)
	}
	register := func() codes.Code {
		t.Helper()
		ans := rawcoap.Exchange(t, h.agent.CoAPAddr, rawcoap.Post(0x1234, []byte{1}, "rd", []string{"ep=cached-ep", "lwm2m=1.1", "lt=300"}, []byte("</3/0>")))
		if len(ans) < 2 {
			t.Fatalf("answer % x", ans)
		}
		return codes.Code(ans[1])
	}
	endpoints, records := h.cacheCount("hits", "endpoints"), h.cacheCount("hits", "registrations")
	for i := range 3 {
		if c := register(); c != codes.Created {
			t.Fatalf("Register %d: %v", i+1, c)
		}
	}
	if n := h.cacheCount("hits", "endpoints") - endpoints; n < 2 {
		t.Errorf("%d endpoint lookups answered by the cache over three Registers, want at least 2", n)
	}
	if n := h.cacheCount("hits", "registrations") - records; n < 2 {
		t.Errorf("%d record lookups answered by the cache over three Registers, want at least 2", n)
	}
	var got map[string]any
	if c := h.call("PUT", "/lwm2m/devices/"+id+"/bootstrap", map[string]any{
		"lwm2mServerUri": "coaps://127.0.0.1:5784", "securityMode": "PSK", "lwm2mPskId": "cached-id", "lwm2mPskKey": "a1b2c3d4",
	}, &got); c != 200 {
		t.Fatalf("PUT: HTTP %d %v", c, got)
	}
	if c := register(); c != codes.Forbidden {
		t.Fatalf("plain Register after the device was made PSK: %v, want 4.03", c)
	}
}
