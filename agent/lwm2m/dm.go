package lwm2m

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/codec"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"
)

// answer is what the Server keeps of a device's response, copied out of
// go-coap's pooled message.
type answer struct {
	code      codes.Code
	format    codec.Format
	hasFormat bool
	body      []byte
	location  string
	observe   bool
}

// target is what a request needs to know about the registration it goes
// to, read once under the lock.
type target struct {
	rs          *regState
	reg         Registration
	format      codec.Format // of reads and notifications
	writeFormat codec.Format // of writes and creates
	rootDir     string       // "" or "/lwm2m" (no trailing slash)
}

// coapPath maps an LwM2M path to the device's CoAP path under its
// alternate root.
func (t target) coapPath(p node.Path) string {
	return t.rootDir + p.String()
}

func (s *Server) target(endpoint string) (target, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	rs := s.byEndpoint[endpoint]
	if rs == nil {
		return target{}, fmt.Errorf("%w: %s", ErrNotRegistered, endpoint)
	}
	return target{
		rs:          rs,
		reg:         rs.reg,
		format:      formatOf(rs.reg),
		writeFormat: writeFormatOf(rs.reg),
		rootDir:     strings.TrimSuffix(rs.reg.RootPath, "/"),
	}, nil
}

// writeFormatOf is the content format of writes and creates to the
// device: the one set for it, else the one codec.PreferredWrite gives
// (TLV for an LwM2M 1.0 device, whatever it declared).
func writeFormatOf(reg Registration) codec.Format {
	if reg.HasSerialization {
		return reg.Serialization
	}
	return codec.PreferredWrite(reg.Version, reg.ContentFormat)
}

// createFormatOf is the content format of creates: the write format when
// it can carry an instance, else (text, opaque or CBOR set for the
// device) the one its registration suggests for instances.
func createFormatOf(reg Registration) codec.Format {
	if f := writeFormatOf(reg); codec.CarriesInstance(f) {
		return f
	}
	return codec.PreferredWrite(reg.Version, reg.ContentFormat)
}

// formatOf is the content format requests to the device use: the one set
// for it, else the one its registration suggests.
func formatOf(reg Registration) codec.Format {
	if reg.HasSerialization {
		return reg.Serialization
	}
	return codec.Preferred(reg.Version, reg.ContentFormat)
}

// SetFormat makes every later request to the endpoint's registration use
// content format f, until ClearFormat or the registration ends (a new
// Register takes its format from Identity). ErrNotRegistered when the
// endpoint has no registration; ErrUnsupported-wrapping errors from codec
// for a format this server cannot encode.
func (s *Server) SetFormat(endpoint string, f codec.Format) error {
	if !codec.Supports(f) || f == codec.LinkFmt {
		return fmt.Errorf("set format of %s: %w: %v", endpoint, codec.ErrUnsupported, f)
	}
	return s.setFormat(endpoint, f, true)
}

// ClearFormat lets requests to the endpoint use the format its
// registration suggests again (codec.Preferred).
func (s *Server) ClearFormat(endpoint string) error {
	return s.setFormat(endpoint, 0, false)
}

func (s *Server) setFormat(endpoint string, f codec.Format, set bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rs := s.byEndpoint[endpoint]
	if rs == nil {
		return fmt.Errorf("%w: %s", ErrNotRegistered, endpoint)
	}
	rs.reg.Serialization, rs.reg.HasSerialization = f, set
	return nil
}

// Format returns the content format requests to the endpoint use now.
func (s *Server) Format(endpoint string) (codec.Format, error) {
	t, err := s.target(endpoint)
	if err != nil {
		return 0, err
	}
	return t.format, nil
}

// WritesFormat returns the content format writes to the endpoint use now;
// it differs from Format for an LwM2M 1.0 device that declared a format
// other than TLV and has none set.
func (s *Server) WritesFormat(endpoint string) (codec.Format, error) {
	t, err := s.target(endpoint)
	if err != nil {
		return 0, err
	}
	return t.writeFormat, nil
}

