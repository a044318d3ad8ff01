package psk

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/dtls/v3/pkg/protocol"
	"github.com/pion/dtls/v3/pkg/protocol/handshake"
	"github.com/pion/dtls/v3/pkg/protocol/recordlayer"
)

// cookieLen is the length of the cookies of HelloVerifyRequests: an
// untruncated HMAC-SHA256. It makes a HelloVerifyRequest of hvrLen bytes,
// less than the smallest ClientHello parseHello accepts (67 bytes).
const (
	cookieLen = sha256.Size
	hvrLen    = recordlayer.FixedHeaderSize + handshake.HeaderLength + 2 + 1 + cookieLen
)

// cookieRotation is how often the secret of the cookies changes; a cookie
// is accepted until the second change after it was made, so for one to
// two periods. A client returns its cookie within a round trip; the
// shorter the life, the shorter a captured ClientHello can be replayed.
const cookieRotation = 2 * time.Minute

// cookies makes and checks the cookies of the HelloVerifyRequests that
// the demux sends without keeping state (RFC 6347, section 4.2.1):
// Cookie = HMAC(Secret, Client-IP, Client-Parameters). The parameters are
// those the second ClientHello must repeat (version, random, session id,
// cipher suites, compression methods), so a cookie proves the address
// answered for this very hello, and pion, which sees only the second
// ClientHello, negotiates from the same parameters the first one offered.
type cookies struct {
	every time.Duration
	now   func() time.Time

	mu        sync.Mutex
	cur, prev [32]byte
	rotated   time.Time // when cur was drawn
}

func newCookies(every time.Duration, now func() time.Time) *cookies {
	if now == nil {
		now = time.Now
	}
	k := &cookies{every: every, now: now, rotated: now()}
	// crypto/rand.Read never fails and fills the buffer (Go 1.24 and
	// later); prev is random too, so it matches nothing it did not make.
	_, _ = rand.Read(k.cur[:])
	_, _ = rand.Read(k.prev[:])
	return k
}

// secrets returns the current and the previous secret, drawing new ones
// when their time has come: lazily, so no goroutine runs for it.
func (k *cookies) secrets() (cur, prev [32]byte) {
	now := k.now()
	k.mu.Lock()
	defer k.mu.Unlock()
	if age := now.Sub(k.rotated); age >= 2*k.every {
		// both are too old: nothing made before is accepted any more
		_, _ = rand.Read(k.prev[:])
		_, _ = rand.Read(k.cur[:])
		k.rotated = now
	} else if age >= k.every {
		k.prev = k.cur
		_, _ = rand.Read(k.cur[:])
		k.rotated = k.rotated.Add(k.every)
	}
	return k.cur, k.prev
}

// make returns the cookie for hello from addr.
func (k *cookies) make(addr netip.AddrPort, h *hello) []byte {
	cur, _ := k.secrets()
	return cookieMAC(cur[:], addr, h)
}

// valid reports whether hello's cookie was made for it and addr under
// the current or the previous secret.
func (k *cookies) valid(addr netip.AddrPort, h *hello) bool {
	if len(h.cookie) != cookieLen {
		return false
	}
	cur, prev := k.secrets()
	return hmac.Equal(h.cookie, cookieMAC(cur[:], addr, h)) || hmac.Equal(h.cookie, cookieMAC(prev[:], addr, h))
}

func cookieMAC(secret []byte, addr netip.AddrPort, h *hello) []byte {
	m := hmac.New(sha256.New, secret)
	ip := addr.Addr().Unmap().As16()
	var b [16 + 2 + 2]byte
	copy(b[:16], ip[:])
	binary.BigEndian.PutUint16(b[16:], addr.Port())
	copy(b[18:], h.version[:])
	m.Write(b[:])
	m.Write(h.random)
	// Lengths go in too, so that no two hellos share an input.
	m.Write([]byte{byte(len(h.sessionID))})
	m.Write(h.sessionID)
	m.Write(binary.BigEndian.AppendUint16(nil, uint16(len(h.suites))))
	m.Write(h.suites)
	m.Write([]byte{byte(len(h.compression))})
	m.Write(h.compression)
	return m.Sum(nil)
}

// addrPort is the address and port a cookie is bound to.
func addrPort(a net.Addr) (netip.AddrPort, bool) {
	if u, ok := a.(*net.UDPAddr); ok {
		return u.AddrPort(), true
	}
	ap, err := netip.ParseAddrPort(a.String())
	return ap, err == nil
}

