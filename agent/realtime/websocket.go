package realtime

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// writeTimeout bounds one write to a WebSocket: a client that reads
// nothing for that long is gone, whatever its queue holds.
const writeTimeout = 10 * time.Second

// repliesQueued bounds the replies waiting for the writer; a client
// that sends faster than it reads their replies is cut off.
const repliesQueued = 16

// wsConn is one WebSocket connection. Its reader (the handler's
// goroutine) answers the client's messages; its writer sends the
// answers, the client's notifications as they come, and the reply of
// the connect held, when it ends. CometD's WebSocket transport takes
// notifications at any time, not only with a connect's reply.
type wsConn struct {
	h   *Hub
	ws  *websocket.Conn
	out chan []byte
	// kick wakes the writer when client or held changed.
	kick chan struct{}

	mu     sync.Mutex
	client *client
	held   *heldConnect
}

// heldConnect is the connect the writer answers when it ends.
type heldConnect struct {
	m          inMessage
	until      time.Time
	superseded <-chan struct{}
}

func (h *Hub) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	// The WaitGroup is counted under the lock that shutdown takes before
	// it waits, so that no connection starts after the wait began.
	h.mu.RLock()
	stopped := h.stopped
	if !stopped {
		h.conns.Add(1)
	}
	h.mu.RUnlock()
	if stopped {
		http.Error(w, "the agent is stopping", http.StatusServiceUnavailable)
		return
	}
	defer h.conns.Done()
	// Accept refuses a browser's request from another origin than the
	// agent's: a page elsewhere must not reach the API through a user.
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		h.log.Debug("realtime websocket refused", "peer", r.RemoteAddr, "err", err)
		return
	}
	ws.SetReadLimit(maxBatchBytes)
	c := &wsConn{h: h, ws: ws, out: make(chan []byte, repliesQueued), kick: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(r.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer cancel()
		c.write(ctx)
	}()
	c.read(ctx, r)
	cancel()
	<-done
	c.detach(time.Now())
	_ = ws.CloseNow()
}

// read answers the client's messages until the connection ends.
func (c *wsConn) read(ctx context.Context, r *http.Request) {
	for {
		_, data, err := c.ws.Read(ctx)
		if err != nil {
			return
		}
		msgs, err := decodeBatch(data)
		if err != nil {
			c.send(ctx, encodeBatch([]reply{{Channel: metaHandshake, Error: "400::" + err.Error()}}, nil, nil))
			continue
		}
		x := c.h.handle(r, msgs)
		if x.client != nil {
			c.attach(x.client)
		}
		if x.connect != nil {
			x.replies = append(x.replies, c.hold(*x.connect)...)
		}
		if len(x.replies) > 0 && !c.send(ctx, encodeBatch(x.replies, nil, nil)) {
			return
		}
		if x.bye {
			c.detach(time.Now())
		}
	}
}

// send hands a frame to the writer; false when the client has too many
// waiting (the connection is then ended).
func (c *wsConn) send(ctx context.Context, b []byte) bool {
	select {
	case c.out <- b:
		return true
	case <-ctx.Done():
		return false
	default:
		_ = c.ws.Close(websocket.StatusPolicyViolation, "too many messages without reading the replies")
		return false
	}
}

func (c *wsConn) poke() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// attach makes the connection serve cl from now on.
func (c *wsConn) attach(cl *client) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.client == cl {
		return
	}
	c.releaseLocked(time.Now())
	c.client = cl
	c.poke()
}

// detach ends the connection's service of its client, which lives on
// until it connects again or is idle for too long.
func (c *wsConn) detach(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.releaseLocked(now)
	c.client = nil
	c.poke()
}

// forget ends the connection's service of cl if it still serves it.
func (c *wsConn) forget(cl *client) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.client == cl {
		c.releaseLocked(time.Now())
		c.client = nil
	}
}

func (c *wsConn) releaseLocked(now time.Time) {
	if c.held != nil && c.client != nil {
		c.client.release(c.held.superseded, now)
	}
	c.held = nil
}

