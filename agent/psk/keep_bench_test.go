package psk

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store/storetest"
	"github.com/pion/dtls/v3"
)

func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// parkSynthetic parks a made-up session of identity as park does: the
// same entry, in the same maps and list.
func (k *keeper) parkSynthetic(identity string, i int) {
	var s savedState
	s.suite, s.identity, s.master = uint16(dtls.TLS_PSK_WITH_AES_128_CCM_8), identity, make([]byte, 48)
	s.localCID, s.peerCID = make([]byte, CIDSize), make([]byte, 4)
	_, _ = rand.Read(s.localCID)
	raddr := &net.UDPAddr{IP: net.IPv4(10, byte(i>>16), byte(i>>8), byte(i)), Port: 5684}
	p := &parked{identity: identity, tenant: "t123", id: newSessionID(), key: raddr.String(), raddr: raddr, state: s.marshal(),
		localCID: string(s.localCID), bound: 4096, peerSeq: 12, stored: true}
	d := k.l.demux
	d.mu.Lock()
	k.byID[p.identity], k.byAddr[p.key], k.byCID[p.localCID] = p, p, p
	p.elem = k.lru.PushFront(p)
	d.mu.Unlock()
}

// BenchmarkParkedSessionMemory holds 100,000 parked sessions (states as
// a handshake leaves them, with Connection IDs) and reports the live
// heap each takes.
func BenchmarkParkedSessionMemory(b *testing.B) {
	const n = 100000
	for range b.N {
		l, err := Listen("127.0.0.1:0", testKeys, Limits{}, nil, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := l.KeepSessions(SessionConfig{ParkAfter: time.Hour}); err != nil {
			b.Fatal(err)
		}
		k := l.keep.Load()
		ids := make([]string, n)
		for i := range ids {
			ids[i] = fmt.Sprintf("urn:imei:35%013d", i)
		}
		before := liveHeap()
		for i, id := range ids {
			k.parkSynthetic(id, i)
		}
		after := liveHeap()
		if got := l.SessionStats().Parked; got != n {
			b.Fatalf("%d parked, want %d", got, n)
		}
		b.ReportMetric(float64(after-before)/n, "B/parked")
		b.ReportMetric(float64(after-before)/(1<<20), "MiB/100k")
		_ = l.Close()
	}
}

// BenchmarkActiveSessionMemory opens sessions from pion clients in this
// process, then parks them: what parking frees, plus what a parked one
// keeps, is what an active session takes on the agent's side (the
// clients' share is the same in both measures).
func BenchmarkActiveSessionMemory(b *testing.B) {
	const n = 200
	for range b.N {
		st := storetest.OpenEmbedded(b)
		l, err := Listen("127.0.0.1:0", testKeys, Limits{}, nil, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := l.KeepSessions(SessionConfig{Store: st, Key: testStateKey, ParkAfter: time.Hour,
			TenantOf: func(context.Context, string) (string, error) { return "acme", nil }}); err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				c, err := l.AcceptWithContext(ctx)
				if err != nil {
					return
				}
				go func() {
					if c.(*session).HandshakeContext(ctx) != nil {
						return
					}
					buf := make([]byte, 1500)
					for {
						if _, err := c.Read(buf); err != nil {
							return
						}
					}
				}()
			}
		}()
		var clients []*dtls.Conn
		for range n {
			pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				b.Fatal(err)
			}
			c, err := dtls.ClientWithOptions(pc, l.Addr(),
				dtls.WithPSK(func([]byte) ([]byte, error) { return []byte("key-1"), nil }),
				dtls.WithPSKIdentityHint([]byte("dev-1")), dtls.WithCipherSuites(dtls.TLS_PSK_WITH_AES_128_CCM_8),
				dtls.WithConnectionIDGenerator(dtls.OnlySendCIDGenerator()))
			if err != nil {
				b.Fatal(err)
			}
			if err := c.HandshakeContext(ctx); err != nil {
				b.Fatal(err)
			}
			clients = append(clients, c)
		}
		for l.Sessions() < n {
			time.Sleep(time.Millisecond)
		}
		active := liveHeap()
		l.Park()
		for l.Sessions() > 0 {
			time.Sleep(time.Millisecond)
		}
		parkedHeap := liveHeap()
		// one identity: the parked map holds one session, not n
		b.ReportMetric(float64(active-parkedHeap)/n, "B/active-freed")
		cancel()
		l.kill()
		<-done
		for _, c := range clients {
			_ = c.Close()
		}
	}
}
