package lwm2m

import (
	"context"
	"fmt"

	"github.com/lwm2m-agent/lwm2m-agent/agent/codec"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/mux"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"
)

// maxObservations bounds the observations of one registration.
const maxObservations = 1024

// observation is one observed path, or one composite observation, of a
// registration. The Server keeps observations in its own token table
// rather than in go-coap's per connection state, so they survive the
// connection being closed for idleness and follow the device to a new
// address.
type observation struct {
	key       string // path, or "composite:" and the paths
	token     string
	path      node.Path // observed path; the root for a composite observation
	composite []node.Path
	rs        *regState
	format    codec.Format // asked for; used when a notification names none
}

// Observe starts observing p and returns the values of the first answer;
// later notifications go to Hooks.Values. Observing a path again replaces
// the earlier observation. Observations end with the registration.
func (s *Server) Observe(ctx context.Context, ep string, p node.Path) ([]node.Record, error) {
	t, err := s.target(ep)
	if err != nil {
		return nil, err
	}
	recs, err := s.observe(ctx, t, &observation{key: p.String(), path: p, format: t.format},
		func(ctx context.Context, c *udpClient.Conn) (*pool.Message, error) {
			req, err := c.NewGetRequest(ctx, t.coapPath(p))
			if err == nil {
				withAccept(t.format)(req)
			}
			return req, err
		})
	if err != nil {
		return recs, fmt.Errorf("observe %s of %s: %w", p, ep, err)
	}
	return recs, nil
}

// observe registers o on a fresh token, sends the request build makes
// with Observe=0 on that token and returns the first answer's values.
func (s *Server) observe(ctx context.Context, t target, o *observation, build func(context.Context, *udpClient.Conn) (*pool.Message, error)) ([]node.Record, error) {
	token, err := message.GetToken()
	if err != nil {
		return nil, err
	}
	o.token, o.rs = string(token), t.rs
	s.mu.Lock()
	if t.rs.ctx.Err() != nil {
		s.mu.Unlock()
		return nil, ErrNotRegistered
	}
	if old := t.rs.obs[o.key]; old != nil {
		// The old token is forgotten: its next notification gets RST.
		delete(s.tokens, old.token)
	} else if len(t.rs.obs) >= maxObservations {
		s.mu.Unlock()
		return nil, fmt.Errorf("already %d observations", maxObservations)
	}
	t.rs.obs[o.key] = o
	s.tokens[o.token] = o
	s.mu.Unlock()

	a, err := s.exchange(ctx, t, func(ctx context.Context, c *udpClient.Conn) (*pool.Message, error) {
		req, err := build(ctx, c)
		if err != nil {
			return nil, err
		}
		req.SetToken(token)
		req.SetObserve(0)
		return req, nil
	})
	if err != nil {
		s.dropObservation(o)
		return nil, err
	}
	if err := expect(a, codes.Content); err != nil {
		s.dropObservation(o)
		return nil, err
	}
	recs, err := s.decode(a, o.format, o.path)
	if !a.observe {
		s.dropObservation(o)
		if err == nil {
			err = ErrNotObservable
		}
		return recs, err
	}
	if err != nil {
		return nil, err
	}
	return recs, nil
}

// CancelObserve ends the observation of p actively: the Server forgets it
// and sends a GET with Observe=1 on its token (RFC 7641 section 3.6). The
// observation is forgotten even when the device does not answer. A path
// that is not observed is not an error.
func (s *Server) CancelObserve(ctx context.Context, ep string, p node.Path) error {
	t, err := s.target(ep)
	if err != nil {
		return err
	}
	err = s.cancelObserve(ctx, t, p.String(), func(ctx context.Context, c *udpClient.Conn, o *observation) (*pool.Message, error) {
		req, err := c.NewGetRequest(ctx, t.coapPath(p))
		if err == nil {
			withAccept(o.format)(req)
		}
		return req, err
	})
	if err != nil {
		return fmt.Errorf("cancel observation %s of %s: %w", p, ep, err)
	}
	return nil
}

