package realtime_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lwm2m-agent/lwm2m-agent/agent/api"
	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/testbound"
	"github.com/lwm2m-agent/lwm2m-agent/agent/realtime"
	"github.com/lwm2m-agent/lwm2m-agent/agent/realtime/bayeux"
	"github.com/lwm2m-agent/lwm2m-agent/agent/render"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/storetest"
)

var ctx = context.Background()

// env is a hub in front of the embedded store, served over HTTP with the
// API's authentication, as the agent serves it.
type env struct {
	t     *testing.T
	raw   store.Engine // beneath the wrapper: writes here announce nothing
	st    store.Engine // the wrapped store every writer uses
	hub   *realtime.Hub
	url   string
	reg   *prometheus.Registry
	stop  context.CancelFunc
	ended chan struct{}
}

const wait = 10 * time.Second

func newEnv(t *testing.T, lim realtime.Limits) *env {
	t.Helper()
	raw := storetest.OpenTest(t)
	if _, err := raw.EnsureManagement(ctx, "admin-pass"); err != nil {
		t.Fatal(err)
	}
	for _, tn := range []string{"a", "b"} {
		if _, err := raw.CreateTenant(ctx, tn, "admin", tn+"-pass"); err != nil {
			t.Fatal(err)
		}
	}
	hub := realtime.New(realtime.Config{Store: raw, Limits: lim})
	st := hub.Wrap(raw)
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	a := api.New(api.Config{Store: st, Metrics: prometheus.NewRegistry(), ExternalURL: srv.URL})
	rt := hub.Handler(a.Login, srv.URL)
	mux.Handle(realtime.Path, rt)
	mux.Handle(realtime.Path+"/", rt)
	mux.Handle("/", a.Handler())
	reg := prometheus.NewRegistry()
	reg.MustRegister(hub.Collector())
	runCtx, stop := context.WithCancel(ctx)
	e := &env{t: t, raw: raw, st: st, hub: hub, url: srv.URL, reg: reg, stop: stop, ended: make(chan struct{})}
	go func() {
		defer close(e.ended)
		hub.Run(runCtx)
	}()
	t.Cleanup(e.shutdown)
	return e
}

func (e *env) shutdown() {
	e.stop()
	<-e.ended
}

func (e *env) dial(tenant, transport string) *bayeux.Client {
	e.t.Helper()
	c, err := bayeux.Dial(ctx, bayeux.Config{URL: e.url, Login: tenant + "/admin", Password: tenant + "-pass", Transport: transport})
	if err != nil {
		e.t.Fatalf("dial %s as %s: %v", transport, tenant, err)
	}
	e.t.Cleanup(c.Close)
	return c
}

func (e *env) device(tenant, name string) string {
	e.t.Helper()
	mo, err := e.st.CreateManagedObject(ctx, tenant, store.ManagedObject{Name: name, Type: store.DeviceType, Fragments: map[string]any{"c8y_IsDevice": map[string]any{}}})
	if err != nil {
		e.t.Fatal(err)
	}
	return mo.ID
}

func (e *env) measure(tenant, source string, v float64) string {
	e.t.Helper()
	ids, err := e.st.AddMeasurements(ctx, tenant, []store.Measurement{{Source: source, Type: "c8y_Temperature",
		Fragments: map[string]any{"c8y_Temperature": map[string]any{"T": store.SeriesValue(v, "C")}}}})
	if err != nil {
		e.t.Fatal(err)
	}
	return ids[0]
}

// metric is the value of one of the hub's metrics: the sum of its
// series, or of those with the label pairs given ("reason", "idle").
func (e *env) metric(name string, labels ...string) float64 {
	e.t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range m.GetLabel() {
					found = found || l.GetName() == labels[i] && l.GetValue() == labels[i+1]
				}
				if !found {
					continue series
				}
			}
			switch {
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			}
		}
	}
	return sum
}

// until waits for cond.
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testbound.Until(t, wait, what, cond)
}

// next is the client's next notification.
func next(t *testing.T, c *bayeux.Client) bayeux.Message {
	t.Helper()
	select {
	case m, ok := <-c.Messages():
		if !ok {
			t.Fatalf("client ended: %v", c.Err())
		}
		return m
	case <-time.After(wait):
		t.Fatalf("no notification after %v", wait)
	}
	return bayeux.Message{}
}

