package simulator

import (
	"bytes"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"
	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	coapNet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/net/responsewriter"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/lwm2m-agent/lwm2m-agent/agent/codec"
)

// dtlsOpts configures a DTLS test server.
type dtlsOpts struct {
	keys   map[string][]byte // PSK by identity
	suites []piondtls.CipherSuiteID
	noCID  bool // the server offers no Connection ID
}

// serveDTLS runs a go-coap DTLS server on loopback with PSK
// authentication and returns its address; it stops with the test.
func serveDTLS(t testing.TB, o dtlsOpts, h func(*responsewriter.ResponseWriter[*client.Conn], *pool.Message)) string {
	t.Helper()
	if len(o.suites) == 0 {
		o.suites = DefaultCipherSuites
	}
	popts := []piondtls.ServerOption{
		piondtls.WithPSK(func(identity []byte) ([]byte, error) {
			k, ok := o.keys[string(identity)]
			if !ok {
				return nil, fmt.Errorf("unknown PSK identity %q", identity)
			}
			return k, nil
		}),
		piondtls.WithPSKIdentityHint([]byte("lwm2m-test")),
		piondtls.WithCipherSuites(o.suites...),
		piondtls.WithLoggerFactory(quietDTLS),
	}
	if !o.noCID {
		popts = append(popts, piondtls.WithConnectionIDGenerator(piondtls.RandomCIDGenerator(8)))
	}
	l, err := coapNet.NewDTLSListener("udp", "127.0.0.1:0", coapNet.NewDTLSServerOptions(popts...))
	if err != nil {
		t.Fatal(err)
	}
	srv := coapdtls.NewServer(options.WithHandlerFunc(h), options.WithErrors(func(error) {}))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return l.Addr().String()
}

// startDTLSServer is startServer over DTLS.
func startDTLSServer(t testing.TB, o dtlsOpts) *lwm2mServer {
	t.Helper()
	s := newLwm2mServer(t)
	s.addr = serveDTLS(t, o, s.handle)
	s.stop = func() {}
	return s
}

var testKey = []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}

// launch runs a simulator until the test ends without waiting for any
// registration.
func launch(t testing.TB, cfg Config) *Simulator {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Lifetime == 0 {
		cfg.Lifetime = 60 * time.Second
	}
	sim, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sim.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("simulator did not stop")
		}
	})
	return sim
}

func waitSettled(t testing.TB, sim *Simulator, timeout time.Duration) {
	t.Helper()
	select {
	case <-sim.Settled():
	case <-time.After(timeout):
		t.Fatalf("devices had no outcome within %v", timeout)
	}
}

func serverState(t testing.TB, cc *client.Conn) piondtls.State {
	t.Helper()
	dc, ok := cc.NetConn().(*piondtls.Conn)
	if !ok {
		t.Fatalf("server connection is %T, not DTLS", cc.NetConn())
	}
	st, ok := dc.ConnectionState()
	if !ok {
		t.Fatal("no DTLS connection state")
	}
	return st
}

