package psk

import (
	"bytes"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
)

// goroutinesIn counts the goroutines with fn in their stack.
func goroutinesIn(fn string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for g := range bytes.SplitSeq(buf, []byte("\n\n")) {
		if strings.Contains(string(g), fn) {
			count++
		}
	}
	return count
}

// A session's record reader waits in the router's own context-aware
// read: pion does not wrap the router's connections in netctx's adapter,
// which starts a goroutine for every read and every write and keeps one
// for each session waiting for its next record.
func TestSessionReadsWithoutContextWatcher(t *testing.T) {
	l, accepted := listen(t)
	const sessions = 3
	for range sessions {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = pc.Close() })
		client, srv := handshakeClient(t, l, accepted, pc)
		roundTrip(t, client, srv, "after the handshake")
	}
	// Each session's reader blocks in peerConn.ReadFromContext once it
	// has read the records above; wait for all of them.
	deadline := time.Now().Add(5 * time.Second)
	for goroutinesIn("psk.(*peerConn).ReadFromContext") < sessions {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d sessions read through the router's ReadFromContext", goroutinesIn("psk.(*peerConn).ReadFromContext"), sessions)
		}
		runtime.Gosched()
	}
	// The clients' own sockets are net.UDPConns, wrapped by netctx: one
	// watcher each, none for the server's sessions.
	if n := goroutinesIn("netctx.(*packetConn).ReadFromContext.func1"); n > sessions {
		t.Fatalf("%d netctx read watchers for %d client sessions: the server's sessions have one too", n, sessions)
	}
}
