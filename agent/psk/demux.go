package psk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/dtls/v3/pkg/protocol"
	"github.com/pion/dtls/v3/pkg/protocol/extension"
	"github.com/pion/dtls/v3/pkg/protocol/handshake"
	"github.com/pion/dtls/v3/pkg/protocol/recordlayer"
	"github.com/pion/transport/v5/deadline"
)

// demux shares one UDP socket among the DTLS associations of the listener,
// as pion's own listener does (by Connection ID, else by the peer's
// address), with one difference: a ClientHello that opens a new
// association from an address whose association has finished its
// handshake gets a new association, instead of going to the old one,
// which drops it without an answer (its epoch-0 records are replays to
// it). Devices meet this whenever they start over from the same address
// and port: after a reboot or a lost session, with a fixed local port,
// or behind a NAT that maps the new socket to the same public port. Until
// the client returns the cookie of the new association's
// HelloVerifyRequest the old one keeps the address, so a forged
// ClientHello cannot take a session away (RFC 6347, section 4.2.8); then
// the old association is closed.
type demux struct {
	pc      net.PacketConn
	cidSize int // 0: no Connection IDs
	accept  chan *peerConn
	done    chan struct{}
	once    sync.Once

	mu      sync.Mutex
	byAddr  map[string]*peerConn
	byCID   map[string]*peerConn
	pending map[string]*peerConn // by address: a new association waiting for its cookie
	conns   int                  // accepted or queued, not closed
	closed  bool                 // no more accepts; the socket closes with the last conn
}

// backlog is how many new associations may wait for Accept, like pion's.
const backlog = 128

// queueLen bounds the datagrams waiting to be read by one association;
// beyond it they are dropped, as the network might. A client's flight is
// a few datagrams and CoAP sends one request at a time (NSTART 1); the
// queue is allocated with every session, so it stays small.
const queueLen = 16

var errDemuxClosed = errors.New("dtls listener closed")

func newDemux(pc net.PacketConn, cidSize int) *demux {
	d := &demux{
		pc:      pc,
		cidSize: cidSize,
		accept:  make(chan *peerConn, backlog),
		done:    make(chan struct{}),
		byAddr:  map[string]*peerConn{},
		byCID:   map[string]*peerConn{},
		pending: map[string]*peerConn{},
	}
	go d.readLoop()
	return d
}

// Accept returns the next new association.
func (d *demux) Accept() (net.PacketConn, net.Addr, error) {
	select {
	case c := <-d.accept:
		return c, c.raddr, nil
	case <-d.done:
		return nil, nil, errDemuxClosed
	}
}

// Close stops accepting; the socket stays open for the associations
// already accepted until the last one closes.
func (d *demux) Close() error {
	d.once.Do(func() { close(d.done) })
	d.mu.Lock()
	d.closed = true
	var queued []*peerConn
	for {
		select {
		case c := <-d.accept:
			queued = append(queued, c)
			continue
		default:
		}
		break
	}
	d.mu.Unlock()
	for _, c := range queued {
		_ = c.Close()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conns == 0 {
		return d.pc.Close()
	}
	return nil
}

func (d *demux) Addr() net.Addr { return d.pc.LocalAddr() }

func (d *demux) readLoop() {
	buf := make([]byte, 8192)
	for {
		n, raddr, err := d.pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Other read errors of a UDP socket concern one datagram;
			// ending the loop would silence the port.
			continue
		}
		if c := d.route(buf[:n], raddr); c != nil {
			c.deliver(bytes.Clone(buf[:n]), raddr)
		}
	}
}

// route returns the association a datagram goes to, creating one for a
// new handshake; nil drops the datagram.
func (d *demux) route(pkt []byte, raddr net.Addr) *peerConn {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cidSize > 0 {
		if id, ok := recordCID(pkt, d.cidSize); ok {
			if c := d.byCID[id]; c != nil {
				return c
			}
		}
	}
	key := raddr.String()
	cur := d.byAddr[key]
	hello, isHello := clientHello(pkt)
	if cur == nil {
		if p := d.pending[key]; p != nil {
			// the old association ended before the cookie came back
			delete(d.pending, key)
			p.pending = false
			d.byAddr[key] = p
			return p
		}
		if !isHello {
			return nil // pion's filter: only a handshake opens an association
		}
		return d.open(key, raddr, false)
	}
	if !isHello || !cur.finished() {
		// A handshake under way handles repeated ClientHellos itself.
		return cur
	}
	p := d.pending[key]
	if p == nil {
		return d.open(key, raddr, true)
	}
	if cookie := p.hvrCookie(); len(cookie) > 0 && bytes.Equal(cookie, hello.cookie) {
		// The client answered from this address: the new association
		// takes it over and the old one ends.
		delete(d.pending, key)
		p.pending = false
		d.byAddr[key] = p
		cur.addrGone = true
		go func() { _ = cur.Close() }()
	}
	return p
}

