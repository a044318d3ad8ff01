package simulator

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/udp/coder"

	"github.com/lwm2m-agent/lwm2m-agent/agent/codec"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// encodeRequest builds the datagram of a server request for the seeds.
func encodeRequest(t testing.TB, code codes.Code, path string, opts message.Options, payload []byte) []byte {
	t.Helper()
	for _, seg := range splitPath(path) {
		opts = append(opts, opt(message.URIPath, seg))
	}
	m := message.Message{Type: message.Confirmable, MessageID: 1, Token: message.Token{1, 2}, Code: code, Options: sortOptions(opts), Payload: payload}
	buf := make([]byte, 2048)
	n, err := coder.DefaultCoder.Encode(m, buf)
	if err != nil {
		t.Fatal(err)
	}
	return buf[:n]
}

func sortOptions(o message.Options) message.Options {
	out := message.Options{}
	for _, x := range o {
		out = out.Add(x)
	}
	return out
}

func uintOpt(id message.OptionID, v uint32) message.Option {
	buf := make([]byte, 4)
	n, _ := message.EncodeUint32(buf, v)
	return message.Option{ID: id, Value: buf[:n]}
}

// FuzzServe feeds arbitrary datagrams to a device's request handling: it
// must never panic, must answer with a response code, and whatever it
// answers with content must decode in the format it claims.
func FuzzServe(f *testing.F) {
	tlv, _ := codec.Encode(codec.TLV, node.MustParsePath("/3303/1"), []node.Record{{Path: node.MustParsePath("/3303/1/5750"), Value: node.String("x")}})
	text := []byte("+02:00")
	for _, seed := range [][]byte{
		encodeRequest(f, codes.GET, "/3/0", message.Options{uintOpt(message.Accept, uint32(codec.TLV))}, nil),
		encodeRequest(f, codes.GET, "/3303/0/5700", message.Options{uintOpt(message.Observe, 0), uintOpt(message.Accept, uint32(codec.SenMLCBOR))}, nil),
		encodeRequest(f, codes.GET, "/3/0", message.Options{uintOpt(message.Accept, uint32(codec.LinkFmt))}, nil),
		encodeRequest(f, codes.PUT, "/3/0/14", message.Options{uintOpt(message.ContentFormat, uint32(codec.Text))}, text),
		encodeRequest(f, codes.PUT, "/3/0/9", message.Options{opt(message.URIQuery, "pmin=1"), opt(message.URIQuery, "gt=5")}, nil),
		encodeRequest(f, codes.POST, "/3303", message.Options{uintOpt(message.ContentFormat, uint32(codec.TLV))}, tlv),
		encodeRequest(f, codes.POST, "/3/0/4", nil, nil),
		encodeRequest(f, codes.DELETE, "/3303/0", nil, nil),
		encodeRequest(f, codes.FETCH, "/", message.Options{uintOpt(message.ContentFormat, uint32(codec.SenMLJSON))}, []byte(`[{"n":"/3/0/0"}]`)),
		encodeRequest(f, codes.IPATCH, "/", message.Options{uintOpt(message.ContentFormat, uint32(codec.SenMLJSON))}, []byte(`[{"n":"/3/0/14","vs":"+01:00"}]`)),
	} {
		f.Add(seed)
	}
	msgs := pool.New(0, 0)
	f.Fuzz(func(t *testing.T, data []byte) {
		// A fresh device each time, so that a failing input fails alone.
		sim, err := New(Config{Server: "127.0.0.1:5783"})
		if err != nil {
			t.Fatal(err)
		}
		d := sim.devices[0]
		m := msgs.AcquireMessage(context.Background())
		defer msgs.ReleaseMessage(m)
		if _, err := m.UnmarshalWithDecoder(coder.DefaultCoder, data); err != nil {
			return
		}
		if c := m.Code(); c < codes.GET || c > codes.IPATCH {
			return
		}
		rep := d.serve(m, time.Now())
		if rep.code < codes.Created || rep.code > codes.ProxyingNotSupported {
			t.Fatalf("answer %v is not a response code", rep.code)
		}
		if rep.code == codes.Content && rep.format != codec.LinkFmt {
			base, err := m.Path()
			if err != nil {
				base = "/"
			}
			if _, err := codec.Decode(rep.format, node.MustParsePath("/"+trimSlash(base)), rep.payload, resolver); err != nil {
				t.Fatalf("answer in %v does not decode: %v\n%x", rep.format, err, rep.payload)
			}
		}
		if rep.code == codes.Content && rep.format == codec.LinkFmt {
			if _, err := codec.ParseLinks(rep.payload); err != nil {
				t.Fatalf("discover answer does not parse: %v\n%s", err, rep.payload)
			}
		}
		// Whatever a write stored, the device can still report.
		for _, o := range []uint16{objServer, objDevice, objFirmware, objTemperature} {
			base := node.ObjectPath(o)
			recs, err := d.tree.read(base, time.Now())
			if err != nil {
				t.Fatalf("read %v after the request: %v", base, err)
			}
			b, err := codec.Encode(codec.SenMLCBOR, base, recs)
			if err != nil {
				t.Fatalf("encode %v after the request: %v", base, err)
			}
			if _, err := codec.Decode(codec.SenMLCBOR, base, b, resolver); err != nil {
				t.Fatalf("values of %v after the request do not decode: %v", base, err)
			}
		}
	})
}