func TestDTLSRegister(t *testing.T) {
	for _, tc := range []struct {
		suite piondtls.CipherSuiteID
		other piondtls.CipherSuiteID
	}{
		{piondtls.TLS_PSK_WITH_AES_128_CCM_8, piondtls.TLS_PSK_WITH_AES_128_CBC_SHA256},
		{piondtls.TLS_PSK_WITH_AES_128_CBC_SHA256, piondtls.TLS_PSK_WITH_AES_128_CCM_8},
	} {
		t.Run(tc.suite.String(), func(t *testing.T) {
			// The server takes only the suite under test; the device
			// offers it first and the other after it.
			srv := startDTLSServer(t, dtlsOpts{keys: map[string][]byte{"psk-id-1": testKey}, suites: []piondtls.CipherSuiteID{tc.suite}})
			sim := runSim(t, srv, func(c *Config) {
				c.Server = ""
				c.CipherSuites = []piondtls.CipherSuiteID{tc.suite, tc.other}
				c.Devices = []DeviceConfig{{Endpoint: "psk-dev", ServerURI: "coaps://" + srv.addr, PSKIdentity: "psk-id-1", PSK: testKey}}
			})
			reg := srv.reg("psk-dev")
			st := serverState(t, reg.conn)
			if st.CipherSuiteID != tc.suite {
				t.Errorf("negotiated %v, want %v", st.CipherSuiteID, tc.suite)
			}
			if reg.query["ep"] != "psk-dev" {
				t.Errorf("registered as %q", reg.query["ep"])
			}
			// The session carries the server's requests too.
			if r := srv.must(reg, get("/3/0/2", int(codec.Text))); r.code != codes.Content || string(r.payload) != "psk-dev" {
				t.Errorf("read serial over DTLS: %v %q", r.code, r.payload)
			}
			// The keys in the Security object stay on the device.
			if r := srv.must(reg, get("/0/0", -1)); r.code != codes.Unauthorized {
				t.Errorf("read /0/0 by the LwM2M server: %v %q, want 4.01", r.code, r.payload)
			}
			if err := sim.Device("psk-dev").Err(); err != nil {
				t.Errorf("registered device reports %v", err)
			}
		})
	}
}

