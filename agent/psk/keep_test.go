package psk

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/storetest"
	"github.com/pion/dtls/v3"
)

var testStateKey = []byte("0123456789abcdef0123456789abcdef")

func testKeys(_ context.Context, id string) ([]byte, error) {
	if id == "dev-1" {
		return []byte("key-1"), nil
	}
	return nil, ErrUnknownIdentity
}

// keptListener listens on addr with sessions kept in st and parked after
// parkAfter, and echoes what every session reads, until the test ends.
func keptListener(t *testing.T, addr string, st store.DTLSSessions, parkAfter time.Duration) *Listener {
	t.Helper()
	l, err := Listen(addr, testKeys, Limits{HandshakeTimeout: 5 * time.Second}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = l.KeepSessions(SessionConfig{Store: st, Key: testStateKey, ParkAfter: parkAfter,
		TenantOf: func(context.Context, string) (string, error) { return "acme", nil }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := l.AcceptWithContext(ctx)
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				if err := c.(*session).HandshakeContext(ctx); err != nil {
					return
				}
				buf := make([]byte, 1500)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					if _, err := c.Write(buf[:n]); err != nil {
						return
					}
				}
			})
		}
	})
	t.Cleanup(func() {
		cancel()
		l.kill()
		wg.Wait()
	})
	return l
}

// kill ends the listener as a killed process would: nothing more leaves
// its socket, not even a close_notify.
func (l *Listener) kill() {
	d := l.demux
	d.mu.Lock()
	var conns []*peerConn
	for _, c := range d.byAddr {
		conns = append(conns, c)
	}
	for _, c := range d.byCID {
		conns = append(conns, c)
	}
	d.mu.Unlock()
	for _, c := range conns {
		c.muted.Store(true)
	}
	l.mu.Lock()
	var open []*session
	for _, set := range l.byIdentity {
		for s := range set {
			open = append(open, s)
		}
	}
	l.mu.Unlock()
	_ = l.Close()
	for _, s := range open {
		_ = s.Close()
	}
	for _, c := range conns {
		_ = c.Close()
	}
}

// movingConn is a client's socket that can move to another local
// address, as behind a NAT that rebinds, and records the (epoch,
// sequence number) of every record of an encrypted epoch it receives.
type movingConn struct {
	cur  atomic.Pointer[net.UDPConn]
	mu   sync.Mutex
	seen map[[2]uint64]int
}

func newMovingConn(t *testing.T) *movingConn {
	m := &movingConn{seen: map[[2]uint64]int{}}
	m.move(t)
	return m
}

func (m *movingConn) move(t *testing.T) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	if old := m.cur.Swap(c); old != nil {
		_ = old.Close()
	}
}

func (m *movingConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		c := m.cur.Load()
		n, a, err := c.ReadFrom(p)
		if err != nil && errors.Is(err, net.ErrClosed) && m.cur.Load() != c {
			continue // moved
		}
		if err == nil {
			m.record(p[:n])
		}
		return n, a, err
	}
}

func (m *movingConn) record(p []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(p) < 13 {
		return
	}
	epoch := uint64(binary.BigEndian.Uint16(p[3:5]))
	if epoch == 0 {
		return
	}
	seq := uint64(binary.BigEndian.Uint16(p[5:7]))<<32 | uint64(binary.BigEndian.Uint32(p[7:11]))
	m.seen[[2]uint64{epoch, seq}]++
}

func (m *movingConn) repeats() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, c := range m.seen {
		n += c - 1
	}
	return n
}

func (m *movingConn) WriteTo(p []byte, a net.Addr) (int, error) { return m.cur.Load().WriteTo(p, a) }
func (m *movingConn) Close() error                              { return m.cur.Load().Close() }
func (m *movingConn) LocalAddr() net.Addr                       { return m.cur.Load().LocalAddr() }
func (m *movingConn) SetDeadline(t time.Time) error             { return m.cur.Load().SetDeadline(t) }
func (m *movingConn) SetReadDeadline(t time.Time) error         { return m.cur.Load().SetReadDeadline(t) }
func (m *movingConn) SetWriteDeadline(t time.Time) error        { return m.cur.Load().SetWriteDeadline(t) }

func dialKept(t *testing.T, m *movingConn, to net.Addr, cid bool) *dtls.Conn {
	t.Helper()
	opts := []dtls.ClientOption{
		dtls.WithPSK(func([]byte) ([]byte, error) { return []byte("key-1"), nil }),
		dtls.WithPSKIdentityHint([]byte("dev-1")),
		dtls.WithCipherSuites(dtls.TLS_PSK_WITH_AES_128_CCM_8),
	}
	if cid {
		opts = append(opts, dtls.WithConnectionIDGenerator(dtls.OnlySendCIDGenerator()))
	}
	c, err := dtls.ClientWithOptions(m, to, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.HandshakeContext(ctx); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	return c
}

// echo sends msg and waits for it back.
func echo(t *testing.T, c *dtls.Conn, msg string) {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatalf("write %s: %v", msg, err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1500)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("read %s back: %v", msg, err)
	}
	if string(buf[:n]) != msg {
		t.Fatalf("read %q back, sent %q", buf[:n], msg)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// An idle session is parked (its goroutines end, the client notices
// nothing), the client's next record resumes it without a handshake,
// with a Connection ID from another address too, and after the agent is
// killed the next process resumes it from the store; the client never
// receives a sequence number twice.
func TestParkAndResume(t *testing.T) {
	for _, tc := range []struct {
		name string
		cid  bool
	}{{"address", false}, {"connection-id", true}} {
		t.Run(tc.name, func(t *testing.T) {
			st := storetest.OpenEmbedded(t)
			l := keptListener(t, "127.0.0.1:0", st, 200*time.Millisecond)
			m := newMovingConn(t)
			c := dialKept(t, m, l.Addr(), tc.cid)
			echo(t, c, "one")
			waitFor(t, "the session stored", func() bool {
				_, err := st.DTLSSessionByIdentity(context.Background(), "dev-1")
				return err == nil
			})
			before := runtime.NumGoroutine()
			waitFor(t, "the session parked", func() bool { return l.SessionStats().Parked == 1 })
			// pion's reader and handshake loop, and the server's reader
			waitFor(t, "the session's goroutines to end", func() bool { return runtime.NumGoroutine() <= before-3 })
			if n := l.Sessions(); n != 0 {
				t.Fatalf("%d sessions open while parked", n)
			}
			if tc.cid {
				m.move(t)
			}
			echo(t, c, "two")
			st1 := l.SessionStats()
			if st1.Handshakes != 1 || st1.ResumedMemory != 1 || st1.Parks != 1 {
				t.Fatalf("handshakes %d, resumed from memory %d, parks %d; want 1, 1, 1", st1.Handshakes, st1.ResumedMemory, st1.Parks)
			}

			// the agent is killed mid-traffic, and starts again
			addr := l.Addr().String()
			l.kill()
			l2 := keptListener(t, addr, st, time.Hour)
			echo(t, c, "three")
			echo(t, c, "four")
			if st2 := l2.SessionStats(); st2.Handshakes != 0 || st2.ResumedStore != 1 {
				t.Fatalf("after restart: handshakes %d, resumed from store %d; want 0, 1", st2.Handshakes, st2.ResumedStore)
			}
			if n := m.repeats(); n != 0 {
				t.Fatalf("%d records came with a sequence number already used", n)
			}
		})
	}
}