func trimSlash(s string) string {
	for len(s) > 0 && s[0] == '/' {
		s = s[1:]
	}
	return s
}

// FuzzAttrQueries checks that Write-Attributes queries never panic and
// that accepted ones satisfy the rules apply enforces.
func FuzzAttrQueries(f *testing.F) {
	for _, s := range []string{"pmin=1", "pmax=60", "gt=20.5", "lt=1", "st=0.5", "cancel", "pmin", "epmin=2"} {
		f.Add(s, "pmax=10")
	}
	p := node.MustParsePath("/3303/0/5700")
	f.Fuzz(func(t *testing.T, a, b string) {
		c, err := parseAttrQueries([]string{a, b}, p)
		if err != nil {
			return
		}
		got, err := c.apply(attrs{})
		if err != nil {
			return
		}
		if got.has(attrLt) && got.has(attrGt) && got.get(attrLt) >= got.get(attrGt) {
			t.Fatalf("accepted lt %v >= gt %v", got.get(attrLt), got.get(attrGt))
		}
		if got.has(attrSt) && got.get(attrSt) < 0 {
			t.Fatalf("accepted negative st")
		}
	})
}

// FuzzPathList checks the decoder of composite path lists: no panic, and
// whatever it accepts is a bounded list of valid paths.
func FuzzPathList(f *testing.F) {
	f.Add(uint8(0), []byte(`[{"n":"/3/0/0"},{"bn":"/3303/0/","n":"5700"}]`))
	f.Add(uint8(1), []byte("\x82\xa1\x00\x66/3/0/0\xa2\x21\x65/4/0/\x00\x612"))
	f.Fuzz(func(t *testing.T, which uint8, payload []byte) {
		format := codec.SenMLJSON
		if which%2 == 1 {
			format = codec.SenMLCBOR
		}
		paths, err := decodePathList(format, payload)
		if err != nil {
			return
		}
		if len(paths) == 0 || len(paths) > maxCompositePaths {
			t.Fatalf("%d paths accepted", len(paths))
		}
		for _, p := range paths {
			if q, err := node.ParsePath(p.String()); err != nil || q != p {
				t.Fatalf("path %v does not round-trip: %v", p, err)
			}
		}
	})
}

