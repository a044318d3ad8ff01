package coapfront

import (
	"bytes"
	"strings"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"
)

// datagrams are well-formed and malformed CoAP messages, the seeds of
// FuzzParse.
var datagrams = map[string][]byte{
	"register":        append([]byte{0x42, 0x02, 0x12, 0x34, 0xaa, 0xbb, 0xb2, 'r', 'd', 0x47, 'e', 'p', '=', 'd', 'e', 'v', '1', 0xff}, "</3/0>"...),
	"update":          {0x50, 0x02, 0x00, 0x01, 0xb2, 'r', 'd', 0x02, 'a', '1'},
	"notification":    {0x51, 0x45, 0x00, 0x02, 0x07, 0x61, 0x05, 0xff, 'x'},
	"empty ack":       {0x60, 0x00, 0x00, 0x03},
	"ping":            {0x40, 0x00, 0x00, 0x04},
	"long path":       {0x40, 0x01, 0x00, 0x05, 0xb1, 'a', 0x01, 'b', 0x01, 'c'},
	"extended option": append([]byte{0x40, 0x01, 0x00, 0x06, 0xbd, 0x02}, bytes.Repeat([]byte{'p'}, 15)...),
	"short":           {0x40, 0x01},
	"version 2":       {0x80, 0x01, 0x00, 0x07},
	"token 9":         {0x49, 0x01, 0x00, 0x08, 1, 2, 3, 4, 5, 6, 7, 8, 9},
	"token cut":       {0x44, 0x01, 0x00, 0x09, 1, 2},
	"marker only":     {0x40, 0x01, 0x00, 0x0a, 0xff},
	"delta 15":        {0x40, 0x01, 0x00, 0x0b, 0xf1, 'x'},
	"length 15":       {0x40, 0x01, 0x00, 0x0c, 0x1f, 'x'},
	"option cut":      {0x40, 0x01, 0x00, 0x0d, 0xb5, 'r', 'd'},
	"extension cut":   {0x40, 0x01, 0x00, 0x0e, 0xe1, 0x01},
}

func TestParse(t *testing.T) {
	h, err := Parse(datagrams["register"])
	if err != nil || h.Type != message.Confirmable || h.Code != codes.POST || h.MessageID != 0x1234 ||
		!bytes.Equal(h.Token, []byte{0xaa, 0xbb}) || !h.PathIs("rd") || h.Observe {
		t.Errorf("register: %+v, %v", h, err)
	}
	h, err = Parse(datagrams["update"])
	if err != nil || h.Type != message.NonConfirmable || h.PathLen != 2 || !h.PathIs("rd", "a1") || h.PathIs("rd") {
		t.Errorf("update: %+v, %v", h, err)
	}
	h, err = Parse(datagrams["notification"])
	if err != nil || !h.IsResponse() || h.IsRequest() || !h.Observe || len(h.Token) != 1 {
		t.Errorf("notification: %+v, %v", h, err)
	}
	h, err = Parse(datagrams["long path"])
	if err != nil || h.PathLen != 3 || h.PathIs("a", "b") {
		t.Errorf("long path: %+v, %v", h, err)
	}
	for name, want := range map[string]error{
		"short": ErrShort, "version 2": ErrVersion, "token 9": ErrToken, "token cut": ErrToken,
		"marker only": ErrPayload, "delta 15": ErrOption, "length 15": ErrOption, "option cut": ErrOption,
		"extension cut": ErrOption,
	} {
		if _, err := Parse(datagrams[name]); err != want {
			t.Errorf("%s: %v, want %v", name, err, want)
		}
	}
}

// FuzzParse: Parse never panics, and what it accepts go-coap decodes to
// the same type, code, message ID, token and Uri-Path; what go-coap
// accepts, Parse accepts (so admission never drops a valid message for
// its form).
func FuzzParse(f *testing.F) {
	for _, d := range datagrams {
		f.Add(d)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := Parse(b)
		var m message.Message
		_, cerr := coder.DefaultCoder.Decode(b, &m)
		if cerr == nil && err != nil {
			t.Fatalf("go-coap decodes % x, Parse refuses it: %v", b, err)
		}
		if err != nil || cerr != nil {
			return
		}
		if h.Type != m.Type || h.Code != m.Code || int32(h.MessageID) != m.MessageID || !bytes.Equal(h.Token, m.Token) {
			t.Fatalf("% x: Parse %+v, go-coap %v", b, h, m)
		}
		var segs []string
		for i := 0; i < min(h.PathLen, MaxPath); i++ {
			segs = append(segs, string(h.Path[i]))
		}
		if path, err := m.Options.Path(); err == nil && h.PathLen <= MaxPath && strings.TrimPrefix(path, "/") != strings.Join(segs, "/") {
			t.Fatalf("% x: path %q, go-coap %q", b, segs, path)
		}
		if h.Observe != m.Options.HasOption(message.Observe) {
			t.Fatalf("% x: observe %v", b, h.Observe)
		}
	})
}
