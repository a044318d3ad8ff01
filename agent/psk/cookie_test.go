package psk

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/pion/dtls/v3/pkg/protocol/handshake"
)

// clock is a settable time for the cookies' rotation.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func mustHello(t testing.TB, pkt []byte) *hello {
	t.Helper()
	h, err := parseHello(pkt)
	if err != nil {
		t.Fatalf("parse %x: %v", pkt, err)
	}
	return h
}

// withCookie returns a copy of h as its second ClientHello would be,
// returning cookie.
func withCookie(h *hello, cookie []byte) *hello {
	c := *h
	c.cookie = cookie
	return &c
}

func TestCookie(t *testing.T) {
	addr := netip.MustParseAddrPort("192.0.2.7:50000")
	base := mustHello(t, mbedHello{}.record(0, 0, nil))
	changed := func(f func(h *hello)) *hello {
		c := *base
		c.random = bytes.Clone(c.random)
		c.sessionID = bytes.Clone(c.sessionID)
		c.suites = bytes.Clone(c.suites)
		c.compression = bytes.Clone(c.compression)
		f(&c)
		return &c
	}
	other := newCookies(time.Minute, nil)
	for _, tc := range []struct {
		name  string
		from  netip.AddrPort // the second ClientHello's address
		back  *hello         // the second ClientHello, without its cookie
		maker *cookies       // made by another secret; nil: the one checking
		after time.Duration  // between the two ClientHellos
		valid bool
	}{
		{name: "returned at once", from: addr, back: base, valid: true},
		{name: "returned after one rotation", from: addr, back: base, after: 90 * time.Second, valid: true},
		{name: "returned just before the second rotation", from: addr, back: base, after: 2*time.Minute - time.Nanosecond, valid: true},
		{name: "expired: two rotations", from: addr, back: base, after: 2 * time.Minute},
		{name: "expired: long after", from: addr, back: base, after: time.Hour},
		{name: "another address", from: netip.MustParseAddrPort("192.0.2.8:50000"), back: base},
		{name: "another port", from: netip.MustParseAddrPort("192.0.2.7:50001"), back: base},
		{name: "the address as IPv4-mapped IPv6", from: netip.MustParseAddrPort("[::ffff:192.0.2.7]:50000"), back: base, valid: true},
		{name: "another secret", from: addr, back: base, maker: other},
		{name: "another random", from: addr, back: changed(func(h *hello) { h.random[31] ^= 1 })},
		{name: "another version", from: addr, back: changed(func(h *hello) { h.version[1] = 0xff })},
		{name: "another session id", from: addr, back: changed(func(h *hello) { h.sessionID = []byte{1} })},
		{name: "other cipher suites", from: addr, back: changed(func(h *hello) { h.suites = h.suites[2:] })},
		{name: "other compression methods", from: addr, back: changed(func(h *hello) { h.compression = []byte{1, 0} })},
		{name: "a suite moved into the session id", from: addr, back: changed(func(h *hello) {
			h.sessionID = h.suites[:2]
			h.suites = h.suites[2:]
		})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := &clock{t: time.Unix(1_700_000_000, 0)}
			k := newCookies(time.Minute, clk.now)
			maker := k
			if tc.maker != nil {
				maker = tc.maker
			}
			cookie := maker.make(addr, base)
			if len(cookie) != cookieLen {
				t.Fatalf("cookie of %d bytes, want %d", len(cookie), cookieLen)
			}
			clk.t = clk.t.Add(tc.after)
			if got := k.valid(tc.from, withCookie(tc.back, cookie)); got != tc.valid {
				t.Fatalf("valid = %v, want %v", got, tc.valid)
			}
		})
	}

	t.Run("cut or lengthened", func(t *testing.T) {
		k := newCookies(time.Minute, nil)
		cookie := k.make(addr, base)
		for _, c := range [][]byte{nil, cookie[:cookieLen-1], append(bytes.Clone(cookie), 0)} {
			if k.valid(addr, withCookie(base, c)) {
				t.Errorf("cookie %x accepted", c)
			}
		}
	})
	t.Run("new after a rotation", func(t *testing.T) {
		clk := &clock{t: time.Unix(1_700_000_000, 0)}
		k := newCookies(time.Minute, clk.now)
		first := k.make(addr, base)
		clk.t = clk.t.Add(time.Minute)
		second := k.make(addr, base)
		if bytes.Equal(first, second) {
			t.Fatal("same cookie under a new secret")
		}
		clk.t = clk.t.Add(time.Minute)
		if k.valid(addr, withCookie(base, first)) || !k.valid(addr, withCookie(base, second)) {
			t.Fatal("after two rotations the first cookie must be refused and the second accepted")
		}
	})
}

