package bootstrap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
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

// replyWait bounds how long a session waits for its 2.04 to be sent
// before it talks to the device anyway; go-coap skips the callback when
// the answer could not be written, and the first request then fails on
// its own.
const replyWait = 2 * time.Second

// StepError is why a session step failed: the device answered an
// unexpected code, or did not answer in time, or the request could not
// be made.
type StepError struct {
	Step string     // "discover", "delete", "write", "finish"
	Path string     // the request's target
	Code codes.Code // the device's answer; 0 when there was none
	Diag string     // the device's diagnostic payload, bounded
	Err  error      // the transport error when Code is 0
}

func (e *StepError) Error() string {
	switch {
	case e.Code != 0 && e.Diag != "":
		return fmt.Sprintf("%s %s: device answered %s %v: %s", e.Step, e.Path, codeString(e.Code), e.Code, e.Diag)
	case e.Code != 0:
		return fmt.Sprintf("%s %s: device answered %s %v", e.Step, e.Path, codeString(e.Code), e.Code)
	}
	return fmt.Sprintf("%s %s: %v", e.Step, e.Path, e.Err)
}

func (e *StepError) Unwrap() error { return e.Err }

// answer is what a session keeps of a device's response.
type answer struct {
	code codes.Code
	body []byte
}

// sessionState is what one run knows about its device.
type sessionState struct {
	s         *Server
	conn      *udpClient.Conn
	acct      Account
	req       request
	transport string
	version   string
	format    codec.Format
	fellBack  bool // the write format was switched after a 4.15
	log       *slog.Logger
	// start is the session's start event until the device has answered
	// a request; over DTLS it is stored at once. A Bootstrap-Request on
	// the plain port may come from a forged address, whose sessions
	// leave their events to Server.coalesced.
	start *Event
}

// run is the goroutine of one session: it waits for the session it
// replaces, talks to the device, and records how it went.
func (s *Server) run(ctx context.Context, sess, prev *session, replied <-chan struct{}, conn *udpClient.Conn, acct Account, req request, transport string, log *slog.Logger) {
	defer func() {
		s.mu.Lock()
		if s.sessions[sess.endpoint] == sess {
			delete(s.sessions, sess.endpoint)
		}
		if sess.peer != "" {
			if s.plainBy[sess.peer]--; s.plainBy[sess.peer] <= 0 {
				delete(s.plainBy, sess.peer)
			}
		}
		s.running--
		s.mu.Unlock()
		sess.cancel(nil)
		close(sess.done)
		s.wg.Done()
	}()
	if prev != nil {
		// Its failure event comes before this session's start.
		<-prev.done
	}
	t := time.NewTimer(replyWait)
	select {
	case <-replied:
	case <-t.C:
	case <-ctx.Done():
	}
	t.Stop()

	st := &sessionState{s: s, conn: conn, acct: acct, req: req, transport: transport, log: log}
	start := Event{
		Kind: EventStart, Time: time.Now().UTC(), Step: "request", Transport: transport,
		Text: fmt.Sprintf("Bootstrap requested by %s from %s over %s", acct.Endpoint, addrString(conn.RemoteAddr()), transport),
	}
	if transport == transportSecure {
		s.event(ctx, acct, start)
	} else {
		st.start = &start
	}
	log.Info("bootstrap started", "device", acct.DeviceID)
	pl, err := st.bootstrap(ctx)
	if err == nil {
		s.stats.finished.Add(1)
		log.Info("bootstrap finished", "version", st.version, "format", st.format.String(), "security_instance", pl.securityID)
		text := fmt.Sprintf("Bootstrap of %s finished: LwM2M server %s in /0/%d and /1/%d", acct.Endpoint, acct.Params.ServerURI, pl.securityID, serverInstance)
		if pl.hasBS {
			text += fmt.Sprintf(", bootstrap server in /0/%d", pl.bootstrapID)
		}
		s.event(ctx, acct, st.ev(Event{Kind: EventEnd, Step: "finish", Path: "/bs", Code: codeString(codes.Changed), Text: text}))
		return
	}
	s.stats.failed.Add(1)
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (%v)", context.Cause(ctx), err)
	}
	ev := Event{Kind: EventFailure, Time: time.Now().UTC(), Reason: err.Error(), Text: fmt.Sprintf("Bootstrap of %s failed: %v", acct.Endpoint, err)}
	var se *StepError
	if errors.As(err, &se) {
		ev.Step, ev.Path = se.Step, se.Path
		if se.Code != 0 {
			ev.Code = codeString(se.Code)
		}
	}
	if st.start == nil {
		log.Warn("bootstrap failed", "err", err)
		s.event(ctx, acct, st.ev(ev))
		return
	}
	// Nothing answered from the address: perhaps a device gone silent,
	// perhaps somebody else's address in a forged request, repeated as
	// often as the limit lets anyone. The log follows the events.
	peer := addrString(conn.RemoteAddr())
	s.coalesced(ctx, acct, *st.start, peer)
	if s.coalesced(ctx, acct, st.ev(ev), peer) {
		log.Warn("bootstrap failed", "err", err)
	} else {
		log.Debug("bootstrap failed", "err", err)
	}
}