// expect checks a notification's channel and action and that its data is
// the object as the REST API renders it.
func expect(t *testing.T, m bayeux.Message, channel, action string, want map[string]any) {
	t.Helper()
	if m.Channel != channel || m.Data.RealtimeAction != action || m.ID == "" {
		t.Fatalf("got %s %s (id %q), want %s %s: %s", m.Data.RealtimeAction, m.Channel, m.ID, action, channel, m.Data.Data)
	}
	if want == nil {
		return
	}
	wb, _ := json.Marshal(want)
	var got, exp any
	_ = json.Unmarshal(m.Data.Data, &got)
	_ = json.Unmarshal(wb, &exp)
	gb, _ := json.Marshal(got)
	eb, _ := json.Marshal(exp)
	if !bytes.Equal(gb, eb) {
		t.Fatalf("%s %s data:\n got  %s\n want %s", action, channel, gb, eb)
	}
}

// Every kind of change arrives as Cumulocity sends it, over both
// transports: created, updated and deleted objects, each shown as the
// REST API shows it, on the channel of its device and on "*".
func TestNotifications(t *testing.T) {
	for _, transport := range []string{bayeux.LongPolling, bayeux.WebSocket} {
		t.Run(transport, func(t *testing.T) {
			e := newEnv(t, realtime.Limits{})
			dev := e.device("a", "meter")
			c := e.dial("a", transport)
			if err := c.Subscribe(ctx, "/measurements/*", "/events/"+dev, "/alarms/*", "/operations/"+dev, "/managedobjects/"+dev); err != nil {
				t.Fatal(err)
			}

			id := e.measure("a", dev, 21.5)
			m, _ := e.raw.GetMeasurement(ctx, "a", id)
			expect(t, next(t, c), "/measurements/"+dev, "CREATE", render.Measurement(e.url, m))

			op, err := e.st.CreateOperation(ctx, "a", store.Operation{DeviceID: dev, HasCommand: true, Text: "read /3/0"})
			if err != nil {
				t.Fatal(err)
			}
			expect(t, next(t, c), "/operations/"+dev, "CREATE", render.Operation(e.url, op))
			if err := e.st.Transition(ctx, "a", op, store.OpExecuting, "", ""); err != nil {
				t.Fatal(err)
			}
			got, _ := e.raw.GetOperation(ctx, "a", op.ID)
			expect(t, next(t, c), "/operations/"+dev, "UPDATE", render.Operation(e.url, got))
			if err := e.st.SetStatus(ctx, "a", op.ID, store.OpSuccessful, "/3/0/0 = x", ""); err != nil {
				t.Fatal(err)
			}
			got, _ = e.raw.GetOperation(ctx, "a", op.ID)
			expect(t, next(t, c), "/operations/"+dev, "UPDATE", render.Operation(e.url, got))

			al, err := e.st.RaiseAlarm(ctx, "a", store.Alarm{Source: dev, Type: "c8y_High", Text: "hot"})
			if err != nil {
				t.Fatal(err)
			}
			expect(t, next(t, c), "/alarms/"+dev, "CREATE", render.Alarm(e.url, al))
			again, _ := e.st.RaiseAlarm(ctx, "a", store.Alarm{Source: dev, Type: "c8y_High", Text: "hotter"})
			expect(t, next(t, c), "/alarms/"+dev, "UPDATE", render.Alarm(e.url, again))
			cleared, _ := e.st.ClearAlarm(ctx, "a", dev, "c8y_High")
			expect(t, next(t, c), "/alarms/"+dev, "UPDATE", render.Alarm(e.url, cleared))
			if cleared.Status != store.AlarmCleared {
				t.Fatalf("cleared alarm %+v", cleared)
			}

			// the registration state: the device's fragments, then its event
			avail := map[string]any{"status": "AVAILABLE"}
			if _, _, err := e.st.SaveStates(ctx, "a", map[string]map[string]any{dev: {"c8y_Availability": avail}},
				[]store.Event{{Source: dev, Type: "c8y_LWM2MDeviceRegistration", Text: "registered"}}); err != nil {
				t.Fatal(err)
			}
			mo, _ := e.raw.GetManagedObject(ctx, "a", dev)
			want := render.ManagedObject(e.url, mo)
			if err := render.WithReferences(ctx, e.url, e.raw, "a", want); err != nil {
				t.Fatal(err)
			}
			expect(t, next(t, c), "/managedobjects/"+dev, "UPDATE", want)
			evs, _, _ := e.raw.ListEvents(ctx, "a", store.EventFilter{Source: dev})
			expect(t, next(t, c), "/events/"+dev, "CREATE", render.Event(e.url, evs[0]))

			// unsubscribed, the measurements stop: the next message is
			// the event written after the measurement
			if err := c.Unsubscribe(ctx, "/measurements/*"); err != nil {
				t.Fatal(err)
			}
			e.measure("a", dev, 22)
			ev, _ := e.st.CreateEvent(ctx, "a", store.Event{Source: dev, Type: "marker", Text: "after"})
			expect(t, next(t, c), "/events/"+dev, "CREATE", render.Event(e.url, ev))

			if _, err := e.st.DeleteManagedObject(ctx, "a", dev); err != nil {
				t.Fatal(err)
			}
			d := next(t, c)
			expect(t, d, "/managedobjects/"+dev, "DELETE", nil)
			if string(d.Data.Data) != `"`+dev+`"` {
				t.Fatalf("DELETE carries %s, want the id", d.Data.Data)
			}

			if err := c.Disconnect(ctx); err != nil {
				t.Fatalf("disconnect: %v", err)
			}
			until(t, "the client is gone", func() bool { return e.metric("lwm2m_agent_realtime_clients") == 0 })
			if n := e.metric("lwm2m_agent_realtime_messages_delivered_total"); n != 11 {
				t.Fatalf("%v messages delivered, want 11", n)
			}
		})
	}
}

