package psk

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/refusal"
	"github.com/pion/dtls/v3"
	coapNet "github.com/plgd-dev/go-coap/v3/net"
)

// mbedHello is a ClientHello as an mbedTLS 2.28 DTLS client sends it: the
// record at version DTLS 1.0 (0xfeff), the hello at DTLS 1.2, forty cipher
// suites with the PSK ones and CCM_8 among them, and the library's
// extensions, with server_name holding the server's IP literal.
type mbedHello struct {
	cid []byte // the connection_id extension (type, then body), nil: none
}

// CID extensions as clients send them: RFC 9146's type 54, and the draft's
// type 254 of mbedTLS 2.28 (MBEDTLS_TLS_EXT_CID), which pion does not know.
var (
	cidRFCEmpty = ext(54, []byte{0})
	cidRFC      = ext(54, []byte{4, 0xc1, 0xd0, 0x00, 0x01})
	cidDraft    = ext(254, []byte{4, 0xc1, 0xd0, 0x00, 0x01})
)

func ext(typ uint16, body []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, typ)
	b = binary.BigEndian.AppendUint16(b, uint16(len(body)))
	return append(b, body...)
}

func u16s(vs ...uint16) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.BigEndian.AppendUint16(b, v)
	}
	return b
}

// record returns the ClientHello in one record with the given record and
// handshake message sequence numbers and cookie.
func (h mbedHello) record(seq uint64, msgSeq uint16, cookie []byte) []byte {
	suites := u16s(
		0xc02c, 0xc030, 0x009f, 0xc0ad, 0xc09f, 0xc024, 0xc028, 0x006b, 0xc00a, 0xc014,
		0x0039, 0xc0af, 0xc0a3, 0xc02b, 0xc02f, 0x009e, 0xc0ac, 0xc09e, 0xc023, 0xc027,
		0x0067, 0xc009, 0xc013, 0x0033, 0xc0ae, 0xc0a2, 0x00a9, 0xc0a5, 0x00af, 0x008d,
		0xc0a9, 0x00a8, 0xc0a4, 0x00ae, 0x008c, 0xc0a8, // the PSK suites: CCM_8 is 0xc0a8
		0xc0a1, 0x003d, 0x0035, 0x00ff, // the last: EMPTY_RENEGOTIATION_INFO_SCSV
	)
	name := []byte("127.0.0.1")
	sni := append([]byte{0}, u16s(uint16(len(name)))...) // host_name
	sni = append(sni, name...)
	var exts []byte
	for _, e := range [][]byte{
		ext(0, append(u16s(uint16(len(sni))), sni...)),
		ext(13, u16s(12, 0x0603, 0x0601, 0x0503, 0x0501, 0x0403, 0x0401)),
		ext(10, u16s(8, 0x0017, 0x0018, 0x0019, 0x001d)),
		ext(11, []byte{1, 0}),
		ext(22, nil), // encrypt_then_mac
		ext(23, nil), // extended_master_secret
		ext(35, nil), // session_ticket
		h.cid,
	} {
		exts = append(exts, e...)
	}
	body := []byte{0xfe, 0xfd}
	body = append(body, bytes.Repeat([]byte{0x5a}, 32)...) // random
	body = append(body, 0)                                 // session ID
	body = append(body, byte(len(cookie)))
	body = append(body, cookie...)
	body = append(body, u16s(uint16(len(suites)))...)
	body = append(body, suites...)
	body = append(body, 1, 0) // compression: null
	body = append(body, u16s(uint16(len(exts)))...)
	body = append(body, exts...)

	n := len(body)
	hs := []byte{1, byte(n >> 16), byte(n >> 8), byte(n), byte(msgSeq >> 8), byte(msgSeq), 0, 0, 0, byte(n >> 16), byte(n >> 8), byte(n)}
	rec := []byte{22, 0xfe, 0xff, 0, 0} // handshake, DTLS 1.0, epoch 0
	rec = append(rec, byte(seq>>40), byte(seq>>32), byte(seq>>24), byte(seq>>16), byte(seq>>8), byte(seq))
	rec = append(rec, u16s(uint16(len(hs)+n))...)
	return append(append(rec, hs...), body...)
}

