// Package bayeux is a small Bayeux (CometD) client of the agent's
// realtime notifications, over long-polling or WebSocket, as
// Cumulocity's clients speak it: the credentials in the handshake's
// com.cumulocity.authn extension. The agent's tests and benchmarks use
// it; it is no general CometD client (no publishing, no extensions).
package bayeux

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// The transports.
const (
	LongPolling = "long-polling"
	WebSocket   = "websocket"
)

// Message is a notification: Data.RealtimeAction and the object (or,
// for a DELETE, its id) in Data.Data.
type Message struct {
	Channel string `json:"channel"`
	ID      string `json:"id"`
	Data    struct {
		RealtimeAction string          `json:"realtimeAction"`
		Data           json.RawMessage `json:"data"`
	} `json:"data"`
	// Received is when the client read it.
	Received time.Time `json:"-"`
}

// Reply is the agent's answer to a meta message.
type Reply struct {
	Channel                  string          `json:"channel"`
	ID                       string          `json:"id"`
	ClientID                 string          `json:"clientId"`
	Successful               bool            `json:"successful"`
	Error                    string          `json:"error"`
	Subscription             json.RawMessage `json:"subscription"`
	SupportedConnectionTypes []string        `json:"supportedConnectionTypes"`
	Advice                   *Advice         `json:"advice"`
	Data                     json.RawMessage `json:"data"`
}

// Advice is the agent's advice, in milliseconds.
type Advice struct {
	Reconnect   string `json:"reconnect"`
	Interval    int64  `json:"interval"`
	Timeout     int64  `json:"timeout"`
	MaxInterval int64  `json:"maxInterval"`
}

// ReplyError is a meta message the agent refused.
type ReplyError struct{ Reply Reply }

func (e *ReplyError) Error() string { return e.Reply.Channel + ": " + e.Reply.Error }

// Config says how to reach the agent.
type Config struct {
	// URL is the agent's base URL (http://host:port); the client talks
	// to URL + /notification/realtime.
	URL string
	// Login ("tenant/user") and Password go in the handshake's
	// com.cumulocity.authn token.
	Login, Password string
	Transport       string // LongPolling (default) or WebSocket
	// Buffer is how many notifications wait for Next; when full, the
	// client stops reading (a slow subscriber). 0 takes 1024.
	Buffer int
	// HTTP is the client of long-polling; nil takes a new one.
	HTTP *http.Client
}

// Client is one Bayeux client of the agent. Subscribe and Unsubscribe
// may be called from any goroutine; Messages delivers the notifications.
type Client struct {
	cfg      Config
	endpoint string
	id       string
	advice   Advice
	msgs     chan Message
	ctx      context.Context
	cancel   context.CancelFunc
	done     chan struct{}
	seq      uint64
	mu       sync.Mutex
	err      error // why the connect loop ended

	ws       *websocket.Conn
	readDone chan struct{} // closed when readWS ends
	waiters  map[string]chan Reply
}

// Dial handshakes and starts connecting; the client runs until Close or
// Disconnect.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.Transport == "" {
		cfg.Transport = LongPolling
	}
	if cfg.Buffer <= 0 {
		cfg.Buffer = 1024
	}
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{}
	}
	c := &Client{cfg: cfg, endpoint: strings.TrimRight(cfg.URL, "/") + "/notification/realtime",
		msgs: make(chan Message, cfg.Buffer), done: make(chan struct{}), waiters: map[string]chan Reply{}}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if cfg.Transport == WebSocket {
		ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(c.endpoint, "http"), nil)
		if err != nil {
			c.cancel()
			return nil, fmt.Errorf("websocket %s: %w", c.endpoint, err)
		}
		ws.SetReadLimit(16 << 20)
		c.ws, c.readDone = ws, make(chan struct{})
		go c.readWS()
	}
	token := base64.StdEncoding.EncodeToString([]byte(cfg.Login + ":" + cfg.Password))
	rep, err := c.call(ctx, map[string]any{
		"channel": "/meta/handshake", "version": "1.0", "minimumVersion": "1.0",
		"supportedConnectionTypes": []string{cfg.Transport},
		"ext":                      map[string]any{"com.cumulocity.authn": map[string]any{"token": token}},
	})
	if err != nil {
		c.end()
		return nil, err
	}
	c.id = rep.ClientID
	if rep.Advice != nil {
		c.advice = *rep.Advice
	}
	// The first connect answers at once, as CometD's clients ask.
	if _, err := c.call(ctx, c.connectMessage(0)); err != nil {
		c.end()
		return nil, err
	}
	go c.connectLoop()
	return c, nil
}

// ID is the clientId the agent gave.
func (c *Client) ID() string { return c.id }

// Advice is the handshake's advice.
func (c *Client) Advice() Advice { return c.advice }

// Messages are the notifications, in order; closed when the client ends.
func (c *Client) Messages() <-chan Message { return c.msgs }

// Err says why the client ended: the reply that ended it (a
// *ReplyError), or the transport's failure; nil while it runs.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Done is closed when the client has ended.
func (c *Client) Done() <-chan struct{} { return c.done }

// Subscribe subscribes to channels, all in one message.
func (c *Client) Subscribe(ctx context.Context, channels ...string) error {
	return c.meta(ctx, "/meta/subscribe", channels)
}