// A tenant's client sees nothing of another tenant's changes, even on
// the channel of the other's device: that subscription succeeds like any
// other, and tells nothing.
func TestTenantsApart(t *testing.T) {
	e := newEnv(t, realtime.Limits{})
	devA, devB := e.device("a", "a-meter"), e.device("b", "b-meter")
	b := e.dial("b", bayeux.LongPolling)
	if err := b.Subscribe(ctx, "/measurements/"+devA, "/measurements/*", "/managedobjects/"+devA, "/managedobjects/999999"); err != nil {
		t.Fatalf("subscribe to a's device: %v", err)
	}
	e.measure("a", devA, 1)
	if _, err := e.st.UpdateManagedObject(ctx, "a", devA, map[string]any{"x": 1}); err != nil {
		t.Fatal(err)
	}
	// b's own change comes after a's: the first b sees is its own
	mine := e.measure("b", devB, 2)
	m := next(t, b)
	if m.Channel != "/measurements/"+devB || !strings.Contains(string(m.Data.Data), `"id":"`+mine+`"`) {
		t.Fatalf("tenant b got %s %s", m.Channel, m.Data.Data)
	}
}

// A client that does not keep up is dropped once its queue is full, and
// told to handshake again; the others go on, and so does the agent.
func TestSlowClientDropped(t *testing.T) {
	e := newEnv(t, realtime.Limits{Queue: 3})
	dev := e.device("a", "meter")
	// slow: handshakes and subscribes, then never connects
	rep := post(t, e.url, map[string]any{"channel": "/meta/handshake", "version": "1.0", "supportedConnectionTypes": []string{"long-polling"},
		"ext": map[string]any{"com.cumulocity.authn": map[string]any{"token": b64("a/admin:a-pass")}}})
	slow, _ := rep[0]["clientId"].(string)
	if rep[0]["successful"] != true || slow == "" {
		t.Fatalf("handshake: %v", rep)
	}
	if rep := post(t, e.url, map[string]any{"channel": "/meta/subscribe", "clientId": slow, "subscription": "/measurements/*"}); rep[0]["successful"] != true {
		t.Fatalf("subscribe: %v", rep)
	}
	fast := e.dial("a", bayeux.WebSocket)
	if err := fast.Subscribe(ctx, "/measurements/"+dev); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		e.measure("a", dev, float64(i))
		next(t, fast)
	}
	until(t, "the slow client is dropped", func() bool {
		return e.metric("lwm2m_agent_realtime_clients_dropped_total", "reason", "queue_full") == 1 && e.metric("lwm2m_agent_realtime_clients") == 1
	})
	rep = post(t, e.url, map[string]any{"channel": "/meta/connect", "clientId": slow, "connectionType": "long-polling"})
	if len(rep) != 1 || rep[0]["successful"] != false || !strings.HasPrefix(rep[0]["error"].(string), "402::") ||
		rep[0]["advice"].(map[string]any)["reconnect"] != "handshake" {
		t.Fatalf("connect of the dropped client: %v", rep)
	}
	e.measure("a", dev, 9)
	if m := next(t, fast); !strings.Contains(string(m.Data.Data), `"value":9`) {
		t.Fatalf("fast client: %s", m.Data.Data)
	}
}

