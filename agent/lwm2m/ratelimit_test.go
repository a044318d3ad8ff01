package lwm2m

import (
	"net"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// A peer that floods the server is cut off after its burst; another device
// registers meanwhile as usual.
func TestFloodingPeerIsLimited(t *testing.T) {
	s, _ := startServer(t, Config{PeerRate: 10, PeerBurst: 20})
	flood, err := net.DialUDP("udp", nil, s.Addr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer flood.Close()
	start := time.Now()
	for i := 0; i < 300; i++ {
		// NON POST /rd without ep: each would get a 4.00 if processed
		msg := []byte{0x50, 0x02, byte(i >> 8), byte(i), 0xb2, 'r', 'd'}
		if _, err := flood.Write(msg); err != nil {
			t.Fatal(err)
		}
	}
	// All beyond the burst and what refilled meanwhile are dropped (the
	// kernel may drop a few itself, so count only what must be), once the
	// server has read them.
	deadline := time.Now().Add(3 * time.Second)
	for {
		allowed := 20 + 10*time.Since(start).Seconds()
		got := float64(s.Stats().RateLimited)
		if got >= 300-allowed-60 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v of 300 flooding datagrams dropped, want about %v", got, 300-allowed)
		}
		time.Sleep(10 * time.Millisecond)
	}
	d := newDevice(t, s.Addr())
	if res, _ := d.register([]string{"ep=calm", "lwm2m=1.1"}, "</3/0>"); res.code != codes.Created {
		t.Errorf("register beside a flood: %v", res.code)
	}
}