// minimalHello is the smallest ClientHello parseHello takes: no session
// id, no cookie, one suite, one compression method, no extensions.
func minimalHello() []byte {
	body := append([]byte{0xfe, 0xfd}, bytes.Repeat([]byte{7}, 32)...)
	body = append(body, 0, 0, 0, 2, 0xc0, 0xa8, 1, 0)
	n := len(body)
	hs := []byte{1, 0, 0, byte(n), 0, 0, 0, 0, 0, 0, 0, byte(n)}
	rec := []byte{22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, byte(len(hs) + n)}
	return append(append(rec, hs...), body...)
}

func TestParseHello(t *testing.T) {
	good := mbedHello{cid: cidRFC}.record(0x0102_0304_0506, 3, []byte("cookie"))
	set := func(pkt []byte, f func(p []byte) []byte) []byte { return f(bytes.Clone(pkt)) }
	for _, tc := range []struct {
		name string
		pkt  []byte
		ok   bool
	}{
		{"mbedTLS hello", good, true},
		{"smallest", minimalHello(), true},
		{"a second record after it", append(bytes.Clone(good), 23, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0), true},
		{"empty", nil, false},
		{"record header only", good[:13], false},
		{"record longer than the datagram", good[:len(good)-1], false},
		{"not a handshake record", set(good, func(p []byte) []byte { p[0] = 23; return p }), false},
		{"epoch 1", set(good, func(p []byte) []byte { p[4] = 1; return p }), false},
		{"not a ClientHello", set(good, func(p []byte) []byte { p[13] = 2; return p }), false},
		{"a later fragment", set(good, func(p []byte) []byte { p[13+8] = 1; return p }), false},
		{"the first fragment", set(good, func(p []byte) []byte { p[13+11]--; return p }), false},
		{"message longer than the record", set(good, func(p []byte) []byte { p[13+3]++; p[13+11]++; return p }), false},
		{"session id over 32 bytes", set(minimalHello(), func(p []byte) []byte { p[13+12+34] = 33; return p }), false},
		{"session id beyond the message", set(minimalHello(), func(p []byte) []byte { p[13+12+34] = 9; return p }), false},
		{"cookie beyond the message", set(minimalHello(), func(p []byte) []byte { p[13+12+35] = 200; return p }), false},
		{"odd cipher suites", set(minimalHello(), func(p []byte) []byte { p[13+12+37] = 3; return p }), false},
		{"no cipher suites", set(minimalHello(), func(p []byte) []byte {
			return shrinkHello(append(p[:13+12+37:13+12+37], 0, 1, 0), 2)
		}), false},
		{"no compression methods", set(minimalHello(), func(p []byte) []byte {
			return shrinkHello(append(p[:len(p)-2:len(p)-2], 0), 1)
		}), false},
		{"cut before the compression methods", shrinkHello(bytes.Clone(minimalHello()[:len(minimalHello())-2]), 2), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := parseHello(tc.pkt)
			if (err == nil) != tc.ok {
				t.Fatalf("parse: %v, want ok %v", err, tc.ok)
			}
			if !tc.ok {
				return
			}
			if len(appendHelloVerify(nil, h, make([]byte, cookieLen))) > len(tc.pkt) {
				t.Errorf("HelloVerifyRequest larger than the %d-byte hello", len(tc.pkt))
			}
		})
	}

	h := mustHello(t, good)
	if h.recordSeq != 0x0102_0304_0506 || h.msgSeq != 3 || string(h.cookie) != "cookie" || h.version != [2]byte{0xfe, 0xfd} ||
		!bytes.Equal(h.random, bytes.Repeat([]byte{0x5a}, 32)) || len(h.sessionID) != 0 || len(h.suites) != 80 ||
		!bytes.Equal(h.compression, []byte{0}) {
		t.Fatalf("parsed %+v", h)
	}
}

// shrinkHello sets the lengths of a one-record ClientHello whose body was
// cut by n bytes.
func shrinkHello(p []byte, n int) []byte {
	binary.BigEndian.PutUint16(p[11:], binary.BigEndian.Uint16(p[11:])-uint16(n))
	l := uint24(p[14:]) - n
	p[14], p[15], p[16] = byte(l>>16), byte(l>>8), byte(l)
	p[22], p[23], p[24] = byte(l>>16), byte(l>>8), byte(l)
	return p
}