// coalesced stores ev, an event of a session whose device never
// answered, unless one of its kind of the same device was stored less
// than EventInterval ago, and tells whether it did; the next one stored
// counts those held back.
func (s *Server) coalesced(ctx context.Context, acct Account, ev Event, peer string) bool {
	ok, held := s.events.Admit(acct.Tenant+"/"+acct.DeviceID+"/"+ev.Kind.Type(), ev.Time)
	if !ok {
		s.cfg.Refused.Refuse(CauseEventCoalesced, "--bootstrap-event-interval", "endpoint", acct.Endpoint, "device", acct.DeviceID, "peer", peer, "type", ev.Kind.Type())
		return false
	}
	if held.Count > 0 {
		ev.Text += held.Note()
		ev.Held = held
	}
	s.event(ctx, acct, ev)
	return true
}

// ev fills what the session knows into an event.
func (st *sessionState) ev(e Event) Event {
	e.Transport, e.Version = st.transport, st.version
	if st.format != 0 {
		e.Format = st.format.String()
	}
	return e
}

// bootstrap runs the steps: discover, delete, write, finish.
func (st *sessionState) bootstrap(ctx context.Context) (plan, error) {
	disc, err := st.discover(ctx)
	if err != nil {
		return plan{}, err
	}
	st.format = writeFormat(st.req, st.version)
	pl, err := buildPlan(st.acct, disc, uris{plain: st.s.cfg.BootstrapURI, secure: st.s.cfg.SecureBootstrapURI})
	if err != nil {
		return plan{}, fmt.Errorf("plan: %w", err)
	}
	for _, p := range []node.Path{node.ObjectPath(0), node.ObjectPath(1)} {
		if err := st.delete(ctx, p); err != nil {
			return pl, err
		}
	}
	for _, w := range pl.writes {
		if err := st.write(ctx, w); err != nil {
			return pl, err
		}
	}
	a, err := st.exchange(ctx, "finish", "/bs", func(ctx context.Context) (*pool.Message, error) {
		return st.conn.NewPostRequest(ctx, "/bs", message.TextPlain, nil)
	})
	if err != nil {
		return pl, err
	}
	if a.code != codes.Changed {
		return pl, stepError("finish", "/bs", a)
	}
	return pl, nil
}

// discover learns the client's LwM2M version and its bootstrap account
// (Bootstrap-Discover of "/", LwM2M 1.1 and later). A 1.0 client does not
// know the operation and answers 4.xx; it is then bootstrapped as 1.0.
func (st *sessionState) discover(ctx context.Context) (discovery, error) {
	a, err := st.exchange(ctx, "discover", "/", func(ctx context.Context) (*pool.Message, error) {
		req, err := st.conn.NewGetRequest(ctx, "/")
		if err == nil {
			req.SetAccept(message.AppLinkFormat)
		}
		return req, err
	})
	if err != nil {
		return discovery{}, err
	}
	switch {
	case a.code == codes.Content:
		disc, err := parseDiscovery(a.body)
		if err != nil {
			// A 1.1 client with a broken answer: write without knowing
			// its instances rather than fail.
			st.log.Info("bootstrap discover answer unreadable", "err", err)
			st.version = "1.1"
			return discovery{}, nil
		}
		st.version = disc.version
		if st.version == "" {
			st.version = "1.1"
		}
		return disc, nil
	case a.code >= codes.BadRequest && a.code < codes.InternalServerError:
		if st.req.hasPCT {
			st.version = "1.1" // pct came with 1.1
		} else {
			st.version = "1.0"
		}
		return discovery{}, nil
	}
	return discovery{}, stepError("discover", "/", a)
}

// delete is a Bootstrap-Delete; 4.04 means there was nothing to delete.
func (st *sessionState) delete(ctx context.Context, p node.Path) error {
	path := p.String()
	a, err := st.exchange(ctx, "delete", path, func(ctx context.Context) (*pool.Message, error) {
		return st.conn.NewDeleteRequest(ctx, path)
	})
	if err != nil {
		return err
	}
	if a.code != codes.Deleted && a.code != codes.NotFound {
		return stepError("delete", path, a)
	}
	st.s.event(ctx, st.acct, st.ev(Event{
		Kind: EventDelete, Step: "delete", Path: path, Code: codeString(a.code),
		Text: fmt.Sprintf("Bootstrap-Delete %s of %s: %s", path, st.acct.Endpoint, codeString(a.code)),
	}))
	return nil
}