// answer waits for the server's answer to a ClientHello and returns its
// first handshake message type and, for a HelloVerifyRequest, the cookie.
func answer(t *testing.T, c *net.UDPConn) (typ byte, cookie []byte) {
	t.Helper()
	buf := make([]byte, 2048)
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	for {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("no answer to the ClientHello: %v", err)
		}
		b := buf[:n]
		if b[0] == 21 {
			t.Fatalf("alert % x", b)
		}
		if n < 13+12 || b[0] != 22 {
			continue
		}
		typ = b[13]
		if typ == 3 && n >= 13+12+3 { // HelloVerifyRequest: version, cookie
			l := int(b[13+12+2])
			cookie = append([]byte(nil), b[13+12+3:13+12+3+l]...)
		}
		return typ, cookie
	}
}

// serve accepts sessions of l and runs their handshakes, as go-coap's
// server does; handshaked sessions come out of the channel.
func serve(t *testing.T, l *Listener) <-chan net.Conn {
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := l.AcceptWithContext(ctx)
			if err != nil {
				if ctx.Err() != nil || errors.Is(err, coapNet.ErrListenerIsClosed) {
					return
				}
				continue
			}
			go func() {
				if err := c.(*session).HandshakeContext(ctx); err != nil {
					_ = c.Close()
					return
				}
				out <- c
			}()
		}
	}()
	t.Cleanup(func() { cancel(); _ = l.Close() })
	return out
}

func listen(t *testing.T) (*Listener, <-chan net.Conn) {
	t.Helper()
	return listenRefusing(t, nil)
}

// listenRefusing is listen counting refusals in refused.
func listenRefusing(t *testing.T, refused *refusal.Log) (*Listener, <-chan net.Conn) {
	t.Helper()
	keys := func(_ context.Context, id string) ([]byte, error) {
		if id == "dev-1" {
			return []byte("key-1"), nil
		}
		return nil, ErrUnknownIdentity
	}
	l, err := Listen("127.0.0.1:0", keys, Limits{HandshakeTimeout: 5 * time.Second}, nil, nil, refused)
	if err != nil {
		t.Fatal(err)
	}
	return l, serve(t, l)
}

// handshakeClient handshakes a pion client over pc and returns it with the
// server's side of the session.
func handshakeClient(t *testing.T, l *Listener, accepted <-chan net.Conn, pc net.PacketConn) (*dtls.Conn, net.Conn) {
	t.Helper()
	return handshakeClientTo(t, l.Addr(), accepted, pc)
}

// handshakeClientTo is handshakeClient through server, an address that
// leads to the listener.
func handshakeClientTo(t *testing.T, server net.Addr, accepted <-chan net.Conn, pc net.PacketConn) (*dtls.Conn, net.Conn) {
	t.Helper()
	client, err := dtls.ClientWithOptions(pc, server,
		dtls.WithPSK(func([]byte) ([]byte, error) { return []byte("key-1"), nil }),
		dtls.WithPSKIdentityHint([]byte("dev-1")),
		dtls.WithCipherSuites(dtls.TLS_PSK_WITH_AES_128_CCM_8))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := client.HandshakeContext(ctx); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	select {
	case c := <-accepted:
		return client, c
	case <-ctx.Done():
		t.Fatal("server side of the handshake did not finish")
		return nil, nil
	}
}

