package simulator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	piondtls "github.com/pion/dtls/v3"
	"github.com/pion/logging"
	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	"github.com/plgd-dev/go-coap/v3/udp/client"
)

// quietDTLS keeps pion's own logging out of the simulator's output: with
// thousands of devices its per-connection lines would drown everything;
// the simulator reports handshake failures itself.
var quietDTLS logging.LoggerFactory = &logging.DefaultLoggerFactory{
	Writer:          io.Discard,
	DefaultLogLevel: logging.LogLevelDisabled,
}

// ErrHandshake is wrapped by the errors of DTLS handshakes that failed:
// a wrong key or identity, no common cipher suite, no answer.
var ErrHandshake = errors.New("dtls handshake failed")

// link is one open connection of a device to a server.
type link struct {
	cc   *client.Conn
	sock *rebindConn // the DTLS session's socket; nil for plain CoAP
	key  string      // account.connKey of the account it was opened for
}

func (l *link) close() error {
	if l == nil || l.cc == nil {
		return nil
	}
	return l.cc.Close()
}

// connect opens a connection to the server of a: plain CoAP over a
// connected UDP socket, or CoAP over DTLS 1.2 with the account's PSK.
// Every request of the server on it goes to handler.
func (d *Device) connect(ctx context.Context, a account, bootstrap bool) (*link, error) {
	s := d.sim
	opts := []udp.Option{
		options.WithContext(s.runCtx),
		options.WithPeriodicRunner(s.periodic),
		options.WithErrors(func(err error) { d.log.Debug("coap", "err", err) }),
		options.WithReceivedMessageQueueSize(4),
	}
	if bootstrap {
		opts = append(opts, options.WithHandlerFunc(d.handleBootstrap))
	} else {
		opts = append(opts, options.WithHandlerFunc(d.handle), options.WithRequestMonitor(d.monitor))
	}
	if !a.peer.secure {
		dialer := &net.Dialer{}
		if s.cfg.Bind != "" {
			dialer.LocalAddr = &net.UDPAddr{IP: net.ParseIP(s.cfg.Bind)}
		}
		cc, err := udp.Dial(a.peer.hostport, append(opts, options.WithDialer(dialer))...)
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", a.uri, err)
		}
		return &link{cc: cc, key: a.connKey()}, nil
	}

	raddr, err := net.ResolveUDPAddr("udp", a.peer.hostport)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", a.uri, err)
	}
	sock, err := newRebindConn(s.cfg.Bind)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", a.uri, err)
	}
	key := a.key
	dopts := []piondtls.ClientOption{
		piondtls.WithPSK(func([]byte) ([]byte, error) { return key, nil }),
		piondtls.WithPSKIdentityHint([]byte(a.identity)),
		piondtls.WithCipherSuites(s.cfg.CipherSuites...),
		piondtls.WithLoggerFactory(quietDTLS),
	}
	if !d.spec.NoConnectionID {
		// The device sends the server's connection ID in its records, so
		// the server finds the session when the device's address changes
		// (RFC 9146); the device itself needs none: its socket is its own.
		dopts = append(dopts, piondtls.WithConnectionIDGenerator(piondtls.OnlySendCIDGenerator()))
	}
	dc, err := piondtls.ClientWithOptions(sock, raddr, dopts...)
	if err != nil {
		_ = sock.Close()
		return nil, fmt.Errorf("dtls client for %s: %w", a.uri, err)
	}
	hctx, cancel := context.WithTimeout(ctx, s.cfg.HandshakeTimeout)
	defer cancel()
	if err := dc.HandshakeContext(hctx); err != nil {
		_ = dc.Close()
		if hctx.Err() != nil && ctx.Err() == nil {
			// DTLS drops records it cannot decrypt without a word
			// (RFC 6347, 4.1.2.7): a wrong key shows only as silence.
			err = fmt.Errorf("no completed handshake within %v (a wrong PSK identity or key, or no DTLS server there): %w", s.cfg.HandshakeTimeout, err)
		}
		return nil, fmt.Errorf("%w with %s as PSK identity %q: %w", ErrHandshake, a.uri, a.identity, err)
	}
	s.stats.handshakes.Add(1)
	cc := coapdtls.Client(dc, append(opts, options.WithCloseSocket())...)
	return &link{cc: cc, sock: sock, key: a.connKey()}, nil
}

// Rebind moves the device's DTLS session to a new local UDP socket, with
// a new port, as when a NAT on the way forgets the device's mapping. The
// session's keys stay. With a Connection ID (RFC 9146) the server keeps
// the session and learns the new address from the device's next record;
// without one, the server cannot place those records and the device's
// exchanges fail until it registers anew. It returns the new local
// address; a device without a DTLS session gets an error.
func (d *Device) Rebind() (net.Addr, error) {
	d.mu.Lock()
	l := d.link
	d.mu.Unlock()
	if l == nil || l.sock == nil {
		return nil, errors.New("rebind: the device has no DTLS session")
	}
	return l.sock.rebind()
}

// rebindConn is a net.PacketConn whose UDP socket can be swapped while a
// DTLS session runs over it. A read blocked on the old socket moves on to
// the new one instead of failing the session.
type rebindConn struct {
	bind string

	mu       sync.Mutex
	sock     *net.UDPConn
	gen      uint64 // raised by each rebind
	deadline time.Time
	closed   bool
}

func listenUDP(bind string) (*net.UDPConn, error) {
	addr := &net.UDPAddr{}
	if bind != "" {
		addr.IP = net.ParseIP(bind)
	}
	return net.ListenUDP("udp", addr)
}

func newRebindConn(bind string) (*rebindConn, error) {
	sock, err := listenUDP(bind)
	if err != nil {
		return nil, err
	}
	return &rebindConn{bind: bind, sock: sock}, nil
}

func (c *rebindConn) current() (*net.UDPConn, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sock, c.gen
}

func (c *rebindConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		sock, gen := c.current()
		n, addr, err := sock.ReadFrom(b)
		if err == nil {
			return n, addr, nil
		}
		c.mu.Lock()
		moved := c.gen != gen && !c.closed
		c.mu.Unlock()
		if !moved {
			return n, addr, err
		}
	}
}

func (c *rebindConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	sock, _ := c.current()
	return sock.WriteTo(b, addr)
}

func (c *rebindConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	return c.sock.Close()
}

func (c *rebindConn) LocalAddr() net.Addr {
	sock, _ := c.current()
	return sock.LocalAddr()
}

func (c *rebindConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// SetReadDeadline is kept and carried over to a new socket: pion ends
// blocked reads with a deadline in the past when a context is done.
func (c *rebindConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deadline = t
	return c.sock.SetReadDeadline(t)
}

func (c *rebindConn) SetWriteDeadline(t time.Time) error {
	sock, _ := c.current()
	return sock.SetWriteDeadline(t)
}

// rebind opens a new socket on the same local IP and retires the old one.
func (c *rebindConn) rebind() (net.Addr, error) {
	sock, err := listenUDP(c.bind)
	if err != nil {
		return nil, fmt.Errorf("rebind: %w", err)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		_ = sock.Close()
		return nil, errors.New("rebind: connection closed")
	}
	if err := sock.SetReadDeadline(c.deadline); err != nil {
		c.mu.Unlock()
		_ = sock.Close()
		return nil, fmt.Errorf("rebind: %w", err)
	}
	old := c.sock
	c.sock = sock
	c.gen++
	c.mu.Unlock()
	// Closing wakes a read blocked on the old socket; it sees the new
	// generation and reads on.
	_ = old.Close()
	return sock.LocalAddr(), nil
}
