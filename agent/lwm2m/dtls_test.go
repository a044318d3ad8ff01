package lwm2m

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/psk"
	piondtls "github.com/pion/dtls/v3"
	"github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// testKeys is the key store of the DTLS tests.
var testKeys = map[string][]byte{
	"id-1": []byte("secret-key-0001"), // printable, for libcoap's -k
	"id-2": []byte("secret-key-0002"),
}

func keyFunc(_ context.Context, identity string) ([]byte, error) {
	if k, ok := testKeys[identity]; ok {
		return k, nil
	}
	return nil, psk.ErrUnknownIdentity
}

func startSecureServer(t *testing.T, cfg Config) (*Server, *recorder) {
	t.Helper()
	cfg.SecureAddr = "127.0.0.1:0"
	cfg.Keys = keyFunc
	return startServer(t, cfg)
}

// movingConn is a client socket that can move to a new local port while
// the DTLS session above it stays, as a device behind a NAT that rebinds.
type movingConn struct {
	mu sync.Mutex
	pc *net.UDPConn
}

func newMovingConn(t testing.TB) *movingConn {
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	return &movingConn{pc: pc}
}

func (m *movingConn) cur() *net.UDPConn {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.pc
}

// move switches to a new local port and closes the old socket.
func (m *movingConn) move(t testing.TB) {
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	m.mu.Lock()
	old := m.pc
	m.pc = pc
	m.mu.Unlock()
	_ = old.Close()
}

func (m *movingConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		pc := m.cur()
		n, a, err := pc.ReadFrom(b)
		if err != nil && pc != m.cur() {
			continue // moved while reading
		}
		return n, a, err
	}
}
func (m *movingConn) WriteTo(b []byte, a net.Addr) (int, error) { return m.cur().WriteTo(b, a) }
func (m *movingConn) Close() error                              { return m.cur().Close() }
func (m *movingConn) LocalAddr() net.Addr                       { return m.cur().LocalAddr() }
func (m *movingConn) SetDeadline(t time.Time) error             { return m.cur().SetDeadline(t) }
func (m *movingConn) SetReadDeadline(t time.Time) error         { return m.cur().SetReadDeadline(t) }
func (m *movingConn) SetWriteDeadline(t time.Time) error        { return m.cur().SetWriteDeadline(t) }

// newSecureDevice is the test device over DTLS with identity and key; it
// offers Connection IDs when cid is set.
func newSecureDevice(t testing.TB, server net.Addr, identity string, key []byte, suite piondtls.CipherSuiteID, cid bool) (*device, *movingConn, error) {
	t.Helper()
	d := &device{t: t, manuf: "Open Mobile Alliance"}
	mc := newMovingConn(t)
	opts := []piondtls.ClientOption{
		piondtls.WithPSK(func([]byte) ([]byte, error) { return key, nil }),
		piondtls.WithPSKIdentityHint([]byte(identity)),
		piondtls.WithCipherSuites(suite),
	}
	if cid {
		opts = append(opts, piondtls.WithConnectionIDGenerator(piondtls.OnlySendCIDGenerator()))
	}
	dc, err := piondtls.ClientWithOptions(mc, server, opts...)
	if err != nil {
		_ = mc.Close()
		return nil, nil, err
	}
	// loopback handshakes take milliseconds; a refused one never ends
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := dc.HandshakeContext(ctx); err != nil {
		_ = dc.Close()
		return nil, nil, err
	}
	d.conn = dtls.Client(dc, d.options()...)
	t.Cleanup(func() { _ = d.conn.Close() })
	return d, mc, nil
}

func TestDTLSRegisterAndRead(t *testing.T) {
	for _, suite := range []piondtls.CipherSuiteID{piondtls.TLS_PSK_WITH_AES_128_CCM_8, piondtls.TLS_PSK_WITH_AES_128_CBC_SHA256} {
		t.Run(suite.String(), func(t *testing.T) {
			s, h := startSecureServer(t, Config{})
			d, _, err := newSecureDevice(t, s.SecureAddr(), "id-1", testKeys["id-1"], suite, false)
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			res, _ := d.register([]string{"ep=secure-1", "lwm2m=1.1"}, testLinks)
			if res.code != codes.Created {
				t.Fatalf("register answered %v", res.code)
			}
			reg := h.wait(t, "registered", 2*time.Second).reg
			if !reg.Secure || reg.PSKIdentity != "id-1" {
				t.Fatalf("registration secure=%v identity=%q, want DTLS with id-1", reg.Secure, reg.PSKIdentity)
			}
			h.mu.Lock()
			auth := h.auths[len(h.auths)-1]
			h.mu.Unlock()
			if !auth.Secure || auth.PSKIdentity != "id-1" || auth.Endpoint != "secure-1" {
				t.Fatalf("authorize saw %+v", auth)
			}
			recs, err := s.Read(context.Background(), "secure-1", node.ResourcePath(3, 0, 0))
			if err != nil || len(recs) != 1 || recs[0].Value.Text() != "Open Mobile Alliance" {
				t.Fatalf("read over DTLS: %v %v", recs, err)
			}
			if open, _, _ := s.Sessions(); open != 1 {
				t.Fatalf("open sessions %d, want 1", open)
			}
		})
	}
}

