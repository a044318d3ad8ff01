package psk

import (
	"bytes"
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/testbound"
	"github.com/lwm2m-agent/lwm2m-agent/agent/refusal"
)

// rec is one handshake record of the server's: its record sequence
// number, handshake type and message_seq, and the cookie of a
// HelloVerifyRequest.
type rec struct {
	seq    uint64
	typ    byte
	msgSeq uint16
	cookie []byte
	size   int // of the datagram
}

// readRecords reads the server's datagrams until want handshake records
// came, or fails.
func readRecords(t *testing.T, c *net.UDPConn, want int) []rec {
	t.Helper()
	var out []rec
	buf := make([]byte, 2048)
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	for len(out) < want {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("%d of %d handshake records (%+v): %v", len(out), want, out, err)
		}
		for p := buf[:n]; len(p) >= 13; {
			l := 13 + int(binary.BigEndian.Uint16(p[11:13]))
			if l > len(p) {
				break
			}
			if p[0] == 21 {
				t.Fatalf("alert % x", p[:l])
			}
			if p[0] == 22 && p[3] == 0 && p[4] == 0 && l >= 13+12 {
				r := rec{seq: uint64(binary.BigEndian.Uint16(p[5:]))<<32 | uint64(binary.BigEndian.Uint32(p[7:])),
					typ: p[13], msgSeq: binary.BigEndian.Uint16(p[13+4:]), size: n}
				if r.typ == 3 && l >= 13+12+3 {
					r.cookie = bytes.Clone(p[13+12+3 : min(l, 13+12+3+int(p[13+12+2]))])
				}
				out = append(out, r)
			}
			p = p[l:]
		}
	}
	return out
}

// silent checks that nothing more comes to c within a short while.
func silent(t *testing.T, c *net.UDPConn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	buf := make([]byte, 2048)
	if n, err := c.Read(buf); err == nil {
		t.Fatalf("unexpected datagram % x", buf[:n])
	}
}

// The demux answers a ClientHello without a cookie itself, with a
// HelloVerifyRequest at the hello's record sequence number and
// message_seq, no larger than the hello, and keeps nothing: no
// association, no handshake. A cookie made for another address or
// another hello, or a made-up one, gets a new HelloVerifyRequest and is
// counted as dtls_bad_cookie. The hello that returns its cookie gets the
// only association, and pion answers it with a ServerHello of
// message_seq 1 at a record sequence number above the HelloVerifyRequest's,
// as the client's replay window and message sequence want; pion sends no
// HelloVerifyRequest of its own.
func TestStatelessHelloVerify(t *testing.T) {
	refused := refusal.New(nil, time.Hour)
	l, _ := listenRefusing(t, refused)
	dial := func() *net.UDPConn {
		c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}, l.Addr().(*net.UDPAddr))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	send := func(c *net.UDPConn, pkt []byte) {
		t.Helper()
		if _, err := c.Write(pkt); err != nil {
			t.Fatal(err)
		}
	}
	c, other := dial(), dial()
	h := mbedHello{}
	first := h.record(4, 0, nil)
	send(c, first)
	hvr := readRecords(t, c, 1)[0]
	if hvr.typ != 3 || hvr.seq != 4 || hvr.msgSeq != 0 || len(hvr.cookie) != cookieLen || hvr.size != hvrLen || hvr.size > len(first) {
		t.Fatalf("answer %+v to a %d-byte hello, want a HelloVerifyRequest of %d bytes at record 4, message 0", hvr, len(first), hvrLen)
	}
	if n, hs, hvrs := l.Associations(), l.Handshakes(), l.HelloVerifyRequests(); n != 0 || hs != 0 || hvrs != 1 {
		t.Fatalf("after a hello without cookie: %d associations, %d handshakes, %d HelloVerifyRequests; want 0, 0, 1", n, hs, hvrs)
	}

	otherRandom := h.record(5, 1, hvr.cookie)
	otherRandom[13+12+2+31] ^= 1
	for _, bad := range []struct {
		name string
		from *net.UDPConn
		pkt  []byte
	}{
		{"made up", c, h.record(5, 1, bytes.Repeat([]byte{1}, cookieLen))},
		{"another address's", other, h.record(5, 1, hvr.cookie)},
		{"another hello's", c, otherRandom},
	} {
		send(bad.from, bad.pkt)
		again := readRecords(t, bad.from, 1)[0]
		if again.typ != 3 || again.seq != 5 || again.msgSeq != 1 {
			t.Fatalf("cookie %s: answer %+v, want a new HelloVerifyRequest", bad.name, again)
		}
	}
	if got := refused.Count(CauseBadCookie); got != 3 {
		t.Fatalf("%s counted %d, want 3", CauseBadCookie, got)
	}
	if n := l.Associations(); n != 0 {
		t.Fatalf("%d associations after bad cookies", n)
	}

	second := h.record(6, 1, hvr.cookie)
	send(c, second)
	flight := readRecords(t, c, 3)
	for i, r := range flight {
		if r.typ == 3 {
			t.Fatalf("a second HelloVerifyRequest: %+v", flight)
		}
		if want := []byte{2, 12, 14}[i]; r.typ != want || r.msgSeq != uint16(1+i) || r.seq != uint64(6+i) {
			t.Fatalf("record %d: %+v, want handshake type %d, message_seq %d, record %d", i, r, want, 1+i, 6+i)
		}
	}
	// the client repeats its hello: the association answers it, no other
	send(c, h.record(7, 1, hvr.cookie))
	if r := readRecords(t, c, 1)[0]; r.typ != 2 || r.msgSeq != 1 {
		t.Fatalf("answer to the repeated hello: %+v", r)
	}
	if n, hvrs := l.Associations(), l.HelloVerifyRequests(); n != 1 || hvrs != 4 {
		t.Fatalf("%d associations, %d HelloVerifyRequests; want 1, 4", n, hvrs)
	}
}

