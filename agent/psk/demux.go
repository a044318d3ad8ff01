package psk

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/refusal"
	"github.com/pion/dtls/v3/pkg/protocol"
	"github.com/pion/dtls/v3/pkg/protocol/extension"
	"github.com/pion/dtls/v3/pkg/protocol/handshake"
	"github.com/pion/dtls/v3/pkg/protocol/recordlayer"
	"github.com/pion/transport/v5/deadline"
	"github.com/pion/transport/v5/netctx"
)

// demux shares one UDP socket among the DTLS associations of the listener,
// as pion's own listener does (by Connection ID, else by the peer's
// address), except that it keeps nothing for a peer until the peer has
// shown it receives at its address: a ClientHello without a valid cookie
// is answered here with a HelloVerifyRequest whose cookie is an HMAC of
// the address and the hello (RFC 6347, section 4.2.1), and only a
// ClientHello that returns it gets an association and goes to pion, which
// skips its own HelloVerifyRequest. So ClientHellos from forged addresses
// hold no handshake slot and no memory; they cost a HelloVerifyRequest
// each, never larger than the hello (no amplification).
//
// A ClientHello with a valid cookie from an address whose association has
// finished its handshake starts a new association, which ends the old one
// (pion's listener sends it to the old one, which drops it as a replay).
// Devices do this whenever they start over from the same address and
// port: after a reboot or a lost session, with a fixed local port, or
// behind a NAT that maps the new socket to the same public port. A forged
// ClientHello cannot take a session away: it does not return a cookie
// (RFC 6347, section 4.2.8).
type demux struct {
	pc      net.PacketConn
	cidSize int // 0: no Connection IDs
	cookies *cookies
	refused *refusal.Log
	accept  chan *peerConn
	done    chan struct{}
	once    sync.Once
	hvrs    atomic.Uint64 // HelloVerifyRequests sent
	answer  []byte        // the read loop's HelloVerifyRequest
	keep    atomic.Pointer[keeper]

	mu     sync.Mutex
	byAddr map[string]*peerConn
	byCID  map[string]*peerConn
	conns  int  // accepted or queued, not closed
	closed bool // no more accepts; the socket closes with the last conn
	// accepted is the association Accept returned last, taken by the
	// one goroutine that accepts (Listener.accept).
	accepted *peerConn
}

// backlog is how many new associations may wait for Accept, like pion's.
const backlog = 128

// maxRecords bounds the records of one datagram that pion sends (at
// least 14 bytes each within the MTU).
const maxRecords = 128

// queueLen bounds the datagrams waiting to be read by one association;
// beyond it they are dropped, as the network might. A client's flight is
// a few datagrams and CoAP sends one request at a time (NSTART 1); the
// queue is allocated with every session, so it stays small.
const queueLen = 16

var errDemuxClosed = errors.New("dtls listener closed")

func newDemux(pc net.PacketConn, cidSize int, k *cookies, refused *refusal.Log) *demux {
	d := &demux{
		pc:      pc,
		cidSize: cidSize,
		cookies: k,
		refused: refused,
		accept:  make(chan *peerConn, backlog),
		done:    make(chan struct{}),
		byAddr:  map[string]*peerConn{},
		byCID:   map[string]*peerConn{},
	}
	go d.readLoop()
	return d
}

// Accept returns the next new association.
func (d *demux) Accept() (net.PacketConn, net.Addr, error) {
	select {
	case c := <-d.accept:
		d.mu.Lock()
		d.accepted = c
		d.mu.Unlock()
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

// takeAccepted returns the association Accept returned last.
func (d *demux) takeAccepted() *peerConn {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.accepted
	d.accepted = nil
	return c
}

// connOf returns the association of a session accepted or resumed.
func (d *demux) connOf(s *session) *peerConn { return s.pc }

// associations returns the associations open or queued now.
func (d *demux) associations() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.conns
}

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
		to, answer, ended := d.route(buf[:n], raddr)
		if ended != nil {
			_ = ended.Close()
		}
		if to != nil {
			to.deliver(bytes.Clone(buf[:n]), raddr)
		}
		if answer != nil {
			// A lost HelloVerifyRequest is sent again when the client
			// repeats its ClientHello.
			_, _ = d.pc.WriteTo(answer, raddr)
		}
	}
}