// A client that stops connecting is removed after the advice's
// maxInterval; one that keeps connecting stays. The interval is five
// times the connect's hold, so that the connecting client's round trip
// between two connects stays well within it on a slow machine.
func TestIdleClientRemoved(t *testing.T) {
	e := newEnv(t, realtime.Limits{MaxInterval: time.Second, ConnectTimeout: 200 * time.Millisecond})
	live := e.dial("a", bayeux.LongPolling)
	rep := post(t, e.url, map[string]any{"channel": "/meta/handshake", "version": "1.0",
		"ext": map[string]any{"com.cumulocity.authn": map[string]any{"token": b64("a/admin:a-pass")}}})
	if rep[0]["successful"] != true {
		t.Fatalf("handshake: %v", rep)
	}
	until(t, "the idle client is removed", func() bool {
		return e.metric("lwm2m_agent_realtime_clients") == 1
	})
	if n := e.metric("lwm2m_agent_realtime_clients_dropped_total", "reason", "idle"); n != 1 {
		t.Fatalf("%v clients dropped as idle, want 1", n)
	}
	select {
	case <-live.Done():
		t.Fatalf("the connecting client ended: %v", live.Err())
	default:
	}
}

// Handshakes are authenticated as the REST API's requests: the token of
// Cumulocity's extension or HTTP Basic, with tenant and user.
func TestHandshakeCredentials(t *testing.T) {
	e := newEnv(t, realtime.Limits{})
	hs := func(ext map[string]any) map[string]any { // no credentials
		m := map[string]any{"channel": "/meta/handshake", "version": "1.0", "id": "1"}
		if ext != nil {
			m["ext"] = ext
		}
		return m
	}
	token := func(s string) map[string]any {
		return map[string]any{"com.cumulocity.authn": map[string]any{"token": b64(s)}}
	}
	tests := []struct {
		name  string
		msg   map[string]any
		basic string
		ok    bool
		err   string
	}{
		{name: "token", msg: hs(token("a/admin:a-pass")), ok: true},
		{name: "basic", msg: hs(nil), basic: "a/admin:a-pass", ok: true},
		{name: "nothing", msg: hs(nil), err: "401::credentials are needed"},
		{name: "wrong password", msg: hs(token("a/admin:nope")), err: "401::invalid credentials"},
		{name: "no tenant", msg: hs(token("admin:a-pass")), err: "401::invalid credentials"},
		{name: "token not base64", msg: hs(map[string]any{"com.cumulocity.authn": map[string]any{"token": "%%%"}}), err: "401::credentials are needed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep := postAs(t, e.url, tc.basic, tc.msg)
			if len(rep) != 1 {
				t.Fatalf("replies %v", rep)
			}
			r := rep[0]
			if r["id"] != "1" || r["channel"] != "/meta/handshake" {
				t.Fatalf("reply %v", r)
			}
			if tc.ok {
				if r["successful"] != true || r["clientId"] == "" || fmt.Sprint(r["supportedConnectionTypes"]) != "[long-polling websocket]" {
					t.Fatalf("reply %v", r)
				}
				return
			}
			e, _ := r["error"].(string)
			if r["successful"] != false || !strings.HasPrefix(e, tc.err) || r["advice"].(map[string]any)["reconnect"] != "none" {
				t.Fatalf("reply %v, want error %q and no reconnect", r, tc.err)
			}
		})
	}
}

