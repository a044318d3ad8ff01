package lwm2m

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/logbuf"
	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/rawcoap"
	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/testbound"
	"github.com/lwm2m-agent/lwm2m-agent/agent/refusal"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// With the default limit, a device that reboots five times in a row
// registers each time, from whatever address; the sixth Register naming
// its endpoint is answered 4.29 with Max-Age before anyone is asked who
// it is, counted and logged once. Another endpoint registers meanwhile.
func TestRegisterRatePerEndpoint(t *testing.T) {
	var logs logbuf.Buffer
	refused := refusal.New(slog.New(slog.NewTextHandler(&logs, nil)), time.Hour)
	s, h := startServer(t, Config{Refused: refused})
	for i := range DefaultRegisterBurst {
		if res, _ := newDevice(t, s.Addr()).register([]string{"ep=rebooting", "lwm2m=1.1"}, testLinks); res.code != codes.Created {
			t.Fatalf("register %d of a rebooting device: %v", i+1, res.code)
		}
	}
	for range 3 {
		// raw, to read the answer's options byte for byte
		ans := rawcoap.Exchange(t, s.Addr(), rawcoap.Post(0x4242, []byte{0xbb}, "rd", []string{"ep=rebooting", "lwm2m=1.1"}, []byte("</3/0>")))
		// ACK, token bb, 4.29, the request's message ID, then Max-Age
		// (option 14: delta 13 + 1, one byte) of 10 s at the most, and no
		// payload
		if len(ans) != 8 || ans[0] != 0x61 || ans[1] != byte(codes.TooManyRequests) || ans[2] != 0x42 || ans[3] != 0x42 ||
			ans[5] != 0xd1 || ans[6] != 0x01 || ans[7] == 0 || ans[7] > 10 {
			t.Fatalf("register past the burst answered % x, want 4.29 with Max-Age", ans)
		}
	}
	if res, _ := newDevice(t, s.Addr()).register([]string{"ep=calm", "lwm2m=1.1"}, testLinks); res.code != codes.Created {
		t.Errorf("another endpoint's register: %v", res.code)
	}
	h.mu.Lock()
	auths := len(h.auths)
	h.mu.Unlock()
	if auths != DefaultRegisterBurst+1 {
		t.Errorf("%d Registers were authorized, want %d: the refused ones must not reach the hooks", auths, DefaultRegisterBurst+1)
	}
	if n := refused.Count(CauseRegisterRate); n != 3 {
		t.Errorf("refused %d, want 3", n)
	}
	if n := strings.Count(logs.String(), "cause="+CauseRegisterRate); n != 1 {
		t.Errorf("logged %d times, want once:\n%s", n, logs.String())
	}
}

// Once a token has refilled, the endpoint registers again.
func TestRegisterRateRefills(t *testing.T) {
	s, _ := startServer(t, Config{RegisterInterval: 200 * time.Millisecond, RegisterBurst: 1})
	d := newDevice(t, s.Addr())
	if res, _ := d.register([]string{"ep=again"}, testLinks); res.code != codes.Created {
		t.Fatalf("first register: %v", res.code)
	}
	if res, _ := d.register([]string{"ep=again"}, testLinks); res.code != codes.TooManyRequests {
		t.Fatalf("second register at once: %v, want 4.29", res.code)
	}
	testbound.Until(t, 2*time.Second, "a register after the interval", func() bool {
		res, _ := d.register([]string{"ep=again"}, testLinks)
		return res.code == codes.Created
	})
}
