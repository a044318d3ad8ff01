// Package dtlsprobe runs a DTLS-PSK client handshake through a relay
// that records what the server sent, for tests that compare how a server
// answers different credentials: the records on the wire, the client's
// error and how long it took; and makes the ClientHellos of floods from
// forged addresses.
package dtlsprobe

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
)

// Outcome is what a client saw of one handshake.
type Outcome struct {
	// Records are the kinds of the records the server sent, each once, in
	// the order they first came: "handshake/0/server_hello",
	// "change_cipher_spec/0", "alert/0", "handshake/1" (encrypted)...
	// Retransmissions of a flight add nothing, so that the number of
	// retries a slow machine needs does not make two outcomes differ.
	Records []string
	// Err is the client's handshake error, nil when it succeeded.
	Err error
	// Took is the time from the client's first datagram to its result.
	Took time.Duration
}

// Alerted tells whether the server sent an alert.
func (o Outcome) Alerted() bool {
	return slices.ContainsFunc(o.Records, func(r string) bool { return len(r) >= 5 && r[:5] == "alert" })
}

// Handshake runs a client handshake with identity and key against server
// (UDP), ending it after timeout, through a relay on loopback.
func Handshake(t testing.TB, server net.Addr, identity string, key []byte, timeout time.Duration) Outcome {
	t.Helper()
	front, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	back, err := net.DialUDP("udp", nil, server.(*net.UDPAddr))
	if err != nil {
		_ = front.Close()
		t.Fatal(err)
	}
	client, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var records []string
	var wg sync.WaitGroup
	wg.Go(func() { // client to server
		buf := make([]byte, 2048)
		for {
			n, _, err := front.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = back.Write(buf[:n])
		}
	})
	wg.Go(func() { // server to client, recorded
		buf := make([]byte, 2048)
		for {
			n, err := back.Read(buf)
			if err != nil {
				return
			}
			mu.Lock()
			for _, r := range kinds(buf[:n]) {
				if !slices.Contains(records, r) {
					records = append(records, r)
				}
			}
			mu.Unlock()
			_, _ = front.WriteTo(buf[:n], client.LocalAddr())
		}
	})
	defer func() {
		_ = front.Close()
		_ = back.Close()
		wg.Wait()
	}()

	conn, err := dtls.ClientWithOptions(client, front.LocalAddr(),
		dtls.WithPSK(func([]byte) ([]byte, error) { return key, nil }),
		dtls.WithPSKIdentityHint([]byte(identity)),
		dtls.WithCipherSuites(dtls.TLS_PSK_WITH_AES_128_CCM_8),
	)
	if err != nil {
		_ = client.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	err = conn.HandshakeContext(ctx)
	took := time.Since(start)
	_ = conn.Close()
	_ = client.Close()
	mu.Lock()
	defer mu.Unlock()
	return Outcome{Records: slices.Clone(records), Err: err, Took: took}
}

// kinds describes the DTLS records of one datagram.
func kinds(b []byte) []string {
	var out []string
	for len(b) >= 13 {
		typ, epoch, n := b[0], int(b[3])<<8|int(b[4]), int(b[11])<<8|int(b[12])
		body := b[13:]
		if n > len(body) {
			return append(out, "truncated")
		}
		k := fmt.Sprintf("%s/%d", contentType(typ), epoch)
		if typ == 22 && epoch == 0 && n > 0 {
			k += "/" + handshakeType(body[0])
		}
		out = append(out, k)
		b = body[n:]
	}
	return out
}

func contentType(t byte) string {
	switch t {
	case 20:
		return "change_cipher_spec"
	case 21:
		return "alert"
	case 22:
		return "handshake"
	case 23:
		return "application_data"
	case 25:
		return "tls12_cid"
	}
	return fmt.Sprintf("type_%d", t)
}

func handshakeType(t byte) string {
	switch t {
	case 2:
		return "server_hello"
	case 3:
		return "hello_verify_request"
	case 12:
		return "server_key_exchange"
	case 14:
		return "server_hello_done"
	case 20:
		return "finished"
	}
	return fmt.Sprintf("handshake_%d", t)
}

// ForgedHello is the i-th ClientHello of a flood from forged addresses:
// the smallest a server reads (no session id, no cookie,
// PSK_WITH_AES_128_CCM_8, null compression), with a random of its own.
func ForgedHello(i int) []byte {
	hello := []byte{22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 54, // record, epoch 0, length 54
		1, 0, 0, 42, 0, 0, 0, 0, 0, 0, 0, 42, // ClientHello, 42 bytes, message_seq 0, one fragment
		0xfe, 0xfd} // client_version
	random := make([]byte, 32)
	binary.BigEndian.PutUint64(random, uint64(i))
	hello = append(hello, random...)
	return append(hello, 0, 0, 0, 2, 0xc0, 0xa8, 1, 0)
}
