package bootstrap

import (
	"net"
	"testing"
	"time"
)

// TestResetNotAnswered: an RST, empty or malformed, gets no answer, and
// one carrying a Bootstrap-Request is no request.
func TestResetNotAnswered(t *testing.T) {
	ts := startServer(t, nil)
	request := []byte{0x71, 0x02, 0x12, 0x34, 0xaa, // RST POST, token aa
		0xb2, 'b', 's', // Uri-Path bs
		0x4b, 'e', 'p', '=', 'r', 's', 't', '-', 'd', 'e', 'v', '1', // Uri-Query ep=rst-dev1
	}
	tests := []struct {
		name     string
		datagram []byte
	}{
		{"empty", []byte{0x70, 0x00, 0x12, 0x34}},
		{"with token", []byte{0x71, 0x00, 0x12, 0x34, 0xaa}},
		{"with payload", []byte{0x70, 0x00, 0x12, 0x34, 0xff, 'x'}},
		{"with response code", []byte{0x71, 0x45, 0x12, 0x34, 0xaa}},
		{"with bootstrap request", request},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assertResetNotAnswered(t, ts.srv.Addr(), tt.datagram)
		})
	}
	if st := ts.srv.Stats(); st.Requests != 0 || st.Sessions != 0 {
		t.Fatalf("an RST was taken for a request: %+v", st)
	}
}

// assertResetNotAnswered sends rst from a fresh socket, then a CON GET of
// a path nobody serves, and asserts that the first datagram back is that
// GET's 4.04. The GET makes the check exact: go-coap handles a peer's
// requests and RSTs one after another in the order they arrive (an RST
// that is dropped, before either), so an answer to the RST would be
// written before the 4.04. A CON ping would not do: go-coap answers it
// on the reading goroutine, ahead of what waits in the peer's queue.
func assertResetNotAnswered(t *testing.T, server net.Addr, rst []byte) {
	t.Helper()
	conn, err := net.DialUDP("udp", nil, server.(*net.UDPAddr))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	probe := []byte{0x40, 0x01, 0x56, 0x78, 0xb7, 'n', 'o', 't', 'h', 'i', 'n', 'g'} // CON GET /nothing
	for _, d := range [][]byte{rst, probe} {
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
		t.Fatalf("no answer to the GET: %v", err)
	}
	// ACK (type 2) without token, 4.04, the GET's message ID.
	if n < 4 || buf[0] != 0x60 || buf[1] != 0x84 || buf[2] != 0x56 || buf[3] != 0x78 {
		t.Fatalf("first datagram % x, want the GET's 4.04 ACK (60 84 56 78 ...)", buf[:n])
	}
}