// The HelloVerifyRequest is what pion's client reads: the cookie, the
// ClientHello's record sequence number and message_seq, DTLS 1.2.
func TestHelloVerifyRequest(t *testing.T) {
	pkt := mbedHello{}.record(0x0000_0000_0105, 0, nil)
	h := mustHello(t, pkt)
	cookie := bytes.Repeat([]byte{0xc0}, cookieLen)
	b := appendHelloVerify(nil, h, cookie)
	if len(b) != hvrLen || hvrLen > len(minimalHello()) {
		t.Fatalf("HelloVerifyRequest of %d bytes (hvrLen %d), the smallest hello %d", len(b), hvrLen, len(minimalHello()))
	}
	if !bytes.Equal(b[:13], []byte{22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 1, 5, 0, byte(hvrLen - 13)}) {
		t.Fatalf("record header % x", b[:13])
	}
	var msg handshake.Handshake
	if err := msg.Unmarshal(b[13:]); err != nil {
		t.Fatal(err)
	}
	hvr, ok := msg.Message.(*handshake.MessageHelloVerifyRequest)
	if !ok || msg.Header.MessageSequence != 0 || !bytes.Equal(hvr.Cookie, cookie) || hvr.Version.Major != 0xfe || hvr.Version.Minor != 0xfd {
		t.Fatalf("message %+v %+v", msg.Header, msg.Message)
	}
}

func TestContinueSeq(t *testing.T) {
	record := func(typ byte, epoch uint16, seq uint64, body ...byte) []byte {
		b := []byte{typ, 0xfe, 0xfd, byte(epoch >> 8), byte(epoch)}
		b = append(b, byte(seq>>40), byte(seq>>32), byte(seq>>24), byte(seq>>16), byte(seq>>8), byte(seq))
		b = binary.BigEndian.AppendUint16(b, uint16(len(body)))
		return append(b, body...)
	}
	cat := func(rs ...[]byte) []byte { return slices.Concat(rs...) }
	for _, tc := range []struct {
		name     string
		in, want []byte
		base     uint64
	}{
		{"server hello flight", cat(record(22, 0, 0, 2, 0), record(22, 0, 1, 12, 0), record(22, 0, 2, 14, 0)),
			cat(record(22, 0, 5, 2, 0), record(22, 0, 6, 12, 0), record(22, 0, 7, 14, 0)), 5},
		{"change cipher spec, then epoch 1", cat(record(20, 0, 3, 1), record(22, 1, 0, 9, 9)),
			cat(record(20, 0, 8, 1), record(22, 1, 0, 9, 9)), 5},
		{"connection id record", record(25, 1, 4, 1, 2, 3), record(25, 1, 4, 1, 2, 3), 5},
		{"application data", record(23, 1, 4, 1, 2, 3), record(23, 1, 4, 1, 2, 3), 5},
		{"carry into the upper bits", record(22, 0, 0xffff_ffff), record(22, 0, 0x1_0000_0000), 1},
		{"base 0", record(22, 0, 3), record(22, 0, 3), 0},
		{"a record cut short", append(record(22, 0, 1, 1, 2), 22, 0xfe), append(record(22, 0, 2, 1, 2), 22, 0xfe), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := bytes.Clone(tc.in)
			got := continueSeq(in, tc.base)
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("got  % x\nwant % x", got, tc.want)
			}
			if !bytes.Equal(in, tc.in) {
				t.Fatal("the writer's buffer was changed")
			}
		})
	}
}

// FuzzParseHello checks the ClientHello parser of the stateless cookie
// exchange: where pion reads a ClientHello from the same bytes,
// parseHello reads the same fields (it refuses more: what RFC 5246 does
// not allow, and fragments); what it takes is answered by a
// HelloVerifyRequest no larger than itself, whose cookie checks for the
// same hello.
func FuzzParseHello(f *testing.F) {
	f.Add(mbedHello{}.record(0, 0, nil))
	f.Add(mbedHello{cid: cidRFC}.record(1, 1, bytes.Repeat([]byte{1}, cookieLen)))
	f.Add(minimalHello())
	f.Add([]byte{22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	addr := netip.MustParseAddrPort("127.0.0.1:5000")
	k := newCookies(time.Minute, nil)
	f.Fuzz(func(t *testing.T, pkt []byte) {
		h, err := parseHello(pkt)
		if err != nil {
			return
		}
		var ph handshake.Handshake
		if ph.Unmarshal(pkt[13:]) == nil {
			ch, ok := ph.Message.(*handshake.MessageClientHello)
			if !ok {
				t.Fatalf("pion read a %T", ph.Message)
			}
			var suites []byte
			for _, s := range ch.CipherSuiteIDs {
				suites = binary.BigEndian.AppendUint16(suites, s)
			}
			if !bytes.Equal(h.cookie, ch.Cookie) || !bytes.Equal(h.sessionID, ch.SessionID) || !bytes.Equal(h.suites, suites) ||
				h.version != [2]byte{ch.Version.Major, ch.Version.Minor} || h.msgSeq != ph.Header.MessageSequence {
				t.Fatalf("parseHello %+v, pion %+v", h, ch)
			}
		}
		cookie := k.make(addr, h)
		if n := len(appendHelloVerify(nil, h, cookie)); n > len(pkt) {
			t.Fatalf("HelloVerifyRequest of %d bytes answers %d", n, len(pkt))
		}
		if !k.valid(addr, withCookie(h, cookie)) {
			t.Fatal("a cookie made for the hello does not check")
		}
	})
}