// A datagram that is not a ClientHello, from an address without an
// association, is dropped unanswered and counted as dtls_unknown_peer.
func TestUnknownPeerDropped(t *testing.T) {
	refused := refusal.New(nil, time.Hour)
	l, _ := listenRefusing(t, refused)
	c, err := net.DialUDP("udp", nil, l.Addr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, pkt := range [][]byte{
		{23, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 1, 0, 4, 1, 2, 3, 4}, // application data of a session it never had
		mbedHello{}.record(0, 0, nil)[:40],                         // a hello cut short
		{0xde, 0xad},
	} {
		if _, err := c.Write(pkt); err != nil {
			t.Fatal(err)
		}
	}
	testbound.Until(t, 3*time.Second, "the datagrams counted", func() bool { return refused.Count(CauseUnknownPeer) >= 3 })
	if got := refused.Count(CauseUnknownPeer); got != 3 {
		t.Fatalf("%s counted %d, want 3", CauseUnknownPeer, got)
	}
	silent(t, c)
	if n, hvrs := l.Associations(), l.HelloVerifyRequests(); n != 0 || hvrs != 0 {
		t.Fatalf("%d associations, %d HelloVerifyRequests; want none", n, hvrs)
	}
}

// A copy of the ClientHello that opened a session, arriving after the
// handshake (the network repeated it, or someone replays it within the
// cookie's life), goes to that session instead of starting a new
// association that would end it.
func TestLateHelloKeepsSession(t *testing.T) {
	l, accepted := listen(t)
	// the client talks to front; the server sees back's address
	front, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	back, err := net.DialUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}, l.Addr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	hellos := make(chan []byte, 1) // the client's second ClientHello
	done := make(chan struct{})
	go func() { // client to server
		defer close(done)
		buf := make([]byte, 2048)
		for {
			n, _, err := front.ReadFrom(buf)
			if err != nil {
				return
			}
			if h, err := parseHello(buf[:n]); err == nil && len(h.cookie) > 0 {
				select {
				case hellos <- bytes.Clone(buf[:n]):
				default:
				}
			}
			_, _ = back.Write(buf[:n])
		}
	}()
	done2 := make(chan struct{})
	go func() { // server to client
		defer close(done2)
		buf := make([]byte, 2048)
		for {
			n, err := back.Read(buf)
			if err != nil {
				return
			}
			_, _ = front.WriteTo(buf[:n], pc.LocalAddr())
		}
	}()
	t.Cleanup(func() { _ = front.Close(); _ = back.Close(); <-done; <-done2 })

	client, srv := handshakeClientTo(t, front.LocalAddr(), accepted, pc)
	var withCookie []byte
	select {
	case withCookie = <-hellos:
	default:
		t.Fatal("no ClientHello with a cookie went through the relay")
	}
	if _, err := back.Write(withCookie); err != nil {
		t.Fatal(err)
	}
	roundTrip(t, client, srv, "after its ClientHello came again")
	if n, sessions := l.Associations(), l.Sessions(); n != 1 || sessions != 1 {
		t.Fatalf("%d associations, %d sessions; want 1, 1", n, sessions)
	}
}
