package realtime

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/api"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// The meta channels of the Bayeux protocol.
const (
	metaHandshake   = "/meta/handshake"
	metaConnect     = "/meta/connect"
	metaSubscribe   = "/meta/subscribe"
	metaUnsubscribe = "/meta/unsubscribe"
	metaDisconnect  = "/meta/disconnect"
)

// The connection types the agent serves.
const (
	longPolling = "long-polling"
	webSocket   = "websocket"
)

// authnExt is the handshake's extension in which Cumulocity's clients
// send their credentials: {"token": base64("tenant/user:password")}.
const authnExt = "com.cumulocity.authn"

// maxBatch bounds the messages of one request or frame, and maxBatchBytes
// its size: a client sends a few at a time.
const (
	maxBatch      = 64
	maxBatchBytes = 256 << 10
)

// authTimeout bounds a handshake's check of its credentials.
const authTimeout = 10 * time.Second

// Authenticate checks credentials ("tenant/user" and a password) as the
// REST API does, with its throttle: api.(*API).Login.
type Authenticate func(r *http.Request, login, password string) (store.User, error)

// inMessage is a message from a client; the fields not used here are
// ignored.
type inMessage struct {
	Channel        string                     `json:"channel"`
	ID             json.RawMessage            `json:"id,omitempty"`
	ClientID       string                     `json:"clientId,omitempty"`
	Subscription   json.RawMessage            `json:"subscription,omitempty"`
	ConnectionType string                     `json:"connectionType,omitempty"`
	Advice         *struct{ Timeout *int64 }  `json:"advice,omitempty"`
	Ext            map[string]json.RawMessage `json:"ext,omitempty"`
}

// reply is the server's answer to a meta message.
type reply struct {
	Channel                  string          `json:"channel"`
	ID                       json.RawMessage `json:"id,omitempty"`
	ClientID                 string          `json:"clientId,omitempty"`
	Successful               bool            `json:"successful"`
	Error                    string          `json:"error,omitempty"`
	Subscription             json.RawMessage `json:"subscription,omitempty"`
	Version                  string          `json:"version,omitempty"`
	MinimumVersion           string          `json:"minimumVersion,omitempty"`
	SupportedConnectionTypes []string        `json:"supportedConnectionTypes,omitempty"`
	Advice                   *advice         `json:"advice,omitempty"`
}

// advice tells a client how to go on, in milliseconds.
type advice struct {
	Reconnect   string `json:"reconnect"`
	Interval    int64  `json:"interval"`
	Timeout     int64  `json:"timeout,omitempty"`
	MaxInterval int64  `json:"maxInterval,omitempty"`
}

// decodeBatch reads a request's or a frame's messages: an array of them,
// or one alone.
func decodeBatch(data []byte) ([]inMessage, error) {
	data = bytes.TrimSpace(data)
	var msgs []inMessage
	var err error
	if len(data) > 0 && data[0] == '{' {
		var m inMessage
		err = json.Unmarshal(data, &m)
		msgs = []inMessage{m}
	} else {
		err = json.Unmarshal(data, &msgs)
	}
	switch {
	case err != nil:
		return nil, fmt.Errorf("the body is not Bayeux messages in JSON: %v", err)
	case len(msgs) == 0:
		return nil, errors.New("no message")
	case len(msgs) > maxBatch:
		return nil, fmt.Errorf("%d messages at once: at most %d", len(msgs), maxBatch)
	}
	for _, m := range msgs {
		if m.Channel == "" {
			return nil, errors.New("a message without channel")
		}
	}
	return msgs, nil
}

