package psk

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
)

// A session accepted by the Listener names the identity the client
// authenticated with, counts as one session, and stops counting when
// closed; a plain connection has no identity.
func TestListenerIdentityAndCounts(t *testing.T) {
	keys := func(_ context.Context, id string) ([]byte, error) {
		if id == "dev-1" {
			return []byte("key-1"), nil
		}
		return nil, ErrUnknownIdentity
	}
	l, err := Listen("127.0.0.1:0", keys, Limits{HandshakeTimeout: 2 * time.Second}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.AcceptWithContext(ctx)
		if err == nil {
			err = c.(*session).HandshakeContext(ctx)
		}
		if err != nil {
			t.Error(err)
			close(accepted)
			return
		}
		accepted <- c
	}()
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	client, err := dtls.ClientWithOptions(pc, l.Addr(),
		dtls.WithPSK(func([]byte) ([]byte, error) { return []byte("key-1"), nil }),
		dtls.WithPSKIdentityHint([]byte("dev-1")),
		dtls.WithCipherSuites(dtls.TLS_PSK_WITH_AES_128_CBC_SHA256))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if err := client.HandshakeContext(ctx); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	c := <-accepted
	if c == nil {
		t.FailNow()
	}
	if id, ok := Identity(c); !ok || id != "dev-1" {
		t.Fatalf("identity %q %v, want dev-1", id, ok)
	}
	if n := l.Sessions(); n != 1 {
		t.Fatalf("sessions %d, want 1", n)
	}
	_ = c.Close()
	_ = c.Close() // a second close does not count twice
	if n := l.Sessions(); n != 0 {
		t.Fatalf("sessions after close %d, want 0", n)
	}
	if _, ok := Identity(pc); ok {
		t.Fatal("a plain UDP socket has an identity")
	}
}