// connOf returns the connection to the device's current address: the one
// it last spoke on while that is open, else a fresh one (go-coap closes
// idle ones; the registration outlives them).
func (s *Server) connOf(rs *regState) (*udpClient.Conn, error) {
	s.mu.RLock()
	c, addr, secure := rs.conn, rs.addr, rs.reg.Secure
	s.mu.RUnlock()
	if c != nil && c.Context().Err() == nil {
		return c, nil
	}
	if secure {
		if s.secure == nil {
			return nil, ErrNoSession
		}
		// parked: resumed from its state, without a handshake
		return s.resumeSecure(rs)
	}
	srv := s.coap.Load()
	if srv == nil {
		return nil, errors.New("server is not serving")
	}
	if addr == nil {
		return nil, errors.New("device address unknown")
	}
	c, err := srv.NewConn(addr)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", addr, err)
	}
	s.mu.Lock()
	if rs.addr == addr {
		rs.conn = c
	}
	s.mu.Unlock()
	return c, nil
}

// exchange sends the request that build makes to the device of t and
// returns its answer. It holds one of the registration's NStart slots for
// the whole exchange (block-wise transfers included) and bounds it by the
// request timeout; it ends early when the registration ends.
func (s *Server) exchange(ctx context.Context, t target, build func(ctx context.Context, c *udpClient.Conn) (*pool.Message, error)) (answer, error) {
	timeout := s.cfg.RequestTimeout
	if d, ok := ctx.Value(requestTimeoutKey{}).(time.Duration); ok && d > 0 {
		timeout = d
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	stop := context.AfterFunc(t.rs.ctx, cancel)
	defer stop()

	select {
	case t.rs.sem <- struct{}{}:
	case <-ctx.Done():
		return answer{}, s.requestErr(ctx, t, ctx.Err())
	}
	defer func() { <-t.rs.sem }()

	c, err := s.connOf(t.rs)
	if err != nil {
		s.stats.requestErrors.Add(1)
		return answer{}, err
	}
	req, err := build(ctx, c)
	if err != nil {
		s.stats.requestErrors.Add(1)
		return answer{}, fmt.Errorf("build request: %w", err)
	}
	defer c.ReleaseMessage(req)
	s.stats.requests.Add(1)
	resp, err := c.Do(req)
	if err != nil {
		return answer{}, s.requestErr(ctx, t, err)
	}
	defer c.ReleaseMessage(resp)

	a := answer{code: resp.Code(), observe: resp.HasOption(message.Observe)}
	if cf, err := resp.ContentFormat(); err == nil {
		a.format, a.hasFormat = codec.Format(cf), true
	}
	if resp.Body() != nil {
		body, err := resp.ReadBody()
		if err != nil {
			return answer{}, fmt.Errorf("read answer: %w", err)
		}
		a.body = body
	}
	if loc, err := resp.Options().LocationPath(); err == nil {
		a.location = loc
	}
	if a.code >= codes.BadRequest {
		s.stats.requestErrors.Add(1)
	}
	return a, nil
}

type requestTimeoutKey struct{}

// WithRequestTimeout makes every request to a device made with the
// returned context time out after d instead of Config.RequestTimeout:
// a device may ask for a longer or shorter timeout of its own (its
// lwm2mRequestTimeout), which a deadline on ctx alone could only shorten.
func WithRequestTimeout(ctx context.Context, d time.Duration) context.Context {
	return context.WithValue(ctx, requestTimeoutKey{}, d)
}

// requestErr turns a failed exchange into ErrNotRegistered, ErrTimeout or
// the caller's own cancellation.
func (s *Server) requestErr(ctx context.Context, t target, err error) error {
	switch {
	case t.rs.ctx.Err() != nil:
		return fmt.Errorf("%w: %s (registration ended)", ErrNotRegistered, t.reg.Endpoint)
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded):
		s.stats.requestTimeouts.Add(1)
		return fmt.Errorf("%w: %v", ErrTimeout, err)
	case ctx.Err() != nil:
		return ctx.Err()
	}
	s.stats.requestErrors.Add(1)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		s.stats.requestTimeouts.Add(1)
		return fmt.Errorf("%w: %v", ErrTimeout, err)
	}
	return err
}

// expect returns a ResponseError unless a has one of the success codes.
func expect(a answer, ok ...codes.Code) error {
	for _, c := range ok {
		if a.code == c {
			return nil
		}
	}
	return &ResponseError{Code: a.code, Message: diagnostic(a.body)}
}