// encodeBatch is messages as one JSON array: replies, then queued
// notifications, then a last reply (a connect's) when not nil.
func encodeBatch(replies []reply, msgs []queued, last *reply) []byte {
	var b bytes.Buffer
	b.WriteByte('[')
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	n := 0
	sep := func() {
		if n > 0 {
			b.WriteByte(',')
		}
		n++
	}
	// Encode ends each value with a newline, which is taken back.
	for i := range replies {
		sep()
		_ = enc.Encode(&replies[i]) // a reply always encodes
		b.Truncate(b.Len() - 1)
	}
	for _, q := range msgs {
		sep()
		b.Write(q.msg)
	}
	if last != nil {
		sep()
		_ = enc.Encode(last)
		b.Truncate(b.Len() - 1)
	}
	b.WriteByte(']')
	return b.Bytes()
}

// bayeuxError is the error member of a reply: "code::message".
func bayeuxError(err error) string {
	code := 400
	switch {
	case errors.Is(err, errUnknownClient), errors.Is(err, errDropped):
		code = 402
	case errors.Is(err, errForbidden):
		code = 403
	case errors.Is(err, errBusy), errors.Is(err, errStopping):
		code = 503
	}
	return fmt.Sprintf("%d::%s", code, err.Error())
}

// exchange is one batch of messages from a client, answered by handle
// but for its /meta/connect, which the transport holds.
type exchange struct {
	replies []reply
	client  *client    // the client the batch acts as, nil if none
	connect *inMessage // a /meta/connect of a live client to hold
	bye     bool       // the client disconnected
}

// handle answers a batch's messages in order, but for a /meta/connect
// of a live client, which it leaves to the transport.
func (h *Hub) handle(r *http.Request, msgs []inMessage) exchange {
	var x exchange
	now := time.Now()
	for i := range msgs {
		m := &msgs[i]
		if m.Channel == metaHandshake {
			rep, c := h.handshake(r, m)
			x.replies = append(x.replies, rep)
			if c != nil {
				x.client = c
			}
			continue
		}
		c, ok := h.client(m.ClientID)
		if !ok {
			x.replies = append(x.replies, h.failed(m, errUnknownClient, true))
			continue
		}
		c.seen(now)
		x.client = c
		switch m.Channel {
		case metaConnect:
			if x.connect != nil {
				// one held per batch: an earlier one is answered now
				x.replies = append(x.replies, h.connected(*x.connect))
			}
			x.connect = m
		case metaSubscribe, metaUnsubscribe:
			x.replies = append(x.replies, h.subscription(c, m))
		case metaDisconnect:
			h.remove(c, errDisconnected, "")
			x.replies = append(x.replies, reply{Channel: metaDisconnect, ID: m.ID, ClientID: c.id, Successful: true})
			x.client, x.connect, x.bye = nil, nil, true
		default:
			if strings.HasPrefix(m.Channel, "/meta/") {
				x.replies = append(x.replies, h.failed(m, fmt.Errorf("unknown meta channel %s", m.Channel), false))
				continue
			}
			// Publishing is refused: the channels carry the store's
			// changes, and anything else would reach other users.
			x.replies = append(x.replies, h.failed(m, fmt.Errorf("%w: clients do not publish; the channels carry the agent's changes", errForbidden), false))
		}
	}
	return x
}

// failed is the reply of a refused message; handshake says whether the
// client must start again.
func (h *Hub) failed(m *inMessage, err error, handshake bool) reply {
	rep := reply{Channel: m.Channel, ID: m.ID, ClientID: m.ClientID, Error: bayeuxError(err), Subscription: m.Subscription}
	if handshake {
		rep.Advice = &advice{Reconnect: "handshake"}
	}
	return rep
}