// write is a Bootstrap-Write (PUT) of one instance. A client that answers
// 4.15 Unsupported Content-Format gets the same write once more in the
// other mandatory format, which then serves the rest of the session.
func (st *sessionState) write(ctx context.Context, w instanceWrite) error {
	path := w.path.String()
	for {
		payload, err := codec.Encode(st.format, w.path, w.recs)
		if err != nil {
			return &StepError{Step: "write", Path: path, Err: fmt.Errorf("encode %v: %w", st.format, err)}
		}
		f := st.format
		a, err := st.exchange(ctx, "write", path, func(ctx context.Context) (*pool.Message, error) {
			return st.conn.NewPutRequest(ctx, path, message.MediaType(f), bytes.NewReader(payload))
		})
		if err != nil {
			return err
		}
		if a.code == codes.UnsupportedMediaType && !st.fellBack {
			st.fellBack = true
			st.format = fallbackFormat(st.format)
			st.log.Info("bootstrap write format refused, trying another", "path", path, "refused", f.String(), "format", st.format.String())
			continue
		}
		if a.code != codes.Changed {
			return stepError("write", path, a)
		}
		st.s.event(ctx, st.acct, st.ev(Event{
			Kind: EventWrite, Step: "write", Path: path, Code: codeString(a.code),
			Text: fmt.Sprintf("Bootstrap-Write %s of %s: %s (%s): %s", path, st.acct.Endpoint, w.what, describe(w), codeString(a.code)),
		}))
		return nil
	}
}

// describe says what a write holds without its keys.
func describe(w instanceWrite) string {
	var parts []string
	for _, r := range w.recs {
		switch {
		case r.Path.Object == 0 && r.Path.Resource == 0:
			parts = append(parts, "uri "+r.Value.Str)
		case r.Path.Object == 0 && r.Path.Resource == 2:
			parts = append(parts, map[int64]string{securityModePSK: "mode PSK", securityModeNoSec: "mode NoSec"}[r.Value.Int])
		case r.Path.Object == 0 && r.Path.Resource == 3 && len(r.Value.Bytes) > 0:
			parts = append(parts, "identity "+strings.ToValidUTF8(string(r.Value.Bytes), "?"))
		case r.Path.Object == 0 && r.Path.Resource == 10, r.Path.Object == 1 && r.Path.Resource == 0:
			parts = append(parts, fmt.Sprintf("short server id %d", r.Value.Int))
		case r.Path.Object == 1 && r.Path.Resource == 1:
			parts = append(parts, fmt.Sprintf("lifetime %d s", r.Value.Int))
		case r.Path.Object == 1 && r.Path.Resource == 7:
			parts = append(parts, "binding "+r.Value.Str)
		}
	}
	return strings.Join(parts, ", ")
}

// exchange sends the request build makes and returns the answer, within
// the request timeout.
func (st *sessionState) exchange(ctx context.Context, step, path string, build func(ctx context.Context) (*pool.Message, error)) (answer, error) {
	ctx, cancel := context.WithTimeout(ctx, st.s.cfg.RequestTimeout)
	defer cancel()
	req, err := build(ctx)
	if err != nil {
		return answer{}, &StepError{Step: step, Path: path, Err: fmt.Errorf("build request: %w", err)}
	}
	defer st.conn.ReleaseMessage(req)
	resp, err := st.conn.Do(req)
	if err != nil {
		var ne net.Error
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
			err = fmt.Errorf("no answer within %v", st.s.cfg.RequestTimeout)
		}
		return answer{}, &StepError{Step: step, Path: path, Err: err}
	}
	defer st.conn.ReleaseMessage(resp)
	if st.start != nil {
		// An answer that matches the request's token came from the
		// address: the device is there, and the session is news.
		st.s.event(ctx, st.acct, *st.start)
		st.start = nil
	}
	a := answer{code: resp.Code()}
	if resp.Body() != nil {
		if a.body, err = resp.ReadBody(); err != nil {
			return answer{}, &StepError{Step: step, Path: path, Err: fmt.Errorf("read answer: %w", err)}
		}
	}
	return a, nil
}

// stepError turns an unexpected answer into a StepError.
func stepError(step, path string, a answer) error {
	return &StepError{Step: step, Path: path, Code: a.code, Diag: diagnostic(a.body)}
}

// diagnostic returns a printable, bounded form of an error payload.
func diagnostic(b []byte) string {
	const limit = 256
	if len(b) > limit {
		b = b[:limit]
	}
	return strings.ToValidUTF8(strings.TrimSpace(string(b)), "?")
}