func TestDTLSWrongKeyFailsHandshake(t *testing.T) {
	// a wrong key shows only in the client's Finished, which the server
	// cannot decrypt and drops: the handshake then ends by its timeout
	s, h := startSecureServer(t, Config{DTLS: psk.Limits{HandshakeTimeout: time.Second}})
	_, _, err := newSecureDevice(t, s.SecureAddr(), "id-1", []byte("not the key"), piondtls.TLS_PSK_WITH_AES_128_CCM_8, false)
	if err == nil {
		t.Fatal("handshake with a wrong key succeeded")
	}
	_, _, err = newSecureDevice(t, s.SecureAddr(), "nobody", []byte("whatever"), piondtls.TLS_PSK_WITH_AES_128_CCM_8, false)
	if err == nil {
		t.Fatal("handshake with an unknown identity succeeded")
	}
	h.none(t, "registered", 200*time.Millisecond)
	deadline := time.Now().Add(5 * time.Second)
	for {
		// a client retransmitting its hello may cost the server one more
		if open, _, failed := s.Sessions(); open == 0 && failed >= 2 {
			break
		}
		if time.Now().After(deadline) {
			open, _, failed := s.Sessions()
			t.Fatalf("sessions open=%d failed=%d, want 0 and at least 2", open, failed)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDTLSConnectionIDKeepsSessionAcrossAddressChange(t *testing.T) {
	s, h := startSecureServer(t, Config{})
	d, mc, err := newSecureDevice(t, s.SecureAddr(), "id-1", testKeys["id-1"], piondtls.TLS_PSK_WITH_AES_128_CCM_8, true)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	_, id := d.register([]string{"ep=mover", "lwm2m=1.1"}, testLinks)
	before := h.wait(t, "registered", 2*time.Second).reg.Address

	mc.move(t)
	res, err := d.do(codes.POST, "/rd/"+id, nil, 0, nil)
	if err != nil || res.code != codes.Changed {
		t.Fatalf("update after moving: %v %v", res.code, err)
	}
	after := h.wait(t, "updated", 2*time.Second).reg.Address
	if after == before {
		t.Fatalf("address did not change: %s", after)
	}
	// the server reaches the device at its new address, in the same session
	recs, err := s.Read(context.Background(), "mover", node.ResourcePath(3, 0, 0))
	if err != nil || len(recs) != 1 {
		t.Fatalf("read after moving: %v %v", recs, err)
	}
	if open, _, _ := s.Sessions(); open != 1 {
		t.Fatalf("open sessions %d, want the one session", open)
	}
}

func TestDTLSRegistrationActsOnlyInItsSession(t *testing.T) {
	s, h := startSecureServer(t, Config{})
	d, _, err := newSecureDevice(t, s.SecureAddr(), "id-1", testKeys["id-1"], piondtls.TLS_PSK_WITH_AES_128_CCM_8, false)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	_, id := d.register([]string{"ep=owned", "lwm2m=1.1"}, testLinks)
	h.wait(t, "registered", 2*time.Second)

	plain := newDevice(t, s.Addr())
	if res, err := plain.do(codes.POST, "/rd/"+id, nil, 0, nil); err != nil || res.code != codes.Forbidden {
		t.Fatalf("plain update of a DTLS registration: %v %v, want 4.03", res.code, err)
	}
	if res, err := plain.do(codes.DELETE, "/rd/"+id, nil, 0, nil); err != nil || res.code != codes.Forbidden {
		t.Fatalf("plain de-register of a DTLS registration: %v %v, want 4.03", res.code, err)
	}
	other, _, err := newSecureDevice(t, s.SecureAddr(), "id-2", testKeys["id-2"], piondtls.TLS_PSK_WITH_AES_128_CCM_8, false)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	if res, err := other.do(codes.POST, "/rd/"+id, nil, 0, nil); err != nil || res.code != codes.Forbidden {
		t.Fatalf("update by another identity: %v %v, want 4.03", res.code, err)
	}
	h.none(t, "updated", 200*time.Millisecond)
	if _, ok := s.Registration("owned"); !ok {
		t.Fatal("registration gone")
	}
	if res, err := d.do(codes.POST, "/rd/"+id, nil, 0, nil); err != nil || res.code != codes.Changed {
		t.Fatalf("update in its own session: %v %v", res.code, err)
	}
}

func TestDTLSSessionLimit(t *testing.T) {
	s, _ := startSecureServer(t, Config{DTLS: psk.Limits{MaxSessions: 1}})
	if _, _, err := newSecureDevice(t, s.SecureAddr(), "id-1", testKeys["id-1"], piondtls.TLS_PSK_WITH_AES_128_CCM_8, false); err != nil {
		t.Fatalf("first session: %v", err)
	}
	// the client's handshake ends with its Finished; the server counts the
	// session once it has read that, a moment later
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if open, _, _ := s.Sessions(); open == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first session is not counted")
		}
	}
	_, _, err := newSecureDevice(t, s.SecureAddr(), "id-2", testKeys["id-2"], piondtls.TLS_PSK_WITH_AES_128_CCM_8, false)
	if err == nil {
		t.Fatal("a session beyond the limit was accepted")
	}
	if open, refused, _ := s.Sessions(); open != 1 || refused < 1 {
		t.Fatalf("open=%d refused=%d, want 1 and at least 1", open, refused)
	}
}

func TestDTLSIdleSessionClosedThenRequestsWait(t *testing.T) {
	s, h := startSecureServer(t, Config{SessionIdleTimeout: time.Second})
	d, _, err := newSecureDevice(t, s.SecureAddr(), "id-1", testKeys["id-1"], piondtls.TLS_PSK_WITH_AES_128_CCM_8, false)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	d.register([]string{"ep=sleepy", "lwm2m=1.1", "lt=600"}, testLinks)
	h.wait(t, "registered", 2*time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if open, _, _ := s.Sessions(); open == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("idle session not closed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	_, err = s.Read(context.Background(), "sleepy", node.ResourcePath(3, 0, 0))
	if !errors.Is(err, ErrNoSession) {
		t.Fatalf("read without a session: %v, want ErrNoSession", err)
	}
	if _, ok := s.Registration("sleepy"); !ok {
		t.Fatal("the registration must outlive the session")
	}
}

func TestDTLSHandshakesCountAgainstPeerRate(t *testing.T) {
	s, _ := startSecureServer(t, Config{PeerRate: 0.001, PeerBurst: 2})
	port := 0
	handshake := func() error {
		pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		port = pc.LocalAddr().(*net.UDPAddr).Port // the same peer address each time
		dc, err := piondtls.ClientWithOptions(pc, s.SecureAddr(),
			piondtls.WithPSK(func([]byte) ([]byte, error) { return testKeys["id-1"], nil }),
			piondtls.WithPSKIdentityHint([]byte("id-1")),
			piondtls.WithCipherSuites(piondtls.TLS_PSK_WITH_AES_128_CCM_8))
		if err != nil {
			_ = pc.Close()
			return err
		}
		defer dc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return dc.HandshakeContext(ctx)
	}
	for i := range 2 {
		if err := handshake(); err != nil {
			t.Fatalf("handshake %d within the burst: %v", i+1, err)
		}
		// The next hello comes from the same address: the server must
		// have taken the close and dropped the session first.
		deadline := time.Now().Add(5 * time.Second)
		for open, _, _ := s.Sessions(); open != 0; open, _, _ = s.Sessions() {
			if time.Now().After(deadline) {
				t.Fatalf("session %d still open 5 s after its close", i+1)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if err := handshake(); err == nil {
		t.Fatal("a handshake beyond the peer's rate succeeded")
	}
}

// Parking a session releases its connection: the registration does not
// hold the closed one (with the session's pion state and go-coap caches)
// until its next exchange, and that exchange resumes the session.
func TestDTLSParkedSessionLetsGoOfItsConn(t *testing.T) {
	s, h := startSecureServer(t, Config{Sessions: psk.SessionConfig{ParkAfter: 200 * time.Millisecond}})
	d, _, err := newSecureDevice(t, s.SecureAddr(), "id-1", testKeys["id-1"], piondtls.TLS_PSK_WITH_AES_128_CCM_8, true)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	d.register([]string{"ep=parked", "lwm2m=1.1", "lt=600"}, testLinks)
	h.wait(t, "registered", 2*time.Second)
	held := func() bool {
		s.mu.RLock()
		defer s.mu.RUnlock()
		return s.byEndpoint["parked"].conn != nil
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.SessionStats().Parks < 1 || held() {
		if time.Now().After(deadline) {
			t.Fatalf("parks %d, connection held %v", s.SessionStats().Parks, held())
		}
		time.Sleep(20 * time.Millisecond)
	}
	recs, err := s.Read(context.Background(), "parked", node.ResourcePath(3, 0, 0))
	if err != nil || len(recs) != 1 {
		t.Fatalf("read over the parked session: %v %v", recs, err)
	}
	if st := s.SessionStats(); st.ResumedMemory != 1 || st.Handshakes != 1 {
		t.Fatalf("resumed %d, handshakes %d: want one resumption and the first handshake only", st.ResumedMemory, st.Handshakes)
	}
}