// Unsubscribe ends subscriptions.
func (c *Client) Unsubscribe(ctx context.Context, channels ...string) error {
	return c.meta(ctx, "/meta/unsubscribe", channels)
}

func (c *Client) meta(ctx context.Context, channel string, channels []string) error {
	var sub any = channels
	if len(channels) == 1 {
		sub = channels[0]
	}
	_, err := c.call(ctx, map[string]any{"channel": channel, "clientId": c.id, "subscription": sub})
	return err
}

// Disconnect ends the client at the agent, then here.
func (c *Client) Disconnect(ctx context.Context) error {
	_, err := c.call(ctx, map[string]any{"channel": "/meta/disconnect", "clientId": c.id})
	c.Close()
	return err
}

// Close ends the client here, without telling the agent.
func (c *Client) Close() {
	c.cancel()
	<-c.done
}

// end stops reading and closes Messages and Done, once.
func (c *Client) end() {
	c.cancel()
	if c.ws != nil {
		_ = c.ws.CloseNow()
		<-c.readDone
	}
	close(c.msgs)
	close(c.done)
}

func (c *Client) connectMessage(timeout int64) map[string]any {
	m := map[string]any{"channel": "/meta/connect", "clientId": c.id, "connectionType": c.cfg.Transport}
	if timeout >= 0 {
		m["advice"] = map[string]any{"timeout": timeout}
	}
	return m
}

// connectLoop sends a connect after each one ends, until a reply refuses
// it or the client closes.
func (c *Client) connectLoop() {
	defer c.end()
	for {
		_, err := c.call(c.ctx, c.connectMessage(-1))
		if err != nil {
			if c.ctx.Err() == nil {
				c.mu.Lock()
				c.err = err
				c.mu.Unlock()
			}
			return
		}
	}
}

// call sends one message and returns its reply; the notifications that
// come with it go to Messages.
func (c *Client) call(ctx context.Context, m map[string]any) (Reply, error) {
	c.mu.Lock()
	c.seq++
	id := strconv.FormatUint(c.seq, 10)
	c.mu.Unlock()
	m["id"] = id
	body, err := json.Marshal([]any{m})
	if err != nil {
		return Reply{}, err
	}
	var rep Reply
	if c.ws != nil {
		rep, err = c.callWS(ctx, id, body)
	} else {
		rep, err = c.callHTTP(ctx, id, body)
	}
	if err != nil {
		return Reply{}, err
	}
	if !rep.Successful {
		return rep, &ReplyError{Reply: rep}
	}
	return rep, nil
}

func (c *Client) callHTTP(ctx context.Context, id string, body []byte) (Reply, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, bytes.NewReader(body))
	if err != nil {
		return Reply{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.cfg.HTTP.Do(req)
	if err != nil {
		return Reply{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return Reply{}, err
	}
	now := time.Now()
	var raw []json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return Reply{}, fmt.Errorf("HTTP %d: %q: %w", resp.StatusCode, data, err)
	}
	var rep *Reply
	for _, r := range raw {
		if err := c.dispatch(r, now, func(x Reply) {
			if x.ID == id {
				rep = &x
			}
		}); err != nil {
			return Reply{}, err
		}
	}
	if rep == nil {
		return Reply{}, fmt.Errorf("HTTP %d: no reply to message %s in %s", resp.StatusCode, id, data)
	}
	return *rep, nil
}

// dispatch sends a notification to Messages, a reply to onReply.
func (c *Client) dispatch(raw json.RawMessage, now time.Time, onReply func(Reply)) error {
	var r Reply
	if err := json.Unmarshal(raw, &r); err != nil {
		return err
	}
	if strings.HasPrefix(r.Channel, "/meta/") || r.Data == nil {
		onReply(r)
		return nil
	}
	m := Message{Channel: r.Channel, ID: r.ID, Received: now}
	if err := json.Unmarshal(r.Data, &m.Data); err != nil {
		return err
	}
	select {
	case c.msgs <- m:
	case <-c.ctx.Done():
	}
	return nil
}

func (c *Client) callWS(ctx context.Context, id string, body []byte) (Reply, error) {
	wait := make(chan Reply, 1)
	c.mu.Lock()
	c.waiters[id] = wait
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.waiters, id)
		c.mu.Unlock()
	}()
	if err := c.ws.Write(ctx, websocket.MessageText, body); err != nil {
		return Reply{}, err
	}
	select {
	case r := <-wait:
		return r, nil
	case <-ctx.Done():
		return Reply{}, ctx.Err()
	case <-c.ctx.Done():
		return Reply{}, errors.New("client closed")
	}
}

// readWS reads the WebSocket's frames until it closes.
func (c *Client) readWS() {
	defer close(c.readDone)
	defer c.cancel()
	for {
		_, data, err := c.ws.Read(c.ctx)
		if err != nil {
			c.mu.Lock()
			if c.err == nil && c.ctx.Err() == nil {
				c.err = fmt.Errorf("websocket: %w", err)
			}
			c.mu.Unlock()
			return
		}
		now := time.Now()
		var raw []json.RawMessage
		if err := json.Unmarshal(data, &raw); err != nil {
			continue
		}
		for _, r := range raw {
			_ = c.dispatch(r, now, func(x Reply) {
				c.mu.Lock()
				w := c.waiters[x.ID]
				c.mu.Unlock()
				if w != nil {
					w <- x
				}
			})
		}
	}
}
