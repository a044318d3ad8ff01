package lwm2m

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/coapfront"
	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/dtlsprobe"
	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/mbedtlsclient"
	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/rawcoap"
	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/testbound"
	"github.com/lwm2m-agent/lwm2m-agent/agent/psk"
	"github.com/lwm2m-agent/lwm2m-agent/agent/refusal"
	piondtls "github.com/pion/dtls/v3"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"
)

// floodDatagram is what the i-th address sends: one in ten a request of
// the registration interface (which gets state), the rest requests,
// answers and garbage that get none.
func floodDatagram(i int) []byte {
	mid := []byte{byte(i >> 8), byte(i)}
	switch i % 10 {
	case 0: // NON POST /rd, no endpoint name: answered 4.00
		return []byte{0x50, 0x02, mid[0], mid[1], 0xb2, 'r', 'd'}
	case 1: // CON POST /dp: answered 4.03, statelessly
		return []byte{0x40, 0x02, mid[0], mid[1], 0xb2, 'd', 'p'}
	case 2: // NON 2.05 notification of no observation: answered RST
		return []byte{0x51, 0x45, mid[0], mid[1], 0x07, 0x61, 0x05, 0xff, 'x'}
	case 3: // RST
		return []byte{0x70, 0x00, mid[0], mid[1]}
	case 4: // garbage
		return []byte{0x4f, 0xff, 0x00, 0x00, 0xde, 0xad, 0xbe, 0xef}
	default: // CON GET /3/0
		return []byte{0x40, 0x01, mid[0], mid[1], 0xb1, '3', 0x01, '0'}
	}
}

// TestAdversarialFloodManyAddresses: 20,000 source addresses sending one
// datagram each leave the server with state for at most the bound of
// peers without a registration, and none once those are silent; memory
// and goroutines stay near where they were, and a registered device is
// served throughout. go-coap's own UDP server made a connection and a
// goroutine for each address and kept it for the idle timeout.
func TestAdversarialFloodManyAddresses(t *testing.T) {
	testbound.Bound(t, time.Minute)
	const n, maxPending = 20000, 256
	refused := refusal.New(nil, 0)
	s, _ := startServer(t, Config{MaxPendingPeers: maxPending, PendingIdleTimeout: 2 * time.Second, PeerRate: -1, Refused: refused})
	d := newDevice(t, s.Addr())
	res, id := d.register([]string{"ep=steady", "lwm2m=1.1"}, testLinks)
	if res.code != codes.Created {
		t.Fatalf("register: %v", res.code)
	}
	front := s.coap.Load()
	heap0, g0 := rawcoap.Memory()

	got := rawcoap.Flood(t, s.Addr(), n, floodDatagram, front.Received)
	heap1, g1 := rawcoap.Memory()
	all, pending := front.Peers()
	t.Logf("flood of %d addresses (%d datagrams read): heap %.1f MB -> %.1f MB, goroutines %d -> %d, peers with state %d (%d without a registration), dropped %d, evicted %d",
		n, got, rawcoap.MB(heap0), rawcoap.MB(heap1), g0, g1, all, pending, front.Dropped(), front.Evicted())
	if got < n*95/100 {
		t.Fatalf("the server read %d of %d datagrams", got, n)
	}
	if pending > maxPending || all > maxPending+1 {
		t.Errorf("%d peers with state, %d without a registration; bound %d", all, pending, maxPending)
	}
	if g1 > g0+maxPending+64 {
		t.Errorf("goroutines grew from %d to %d; the bound allows %d peers without a registration", g0, g1, maxPending)
	}
	if heap1 > heap0+48<<20 {
		t.Errorf("heap grew from %.1f MB to %.1f MB", rawcoap.MB(heap0), rawcoap.MB(heap1))
	}
	if c := refused.Count(coapfront.CauseUnknownPeer); c < uint64(n)/2 {
		t.Errorf("%s counted %d", coapfront.CauseUnknownPeer, c)
	}
	if res, err := d.do(codes.POST, "/rd/"+id, nil, 0, nil); err != nil || res.code != codes.Changed {
		t.Fatalf("update of the registered device after the flood: %v %v", res.code, err)
	}

	testbound.Until(t, 10*time.Second, "the state of the silent peers to end", func() bool {
		_, pending := front.Peers()
		return pending == 0
	})
	heap2, g2 := rawcoap.Memory()
	t.Logf("after %v of silence: heap %.1f MB, goroutines %d", s.cfg.PendingIdleTimeout, rawcoap.MB(heap2), g2)
	if g2 > g0+16 {
		t.Errorf("goroutines %d after the flood ended, %d before", g2, g0)
	}
	if _, ok := s.Registration("steady"); !ok {
		t.Fatal("the registered device lost its registration")
	}
}

