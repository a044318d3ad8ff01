package coapfront

import (
	"errors"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// Header is what admission needs of a CoAP datagram (RFC 7252 section 3).
// Parse fills it without allocating: its slices point into the datagram.
type Header struct {
	Type      message.Type
	Code      codes.Code
	MessageID uint16
	Token     []byte
	// Path holds the first MaxPath Uri-Path segments; PathLen counts them
	// all.
	Path    [MaxPath][]byte
	PathLen int
	Observe bool
}

// MaxPath is how many Uri-Path segments a Header keeps: the registration
// interface has at most two (rd/{id}).
const MaxPath = 2

// IsRequest tells a request code (0.01 to 0.31).
func (h *Header) IsRequest() bool { return h.Code >= codes.GET && h.Code < 32 }

// IsResponse tells a response code (2.00 and above).
func (h *Header) IsResponse() bool { return h.Code >= codes.Created }

// PathIs tells whether the Uri-Path is exactly segs.
func (h *Header) PathIs(segs ...string) bool {
	if h.PathLen != len(segs) || len(segs) > MaxPath {
		return false
	}
	for i, s := range segs {
		if string(h.Path[i]) != s {
			return false
		}
	}
	return true
}

// Errors of Parse.
var (
	ErrShort   = errors.New("coap: shorter than its header")
	ErrVersion = errors.New("coap: not version 1")
	ErrToken   = errors.New("coap: token longer than 8 bytes or than the datagram")
	ErrOption  = errors.New("coap: malformed option")
	ErrPayload = errors.New("coap: payload marker without payload")
)

// Option numbers that admission reads.
const (
	optObserve = 6
	optUriPath = 11
)

// Parse reads the header, token and options of a CoAP datagram and checks
// its format: a datagram it refuses is one go-coap would refuse too, so
// dropping it loses nothing.
func Parse(b []byte) (Header, error) {
	var h Header
	if len(b) < 4 {
		return h, ErrShort
	}
	if b[0]>>6 != 1 {
		return h, ErrVersion
	}
	h.Type = message.Type(b[0] >> 4 & 0x3)
	tkl := int(b[0] & 0xf)
	h.Code = codes.Code(b[1])
	h.MessageID = uint16(b[2])<<8 | uint16(b[3])
	if tkl > 8 || 4+tkl > len(b) {
		return h, ErrToken
	}
	h.Token = b[4 : 4+tkl]
	p := b[4+tkl:]
	num := 0
	for len(p) > 0 {
		if p[0] == 0xff {
			if len(p) == 1 {
				return h, ErrPayload
			}
			return h, nil
		}
		delta, length := int(p[0]>>4), int(p[0]&0xf)
		p = p[1:]
		var ok bool
		if delta, p, ok = extend(delta, p); !ok {
			return h, ErrOption
		}
		if length, p, ok = extend(length, p); !ok {
			return h, ErrOption
		}
		if length > len(p) {
			return h, ErrOption
		}
		num += delta
		if num > 0xffff {
			return h, ErrOption
		}
		v := p[:length]
		p = p[length:]
		switch num {
		case optObserve:
			h.Observe = true
		case optUriPath:
			if h.PathLen < MaxPath {
				h.Path[h.PathLen] = v
			}
			h.PathLen++
		}
	}
	return h, nil
}

// extend decodes an option's delta or length nibble with its extended
// bytes (13: one more byte, 14: two more, 15: reserved).
func extend(n int, p []byte) (int, []byte, bool) {
	switch n {
	case 13:
		if len(p) < 1 {
			return 0, p, false
		}
		return int(p[0]) + 13, p[1:], true
	case 14:
		if len(p) < 2 {
			return 0, p, false
		}
		return int(p[0])<<8 | int(p[1]) + 269, p[2:], true
	case 15:
		return 0, p, false
	}
	return n, p, true
}