// FuzzBootstrap feeds arbitrary datagrams to a device's handling of its
// bootstrap server's requests: no panic, a response code always, content
// that parses in the format it claims, a bootstrap-server account that no
// Bootstrap-Delete removes, and a tree the device can still report and
// take its server accounts from.
func FuzzBootstrap(f *testing.F) {
	sec, _ := codec.Encode(codec.TLV, node.MustParsePath("/0/1"), []node.Record{
		{Path: node.MustParsePath("/0/1/0"), Value: node.String("coap://127.0.0.1:5783")},
		{Path: node.MustParsePath("/0/1/1"), Value: node.Bool(false)},
		{Path: node.MustParsePath("/0/1/2"), Value: node.Int(3)},
		{Path: node.MustParsePath("/0/1/10"), Value: node.Int(1)},
	})
	srv, _ := codec.Encode(codec.SenMLCBOR, node.MustParsePath("/1/0"), []node.Record{
		{Path: node.MustParsePath("/1/0/0"), Value: node.Int(1)},
		{Path: node.MustParsePath("/1/0/1"), Value: node.Int(300)},
		{Path: node.MustParsePath("/1/0/7"), Value: node.String("U")},
	})
	for _, seed := range [][]byte{
		encodeRequest(f, codes.GET, "/", message.Options{uintOpt(message.Accept, uint32(codec.LinkFmt))}, nil),
		encodeRequest(f, codes.GET, "/1", message.Options{uintOpt(message.Accept, uint32(codec.TLV))}, nil),
		encodeRequest(f, codes.DELETE, "/", nil, nil),
		encodeRequest(f, codes.DELETE, "/0/0", nil, nil),
		encodeRequest(f, codes.PUT, "/0/1", message.Options{uintOpt(message.ContentFormat, uint32(codec.TLV))}, sec),
		encodeRequest(f, codes.PUT, "/1/0", message.Options{uintOpt(message.ContentFormat, uint32(codec.SenMLCBOR))}, srv),
		encodeRequest(f, codes.PUT, "/0", message.Options{uintOpt(message.ContentFormat, uint32(codec.SenMLJSON))}, []byte(`[{"bn":"/0/3/","n":"0","vs":"coaps://h"},{"n":"2","v":0}]`)),
		encodeRequest(f, codes.PUT, "/1/0/1", message.Options{uintOpt(message.ContentFormat, uint32(codec.Text))}, []byte("60")),
		encodeRequest(f, codes.POST, "/bs", nil, nil),
	} {
		f.Add(uint8(1), seed)
	}
	msgs := pool.New(0, 0)
	versions := []string{"1.0", "1.1", "1.2"}
	f.Fuzz(func(t *testing.T, version uint8, data []byte) {
		sim, err := New(Config{Bootstrap: "coap://127.0.0.1:5683", Version: versions[int(version)%len(versions)]})
		if err != nil {
			t.Fatal(err)
		}
		d := sim.devices[0]
		d.bsWaiting = true
		m := msgs.AcquireMessage(context.Background())
		defer msgs.ReleaseMessage(m)
		if _, err := m.UnmarshalWithDecoder(coder.DefaultCoder, data); err != nil {
			return
		}
		if c := m.Code(); c < codes.GET || c > codes.IPATCH {
			return
		}
		rep := d.serveBootstrap(m, time.Now())
		if rep.code < codes.Created || rep.code > codes.ProxyingNotSupported {
			t.Fatalf("answer %v is not a response code", rep.code)
		}
		if rep.code == codes.Content {
			if rep.format == codec.LinkFmt {
				if _, err := codec.ParseLinks(rep.payload); err != nil {
					t.Fatalf("discover answer does not parse: %v\n%s", err, rep.payload)
				}
			} else {
				base, _ := m.Path()
				if _, err := codec.Decode(rep.format, node.MustParsePath("/"+trimSlash(base)), rep.payload, resolver); err != nil {
					t.Fatalf("answer in %v does not decode: %v", rep.format, err)
				}
			}
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		if m.Code() == codes.DELETE {
			if _, err := d.accountLocked(true); err != nil {
				t.Fatalf("bootstrap account gone after %v: %v", rep.code, err)
			}
		}
		_, _ = d.accountLocked(false)
		for _, o := range []uint16{objServer, objDevice} {
			base := node.ObjectPath(o)
			recs, err := d.tree.read(base, time.Now())
			if err != nil {
				t.Fatalf("read %v after the request: %v", base, err)
			}
			if _, err := codec.Encode(codec.SenMLCBOR, base, recs); err != nil {
				t.Fatalf("encode %v after the request: %v", base, err)
			}
		}
		if rep.code == codes.Changed && m.Code() == codes.PUT {
			// What a bootstrap write stored, the registration can list.
			if _, err := codec.ParseLinks(d.objectLinksLocked()); err != nil {
				t.Fatalf("object links after the write: %v", err)
			}
		}
	})
}

// FuzzStrict10 feeds LwM2M JSON writes and creates to the strict 1.0
// check: it must never panic and refuses only with 4.00; and whatever it
// accepts and the agent's decoder reads, the agent's encoder writes back
// in a shape it accepts again.
func FuzzStrict10(f *testing.F) {
	paths := []node.Path{
		node.MustParsePath("/3/0/14"), node.MustParsePath("/1/0"), node.MustParsePath("/3303"),
		node.MustParsePath("/1/0/6"), node.MustParsePath("/3/0/13"), node.MustParsePath("/3/0"),
	}
	f.Add(uint8(0), []byte(`{"bn":"/3/0/","e":[{"n":"14","sv":"+03:00"}]}`))
	f.Add(uint8(0), []byte(`{"bn":"/3/0/14","e":[{"sv":"+03:00"}]}`))
	f.Add(uint8(1), []byte(`{"bn":"/1/0/","e":[{"n":"1","v":300},{"n":"6","bv":false},{"n":"7","sv":"U"}]}`))
	f.Add(uint8(1), []byte(`{"bn":"/1/0/","e":[{"n":"1","sv":"300"}]}`))
	f.Add(uint8(2), []byte(`{"bn":"/3303/","e":[{"n":"1/5700","v":12.5},{"n":"1/5701","sv":"Cel"}]}`))
	f.Add(uint8(2), []byte(`{"bn":"/3303/","e":[]}`))
	f.Add(uint8(4), []byte(`{"bn":"/3/0/","e":[{"n":"13","v":1367491215}]}`))
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		p := paths[int(which)%len(paths)]
		err := checkJSON10(builtin, p, body)
		if err != nil {
			if codeOf(err) != codes.BadRequest {
				t.Fatalf("refused with %v, want 4.00: %v", codeOf(err), err)
			}
			return
		}
		recs, derr := codec.Decode(codec.LwM2MJSON, p, body, resolver)
		if derr != nil || len(recs) == 0 {
			return
		}
		enc, eerr := codec.Encode(codec.LwM2MJSON, p, recs)
		if eerr != nil {
			return // NaN and times out of range have no JSON form
		}
		if err := checkJSON10(builtin, p, enc); err != nil {
			t.Fatalf("the agent's encoding of accepted values is refused: %v\n%s\nfrom %s", err, enc, body)
		}
	})
}