// hold makes m the connect the writer answers when it ends, and
// returns the replies due now: of the connect it replaces, and of m
// itself when it has no timeout.
func (c *wsConn) hold(m inMessage) []reply {
	c.mu.Lock()
	defer c.mu.Unlock()
	cl := c.client
	now := time.Now()
	var due []reply
	if c.held != nil {
		due = append(due, c.h.connected(c.held.m))
		c.releaseLocked(now)
	}
	timeout := c.h.connectTimeout(m)
	superseded := cl.hold(now)
	if timeout == 0 {
		cl.release(superseded, now)
		return append(due, c.h.connectEnd(m, cl.ended()))
	}
	c.held = &heldConnect{m: m, until: now.Add(timeout), superseded: superseded}
	c.poke()
	return due
}

// state is what the writer waits on.
func (c *wsConn) state() (*client, *heldConnect) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.client, c.held
}

// endHeld answers the connect held, if it is still held, with why the
// client ended (nil: it has not).
func (c *wsConn) endHeld(held *heldConnect, why error) []byte {
	c.mu.Lock()
	if c.held != held || held == nil {
		c.mu.Unlock()
		return nil
	}
	c.releaseLocked(time.Now())
	c.mu.Unlock()
	rep := c.h.connectEnd(held.m, why)
	return encodeBatch(nil, nil, &rep)
}

// write sends frames until the connection or the agent ends.
func (c *wsConn) write(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	// A connection that never handshakes is closed after the time a
	// client may go without connecting.
	unattached := time.Now()
	for {
		cl, held := c.state()
		var wake, gone <-chan struct{}
		var superseded <-chan struct{}
		deadline := time.Now().Add(time.Hour)
		if cl != nil {
			wake, gone = cl.wake, cl.gone
			unattached = time.Time{}
		} else if unattached.IsZero() {
			unattached = time.Now()
		}
		if !unattached.IsZero() {
			deadline = unattached.Add(c.h.lim.MaxInterval + c.h.lim.ConnectTimeout)
		}
		if held != nil {
			deadline, superseded = held.until, held.superseded
		}
		timer.Reset(time.Until(deadline))
		select {
		case b := <-c.out:
			if !c.frame(ctx, b) {
				return
			}
		case <-c.kick:
		case <-wake:
			msgs, why := cl.take()
			if len(msgs) > 0 {
				if !c.frame(ctx, encodeBatch(nil, msgs, nil)) {
					return
				}
				c.h.delivered(msgs, time.Now())
			}
			if why != nil {
				c.closeEnded(ctx, held, why)
				return
			}
		case <-gone:
			why := cl.ended()
			if errors.Is(why, errDisconnected) {
				// the client's own disconnect: its reply comes through
				// out, and the client closes the connection then
				c.forget(cl)
				continue
			}
			c.closeEnded(ctx, held, why)
			return
		case <-superseded:
			if b := c.endHeld(held, nil); b != nil && !c.frame(ctx, b) {
				return
			}
		case <-timer.C:
			if held != nil {
				if b := c.endHeld(held, nil); b != nil && !c.frame(ctx, b) {
					return
				}
				continue
			}
			if !unattached.IsZero() && time.Since(unattached) >= c.h.lim.MaxInterval+c.h.lim.ConnectTimeout {
				_ = c.ws.Close(websocket.StatusPolicyViolation, "no handshake")
				return
			}
		case <-c.h.stop:
			_ = c.ws.Close(websocket.StatusGoingAway, "the agent is stopping")
			return
		case <-ctx.Done():
			return
		}
	}
}

// closeEnded answers the held connect of a client that ended, then
// closes the connection: the client handshakes again (its advice).
func (c *wsConn) closeEnded(ctx context.Context, held *heldConnect, why error) {
	if why == nil {
		why = errUnknownClient
	}
	if b := c.endHeld(held, why); b != nil {
		c.frame(ctx, b)
	}
	code := websocket.StatusNormalClosure
	if errors.Is(why, errStopping) {
		code = websocket.StatusGoingAway
	}
	_ = c.ws.Close(code, "client ended")
}

// frame writes one frame within writeTimeout.
func (c *wsConn) frame(ctx context.Context, b []byte) bool {
	wctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	return c.ws.Write(wctx, websocket.MessageText, b) == nil
}