// diagnostic returns a printable, bounded form of an error payload.
func diagnostic(b []byte) string {
	const limit = 256
	if len(b) > limit {
		b = b[:limit]
	}
	return strings.ToValidUTF8(strings.TrimSpace(string(b)), "?")
}

// decode decodes an answer's payload in its own content format (or the
// one asked for, when the device named none): be liberal in what devices
// send.
func (s *Server) decode(a answer, asked codec.Format, base node.Path) ([]node.Record, error) {
	f := asked
	if a.hasFormat {
		f = a.format
	}
	if len(a.body) == 0 {
		return nil, nil
	}
	recs, err := codec.Decode(f, base, a.body, s.cfg.Types)
	if err != nil {
		s.stats.decodeErrs.Add(1)
		return nil, fmt.Errorf("decode %v of %s: %w", f, base, err)
	}
	return recs, nil
}

func withAccept(f codec.Format) func(*pool.Message) {
	return func(m *pool.Message) { m.SetAccept(message.MediaType(f)) }
}

// Read reads the object, instance, resource or resource instance at p
// (Read operation, GET).
func (s *Server) Read(ctx context.Context, ep string, p node.Path) ([]node.Record, error) {
	t, err := s.target(ep)
	if err != nil {
		return nil, err
	}
	a, err := s.getContent(ctx, t, p, t.format)
	if err != nil {
		return nil, fmt.Errorf("read %s of %s: %w", p, ep, err)
	}
	return s.decode(a, t.format, p)
}

// getContent sends a GET for p that asks for format f (Read, Discover)
// and returns the device's 2.05 Content answer.
func (s *Server) getContent(ctx context.Context, t target, p node.Path, f codec.Format) (answer, error) {
	a, err := s.exchange(ctx, t, func(ctx context.Context, c *udpClient.Conn) (*pool.Message, error) {
		req, err := c.NewGetRequest(ctx, t.coapPath(p))
		if err == nil {
			withAccept(f)(req)
		}
		return req, err
	})
	if err != nil {
		return a, err
	}
	return a, expect(a, codes.Content)
}

// Write writes recs at p: replace (PUT) replaces the instance or
// resource, otherwise (POST) it is a partial update.
func (s *Server) Write(ctx context.Context, ep string, p node.Path, recs []node.Record, replace bool) error {
	t, err := s.target(ep)
	if err != nil {
		return err
	}
	return s.write(ctx, t, t.writeFormat, p, recs, replace)
}

// WriteFormat is Write in content format f, whatever the device's format
// is otherwise: for values whose encoding the device's settings fix, such
// as bytes written per its binary delivery encoding.
func (s *Server) WriteFormat(ctx context.Context, ep string, f codec.Format, p node.Path, recs []node.Record, replace bool) error {
	t, err := s.target(ep)
	if err != nil {
		return err
	}
	return s.write(ctx, t, f, p, recs, replace)
}

func (s *Server) write(ctx context.Context, t target, f codec.Format, p node.Path, recs []node.Record, replace bool) error {
	ep := t.reg.Endpoint
	payload, err := codec.Encode(f, p, recs)
	if err != nil {
		return fmt.Errorf("write %s of %s: encode %v: %w", p, ep, f, err)
	}
	a, err := s.exchange(ctx, t, func(ctx context.Context, c *udpClient.Conn) (*pool.Message, error) {
		if replace {
			return c.NewPutRequest(ctx, t.coapPath(p), message.MediaType(f), bytes.NewReader(payload))
		}
		return c.NewPostRequest(ctx, t.coapPath(p), message.MediaType(f), bytes.NewReader(payload))
	})
	if err != nil {
		return fmt.Errorf("write %s of %s: %w", p, ep, err)
	}
	if err := expect(a, codes.Changed); err != nil {
		return fmt.Errorf("write %s of %s: %w", p, ep, err)
	}
	return nil
}