func TestDTLSWrongKey(t *testing.T) {
	srv := startDTLSServer(t, dtlsOpts{keys: map[string][]byte{"psk-id-1": testKey}})
	wrong := append([]byte(nil), testKey...)
	wrong[0] ^= 0xff
	sim := launch(t, Config{
		HandshakeTimeout: 3 * time.Second,
		Devices:          []DeviceConfig{{Endpoint: "bad-key", ServerURI: "coaps://" + srv.addr, PSKIdentity: "psk-id-1", PSK: wrong}},
	})
	waitSettled(t, sim, 10*time.Second)
	dev := sim.Device("bad-key")
	err := dev.Err()
	t.Logf("error: %v", err)
	if !errors.Is(err, ErrHandshake) {
		t.Fatalf("error %v, want a handshake failure", err)
	}
	for _, want := range []string{"handshake", "coaps://" + srv.addr, `"psk-id-1"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if dev.Registered() || srv.count("register bad-key") != 0 {
		t.Errorf("device with a wrong key registered")
	}
	if f := sim.Failures(); len(f) != 1 || f[0] != dev {
		t.Errorf("failures %v", f)
	}
}

func TestDTLSConnectionIDRebind(t *testing.T) {
	srv := startDTLSServer(t, dtlsOpts{keys: map[string][]byte{"cid-dev": testKey}})
	sim := runSim(t, srv, func(c *Config) {
		c.Server = ""
		c.Devices = []DeviceConfig{{Endpoint: "cid-dev", ServerURI: "coaps://" + srv.addr, PSKIdentity: "cid-dev", PSK: testKey}}
	})
	reg := srv.reg("cid-dev")
	dev := sim.Device("cid-dev")

	local, err := dev.Rebind()
	if err != nil {
		t.Fatal(err)
	}
	if port(t, local.String()) == port(t, reg.regAddr) {
		t.Fatalf("rebind kept port %s", local)
	}
	dev.requestWork(workUpdate)
	srv.wait(5*time.Second, "update after rebind", func() bool { return reg.updates > 0 })
	srv.mu.Lock()
	sameSession, from := reg.updConn == reg.conn, reg.updAddr
	srv.mu.Unlock()
	if !sameSession {
		t.Fatal("the update after rebind came in a new server-side session")
	}
	if from == reg.regAddr || port(t, from) != port(t, local.String()) {
		t.Errorf("update came from %s; registered from %s, device now on %s", from, reg.regAddr, local)
	}
	if got := reg.conn.RemoteAddr().String(); got != from {
		t.Errorf("server session's peer is %s, want %s", got, from)
	}
	// The server reaches the device at its new address in the same session.
	if r := srv.must(reg, get("/3/0/2", int(codec.Text))); string(r.payload) != "cid-dev" {
		t.Errorf("read after rebind: %v %q", r.code, r.payload)
	}
	if n := srv.count("register cid-dev"); n != 1 {
		t.Errorf("%d registrations, want 1", n)
	}
}

// Without a Connection ID the server cannot place records from the new
// address: the update after a rebind never arrives. This is what makes
// the test above a test of the Connection ID.
func TestDTLSRebindWithoutCID(t *testing.T) {
	srv := startDTLSServer(t, dtlsOpts{keys: map[string][]byte{"nocid": testKey}, noCID: true})
	sim := runSim(t, srv, func(c *Config) {
		c.Server = ""
		c.Devices = []DeviceConfig{{Endpoint: "nocid", ServerURI: "coaps://" + srv.addr, PSKIdentity: "nocid", PSK: testKey}}
	})
	reg := srv.reg("nocid")
	dev := sim.Device("nocid")
	if _, err := dev.Rebind(); err != nil {
		t.Fatal(err)
	}
	dev.requestWork(workUpdate)
	time.Sleep(1500 * time.Millisecond)
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if reg.updates != 0 {
		t.Errorf("the server took an update from a new address without a Connection ID")
	}
}

func TestRebindPlainCoAP(t *testing.T) {
	srv := startServer(t)
	sim := runSim(t, srv, nil)
	if _, err := sim.Device("sim-0").Rebind(); err == nil {
		t.Error("rebind without a DTLS session succeeded")
	}
}

func port(t testing.TB, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return p
}

// TestRebindConnReads checks the socket swap alone: a read blocked on the
// old socket goes on on the new one.
func TestRebindConnReads(t *testing.T) {
	c, err := newRebindConn("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := make(chan string, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		b := make([]byte, 64)
		n, _, err := c.ReadFrom(b)
		if err != nil {
			got <- "error: " + err.Error()
			return
		}
		got <- string(b[:n])
	})
	time.Sleep(50 * time.Millisecond) // let the read block on the old socket
	old := c.LocalAddr().String()
	addr, err := c.rebind()
	if err != nil {
		t.Fatal(err)
	}
	if addr.String() == old {
		t.Fatalf("same address %s after rebind", addr)
	}
	peer, err := net.Dial("udp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	if _, err := peer.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-got:
		if s != "hello" {
			t.Errorf("read %q", s)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("read did not move to the new socket")
	}
	wg.Wait()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.rebind(); err == nil {
		t.Error("rebind of a closed connection succeeded")
	}
}

// A device told to go without a Connection ID negotiates none, even with
// a server that offers one; by default it takes the server's. Each
// session is one full handshake in Stats.
func TestDTLSNoConnectionID(t *testing.T) {
	for _, tc := range []struct {
		name    string
		noCID   bool
		wantCID bool
	}{{"default", false, true}, {"without", true, false}} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startDTLSServer(t, dtlsOpts{keys: map[string][]byte{"dev": testKey}})
			sim := runSim(t, srv, func(c *Config) {
				c.Server = ""
				c.Devices = []DeviceConfig{{Endpoint: "dev", ServerURI: "coaps://" + srv.addr, PSKIdentity: "dev", PSK: testKey,
					NoConnectionID: tc.noCID}}
			})
			reg := srv.reg("dev")
			srv.mu.Lock()
			conn := reg.conn
			srv.mu.Unlock()
			dc, ok := conn.NetConn().(*piondtls.Conn)
			if !ok {
				t.Fatalf("server connection is %T", conn.NetConn())
			}
			st, ok := dc.ConnectionState()
			if !ok {
				t.Fatal("no connection state")
			}
			// pion's State shows its Connection IDs only in its gob encoding
			b, err := st.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var ids struct{ LocalConnectionID, RemoteConnectionID []byte }
			if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&ids); err != nil {
				t.Fatal(err)
			}
			if got := len(ids.RemoteConnectionID) > 0 || len(ids.LocalConnectionID) > 0; got != tc.wantCID {
				t.Errorf("connection ID negotiated: %v, want %v (local %x, remote %x)", got, tc.wantCID, ids.LocalConnectionID, ids.RemoteConnectionID)
			}
			if n := sim.Stats().Handshakes; n != 1 {
				t.Errorf("%d handshakes counted, want 1", n)
			}
		})
	}
}