// route returns the association a datagram goes to (nil drops it), or
// the HelloVerifyRequest that answers it, and an association the
// datagram ended, to be closed.
func (d *demux) route(pkt []byte, raddr net.Addr) (to *peerConn, answer []byte, ended *peerConn) {
	key := raddr.String()
	d.mu.Lock()
	cid := ""
	if d.cidSize > 0 {
		if id, ok := recordCID(pkt, d.cidSize); ok {
			if c := d.byCID[id]; c != nil {
				d.mu.Unlock()
				return c, nil, nil
			}
			cid = id
		}
	}
	cur := d.byAddr[key]
	if k := d.keep.Load(); k != nil && (cid != "" || cur == nil) && !startsHello(pkt) {
		// a record of a parked session (by its Connection ID, which
		// wins over the address, else by address)
		if c := k.routeLocked(pkt, raddr, key, cid); c != nil {
			d.mu.Unlock()
			return c, nil, nil
		}
	}
	if cur != nil && (!cur.finished() || !startsHello(pkt)) {
		// A handshake under way handles repeated ClientHellos itself.
		d.mu.Unlock()
		return cur, nil, nil
	}
	closed := d.closed
	d.mu.Unlock()
	if closed {
		return nil, nil, nil // the socket is open for the sessions only
	}

	// No association, or a new handshake from the address of a finished
	// one: nothing is kept until the cookie comes back.
	h, err := parseHello(pkt)
	if err != nil {
		if cur != nil {
			return cur, nil, nil // its session drops what is not its own
		}
		d.refused.Refuse(CauseUnknownPeer, "", "peer", key, "reason", err.Error())
		return nil, nil, nil
	}
	ap, ok := addrPort(raddr)
	if !ok {
		return nil, nil, nil
	}
	if len(h.cookie) == 0 {
		return nil, d.helloVerify(ap, h, len(pkt), key), nil
	}
	if !d.cookies.valid(ap, h) {
		// Answered like a hello without a cookie (RFC 6347, section
		// 4.2.1), so that a client holding one of an old secret gets a
		// new one instead of waiting forever.
		d.refused.Deny(CauseBadCookie, "peer", key)
		return nil, d.helloVerify(ap, h, len(pkt), key), nil
	}
	if cur != nil && bytes.Equal(cur.random[:], h.random) {
		// a late copy of the hello that opened cur: not a new handshake
		return cur, nil, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if cur != nil && d.byAddr[key] != cur {
		cur = nil // it closed, or moved under its Connection ID, meanwhile
	}
	to = d.open(key, raddr, h)
	if to != nil && cur != nil {
		// The client answered from this address: the new association
		// has taken it over and the old one ends.
		cur.addrGone = true
		ended = cur
	}
	return to, nil, ended
}

// helloVerify returns the HelloVerifyRequest answering h from ap; nil
// when it would be larger than the datagram of size it answers.
func (d *demux) helloVerify(ap netip.AddrPort, h *hello, size int, key string) []byte {
	if size < hvrLen {
		d.refused.Refuse(CauseUnknownPeer, "", "peer", key, "reason", "ClientHello smaller than its HelloVerifyRequest")
		return nil
	}
	d.answer = appendHelloVerify(d.answer[:0], h, d.cookies.make(ap, h))
	d.hvrs.Add(1)
	return d.answer
}

// open queues a new association for Accept for the ClientHello h, which
// returned a valid cookie. Called with d.mu held.
func (d *demux) open(key string, raddr net.Addr, h *hello) *peerConn {
	if d.closed {
		return nil
	}
	c := &peerConn{d: d, raddr: raddr, key: key, seqBase: h.recordSeq, in: make(chan datagram, queueLen),
		done: make(chan struct{}), readDeadline: deadline.New(), writeDeadline: deadline.New()}
	copy(c.random[:], h.random)
	select {
	case d.accept <- c:
	default:
		return nil // backlog full: the client repeats its hello, with the cookie
	}
	c.lastIO.Store(time.Now().UnixNano())
	d.conns++
	d.byAddr[key] = c
	return c
}

// newConnLocked opens an association for a session resumed without a
// handshake; the caller routes to it. Called with d.mu held.
func (d *demux) newConnLocked(key string, raddr net.Addr) *peerConn {
	c := &peerConn{d: d, raddr: raddr, key: key, in: make(chan datagram, queueLen),
		done: make(chan struct{}), readDeadline: deadline.New(), writeDeadline: deadline.New()}
	c.lastIO.Store(time.Now().UnixNano())
	d.conns++
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

	// The record sequence number of the ClientHello that opened it.
	seqBase uint64
	// The client random of that ClientHello.
	random [32]byte

	// Once the handshake's last flight went out, writes take d.mu only
	// while a Connection ID session still holds its first address.
	settled, watchMove atomic.Bool

	// lastIO is when it last received or sent, in Unix nanoseconds.
	lastIO atomic.Int64
	// muted drops what it sends: it is being parked.
	muted atomic.Bool
	// resv bounds the sequence numbers it sends, once its session is kept.
	resv atomic.Pointer[reservation]

	// Guarded by d.mu.
	addrGone bool   // no longer holds its address in d.byAddr
	cid      string // its Connection ID in d.byCID
	sentEnc  bool   // it sent an encrypted record: its handshake is finishing or done
}

func (c *peerConn) finished() bool { return c.sentEnc } // d.mu held

func (c *peerConn) deliver(b []byte, from net.Addr) {
	c.lastIO.Store(time.Now().UnixNano())
	select {
	case c.in <- datagram{b, from}:
	case <-c.done:
	default: // queue full: dropped
	}
}

func (c *peerConn) ReadFrom(p []byte) (int, net.Addr, error) {
	return c.ReadFromContext(context.Background(), p)
}

// ReadFromContext is ReadFrom ended by ctx too. pion reads and writes
// through these (netctx.PacketConn) when its connection has them, instead
// of starting a goroutine for each read and write to watch the context
// and keeping one for every session waiting for its next record.
func (c *peerConn) ReadFromContext(ctx context.Context, p []byte) (int, net.Addr, error) {
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
	case <-ctx.Done():
		return 0, nil, ctx.Err()
	case <-c.readDeadline.Done():
		return 0, nil, errTimeout
	}
}