// The limits on clients and subscriptions, and the messages a client
// may not send.
func TestLimitsAndRefusals(t *testing.T) {
	e := newEnv(t, realtime.Limits{ClientsPerUser: 2, Subscriptions: 2})
	c := e.dial("a", bayeux.LongPolling)
	e.dial("a", bayeux.LongPolling)
	if _, err := bayeux.Dial(ctx, bayeux.Config{URL: e.url, Login: "a/admin", Password: "a-pass"}); err == nil || !strings.Contains(err.Error(), "503::") {
		t.Fatalf("third client of a user: %v", err)
	}
	e.dial("b", bayeux.LongPolling) // another user's are its own

	refused := func(err error, prefix string) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), prefix) {
			t.Fatalf("err %v, want %s", err, prefix)
		}
	}
	refused(c.Subscribe(ctx, "/measurements/1", "/measurements/2", "/measurements/3"), "403::")
	if err := c.Subscribe(ctx, "/measurements/1", "/measurements/2"); err != nil {
		t.Fatal(err)
	}
	refused(c.Subscribe(ctx, "/events/1"), "403::")
	refused(c.Subscribe(ctx, "/meta/connect"), "400::")
	if err := c.Unsubscribe(ctx, "/measurements/1"); err != nil {
		t.Fatal(err)
	}
	if err := c.Subscribe(ctx, "/events/1"); err != nil {
		t.Fatalf("subscribe after an unsubscribe: %v", err)
	}
	rep := post(t, e.url, map[string]any{"channel": "/measurements/1", "clientId": c.ID(), "data": map[string]any{"x": 1}})
	if rep[0]["successful"] != false || !strings.HasPrefix(rep[0]["error"].(string), "403::") {
		t.Fatalf("publish: %v", rep)
	}
	rep = post(t, e.url, map[string]any{"channel": "/meta/subscribe", "clientId": "nobody", "subscription": "/measurements/*"})
	if rep[0]["successful"] != false || !strings.HasPrefix(rep[0]["error"].(string), "402::") {
		t.Fatalf("unknown client: %v", rep)
	}
	if n := e.metric("lwm2m_agent_realtime_subscriptions"); n != 2 {
		t.Fatalf("%v subscriptions, want 2", n)
	}
}