// The mbedTLS client's ClientHello, with and without a Connection ID, gets
// a HelloVerifyRequest, from a new address and from the address and port
// of a session that finished its handshake (the device restarted on the
// same port without ending its session). After the cookie comes back the
// handshake goes on (ServerHello) and the old session ends.
func TestMbedTLSClientHelloAnswered(t *testing.T) {
	for _, tc := range []struct {
		name string
		cid  []byte
	}{
		{"no cid", nil},
		{"cid rfc9146 empty", cidRFCEmpty},
		{"cid rfc9146", cidRFC},
		{"cid draft 254", cidDraft},
	} {
		h := mbedHello{cid: tc.cid}
		for _, restart := range []bool{false, true} {
			name := tc.name + "/new address"
			if restart {
				name = tc.name + "/address of a finished session"
			}
			t.Run(name, func(t *testing.T) {
				l, accepted := listen(t)
				var old net.Conn
				local := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}
				if restart {
					pc, err := net.ListenUDP("udp", local)
					if err != nil {
						t.Fatal(err)
					}
					_, old = handshakeClient(t, l, accepted, pc)
					local = pc.LocalAddr().(*net.UDPAddr)
					_ = pc.Close() // the device reboots: no close_notify
				}
				c, err := net.DialUDP("udp", local, l.Addr().(*net.UDPAddr))
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				if _, err := c.Write(h.record(0, 0, nil)); err != nil {
					t.Fatal(err)
				}
				typ, cookie := answer(t, c)
				if typ != 3 || len(cookie) == 0 {
					t.Fatalf("answer type %d cookie %x, want a HelloVerifyRequest (3) with a cookie", typ, cookie)
				}
				if _, err := c.Write(h.record(1, 1, cookie)); err != nil {
					t.Fatal(err)
				}
				if typ, _ := answer(t, c); typ != 2 {
					t.Fatalf("answer to the ClientHello with cookie: type %d, want a ServerHello (2)", typ)
				}
				if old != nil {
					_ = old.SetReadDeadline(time.Now().Add(3 * time.Second))
					if _, err := old.Read(make([]byte, 64)); err == nil || isTimeout(err) {
						t.Fatalf("old session still open after the new handshake's cookie came back: %v", err)
					}
				}
			})
		}
	}
}

// roundTrip checks that the session of client and srv still carries data.
func roundTrip(t *testing.T, client, srv net.Conn, when string) {
	t.Helper()
	if _, err := client.Write([]byte(when)); err != nil {
		t.Fatalf("session %s: write: %v", when, err)
	}
	buf := make([]byte, 64)
	_ = srv.SetReadDeadline(time.Now().Add(3 * time.Second))
	if n, err := srv.Read(buf); err != nil || string(buf[:n]) != when {
		t.Fatalf("session %s: read %q, %v", when, buf[:n], err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// A ClientHello that does not return the cookie, as one forged with a
// device's address would, leaves the device's session as it was.
func TestClientHelloWithoutCookieKeepsSession(t *testing.T) {
	l, accepted := listen(t)
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	client, srv := handshakeClient(t, l, accepted, pc)
	// Through the client's own socket: pion's client reads and ignores the
	// HelloVerifyRequest.
	for seq := range uint64(3) {
		if _, err := pc.WriteTo(mbedHello{}.record(seq, 0, nil), l.Addr()); err != nil {
			t.Fatal(err)
		}
	}
	roundTrip(t, client, srv, "after forged ClientHellos")
	if got := l.Sessions(); got != 1 {
		t.Fatalf("sessions %d, want 1", got)
	}
}

// Closing the listener stops new handshakes but leaves established
// sessions working over the shared socket, which closes with the last of
// them.
func TestListenerCloseKeepsSessions(t *testing.T) {
	l, accepted := listen(t)
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	client, srv := handshakeClient(t, l, accepted, pc)
	addr := l.Addr().(*net.UDPAddr)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	late, err := net.DialUDP("udp", nil, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	if _, err := late.Write(mbedHello{}.record(0, 0, nil)); err != nil {
		t.Fatal(err)
	}
	roundTrip(t, client, srv, "after the listener closed")
	// the new client got nothing: its handshake was not taken
	buf := make([]byte, 64)
	_ = late.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, err := late.Read(buf); err == nil {
		t.Fatalf("a ClientHello after close was answered: % x", buf[:n])
	}

	_ = srv.Close()
	again, err := net.ListenUDP("udp", addr)
	if err != nil {
		t.Fatalf("port still bound after the last session closed: %v", err)
	}
	_ = again.Close()
}