// TestAdversarialRegisterBesideFlood: with 50 devices registered and 150
// addresses flooding requests of the registration interface into a rate
// limit table of 102 and a bound of 16 peers without a registration,
// another device's Register succeeds. A full table used to refuse every
// new address, the device's included.
func TestAdversarialRegisterBesideFlood(t *testing.T) {
	testbound.Bound(t, time.Minute)
	s, _ := startServer(t, Config{MaxRegistrations: 51, MaxPendingPeers: 16})
	for i := 0; i < 50; i++ {
		d := newDevice(t, s.Addr())
		if res, _ := d.register([]string{fmt.Sprintf("ep=reg-%d", i), "lwm2m=1.1"}, testLinks); res.code != codes.Created {
			t.Fatalf("register %d: %v", i, res.code)
		}
	}
	var flooders []*net.UDPConn
	for i := 0; i < 150; i++ {
		c, err := net.ListenUDP("udp4", rawcoap.FloodAddr(i))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		flooders = append(flooders, c)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() {
		// each address at 100 datagrams a second, the peer rate: all stay
		// in the rate limit table
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for mid := 0; ; mid++ {
			for _, c := range flooders {
				_, _ = c.WriteTo([]byte{0x50, 0x02, byte(mid >> 8), byte(mid), 0xb2, 'r', 'd'}, s.Addr())
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})
	testbound.Until(t, 5*time.Second, "the flood to fill the rate limit table", func() bool {
		return s.limiter.Len() >= 102
	})
	d := newDevice(t, s.Addr())
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := d.do(codes.POST, "/rd", []string{"ep=newcomer", "lwm2m=1.1"}, message.AppLinkFormat, []byte(testLinks))
		if err == nil && res.code == codes.Created {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the Register beside the flood did not succeed: %v %v (rate limited %d)", res.code, err, s.Stats().RateLimited)
		}
	}
	if _, ok := s.Registration("newcomer"); !ok {
		t.Fatal("the device is not registered")
	}
}

// blockRequest is a CON POST to path with query, a Block1 option (num,
// more, 1024-byte blocks), Size1 unless negative, and payload.
func blockRequest(mid uint16, path, query string, num int, more bool, size1 int, payload []byte) []byte {
	m := message.Message{Type: message.Confirmable, Code: codes.POST, MessageID: int32(mid), Token: []byte{byte(mid >> 8), byte(mid)}, Payload: payload}
	m.Options, _, _ = m.Options.SetPath(make([]byte, 64), path)
	if query != "" {
		m.Options = m.Options.Add(message.Option{ID: message.URIQuery, Value: []byte(query)})
	}
	block := uint32(num)<<4 | 6
	if more {
		block |= 8
	}
	m.Options, _, _ = m.Options.SetUint32(make([]byte, 4), message.Block1, block)
	if size1 >= 0 {
		m.Options, _, _ = m.Options.SetUint32(make([]byte, 4), message.Size1, uint32(size1))
	}
	buf := make([]byte, 2048)
	n, err := coder.DefaultCoder.Encode(m, buf)
	if err != nil {
		panic(err)
	}
	return buf[:n]
}

// exchange sends b on c and returns the answer with b's message ID.
func exchange(t *testing.T, c *net.UDPConn, b []byte) message.Message {
	t.Helper()
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	for {
		if err := c.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
			t.Fatal(err)
		}
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("no answer to % x...: %v", b[:4], err)
		}
		m := message.Message{Options: make(message.Options, 0, 16)}
		if _, err := coder.DefaultCoder.Decode(buf[:n], &m); err != nil {
			t.Fatalf("answer % x: %v", buf[:n], err)
		}
		if m.MessageID == int32(b[2])<<8|int32(b[3]) {
			return m
		}
	}
}