// A held connect answers as soon as a message comes, and an empty one
// after the advice's timeout; when the agent stops, every held connect
// is answered and every WebSocket closed, and Run returns.
func TestConnectHeldAndStop(t *testing.T) {
	e := newEnv(t, realtime.Limits{ConnectTimeout: 300 * time.Millisecond})
	dev := e.device("a", "meter")
	rep := post(t, e.url, map[string]any{"channel": "/meta/handshake", "version": "1.0",
		"ext": map[string]any{"com.cumulocity.authn": map[string]any{"token": b64("a/admin:a-pass")}}})
	id := rep[0]["clientId"].(string)
	post(t, e.url, map[string]any{"channel": "/meta/subscribe", "clientId": id, "subscription": "/measurements/" + dev})
	connect := map[string]any{"channel": "/meta/connect", "clientId": id, "connectionType": "long-polling", "id": "c"}

	// nothing comes: the connect ends alone, successful
	rep = post(t, e.url, connect)
	if len(rep) != 1 || rep[0]["successful"] != true || rep[0]["id"] != "c" {
		t.Fatalf("empty connect: %v", rep)
	}
	// a measurement during a connect held for a minute ends it at once,
	// with the message first
	got := make(chan []map[string]any, 1)
	go func() {
		got <- post(t, e.url, map[string]any{"channel": "/meta/connect", "clientId": id, "connectionType": "long-polling",
			"advice": map[string]any{"timeout": 60_000}})
	}()
	until(t, "the connect is held", func() bool { return e.metric("lwm2m_agent_realtime_connects_held") == 1 })
	e.measure("a", dev, 5)
	select {
	case rep = <-got:
	case <-time.After(wait):
		t.Fatalf("the held connect did not end when a message came")
	}
	if len(rep) < 2 || rep[0]["channel"] != "/measurements/"+dev || rep[len(rep)-1]["channel"] != "/meta/connect" {
		t.Fatalf("connect with a message: %v", rep)
	}

	ws := e.dial("a", bayeux.WebSocket)
	held := make(chan []map[string]any, 1)
	go func() {
		held <- post(t, e.url, map[string]any{"channel": "/meta/connect", "clientId": id, "connectionType": "long-polling",
			"advice": map[string]any{"timeout": 60_000}})
	}()
	// the WebSocket client's connect and the long poll
	until(t, "both connects are held", func() bool { return e.metric("lwm2m_agent_realtime_connects_held") == 2 })
	e.shutdown()
	rep = <-held
	if rep[0]["successful"] != false || !strings.HasPrefix(rep[0]["error"].(string), "503::") {
		t.Fatalf("connect held at stop: %v", rep)
	}
	<-ws.Done()
	if ws.Err() == nil {
		t.Fatalf("the WebSocket client ended without error")
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func post(t *testing.T, url string, msgs ...map[string]any) []map[string]any {
	t.Helper()
	return postAs(t, url, "", msgs...)
}

// postAs posts messages to the Bayeux endpoint over long-polling, with
// basic ("login:password") as HTTP Basic when not empty.
func postAs(t *testing.T, url, basic string, msgs ...map[string]any) []map[string]any {
	t.Helper()
	body, _ := json.Marshal(msgs)
	req, err := http.NewRequest(http.MethodPost, url+realtime.Path, bytes.NewReader(body))
	if err != nil {
		t.Error(err)
		return nil
	}
	req.Header.Set("Content-Type", "application/json;charset=UTF-8")
	if basic != "" {
		login, pass, _ := strings.Cut(basic, ":")
		req.SetBasicAuth(login, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return nil
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var out []map[string]any
	if err := json.Unmarshal(data, &out); err != nil {
		t.Errorf("HTTP %d: %s: %v", resp.StatusCode, data, err)
	}
	return out
}

// A WebSocket subscriber that stops reading is dropped too: once the
// connection's buffers are full the agent's writes wait, its queue fills
// and it is dropped, never buffered further.
func TestStalledWebSocketDropped(t *testing.T) {
	e := newEnv(t, realtime.Limits{Queue: 3})
	dev := e.device("a", "meter")
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(e.url, "http")+realtime.Path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	send := func(msgs ...map[string]any) map[string]any {
		t.Helper()
		b, _ := json.Marshal(msgs)
		if err := ws.Write(ctx, websocket.MessageText, b); err != nil {
			t.Fatal(err)
		}
		_, data, err := ws.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var rep []map[string]any
		if err := json.Unmarshal(data, &rep); err != nil || len(rep) != 1 {
			t.Fatalf("reply %s: %v", data, err)
		}
		return rep[0]
	}
	rep := send(map[string]any{"channel": "/meta/handshake", "version": "1.0",
		"ext": map[string]any{"com.cumulocity.authn": map[string]any{"token": b64("a/admin:a-pass")}}})
	id, _ := rep["clientId"].(string)
	send(map[string]any{"channel": "/meta/subscribe", "clientId": id, "subscription": "/measurements/" + dev})
	// from here on nothing is read: 64 KiB measurements until it is dropped
	big := strings.Repeat("x", 64<<10)
	until(t, "the stalled client is dropped", func() bool {
		if _, err := e.st.AddMeasurements(ctx, "a", []store.Measurement{{Source: dev, Type: "c8y_Big",
			Fragments: map[string]any{"c8y_Big": map[string]any{"blob": big}}}}); err != nil {
			t.Fatal(err)
		}
		return e.metric("lwm2m_agent_realtime_clients_dropped_total", "reason", "queue_full") == 1
	})
	if n := e.metric("lwm2m_agent_realtime_clients"); n != 0 {
		t.Fatalf("%v clients held", n)
	}
}

// A device auto-registered with its first state (SaveNewStates) appears
// as CREATE, then its state as UPDATE, then its event, as CreateDevice
// and SaveStates announce them; a creation that lost its endpoint
// announces nothing.
func TestNewDeviceWithState(t *testing.T) {
	e := newEnv(t, realtime.Limits{})
	c := e.dial("a", bayeux.LongPolling)
	if err := c.Subscribe(ctx, "/managedobjects/*", "/events/*"); err != nil {
		t.Fatal(err)
	}
	taken, err := e.raw.CreateDevice(ctx, "a", "taken") // announces nothing
	if err != nil {
		t.Fatal(err)
	}
	id, err := e.st.NewDeviceID(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	lost, err := e.st.NewDeviceID(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	_, conflicts, _, err := e.st.SaveNewStates(ctx, "a",
		[]store.NewEndpoint{{ID: lost, Endpoint: "taken"}, {ID: id, Endpoint: "fresh"}},
		map[string]map[string]any{id: {"c8y_Availability": map[string]any{"status": "AVAILABLE"}}, lost: {"c8y_Availability": map[string]any{"status": "AVAILABLE"}}},
		[]store.Event{{Source: id, Type: "c8y_LWM2MDeviceRegistration", Text: "registered"}})
	if err != nil || len(conflicts) != 1 || conflicts[0] != lost {
		t.Fatalf("conflicts %v (%v), want [%s] (endpoint of %s)", conflicts, err, lost, taken)
	}
	mo, _ := e.raw.GetManagedObject(ctx, "a", id)
	want := render.ManagedObject(e.url, mo)
	if err := render.WithReferences(ctx, e.url, e.raw, "a", want); err != nil {
		t.Fatal(err)
	}
	expect(t, next(t, c), "/managedobjects/"+id, "CREATE", want)
	expect(t, next(t, c), "/managedobjects/"+id, "UPDATE", want)
	evs, _, _ := e.raw.ListEvents(ctx, "a", store.EventFilter{Source: id})
	expect(t, next(t, c), "/events/"+id, "CREATE", render.Event(e.url, evs[0]))
}