// open queues a new association for Accept; pending ones get the address
// only when their cookie comes back. Called with d.mu held.
func (d *demux) open(key string, raddr net.Addr, pending bool) *peerConn {
	if d.closed {
		return nil
	}
	c := &peerConn{d: d, raddr: raddr, key: key, pending: pending, in: make(chan datagram, queueLen),
		done: make(chan struct{}), readDeadline: deadline.New(), writeDeadline: deadline.New()}
	select {
	case d.accept <- c:
	default:
		return nil // backlog full: the client retransmits later
	}
	d.conns++
	if pending {
		d.pending[key] = c
	} else {
		d.byAddr[key] = c
	}
	return c
}

type datagram struct {
	b    []byte
	from net.Addr
}

// peerConn is one association's view of the shared socket.
type peerConn struct {
	d     *demux
	raddr net.Addr
	key   string
	in    chan datagram
	done  chan struct{}
	once  sync.Once

	readDeadline, writeDeadline *deadline.Deadline

	// Once the handshake's last flight went out, writes take d.mu only
	// while a Connection ID session still holds its first address.
	settled, watchMove atomic.Bool

	// Guarded by d.mu.
	pending  bool   // in d.pending, not yet in d.byAddr
	addrGone bool   // no longer holds its address in d.byAddr
	cid      string // its Connection ID in d.byCID
	cookie   []byte // of the HelloVerifyRequest it sent
	sentEnc  bool   // it sent an encrypted record: its handshake is finishing or done
}

func (c *peerConn) finished() bool { return c.sentEnc } // d.mu held

func (c *peerConn) hvrCookie() []byte { return c.cookie } // d.mu held

func (c *peerConn) deliver(b []byte, from net.Addr) {
	select {
	case c.in <- datagram{b, from}:
	case <-c.done:
	default: // queue full: dropped
	}
}

func (c *peerConn) ReadFrom(p []byte) (int, net.Addr, error) {
	select {
	case <-c.readDeadline.Done():
		return 0, nil, errTimeout
	default:
	}
	select {
	case dg := <-c.in:
		if len(p) < len(dg.b) {
			return 0, nil, io.ErrShortBuffer
		}
		return copy(p, dg.b), dg.from, nil
	case <-c.done:
		return 0, nil, io.EOF
	case <-c.readDeadline.Done():
		return 0, nil, errTimeout
	}
}

func (c *peerConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	select {
	case <-c.writeDeadline.Done():
		return 0, errTimeout
	default:
	}
	c.observe(p, addr)
	return c.d.pc.WriteTo(p, addr)
}

// observe learns from what the association sends: the cookie of its
// HelloVerifyRequest, the Connection ID its ServerHello gives the client,
// that its handshake has reached the encrypted epoch, and, as pion's
// listener does, frees the first address once the client moved to another
// under its Connection ID.
func (c *peerConn) observe(p []byte, addr net.Addr) {
	if c.settled.Load() && (!c.watchMove.Load() || addr.String() == c.key) {
		return
	}
	d := c.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if !c.sentEnc {
		c.sentEnc = encrypting(p)
		if recs, err := recordlayer.UnpackDatagram(p); err == nil {
			if cookie, ok := helloVerifyCookie(recs); ok {
				c.cookie = cookie
			}
			if d.cidSize > 0 && c.cid == "" {
				if id, ok := serverHelloCID(recs); ok {
					c.cid = id
					d.byCID[id] = c
				}
			}
		}
	}
	if c.cid != "" && !c.addrGone && addr.String() != c.key {
		if d.byAddr[c.key] == c {
			delete(d.byAddr, c.key)
		}
		c.addrGone = true
	}
	if c.sentEnc {
		c.watchMove.Store(c.cid != "" && !c.addrGone)
		c.settled.Store(true)
	}
}

func (c *peerConn) Close() error {
	c.once.Do(func() {
		close(c.done)
		d := c.d
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.byAddr[c.key] == c {
			delete(d.byAddr, c.key)
		}
		if d.pending[c.key] == c {
			delete(d.pending, c.key)
		}
		if c.cid != "" && d.byCID[c.cid] == c {
			delete(d.byCID, c.cid)
		}
		d.conns--
		if d.closed && d.conns == 0 {
			_ = d.pc.Close()
		}
	})
	return nil
}

func (c *peerConn) LocalAddr() net.Addr { return c.d.pc.LocalAddr() }