// FuzzPushBlocks feeds a device a sequence of pushed blocks as the
// network may bring them (any Block1 option, Size1 and payload, in any
// order) and checks that it never panics, never counts more than its
// flash, and keeps its state machine within the specification's values.
func FuzzPushBlocks(f *testing.F) {
	f.Add([]byte{0x0e, 0, 0, 0x20, 0x1e, 0, 0, 0x20, 0x26, 0, 0, 0x10}, uint32(3000))
	f.Add([]byte{0x06, 0, 0, 0x01, 0x16, 0, 0, 0x01}, uint32(0))
	f.Add([]byte{0x00, 0, 0, 0x00}, uint32(1))
	f.Fuzz(func(t *testing.T, script []byte, size1 uint32) {
		sim, err := New(Config{Server: "127.0.0.1:5783", Firmware: FirmwareConfig{MaxSize: 4096, BlockSize: 64}})
		if err != nil {
			t.Fatal(err)
		}
		d := sim.devices[0]
		msgs := pool.New(0, 0)
		// each step: Block1 option (3 bytes), payload length (1 byte)
		for len(script) >= 4 {
			opt := uint32(script[0])<<16 | uint32(script[1])<<8 | uint32(script[2])
			body := make([]byte, int(script[3])*8)
			script = script[4:]
			m := msgs.AcquireMessage(context.Background())
			m.SetCode(codes.PUT)
			m.SetType(message.Confirmable)
			_ = m.SetPath("/5/0/0")
			m.SetOptionUint32(message.Block1, opt)
			m.SetOptionUint32(message.Size1, size1)
			m.SetBody(bytes.NewReader(body))
			d.mu.Lock()
			a, _ := d.pushBlockLocked(m, opt)
			got, st, res := d.push.got, d.fwStateLocked(), func() int64 { v, _ := d.tree.value(pathFwResult, time.Time{}); return v.Int }()
			d.mu.Unlock()
			msgs.ReleaseMessage(m)
			if !a.drop && (a.code < codes.Created || a.code > codes.ProxyingNotSupported) {
				t.Fatalf("answer %v is not a response code", a.code)
			}
			if got > 4096 {
				t.Fatalf("took %d bytes into 4096 of flash", got)
			}
			if st < fwIdle || st > fwUpdating || res < 0 || res > fwResultCancelled {
				t.Fatalf("state %d result %d out of range", st, res)
			}
		}
	})
}
