// Package rawcoap sends hand-made CoAP datagrams for tests that must
// check what a server does with messages a library client would never
// send, such as malformed Resets.
package rawcoap

import (
	"net"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// Datagram is a named raw CoAP message.
type Datagram struct {
	Name  string
	Bytes []byte
}

// Resets are RST messages, one empty and the others malformed (RFC 7252
// section 4.2 makes an RST with a code, token, option or payload a
// format error), the last carrying a POST to path with query and a link
// payload, as a request smuggled in an RST.
func Resets(path, query string) []Datagram {
	post := []byte{0x71, 0x02, 0x12, 0x34, 0xaa} // RST POST, token aa
	post = append(post, option(11, path)...)     // Uri-Path
	post = append(post, option(15-11, query)...) // Uri-Query
	post = append(post, 0xff, '<', '/', '3', '/', '0', '>')
	return []Datagram{
		{"empty", []byte{0x70, 0x00, 0x12, 0x34}},
		{"with token", []byte{0x71, 0x00, 0x12, 0x34, 0xaa}},
		{"with payload", []byte{0x70, 0x00, 0x12, 0x34, 0xff, 'x'}},
		{"with response code", []byte{0x71, 0x45, 0x12, 0x34, 0xaa}},
		{"with a request", post},
	}
}

// option encodes one option of at most 12 bytes after an option of
// number delta less.
func option(delta int, value string) []byte {
	return append([]byte{byte(delta<<4 | len(value))}, value...)
}

// AssertNotAnswered sends, from a fresh socket, a CON POST to path with
// no query, which the LwM2M and bootstrap servers answer 4.00 (no
// endpoint name) and which gives the socket's address state with them,
// then d, then the POST again; it fails t unless the first datagram back
// after the first answer is the second POST's 4.00. The order makes the
// check exact: go-coap handles a peer's requests and RSTs one after
// another in the order they arrive (an RST that is dropped, before
// either), so an answer to d would be written before the second 4.00. A
// CON ping would not do: go-coap answers it on the reading goroutine,
// ahead of what waits in the peer's queue.
func AssertNotAnswered(t testing.TB, server net.Addr, path string, d []byte) {
	t.Helper()
	conn := dial(t, server)
	defer conn.Close()
	send(t, conn, probe(path, 0x78))
	expectProbe(t, conn, path, 0x78)
	send(t, conn, d)
	send(t, conn, probe(path, 0x79))
	expectProbe(t, conn, path, 0x79)
}

// AssertDropped is AssertNotAnswered for d from an address without state
// with the server: d, then the POST, whose 4.00 must come first.
func AssertDropped(t testing.TB, server net.Addr, path string, d []byte) {
	t.Helper()
	conn := dial(t, server)
	defer conn.Close()
	send(t, conn, d)
	send(t, conn, probe(path, 0x79))
	expectProbe(t, conn, path, 0x79)
}

func dial(t testing.TB, server net.Addr) *net.UDPConn {
	t.Helper()
	conn, err := net.DialUDP("udp", nil, server.(*net.UDPAddr))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	return conn
}

func send(t testing.TB, conn *net.UDPConn, b []byte) {
	t.Helper()
	if _, err := conn.Write(b); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// probe is a CON POST to path with message ID 0x56, mid.
func probe(path string, mid byte) []byte {
	return append([]byte{0x40, 0x02, 0x56, mid}, option(11, path)...)
}

// expectProbe fails t unless the next datagram is the 4.00 ACK of
// probe(path, mid), without token.
func expectProbe(t testing.TB, conn *net.UDPConn, path string, mid byte) {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no answer to POST /%s: %v", path, err)
	}
	if n < 4 || buf[0] != 0x60 || buf[1] != 0x80 || buf[2] != 0x56 || buf[3] != mid {
		t.Fatalf("datagram % x, want the 4.00 ACK of POST /%s (60 80 56 %02x ...)", buf[:n], path, mid)
	}
}

// Post is a CON POST of path (one segment) with queries and payload,
// message ID mid and token: the same bytes each time, so that the answers
// of a server to requests that differ in one query can be compared byte
// for byte.
func Post(mid uint16, token []byte, path string, queries []string, payload []byte) []byte {
	b := []byte{0x40 | byte(len(token)), 0x02, byte(mid >> 8), byte(mid)}
	b = append(b, token...)
	b = appendOption(b, 11, path)
	for i, q := range queries {
		delta := 0
		if i == 0 {
			delta = 15 - 11 // Uri-Query after Uri-Path
		}
		b = appendOption(b, delta, q)
	}
	if len(payload) > 0 {
		b = append(b, 0xff)
		b = append(b, payload...)
	}
	return b
}

// appendOption encodes one option of up to 268 bytes after an option of
// number delta less (delta at most 12).
func appendOption(b []byte, delta int, value string) []byte {
	if len(value) < 13 {
		return append(append(b, byte(delta<<4|len(value))), value...)
	}
	return append(append(b, byte(delta<<4|13), byte(len(value)-13)), value...)
}

// Exchange sends the datagrams from a fresh socket and returns the first
// datagram that comes back.
func Exchange(t testing.TB, server net.Addr, datagrams ...[]byte) []byte {
	t.Helper()
	conn, err := net.DialUDP("udp", nil, server.(*net.UDPAddr))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	for _, d := range datagrams {
		if _, err := conn.Write(d); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	return buf[:n]
}

// FloodAddr is the i-th of the distinct loopback source addresses a flood
// comes from: any address in 127.0.0.0/8 is the machine's own.
func FloodAddr(i int) *net.UDPAddr {
	return &net.UDPAddr{IP: net.IPv4(127, byte(1+i/62500), byte(i/250%250), byte(1+i%250))}
}

// Flood sends msg(i) from FloodAddr(i) for each i below n, in batches
// that the server reads before the next (received counts what it has
// read; a batch waits for it two seconds at most), so that the kernel's
// socket buffer drops none. It returns how many the server read.
func Flood(t testing.TB, server net.Addr, n int, msg func(int) []byte, received func() uint64) uint64 {
	t.Helper()
	const batch = 200
	start := received()
	for i := 0; i < n; i += batch {
		for j := i; j < min(i+batch, n); j++ {
			c, err := net.ListenUDP("udp4", FloodAddr(j))
			if err != nil {
				t.Fatalf("bind %v: %v", FloodAddr(j), err)
			}
			if _, err := c.WriteTo(msg(j), server); err != nil {
				t.Fatalf("send from %v: %v", FloodAddr(j), err)
			}
			_ = c.Close()
		}
		want := start + uint64(min(i+batch, n))
		deadline := time.Now().Add(2 * time.Second)
		for received() < want && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}
	return received() - start
}

// Memory returns the heap in use after a collection, and the goroutines.
func Memory() (heap uint64, goroutines int) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse, runtime.NumGoroutine()
}

// MB is b in MiB.
func MB(b uint64) float64 { return float64(b) / (1 << 20) }

// Answers sends n requests from senders sockets, sender s on
// FloodAddr(s), each sender waiting for the answer to its request (the
// ACK of its message ID) before the next and ignoring the requests the
// server sends it meanwhile; a sender sends n/senders. msg makes the i-th
// request of sender s with message ID mid. It returns the answers'
// codes counted, and the last answer of each code.
func Answers(t testing.TB, server net.Addr, senders, n int, msg func(s, i int, mid uint16) []byte) (map[codes.Code]int, map[codes.Code][]byte) {
	t.Helper()
	var mu sync.Mutex
	counts, last := map[codes.Code]int{}, map[codes.Code][]byte{}
	var wg sync.WaitGroup
	for s := range senders {
		conn, err := net.DialUDP("udp4", FloodAddr(s), server.(*net.UDPAddr))
		if err != nil {
			t.Fatalf("sender %d: %v", s, err)
		}
		defer conn.Close()
		wg.Go(func() {
			buf := make([]byte, 1500)
			for i := range n / senders {
				mid := uint16(i)
				if _, err := conn.Write(msg(s, i, mid)); err != nil {
					t.Errorf("sender %d: %v", s, err)
					return
				}
				_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
				for {
					k, err := conn.Read(buf)
					if err != nil {
						t.Errorf("sender %d, request %d: no answer: %v", s, i, err)
						return
					}
					if k >= 4 && buf[0]>>4&3 == 2 && uint16(buf[2])<<8|uint16(buf[3]) == mid {
						mu.Lock()
						counts[codes.Code(buf[1])]++
						last[codes.Code(buf[1])] = slices.Clone(buf[:k])
						mu.Unlock()
						break
					}
				}
			}
		})
	}
	wg.Wait()
	return counts, last
}