// hello is what a ClientHello says that the cookie exchange needs. Its
// slices point into the datagram.
type hello struct {
	recordSeq   uint64 // 48 bits
	msgSeq      uint16
	version     [2]byte
	random      []byte
	sessionID   []byte
	cookie      []byte
	suites      []byte
	compression []byte
}

var errNotHello = errors.New("not an unfragmented ClientHello")

// parseHello reads the ClientHello that opens the datagram: an epoch-0
// handshake record holding the whole message in one fragment, with valid
// lengths up to the compression methods; extensions are left to pion.
// A fragmented ClientHello is refused, as mbedTLS's server refuses one
// before its cookie is verified: a cookie covers the whole message's
// parameters, and clients send their hellos whole.
func parseHello(pkt []byte) (*hello, error) {
	const rec, hs = recordlayer.FixedHeaderSize, handshake.HeaderLength
	if len(pkt) < rec+hs || protocol.ContentType(pkt[0]) != protocol.ContentTypeHandshake ||
		binary.BigEndian.Uint16(pkt[3:5]) != 0 || handshake.Type(pkt[rec]) != handshake.TypeClientHello {
		return nil, errNotHello
	}
	recLen := int(binary.BigEndian.Uint16(pkt[11:13]))
	if rec+recLen > len(pkt) {
		return nil, errNotHello
	}
	h := &hello{
		recordSeq: uint64(binary.BigEndian.Uint16(pkt[5:7]))<<32 | uint64(binary.BigEndian.Uint32(pkt[7:11])),
		msgSeq:    binary.BigEndian.Uint16(pkt[rec+4 : rec+6]),
	}
	msgLen := uint24(pkt[rec+1:])
	fragOff, fragLen := uint24(pkt[rec+6:]), uint24(pkt[rec+9:])
	if fragOff != 0 || fragLen != msgLen || hs+msgLen > recLen {
		return nil, errNotHello
	}
	body := pkt[rec+hs : rec+hs+msgLen]
	if len(body) < 2+32+1 {
		return nil, errNotHello
	}
	h.version = [2]byte{body[0], body[1]}
	h.random = body[2:34]
	rest := body[34:]
	var ok bool
	if h.sessionID, rest, ok = vector8(rest); !ok || len(h.sessionID) > 32 {
		return nil, errNotHello
	}
	if h.cookie, rest, ok = vector8(rest); !ok {
		return nil, errNotHello
	}
	if len(rest) < 2 {
		return nil, errNotHello
	}
	n := int(binary.BigEndian.Uint16(rest))
	if n < 2 || n%2 != 0 || 2+n > len(rest) {
		return nil, errNotHello
	}
	h.suites, rest = rest[2:2+n], rest[2+n:]
	if h.compression, _, ok = vector8(rest); !ok || len(h.compression) == 0 {
		return nil, errNotHello
	}
	return h, nil
}

func uint24(b []byte) int { return int(b[0])<<16 | int(b[1])<<8 | int(b[2]) }

// vector8 splits a vector with a one-byte length off b.
func vector8(b []byte) (v, rest []byte, ok bool) {
	if len(b) < 1 {
		return nil, b, false
	}
	n := 1 + int(b[0])
	if n > len(b) {
		return nil, b, false
	}
	return b[1:n], b[n:], true
}

// appendHelloVerify appends to b the HelloVerifyRequest answering h with
// cookie. Its record takes the ClientHello's record sequence number (RFC
// 6347, section 4.2.1: a client may get several) and its message the
// ClientHello's message_seq, as mbedTLS's stateless answer does; both
// versions are DTLS 1.2, as pion's own HelloVerifyRequest had them,
// because tinydtls clients accept no other.
func appendHelloVerify(b []byte, h *hello, cookie []byte) []byte {
	const bodyLen = 2 + 1 + cookieLen
	b = append(b, byte(protocol.ContentTypeHandshake), 0xfe, 0xfd, 0, 0)
	b = append(b, byte(h.recordSeq>>40), byte(h.recordSeq>>32), byte(h.recordSeq>>24), byte(h.recordSeq>>16), byte(h.recordSeq>>8), byte(h.recordSeq))
	b = binary.BigEndian.AppendUint16(b, handshake.HeaderLength+bodyLen)
	b = append(b, byte(handshake.TypeHelloVerifyRequest), 0, 0, bodyLen)
	b = binary.BigEndian.AppendUint16(b, h.msgSeq)
	b = append(b, 0, 0, 0, 0, 0, bodyLen)
	b = append(b, 0xfe, 0xfd, cookieLen)
	return append(b, cookie...)
}
