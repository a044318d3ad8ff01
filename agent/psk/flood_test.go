package psk

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"
)

// floodAddrs is how many loopback addresses the flood comes from, and
// floodPorts how many ports each uses.
const (
	floodAddrs = 32
	floodPorts = 4
)

// floodSocket is one source of the flood: a UDP socket on 127.0.0.x.
func floodSocket(t *testing.T, x, port int) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, byte(x))})
	if err != nil {
		t.Skipf("cannot bind 127.0.0.%d (port %d): %v", x, port, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// heapInUse is the live heap after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// A flood of ClientHellos from many loopback addresses: without cookies
// and with wrong ones, nothing is kept (HelloVerifyRequests only); with
// valid cookies, from clients that then go silent, the handshakes under
// way stay within their bounds, total and per address, and end at the
// handshake timeout; meanwhile a device from another address completes
// its handshake, and memory and goroutines stay bounded.
func TestClientHelloFlood(t *testing.T) {
	const perAddr = 2
	lim := Limits{MaxHandshakes: 100, MaxHandshakesPerAddr: perAddr, HandshakeTimeout: 4 * time.Second}
	keys := func(_ context.Context, id string) ([]byte, error) {
		if id == "dev-1" {
			return []byte("key-1"), nil
		}
		return nil, ErrUnknownIdentity
	}
	l, err := Listen("127.0.0.1:0", keys, lim, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	accepted := serve(t, l)
	server := l.Addr().(*net.UDPAddr)
	goroutines0, heap0 := runtime.NumGoroutine(), heapInUse()

	var socks []*net.UDPConn
	for a := range floodAddrs {
		for p := range floodPorts {
			socks = append(socks, floodSocket(t, 10+a, p))
		}
	}
	hello := mbedHello{}
	// Without a cookie, then with one that was not made for it: each is
	// answered with a HelloVerifyRequest and leaves nothing.
	for _, c := range socks {
		for _, cookie := range [][]byte{nil, make([]byte, cookieLen)} {
			if _, err := c.WriteToUDP(hello.record(0, 0, cookie), server); err != nil {
				t.Fatal(err)
			}
			if typ, _ := answer(t, c); typ != 3 {
				t.Fatalf("ClientHello from %s answered with handshake type %d, not a HelloVerifyRequest", c.LocalAddr(), typ)
			}
		}
	}
	if n := l.Associations(); n != 0 {
		t.Fatalf("%d associations after ClientHellos without valid cookies", n)
	}
	if n, want := l.HelloVerifyRequests(), uint64(2*len(socks)); n != want {
		t.Fatalf("%d HelloVerifyRequests, want %d", n, want)
	}

	// With valid cookies, and then silence: every source gets as far as
	// its ServerHello, if a limit lets it.
	for _, c := range socks {
		if _, err := c.WriteToUDP(hello.record(0, 0, nil), server); err != nil {
			t.Fatal(err)
		}
		_, cookie := answer(t, c)
		if _, err := c.WriteToUDP(hello.record(1, 1, cookie), server); err != nil {
			t.Fatal(err)
		}
	}
	// The sources' addresses hold at most perAddr handshakes each.
	want := min(floodAddrs*perAddr, lim.MaxHandshakes)
	waitFor(t, fmt.Sprintf("%d handshakes under way", want), func() bool { return l.Handshakes() == want })
	waitFor(t, fmt.Sprintf("%d handshakes refused by a limit", len(socks)-want), func() bool { return l.Refused() == int64(len(socks)-want) })

	// A device from another address is served meanwhile.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	// within 3 s, shorter than the flood's handshake timeout: the device
	// does not wait for the flood's slots to free
	handshakeClientTo(t, server, accepted, pc)

	// Bounded: a few goroutines and some KiB of heap per handshake under
	// way, nothing for the sources refused.
	g, h := runtime.NumGoroutine()-goroutines0, int64(heapInUse())-int64(heap0)
	t.Logf("during the flood: %d handshakes under way, %d goroutines and %d KiB of heap more than before", l.Handshakes(), g, h>>10)
	if g > 8*lim.MaxHandshakes {
		t.Fatalf("%d goroutines more during the flood", g)
	}
	if h > int64(lim.MaxHandshakes)*64<<10 {
		t.Fatalf("heap grew by %d KiB during the flood", h>>10)
	}

	// The silent handshakes end at the timeout; the device's session stays.
	waitFor(t, "the silent handshakes to end at their timeout, the device's session to stay", func() bool { return l.Handshakes() == 0 && l.Associations() == 1 })
	if n := l.HandshakesCompleted(); n != 1 {
		t.Fatalf("%d handshakes completed, want 1", n)
	}
}