// cancelObserve forgets the observation under key and sends the request
// build makes with Observe=1 on its token.
func (s *Server) cancelObserve(ctx context.Context, t target, key string, build func(context.Context, *udpClient.Conn, *observation) (*pool.Message, error)) error {
	s.mu.Lock()
	o := t.rs.obs[key]
	if o != nil {
		delete(t.rs.obs, key)
		delete(s.tokens, o.token)
	}
	s.mu.Unlock()
	if o == nil {
		return nil
	}
	a, err := s.exchange(ctx, t, func(ctx context.Context, c *udpClient.Conn) (*pool.Message, error) {
		req, err := build(ctx, c, o)
		if err != nil {
			return nil, err
		}
		req.SetToken(message.Token(o.token))
		req.SetObserve(1)
		return req, nil
	})
	if err != nil {
		return err
	}
	if a.code >= codes.BadRequest {
		return &ResponseError{Code: a.code, Message: diagnostic(a.body)}
	}
	return nil
}

// Observations returns the paths endpoint's single-path observations
// watch; a composite observation adds the root path.
func (s *Server) Observations(ep string) []node.Path {
	s.mu.RLock()
	defer s.mu.RUnlock()
	rs := s.byEndpoint[ep]
	if rs == nil {
		return nil
	}
	out := make([]node.Path, 0, len(rs.obs))
	for _, o := range rs.obs {
		out = append(out, o.path)
	}
	return out
}

// dropObservation forgets o if it is still the current observation.
func (s *Server) dropObservation(o *observation) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o.rs.obs[o.key] == o {
		delete(o.rs.obs, o.key)
	}
	if s.tokens[o.token] == o {
		delete(s.tokens, o.token)
	}
}

// handleNotification takes a response that arrived outside a request: a
// notification of a held observation (CON or NON alike; go-coap sends
// the ACK), or a late answer to a request that was given up, which is
// acknowledged and ignored. Unknown notifications never get here: the
// monitor resets them.
func (s *Server) handleNotification(_ mux.ResponseWriter, r *mux.Message) {
	tok := r.Token()
	if len(tok) == 0 {
		return
	}
	s.mu.RLock()
	o := s.tokens[string(tok)]
	var reg Registration
	if o != nil {
		reg = copyReg(o.rs.reg)
	}
	base := s.baseCtx
	s.mu.RUnlock()
	if o == nil {
		return
	}
	code := r.Code()
	if (code != codes.Content && code != codes.Valid) || !r.HasOption(message.Observe) {
		// An error code or a response without Observe ends the
		// observation on the device's side (RFC 7641 section 3.2).
		s.dropObservation(o)
	}
	if code != codes.Content {
		return
	}
	a := answer{code: code}
	if cf, err := r.ContentFormat(); err == nil {
		a.format, a.hasFormat = codec.Format(cf), true
	}
	if r.Body() != nil {
		body, err := r.ReadBody()
		if err != nil {
			return
		}
		a.body = body
	}
	recs, err := s.decode(a, o.format, o.path)
	if err != nil {
		s.log.Info("notification dropped", "endpoint", reg.Endpoint, "path", o.path.String(), "err", err)
		return
	}
	s.stats.notifications.Add(1)
	s.hooks.Values(base, reg, o.path, recs)
}

// handleSend is the LwM2M 1.1 Send operation: POST /dp from a registered
// device with SenML (or any decodable) values.
func (s *Server) handleSend(w mux.ResponseWriter, r *mux.Message) {
	conn, ok := w.Conn().(*udpClient.Conn)
	if !ok {
		reply(w, codes.InternalServerError, "")
		return
	}
	s.mu.RLock()
	rs := s.byPeer[peerOf(conn).key()]
	var reg Registration
	if rs != nil {
		reg = copyReg(rs.reg)
	}
	base := s.baseCtx
	s.mu.RUnlock()
	if rs == nil {
		reply(w, codes.Forbidden, "not registered")
		return
	}
	a := answer{code: codes.POST, format: codec.SenMLCBOR}
	if cf, err := r.ContentFormat(); err == nil {
		a.format, a.hasFormat = codec.Format(cf), true
	}
	if r.Body() != nil {
		body, err := r.ReadBody()
		if err != nil {
			reply(w, codes.BadRequest, "cannot read payload")
			return
		}
		a.body = body
	}
	recs, err := s.decode(a, a.format, node.Root)
	if err != nil {
		reply(w, codes.BadRequest, err.Error())
		return
	}
	s.stats.sends.Add(1)
	reply(w, codes.Changed, "")
	afterReply(r, func() { s.hooks.Values(base, reg, node.Root, recs) })
}
