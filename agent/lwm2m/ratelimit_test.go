package lwm2m

import (
	"fmt"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"net"
	"testing"
	"time"
)

func TestPeerLimiter(t *testing.T) {
	t0 := time.Unix(1000, 0)
	l := newPeerLimiter(10, 5, 3)
	allowed := 0
	for i := 0; i < 20; i++ {
		if l.allow("a", t0) {
			allowed++
		}
	}
	if allowed != 5 {
		t.Errorf("a burst of 20 at once: %d allowed, want the burst of 5", allowed)
	}
	if !l.allow("a", t0.Add(100*time.Millisecond)) {
		t.Error("a token refilled after 100 ms at 10/s was refused")
	}
	if l.allow("a", t0.Add(100*time.Millisecond)) {
		t.Error("a second message in the same instant was allowed")
	}
	if !l.allow("b", t0) {
		t.Error("another peer is limited by a's flood")
	}
	// the table is bounded: a fourth peer gets in only once a bucket is idle
	l.allow("c", t0)
	if l.allow("d", t0) {
		t.Error("a peer beyond the table's bound was let in")
	}
	if !l.allow("d", t0.Add(time.Second)) {
		t.Error("no idle bucket was dropped for a new peer")
	}
	if n := l.size(); n > 3 {
		t.Errorf("table holds %d buckets, bound is 3", n)
	}
	for i := 0; i < 100; i++ {
		l.allow(fmt.Sprint("p", i), t0.Add(time.Hour+time.Duration(i)*time.Second))
	}
	if n := l.size(); n > 3 {
		t.Errorf("table grew to %d", n)
	}
}

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
	// kernel may drop a few itself, so count only what must be).
	time.Sleep(500 * time.Millisecond)
	allowed := 20 + 10*time.Since(start).Seconds()
	if got := float64(s.Stats().RateLimited); got < 300-allowed-60 {
		t.Errorf("%v of 300 flooding datagrams dropped, want about %v", got, 300-allowed)
	}
	d := newDevice(t, s.Addr())
	if res, _ := d.register([]string{"ep=calm", "lwm2m=1.1"}, "</3/0>"); res.code != codes.Created {
		t.Errorf("register beside a flood: %v", res.code)
	}
}
