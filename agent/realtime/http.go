package realtime

import (
	"io"
	"net/http"
	"strings"
	"time"
)

// Handler serves the Bayeux protocol at Path (and below it: CometD's
// JavaScript client appends the meta channel's name to the URL), over
// long-polling (POST) and WebSocket (an upgrade of a GET). auth checks a
// handshake's credentials; base is the URL prefix of the links in the
// objects sent. Call it once, before Run.
func (h *Hub) Handler(auth Authenticate, base string) http.Handler {
	h.auth, h.base = auth, strings.TrimRight(base, "/")
	return http.HandlerFunc(h.serveHTTP)
}

func (h *Hub) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		h.serveWebSocket(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeBatch(w, http.StatusMethodNotAllowed, encodeBatch([]reply{{Channel: metaHandshake,
			Error: "400::Bayeux messages come in a POST of JSON (long-polling) or over a WebSocket"}}, nil, nil))
		return
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBatchBytes))
	if err != nil {
		writeBatch(w, http.StatusRequestEntityTooLarge, encodeBatch([]reply{{Channel: metaHandshake,
			Error: "400::the body is larger than 256 KiB, or could not be read"}}, nil, nil))
		return
	}
	msgs, err := decodeBatch(data)
	if err != nil {
		writeBatch(w, http.StatusBadRequest, encodeBatch([]reply{{Channel: metaHandshake, Error: "400::" + err.Error()}}, nil, nil))
		return
	}
	x := h.handle(r, msgs)
	if x.connect == nil {
		writeBatch(w, http.StatusOK, encodeBatch(x.replies, nil, nil))
		return
	}
	msgsOut, last := h.longPoll(r, x.client, *x.connect)
	body := encodeBatch(x.replies, msgsOut, &last)
	writeBatch(w, http.StatusOK, body)
	h.delivered(msgsOut, time.Now())
}

func writeBatch(w http.ResponseWriter, code int, body []byte) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

// longPoll holds a connect until the client has messages, the timeout
// passes, another connect of the client comes, the client ends, or the
// request or the agent stops; it returns the messages and the reply.
func (h *Hub) longPoll(r *http.Request, c *client, m inMessage) ([]queued, reply) {
	timeout := h.connectTimeout(m)
	superseded := c.hold(time.Now())
	defer func() { c.release(superseded, time.Now()) }()
	// a token left from messages taken already must not end this wait
	select {
	case <-c.wake:
	default:
	}
	if msgs, why := c.take(); len(msgs) > 0 || why != nil || timeout == 0 {
		return msgs, h.connectEnd(m, why)
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-c.wake:
	case <-c.gone:
	case <-superseded:
	case <-timer.C:
	case <-r.Context().Done():
	case <-h.stop:
	}
	msgs, why := c.take()
	return msgs, h.connectEnd(m, why)
}

// delivered counts messages written to a client, with the time from
// their change being stored.
func (h *Hub) delivered(msgs []queued, now time.Time) {
	if len(msgs) == 0 {
		return
	}
	h.metrics.delivered.Add(float64(len(msgs)))
	for _, q := range msgs {
		h.metrics.latency.Observe(now.Sub(q.at).Seconds())
	}
}
