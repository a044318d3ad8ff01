package psk

import (
	"context"
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
)

// A pion server that skips its own HelloVerifyRequest takes the first
// ClientHello at the message_seq it carries and answers with the same one:
// 1 after a HelloVerifyRequest sent without state (what clients expect,
// as from an mbedTLS server), 0 for a first ClientHello. The published
// pion/dtls answers only 0, with a ServerHello of message_seq 0 that
// clients drop as a repeat of the HelloVerifyRequest (third_party/README.md).
func TestPionSkipVerifyContinuesHelloSequence(t *testing.T) {
	for _, msgSeq := range []uint16{1, 0} {
		pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		c, err := net.DialUDP("udp", nil, pc.LocalAddr().(*net.UDPAddr))
		if err != nil {
			t.Fatal(err)
		}
		srv, err := dtls.ServerWithOptions(pc, c.LocalAddr(),
			dtls.WithPSK(func([]byte) ([]byte, error) { return []byte("key-1"), nil }),
			dtls.WithPSKIdentityHint([]byte("lwm2m-agent")),
			dtls.WithCipherSuites(CipherSuites...), dtls.WithInsecureSkipVerifyHello(true))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = srv.HandshakeContext(ctx) }()

		if _, err := c.Write(mbedHello{}.record(uint64(msgSeq), msgSeq, []byte("a cookie"))); err != nil {
			t.Fatal(err)
		}
		// ServerHello, ServerKeyExchange (the hint), ServerHelloDone, in
		// one datagram or several
		var got []uint16
		buf := make([]byte, 2048)
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		for len(got) < 3 {
			n, err := c.Read(buf)
			if err != nil {
				t.Fatalf("ClientHello of message_seq %d: %d handshake messages answered (%v): %v", msgSeq, len(got), got, err)
			}
			for p := buf[:n]; len(p) >= 13+12; {
				l := 13 + int(binary.BigEndian.Uint16(p[11:13]))
				if p[0] == 22 && l <= len(p) {
					got = append(got, binary.BigEndian.Uint16(p[13+4:13+6]))
				}
				p = p[min(l, len(p)):]
			}
		}
		if want := []uint16{msgSeq, msgSeq + 1, msgSeq + 2}; got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
			t.Errorf("ClientHello of message_seq %d: answered with message_seq %v, want %v", msgSeq, got, want)
		}
		cancel()
		_ = srv.Close()
		<-done
		_ = c.Close()
	}
}