func (c *peerConn) SetDeadline(t time.Time) error {
	c.readDeadline.Set(t)
	c.writeDeadline.Set(t)
	return nil
}

func (c *peerConn) SetReadDeadline(t time.Time) error { c.readDeadline.Set(t); return nil }

// SetWriteDeadline bounds this association's writes only: the socket is
// shared.
func (c *peerConn) SetWriteDeadline(t time.Time) error { c.writeDeadline.Set(t); return nil }

type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

var errTimeout net.Error = timeoutError{}

// helloInfo is what routing needs of a ClientHello.
type helloInfo struct {
	cookie []byte
}

// clientHello reports whether the datagram's first record is an epoch-0
// handshake record starting a ClientHello, and its cookie. Only the
// ClientHello's first fragment is read, so a fragmented one counts too.
func clientHello(pkt []byte) (helloInfo, bool) {
	const rec, hs = recordlayer.FixedHeaderSize, handshake.HeaderLength
	if len(pkt) < rec+hs+2+32+1 || protocol.ContentType(pkt[0]) != protocol.ContentTypeHandshake ||
		binary.BigEndian.Uint16(pkt[3:5]) != 0 || handshake.Type(pkt[rec]) != handshake.TypeClientHello {
		return helloInfo{}, false
	}
	if pkt[rec+6] != 0 || pkt[rec+7] != 0 || pkt[rec+8] != 0 { // fragment offset
		return helloInfo{}, false
	}
	end := rec + int(binary.BigEndian.Uint16(pkt[11:13]))
	if end > len(pkt) {
		end = len(pkt)
	}
	body := pkt[rec+hs : end]
	off := 2 + 32
	if off >= len(body) {
		return helloInfo{}, true
	}
	off += 1 + int(body[off]) // session id
	if off >= len(body) {
		return helloInfo{}, true
	}
	n := int(body[off])
	if off+1+n > len(body) {
		return helloInfo{}, true
	}
	return helloInfo{cookie: body[off+1 : off+1+n]}, true
}

// helloVerifyCookie returns the cookie of a HelloVerifyRequest among
// outgoing records.
func helloVerifyCookie(recs [][]byte) ([]byte, bool) {
	const rec, hs = recordlayer.FixedHeaderSize, handshake.HeaderLength
	for _, r := range recs {
		if len(r) < rec+hs+3 || protocol.ContentType(r[0]) != protocol.ContentTypeHandshake ||
			handshake.Type(r[rec]) != handshake.TypeHelloVerifyRequest {
			continue
		}
		var m handshake.MessageHelloVerifyRequest
		if err := m.Unmarshal(r[rec+hs:]); err == nil {
			return m.Cookie, true
		}
	}
	return nil, false
}

// serverHelloCID returns the Connection ID an outgoing ServerHello asks
// the client to use.
func serverHelloCID(recs [][]byte) (string, bool) {
	const rec, hs = recordlayer.FixedHeaderSize, handshake.HeaderLength
	for _, r := range recs {
		if len(r) < rec+hs || protocol.ContentType(r[0]) != protocol.ContentTypeHandshake ||
			handshake.Type(r[rec]) != handshake.TypeServerHello {
			continue
		}
		var sh handshake.MessageServerHello
		if err := sh.Unmarshal(r[rec+hs:]); err != nil {
			continue
		}
		for _, e := range sh.Extensions {
			if e, ok := e.(*extension.ConnectionID); ok && len(e.CID) > 0 {
				return string(e.CID), true
			}
		}
	}
	return "", false
}

// encrypting reports whether a datagram has a ChangeCipherSpec or a record
// of a later epoch, the server's last flight of a handshake.
func encrypting(p []byte) bool {
	for len(p) >= recordlayer.FixedHeaderSize {
		switch protocol.ContentType(p[0]) {
		case protocol.ContentTypeChangeCipherSpec, protocol.ContentTypeConnectionID:
			return true
		}
		if binary.BigEndian.Uint16(p[3:5]) > 0 {
			return true
		}
		n := recordlayer.FixedHeaderSize + int(binary.BigEndian.Uint16(p[11:13]))
		if n > len(p) {
			return false
		}
		p = p[n:]
	}
	return false
}

// recordCID returns the Connection ID of the first CID-carrying record
// of a datagram.
func recordCID(pkt []byte, size int) (string, bool) {
	recs, err := recordlayer.ContentAwareUnpackDatagram(pkt, size)
	if err != nil {
		return "", false
	}
	for _, r := range recs {
		if protocol.ContentType(r[0]) == protocol.ContentTypeConnectionID && len(r) >= 11+size {
			return string(r[11 : 11+size]), true
		}
	}
	return "", false
}