func dialServer(t *testing.T, s *Server) *net.UDPConn {
	t.Helper()
	c, err := net.DialUDP("udp", nil, s.Addr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestAdversarialBlockwiseBodyTooLarge: a Register announcing a body over
// the limit in Size1, and one whose blocks reach past it, are answered
// 4.13 Request Entity Too Large with the limit in Size1 (RFC 7959
// section 2.9.3), before anything is buffered; one within the limit
// registers.
func TestAdversarialBlockwiseBodyTooLarge(t *testing.T) {
	const limit = 4096
	refused := refusal.New(nil, 0)
	s, _ := startServer(t, Config{Blockwise: coapfront.TransferLimits{MaxBody: limit}, Refused: refused})
	block := bytes.Repeat([]byte{' '}, 1024)

	c := dialServer(t, s)
	a := exchange(t, c, blockRequest(1, "rd", "ep=big", 0, true, 1_000_000, block))
	if size1, err := a.Options.GetUint32(message.Size1); a.Code != codes.RequestEntityTooLarge || err != nil || size1 != limit {
		t.Fatalf("Size1 1000000 answered %v with Size1 %v (%v), want 4.13 with %d", a.Code, size1, err, limit)
	}

	c = dialServer(t, s)
	for num := 0; num < 4; num++ {
		if a := exchange(t, c, blockRequest(uint16(10+num), "rd", "ep=big", num, true, -1, block)); a.Code != codes.Continue {
			t.Fatalf("block %d answered %v, want 2.31", num, a.Code)
		}
	}
	a = exchange(t, c, blockRequest(14, "rd", "ep=big", 4, true, -1, block))
	if size1, _ := a.Options.GetUint32(message.Size1); a.Code != codes.RequestEntityTooLarge || size1 != limit {
		t.Fatalf("block 4 (bytes 4096 to 5119) answered %v with Size1 %d, want 4.13 with %d", a.Code, size1, limit)
	}
	if n := refused.Count(coapfront.CauseBodyTooLarge); n != 2 {
		t.Errorf("%s counted %d, want 2", coapfront.CauseBodyTooLarge, n)
	}

	links := append([]byte(testLinks), bytes.Repeat([]byte{' '}, 2048-len(testLinks))...)
	c = dialServer(t, s)
	exchange(t, c, blockRequest(20, "rd", "ep=fits", 0, true, 2048, links[:1024]))
	if a := exchange(t, c, blockRequest(21, "rd", "ep=fits", 1, false, -1, links[1024:])); a.Code != codes.Created {
		t.Fatalf("a Register of 2048 bytes in blocks answered %v", a.Code)
	}
}

// TestAdversarialBlockwiseTransfersFull: a peer's transfer beyond its
// bound, and any beyond the bound of all, are answered 5.03; once one
// ends, another may start.
func TestAdversarialBlockwiseTransfersFull(t *testing.T) {
	refused := refusal.New(nil, 0)
	s, _ := startServer(t, Config{Blockwise: coapfront.TransferLimits{PerPeer: 1, Total: 2}, Refused: refused})
	block := bytes.Repeat([]byte{' '}, 1024)
	a, b, c := dialServer(t, s), dialServer(t, s), dialServer(t, s)
	if m := exchange(t, a, blockRequest(1, "rd", "ep=a", 0, true, -1, block)); m.Code != codes.Continue {
		t.Fatalf("a's first transfer: %v", m.Code)
	}
	if m := exchange(t, a, blockRequest(2, "rd/x", "", 0, true, -1, block)); m.Code != codes.ServiceUnavailable {
		t.Fatalf("a's second transfer: %v, want 5.03", m.Code)
	}
	if m := exchange(t, b, blockRequest(3, "rd", "ep=b", 0, true, -1, block)); m.Code != codes.Continue {
		t.Fatalf("b's transfer: %v", m.Code)
	}
	if m := exchange(t, c, blockRequest(4, "rd", "ep=c", 0, true, -1, block)); m.Code != codes.ServiceUnavailable {
		t.Fatalf("c's transfer beyond the total: %v, want 5.03", m.Code)
	}
	if n := refused.Count(coapfront.CauseTransfersFull); n != 2 {
		t.Errorf("%s counted %d, want 2", coapfront.CauseTransfersFull, n)
	}
	if m := exchange(t, a, blockRequest(5, "rd", "ep=a", 1, false, -1, []byte(testLinks))); m.Code != codes.BadRequest && m.Code != codes.Created {
		t.Fatalf("a's last block: %v", m.Code)
	}
	if m := exchange(t, c, blockRequest(6, "rd", "ep=c", 0, true, -1, block)); m.Code != codes.Continue {
		t.Fatalf("c's transfer after a's ended: %v", m.Code)
	}
}

// malformedCoAP are datagrams RFC 7252 makes format errors, or that are
// not CoAP at all.
var malformedCoAP = []rawcoap.Datagram{
	{Name: "empty", Bytes: []byte{}},
	{Name: "short", Bytes: []byte{0x40, 0x02}},
	{Name: "version 2", Bytes: []byte{0x80, 0x02, 0x00, 0x01, 0xb2, 'r', 'd'}},
	{Name: "token length 9", Bytes: []byte{0x59, 0x02, 0x00, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0xb2, 'r', 'd'}},
	{Name: "token cut", Bytes: []byte{0x58, 0x02, 0x00, 0x01, 1, 2}},
	{Name: "option delta 15", Bytes: []byte{0x50, 0x02, 0x00, 0x01, 0xb2, 'r', 'd', 0xf1, 'x'}},
	{Name: "option cut", Bytes: []byte{0x50, 0x02, 0x00, 0x01, 0xb9, 'r', 'd'}},
	{Name: "payload marker alone", Bytes: []byte{0x50, 0x02, 0x00, 0x01, 0xb2, 'r', 'd', 0xff}},
	{Name: "dtls record", Bytes: []byte{0x16, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
	{Name: "not coap", Bytes: []byte{0xde, 0xad, 0xbe, 0xef, 0x00, 0x01}},
}

// TestAdversarialMalformedCoAP: malformed datagrams, sent as a peer's
// first or after it has state, get no answer and leave the server
// serving.
func TestAdversarialMalformedCoAP(t *testing.T) {
	s, _ := startServer(t, Config{})
	for _, d := range malformedCoAP {
		t.Run(d.Name, func(t *testing.T) {
			rawcoap.AssertDropped(t, s.Addr(), "rd", d.Bytes)
			// NON, or unparsable: go-coap answers a malformed CON whose
			// header it could read with RST (RFC 7252 section 4.2)
			rawcoap.AssertNotAnswered(t, s.Addr(), "rd", d.Bytes)
		})
	}
	d := newDevice(t, s.Addr())
	if res, _ := d.register([]string{"ep=after-garbage", "lwm2m=1.1"}, testLinks); res.code != codes.Created {
		t.Fatalf("register after malformed datagrams: %v", res.code)
	}
}

// malformedDTLS are datagrams for the DTLS port: garbage, records cut or
// overlong, records of epochs no session has, and a well-formed
// ClientHello (the last), whose forged address never returns the cookie.
func malformedDTLS(i int) []byte {
	hello := dtlsprobe.ForgedHello(i)
	switch i % 6 {
	case 0:
		return []byte{0xde, 0xad, 0xbe, 0xef}
	case 1: // length beyond the datagram
		return []byte{22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1}
	case 2: // ClientHello cut short
		return hello[:40]
	case 3: // application data of epoch 1
		return []byte{23, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 1, 0, 4, 1, 2, 3, 4}
	case 4: // Connection ID record
		return []byte{25, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0}
	default:
		return hello
	}
}

// TestAdversarialMalformedDTLS: malformed DTLS datagrams and forged
// ClientHellos from 3,000 addresses leave no association behind: the
// garbage is dropped (dtls_unknown_peer), each hello gets a
// HelloVerifyRequest and nothing else. A device then handshakes at its
// first attempt and registers. (Before, each hello held one of
// --dtls-max-handshakes until --dtls-handshake-timeout.)
func TestAdversarialMalformedDTLS(t *testing.T) {
	testbound.Bound(t, time.Minute)
	const n, maxHandshakes = 3000, 32
	refused := refusal.New(nil, time.Hour)
	s, _ := startSecureServer(t, Config{DTLS: psk.Limits{MaxHandshakes: maxHandshakes, HandshakeTimeout: 10 * time.Second}, Refused: refused})
	heap0, g0 := rawcoap.Memory()
	handled := func() uint64 { return s.secure.HelloVerifyRequests() + refused.Count(psk.CauseUnknownPeer) }
	if got := rawcoap.Flood(t, s.SecureAddr(), n, malformedDTLS, handled); got != n {
		t.Fatalf("the server read %d of %d datagrams", got, n)
	}
	heap1, g1 := rawcoap.Memory()
	open, dropped, failed := s.Sessions()
	t.Logf("DTLS flood of %d addresses: heap %.1f MB -> %.1f MB, goroutines %d -> %d; associations %d, handshakes %d, sessions %d, refused %d, failed %d",
		n, rawcoap.MB(heap0), rawcoap.MB(heap1), g0, g1, s.secure.Associations(), s.secure.Handshakes(), open, dropped, failed)
	if a, h := s.secure.Associations(), s.secure.Handshakes(); a != 0 || h != 0 {
		t.Errorf("%d associations and %d handshakes after the flood, want none", a, h)
	}
	if hvr, unknown := s.secure.HelloVerifyRequests(), refused.Count(psk.CauseUnknownPeer); hvr != n/6 || unknown != n-n/6 {
		t.Errorf("%d HelloVerifyRequests and %d %s, want %d and %d", hvr, unknown, psk.CauseUnknownPeer, n/6, n-n/6)
	}
	if g1 > g0+64 {
		t.Errorf("goroutines grew from %d to %d", g0, g1)
	}
	d, _, err := newSecureDevice(t, s.SecureAddr(), "id-1", testKeys["id-1"], piondtls.TLS_PSK_WITH_AES_128_CCM_8, false)
	if err != nil {
		t.Fatalf("a device's handshake after the flood: %v", err)
	}
	if res, _ := d.register([]string{"ep=after-dtls-garbage", "lwm2m=1.1"}, testLinks); res.code != codes.Created {
		t.Fatalf("register after the flood: %v", res.code)
	}
}

// TestAdversarialSpoofedClientHellos: ClientHellos from 5,000 forged
// source addresses, and more while devices handshake, take no handshake
// slot and no association: each is answered with a HelloVerifyRequest
// and forgotten. A pion device and an mbedTLS device handshake at their
// first attempt during the flood and register. (Before, every hello took
// one of --dtls-max-handshakes until --dtls-handshake-timeout, and a
// device's handshake was refused until then.)
func TestAdversarialSpoofedClientHellos(t *testing.T) {
	testbound.Bound(t, time.Minute)
	const n, batch, maxHandshakes = 5000, 200, 32
	refused := refusal.New(nil, time.Hour)
	s, _ := startSecureServer(t, Config{DTLS: psk.Limits{MaxHandshakes: maxHandshakes, HandshakeTimeout: 10 * time.Second}, Refused: refused})
	l := s.secure
	// Each batch from distinct addresses is read before the next is
	// sent, so that the socket's buffer drops none of the devices'.
	flood := func(from int) error {
		start := l.HelloVerifyRequests()
		for i := from; i < from+batch; i++ {
			c, err := net.ListenUDP("udp4", rawcoap.FloodAddr(i%n))
			if err != nil {
				return fmt.Errorf("bind %v: %w", rawcoap.FloodAddr(i%n), err)
			}
			_, err = c.WriteTo(dtlsprobe.ForgedHello(i), s.SecureAddr())
			_ = c.Close()
			if err != nil {
				return err
			}
		}
		for deadline := time.Now().Add(2 * time.Second); l.HelloVerifyRequests() < start+batch; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				return fmt.Errorf("%d of %d hellos answered", l.HelloVerifyRequests()-start, batch)
			}
		}
		return nil
	}
	heldMost := func(most *int) { *most = max(*most, l.Associations(), l.Handshakes()) }

	var before int
	for i := 0; i < n; i += batch {
		if err := flood(i); err != nil {
			t.Fatal(err)
		}
		heldMost(&before)
	}
	t.Logf("%d forged ClientHellos: %d HelloVerifyRequests; associations or handshakes held at most %d, now %d associations, %d handshakes",
		n, l.HelloVerifyRequests(), before, l.Associations(), l.Handshakes())
	if before != 0 {
		t.Fatalf("forged ClientHellos held %d associations or handshakes, want none", before)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var during int
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := n; ctx.Err() == nil; i += batch {
			if err := flood(i); err != nil {
				t.Errorf("flood: %v", err)
				return
			}
			heldMost(&during)
		}
	})
	defer func() { cancel(); wg.Wait() }()

	t.Run("pion", func(t *testing.T) {
		start := time.Now()
		d, _, err := newSecureDevice(t, s.SecureAddr(), "id-1", testKeys["id-1"], piondtls.TLS_PSK_WITH_AES_128_CCM_8, false)
		if err != nil {
			t.Fatalf("handshake during the flood: %v", err)
		}
		shaken := time.Since(start)
		if res, _ := d.register([]string{"ep=beside-forged-hellos", "lwm2m=1.1"}, testLinks); res.code != codes.Created {
			t.Fatalf("register during the flood: %v", res.code)
		}
		t.Logf("during the flood: handshake %v, with Register %v", shaken.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	})
	t.Run("mbedTLS", func(t *testing.T) {
		bin := mbedtlsclient.Build(t)
		start := time.Now()
		out, err := mbedtlsclient.Run(t, bin, "127.0.0.1", fmt.Sprint(s.SecureAddr().(*net.UDPAddr).Port), "id-2", string(testKeys["id-2"]),
			"rd", "ep=mbedtls-beside-forged-hellos", "lt=60", "lwm2m=1.1")
		if err != nil || !strings.Contains(out, "code=2.01") {
			t.Fatalf("register during the flood: %v\n%s", err, out)
		}
		t.Logf("during the flood: handshake and Register %v", time.Since(start).Round(time.Millisecond))
	})
	cancel()
	wg.Wait()
	t.Logf("%d HelloVerifyRequests in all; associations or handshakes held at most %d during the devices' handshakes, now %d associations",
		l.HelloVerifyRequests(), during, l.Associations())
	if during > 2 {
		t.Errorf("associations or handshakes held at most %d during the flood, want the devices' 2 at most", during)
	}
}