// Execute executes the resource at p with args (text/plain, Core TS
// 5.4.5 argument list, e.g. "0='on',1"); empty args send no payload.
func (s *Server) Execute(ctx context.Context, ep string, p node.Path, args string) error {
	t, err := s.target(ep)
	if err != nil {
		return err
	}
	a, err := s.exchange(ctx, t, func(ctx context.Context, c *udpClient.Conn) (*pool.Message, error) {
		if args == "" {
			return c.NewPostRequest(ctx, t.coapPath(p), message.TextPlain, nil)
		}
		return c.NewPostRequest(ctx, t.coapPath(p), message.TextPlain, strings.NewReader(args))
	})
	if err != nil {
		return fmt.Errorf("execute %s of %s: %w", p, ep, err)
	}
	if err := expect(a, codes.Changed); err != nil {
		return fmt.Errorf("execute %s of %s: %w", p, ep, err)
	}
	return nil
}

// Create creates an object instance from recs and returns the new
// instance's path: from the answer's Location-Path when the device sent
// one, else the instance asked for. p is the object (/O), to let the
// device pick the instance ID, or the new instance (/O/I); the request
// goes to the object either way. Without records the payload is the
// format's empty instance (codec.EncodeCreate). The format is the
// device's write format, or, when that cannot carry an instance (text,
// opaque, CBOR), the one its registration suggests.
func (s *Server) Create(ctx context.Context, ep string, p node.Path, recs []node.Record) (node.Path, error) {
	t, err := s.target(ep)
	if err != nil {
		return node.Path{}, err
	}
	f := createFormatOf(t.reg)
	payload, err := codec.EncodeCreate(f, p, recs)
	if err != nil {
		return node.Path{}, fmt.Errorf("create %s of %s: %w", p, ep, err)
	}
	inst := p
	p = node.ObjectPath(p.Object)
	a, err := s.exchange(ctx, t, func(ctx context.Context, c *udpClient.Conn) (*pool.Message, error) {
		return c.NewPostRequest(ctx, t.coapPath(p), message.MediaType(f), bytes.NewReader(payload))
	})
	if err != nil {
		return node.Path{}, fmt.Errorf("create %s of %s: %w", p, ep, err)
	}
	if err := expect(a, codes.Created); err != nil {
		return node.Path{}, fmt.Errorf("create %s of %s: %w", p, ep, err)
	}
	if a.location != "" {
		loc := "/" + strings.TrimLeft(a.location, "/")
		if t.rootDir != "" {
			loc = "/" + strings.TrimLeft(strings.TrimPrefix(loc, t.rootDir), "/")
		}
		if lp, err := node.ParsePath(loc); err == nil && lp.Depth == 2 {
			return lp, nil
		}
	}
	if inst.Depth == 2 {
		return inst, nil
	}
	for _, r := range recs {
		if r.Path.Depth >= 2 && r.Path.Object == p.Object {
			return node.InstancePath(p.Object, r.Path.Instance), nil
		}
	}
	return p, nil
}

// Delete deletes the object instance at p.
func (s *Server) Delete(ctx context.Context, ep string, p node.Path) error {
	t, err := s.target(ep)
	if err != nil {
		return err
	}
	a, err := s.exchange(ctx, t, func(ctx context.Context, c *udpClient.Conn) (*pool.Message, error) {
		return c.NewDeleteRequest(ctx, t.coapPath(p))
	})
	if err != nil {
		return fmt.Errorf("delete %s of %s: %w", p, ep, err)
	}
	if err := expect(a, codes.Deleted); err != nil {
		return fmt.Errorf("delete %s of %s: %w", p, ep, err)
	}
	return nil
}

// WriteAttributes sets notification attributes on p; query holds
// "pmin=10", "gt=20.5" or "cancel" style entries.
func (s *Server) WriteAttributes(ctx context.Context, ep string, p node.Path, query []string) error {
	t, err := s.target(ep)
	if err != nil {
		return err
	}
	a, err := s.exchange(ctx, t, func(ctx context.Context, c *udpClient.Conn) (*pool.Message, error) {
		req, err := c.NewPutRequest(ctx, t.coapPath(p), message.TextPlain, nil)
		if err != nil {
			return nil, err
		}
		for _, q := range query {
			req.AddQuery(q)
		}
		return req, nil
	})
	if err != nil {
		return fmt.Errorf("write attributes %s of %s: %w", p, ep, err)
	}
	if err := expect(a, codes.Changed); err != nil {
		return fmt.Errorf("write attributes %s of %s: %w", p, ep, err)
	}
	return nil
}