// handshake authenticates a new client: with the token of Cumulocity's
// extension, or else with the request's HTTP Basic credentials.
func (h *Hub) handshake(r *http.Request, m *inMessage) (reply, *client) {
	rep := reply{Channel: metaHandshake, ID: m.ID, Version: "1.0", MinimumVersion: "1.0"}
	refuse := func(e string, a advice) (reply, *client) {
		rep.Error, rep.Advice = e, &a
		return rep, nil
	}
	login, pass, ok := credentials(r, m)
	if !ok {
		return refuse("401::credentials are needed: the handshake's ext "+authnExt+" token, or HTTP Basic, of tenant/user:password", advice{Reconnect: "none"})
	}
	ctx, cancel := context.WithTimeout(r.Context(), authTimeout)
	defer cancel()
	u, err := h.auth(r.WithContext(ctx), login, pass)
	var throttled *api.ThrottledError
	switch {
	case errors.As(err, &throttled):
		return refuse("429::"+throttled.Error(), advice{Reconnect: "none", Interval: throttled.RetryAfter.Milliseconds()})
	case errors.Is(err, api.ErrNoTenant), errors.Is(err, store.ErrUnauthorized):
		return refuse("401::invalid credentials", advice{Reconnect: "none"})
	case err != nil:
		h.log.Error("realtime handshake: check credentials", "err", err)
		return refuse("500::internal error; see the agent's log", advice{Reconnect: "handshake", Interval: 5000})
	}
	c, err := h.newClient(u, time.Now())
	if err != nil {
		return refuse(bayeuxError(err), advice{Reconnect: "handshake", Interval: 10_000})
	}
	rep.Successful, rep.ClientID = true, c.id
	rep.SupportedConnectionTypes = []string{longPolling, webSocket}
	rep.Advice = h.advice()
	return rep, c
}

// credentials are the handshake's login and password.
func credentials(r *http.Request, m *inMessage) (login, password string, ok bool) {
	if raw, found := m.Ext[authnExt]; found {
		var ext struct {
			Token string `json:"token"`
		}
		if json.Unmarshal(raw, &ext) == nil && ext.Token != "" {
			dec, err := base64.StdEncoding.DecodeString(ext.Token)
			if err != nil {
				return "", "", false
			}
			return strings.Cut(string(dec), ":")
		}
	}
	return r.BasicAuth()
}

func (h *Hub) advice() *advice {
	return &advice{Reconnect: "retry", Interval: 0, Timeout: h.lim.ConnectTimeout.Milliseconds(), MaxInterval: h.lim.MaxInterval.Milliseconds()}
}

// connected is the reply of a connect that ends without trouble.
func (h *Hub) connected(m inMessage) reply {
	return reply{Channel: metaConnect, ID: m.ID, ClientID: m.ClientID, Successful: true, Advice: h.advice()}
}

// connectEnd is the reply of a connect held until now: why the client
// ended, if it has.
func (h *Hub) connectEnd(m inMessage, why error) reply {
	if why != nil {
		return h.failed(&m, why, true)
	}
	return h.connected(m)
}

// connectTimeout is how long to hold a connect: the client's advice if
// it gives one (0 for its first), at most the agent's.
func (h *Hub) connectTimeout(m inMessage) time.Duration {
	if m.Advice != nil && m.Advice.Timeout != nil {
		return min(max(time.Duration(*m.Advice.Timeout)*time.Millisecond, 0), h.lim.ConnectTimeout)
	}
	return h.lim.ConnectTimeout
}

// subscription answers a /meta/subscribe or /meta/unsubscribe; its
// subscription is one channel or a list of them.
func (h *Hub) subscription(c *client, m *inMessage) reply {
	var names []string
	var one string
	if err := json.Unmarshal(m.Subscription, &one); err == nil {
		names = []string{one}
	} else if err := json.Unmarshal(m.Subscription, &names); err != nil || len(names) == 0 {
		return h.failed(m, errors.New("subscription must name a channel, or a list of them"), false)
	}
	chans := make([]channel, 0, len(names))
	for _, n := range names {
		ch, err := parseChannel(n)
		if err != nil {
			return h.failed(m, err, false)
		}
		chans = append(chans, ch)
	}
	if m.Channel == metaUnsubscribe {
		h.unsubscribe(c, chans)
	} else if err := h.subscribe(c, chans); err != nil {
		return h.failed(m, err, errors.Is(err, errUnknownClient))
	}
	return reply{Channel: m.Channel, ID: m.ID, ClientID: c.id, Successful: true, Subscription: m.Subscription}
}