func (c *peerConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	return c.WriteToContext(context.Background(), p, addr)
}

// WriteToContext is WriteTo; a UDP write does not block long enough for
// ctx to matter once it has begun.
func (c *peerConn) WriteToContext(ctx context.Context, p []byte, addr net.Addr) (int, error) {
	select {
	case <-c.writeDeadline.Done():
		return 0, errTimeout
	case <-ctx.Done():
		return 0, ctx.Err()
	default:
	}
	if c.muted.Load() {
		return len(p), nil // parked: the device must not see its closing
	}
	c.observe(p, addr)
	if r := c.resv.Load(); r != nil {
		if seq, ok := maxSeq(p); ok {
			// the records after the first of a datagram follow it
			if err := r.admit(seq + maxRecords); err != nil {
				return 0, err
			}
		}
	}
	c.lastIO.Store(time.Now().UnixNano())
	if _, err := c.d.pc.WriteTo(continueSeq(p, c.seqBase), addr); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Conn is c itself: there is no other connection under it.
func (c *peerConn) Conn() net.PacketConn { return c }

var _ netctx.PacketConn = (*peerConn)(nil)

// continueSeq returns p with the sequence numbers of its epoch-0 records
// raised by base, in a copy (a writer's buffer is not to be changed).
// pion numbers its records from 0, as if it had sent none; the client has
// already seen the HelloVerifyRequest under the first ClientHello's
// number, and drops records it has seen as replays. From the second
// ClientHello's number on, as mbedTLS's server counts after a stateless
// cookie exchange, they are new. Epoch-0 records are not authenticated,
// so the number may change; they come before any other in a datagram.
func continueSeq(p []byte, base uint64) []byte {
	const rec = recordlayer.FixedHeaderSize
	if base == 0 {
		return p
	}
	var out []byte
	for off := 0; off+rec <= len(p); {
		if protocol.ContentType(p[off]) == protocol.ContentTypeConnectionID || p[off+3] != 0 || p[off+4] != 0 {
			break
		}
		if out == nil {
			out = bytes.Clone(p)
		}
		seq := uint64(binary.BigEndian.Uint16(out[off+5:]))<<32 | uint64(binary.BigEndian.Uint32(out[off+7:]))
		seq += base
		binary.BigEndian.PutUint16(out[off+5:], uint16(seq>>32))
		binary.BigEndian.PutUint32(out[off+7:], uint32(seq))
		off += rec + int(binary.BigEndian.Uint16(p[off+11:]))
	}
	if out == nil {
		return p
	}
	return out
}

// observe learns from what the association sends: the Connection ID its
// ServerHello gives the client, that its handshake has reached the
// encrypted epoch, and, as pion's listener does, frees the first address
// once the client moved to another under its Connection ID.
func (c *peerConn) observe(p []byte, addr net.Addr) {
	if c.settled.Load() && (!c.watchMove.Load() || addr.String() == c.key) {
		return
	}
	d := c.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if !c.sentEnc {
		c.sentEnc = encrypting(p)
		if d.cidSize > 0 && c.cid == "" {
			if recs, err := recordlayer.UnpackDatagram(p); err == nil {
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

// startsHello reports whether the datagram's first record is an epoch-0
// handshake record starting a ClientHello (its first fragment).
func startsHello(pkt []byte) bool {
	const rec = recordlayer.FixedHeaderSize
	return len(pkt) >= rec+handshake.HeaderLength && protocol.ContentType(pkt[0]) == protocol.ContentTypeHandshake &&
		binary.BigEndian.Uint16(pkt[3:5]) == 0 && handshake.Type(pkt[rec]) == handshake.TypeClientHello &&
		uint24(pkt[rec+6:]) == 0
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
