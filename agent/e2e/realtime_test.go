package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/config"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/realtime/bayeux"
	"github.com/lwm2m-agent/lwm2m-agent/agent/simulator"
)

// realtimeWait bounds every wait for a notification.
const realtimeWait = 20 * time.Second

func (h *harness) bayeux(login, pass, transport string) *bayeux.Client {
	h.t.Helper()
	c, err := bayeux.Dial(h.ctx, bayeux.Config{URL: h.base, Login: login, Password: pass, Transport: transport})
	if err != nil {
		h.t.Fatalf("realtime client over %s as %s: %v", transport, login, err)
	}
	h.t.Cleanup(c.Close)
	return c
}

// notification reads c's notifications until one satisfies match and
// returns it with those it passed over.
func notification(t *testing.T, c *bayeux.Client, what string, match func(bayeux.Message) bool) (bayeux.Message, []bayeux.Message) {
	t.Helper()
	var skipped []bayeux.Message
	deadline := time.After(realtimeWait)
	for {
		select {
		case m, ok := <-c.Messages():
			if !ok {
				t.Fatalf("waiting for %s: the client ended: %v", what, c.Err())
			}
			if match(m) {
				return m, skipped
			}
			skipped = append(skipped, m)
		case <-deadline:
			t.Fatalf("no %s after %v (%d other notifications)", what, realtimeWait, len(skipped))
		}
	}
}

// object is a notification's data as JSON-shaped values.
func object(m bayeux.Message) map[string]any {
	var o map[string]any
	_ = json.Unmarshal(m.Data.Data, &o)
	return o
}

// sameJSON reports whether two JSON-shaped values encode alike.
func sameJSON(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

// The realtime notifications of a whole agent, over long-polling and
// WebSocket at once: a measurement created through the API and one made
// by a device protocol from a simulated device's notification arrive as
// CREATE, each as the REST API shows it; an operation arrives as CREATE,
// then its status changes as UPDATE up to SUCCESSFUL with its result;
// after an unsubscribe no measurement comes; the device's
// de-registration arrives as an UPDATE of its availability with its
// lifecycle event; another tenant's client, subscribed to the same
// channels, receives none of it; disconnect ends the clients.
func TestRealtimeNotifications(t *testing.T) {
	h := startAgent(t)
	h.setFunctionality("management/admin", adminPassword, "3303/resources/5700", map[string]any{
		"measurement": map[string]any{"type": "c8y_Temperature", "series": "T", "unit": "C"}, "autoObserve": true})
	sim := h.simulate(1, func(c *simulator.Config) { c.NotifyInterval = 0 })
	ep := sim.Endpoints()[0]
	dev := sim.Device(ep)
	id := h.device(ep).str("id")

	const acmeUser, acmePass = "acme/admin", "Acme-realtime-1!"
	if code := h.call("POST", "/tenant/tenants", map[string]any{"id": "acme", "adminName": "admin", "adminPass": acmePass}, nil); code != 201 {
		t.Fatalf("create tenant: HTTP %d", code)
	}
	acme := h.bayeux(acmeUser, acmePass, bayeux.WebSocket)
	if err := acme.Subscribe(h.ctx, "/measurements/*", "/measurements/"+id, "/operations/"+id, "/managedobjects/"+id); err != nil {
		t.Fatalf("acme subscribes to the other tenant's device: %v", err)
	}

	clients := map[string]*bayeux.Client{
		bayeux.LongPolling: h.bayeux("management/admin", adminPassword, bayeux.LongPolling),
		bayeux.WebSocket:   h.bayeux("management/admin", adminPassword, bayeux.WebSocket),
	}
	for tr, c := range clients {
		if err := c.Subscribe(h.ctx, "/measurements/*", "/operations/"+id); err != nil {
			t.Fatalf("%s: subscribe: %v", tr, err)
		}
	}

	// through the API
	var created map[string]any
	if code := h.call("POST", "/measurement/measurements", map[string]any{"source": map[string]any{"id": id}, "type": "c8y_Manual",
		"c8y_Manual": map[string]any{"V": map[string]any{"value": 42, "unit": "V"}}}, &created); code != 201 {
		t.Fatalf("create measurement: HTTP %d %v", code, created)
	}
	var stored map[string]any
	h.call("GET", "/measurement/measurements/"+created["id"].(string), nil, &stored)
	for tr, c := range clients {
		m, _ := notification(t, c, tr+" notification of the API's measurement", func(m bayeux.Message) bool {
			return object(m)["id"] == created["id"]
		})
		if m.Channel != "/measurements/"+id || m.Data.RealtimeAction != "CREATE" || !sameJSON(object(m), stored) {
			t.Fatalf("%s: %s %s %s, want CREATE of %v", tr, m.Data.RealtimeAction, m.Channel, m.Data.Data, stored)
		}
	}

	// from the device, through its device protocol
	dev.SetValue(node.ResourcePath(3303, 0, 5700), node.Float(23.5))
	for tr, c := range clients {
		m, _ := notification(t, c, tr+" notification of the device's 23.5", func(m bayeux.Message) bool {
			return m.Data.RealtimeAction == "CREATE" && strings.Contains(string(m.Data.Data), `"value":23.5`)
		})
		o := object(m)
		var got map[string]any
		h.call("GET", "/measurement/measurements/"+o["id"].(string), nil, &got)
		if m.Channel != "/measurements/"+id || o["type"] != "c8y_Temperature" || !sameJSON(o, got) {
			t.Fatalf("%s: %s %s, want the measurement %v", tr, m.Channel, m.Data.Data, got)
		}
	}

	// an operation and its status changes
	op := h.shell(id, "read /3/0/0", 30*time.Second)
	if op.Status != "SUCCESSFUL" {
		t.Fatalf("operation %s: %s %s", op.ID, op.Status, op.FailureReason)
	}
	var final map[string]any
	h.call("GET", "/devicecontrol/operations/"+op.ID, nil, &final)
	for tr, c := range clients {
		first, _ := notification(t, c, tr+" CREATE of the operation", func(m bayeux.Message) bool {
			return m.Channel == "/operations/"+id && object(m)["id"] == op.ID
		})
		if first.Data.RealtimeAction != "CREATE" {
			t.Fatalf("%s: the operation's first notification is %s", tr, first.Data.RealtimeAction)
		}
		last, _ := notification(t, c, tr+" UPDATE of the operation to SUCCESSFUL", func(m bayeux.Message) bool {
			return m.Channel == "/operations/"+id && object(m)["status"] == "SUCCESSFUL"
		})
		if last.Data.RealtimeAction != "UPDATE" || !sameJSON(object(last), final) {
			t.Fatalf("%s: %s %s, want UPDATE of %v", tr, last.Data.RealtimeAction, last.Data.Data, final)
		}
	}

	// unsubscribed from the measurements, a client gets none, but still
	// its operations: the next operation's CREATE comes first
	for tr, c := range clients {
		if err := c.Unsubscribe(h.ctx, "/measurements/*"); err != nil {
			t.Fatalf("%s: unsubscribe: %v", tr, err)
		}
		// what was sent before the unsubscribe may still come
		for len(c.Messages()) > 0 {
			<-c.Messages()
		}
	}
	h.call("POST", "/measurement/measurements", map[string]any{"source": map[string]any{"id": id}, "type": "c8y_Manual",
		"c8y_Manual": map[string]any{"V": map[string]any{"value": 43}}}, nil)
	var marker operation
	h.call("POST", "/devicecontrol/operations", map[string]any{"deviceId": id, "c8y_Command": map[string]string{"text": "read /3/0/1"}}, &marker)
	for tr, c := range clients {
		_, skipped := notification(t, c, tr+" CREATE of the second operation", func(m bayeux.Message) bool {
			return m.Channel == "/operations/"+id && object(m)["id"] == marker.ID
		})
		for _, m := range skipped {
			if strings.HasPrefix(m.Channel, "/measurements/") && strings.Contains(string(m.Data.Data), `"value":43`) {
				t.Fatalf("%s: a measurement after the unsubscribe: %s", tr, m.Data.Data)
			}
		}
	}

	// the device's registration state, as the sessions store it: its
	// de-registration makes it UNAVAILABLE, with its lifecycle event
	for tr, c := range clients {
		if err := c.Subscribe(h.ctx, "/managedobjects/"+id, "/events/"+id); err != nil {
			t.Fatalf("%s: subscribe: %v", tr, err)
		}
	}
	if err := dev.Deregister(h.ctx); err != nil {
		t.Fatalf("de-register: %v", err)
	}
	for tr, c := range clients {
		upd, _ := notification(t, c, tr+" UPDATE of the device to UNAVAILABLE", func(m bayeux.Message) bool {
			avail, _ := object(m)["c8y_Availability"].(map[string]any)
			return m.Channel == "/managedobjects/"+id && avail["status"] == "UNAVAILABLE"
		})
		ev, _ := notification(t, c, tr+" CREATE of the de-registration event", func(m bayeux.Message) bool {
			return m.Channel == "/events/"+id && object(m)["type"] == "c8y_LWM2MDeviceDeRegistration"
		})
		var stored map[string]any
		h.call("GET", "/event/events/"+object(ev)["id"].(string), nil, &stored)
		if upd.Data.RealtimeAction != "UPDATE" || ev.Data.RealtimeAction != "CREATE" || !sameJSON(object(ev), stored) {
			t.Fatalf("%s: %s of the device, %s %s of the event, want UPDATE and CREATE of %v", tr, upd.Data.RealtimeAction,
				ev.Data.RealtimeAction, ev.Data.Data, stored)
		}
	}

	// the other tenant's client saw nothing of it: its first notification
	// is its own measurement, made last
	var own map[string]any
	h.callAs(acmeUser, acmePass, "POST", "/inventory/managedObjects", map[string]any{"name": "acme-meter", "c8y_IsDevice": map[string]any{}}, &own)
	var ownM map[string]any
	if code := h.callAs(acmeUser, acmePass, "POST", "/measurement/measurements", map[string]any{"source": map[string]any{"id": own["id"]},
		"type": "c8y_Acme", "c8y_Acme": map[string]any{"V": map[string]any{"value": 1}}}, &ownM); code != 201 {
		t.Fatalf("acme's measurement: HTTP %d", code)
	}
	select {
	case m := <-acme.Messages():
		if object(m)["id"] != ownM["id"] {
			t.Fatalf("tenant acme received %s %s", m.Channel, m.Data.Data)
		}
	case <-time.After(realtimeWait):
		t.Fatalf("tenant acme got no notification of its own measurement")
	}

	for tr, c := range clients {
		if err := c.Disconnect(h.ctx); err != nil {
			t.Fatalf("%s: disconnect: %v", tr, err)
		}
	}
	h.eventually(realtimeWait, func() error {
		if n := h.metric("lwm2m_agent_realtime_clients"); n != 1 {
			return fmt.Errorf("%v realtime clients, want acme's only", n)
		}
		return nil
	})
}

// A subscriber that stops reading is dropped once its queue is full,
// and told to handshake again; the others keep receiving, and the agent
// keeps serving.
func TestRealtimeSlowSubscriberDropped(t *testing.T) {
	// a long maxInterval: the slow client must be dropped for its queue,
	// not removed for not connecting
	h := startAgent(t, func(c *config.Config) { c.RealtimeQueueSize, c.RealtimeMaxInterval = 10, time.Minute })
	h.setFunctionality("management/admin", adminPassword, "3303/resources/5700", map[string]any{
		"measurement": map[string]any{"type": "c8y_Temperature", "series": "T", "unit": "C"}, "autoObserve": true})
	good := h.bayeux("management/admin", adminPassword, bayeux.WebSocket)
	if err := good.Subscribe(h.ctx, "/measurements/*"); err != nil {
		t.Fatal(err)
	}
	h.simulate(1, func(c *simulator.Config) { c.NotifyInterval = 50 * time.Millisecond })
	notification(t, good, "a first measurement", func(bayeux.Message) bool { return true })

	// the slow one handshakes and subscribes, then never connects
	token := base64.StdEncoding.EncodeToString([]byte("management/admin:" + adminPassword))
	rep := h.bayeuxPost(map[string]any{"channel": "/meta/handshake", "version": "1.0", "supportedConnectionTypes": []string{"long-polling"},
		"ext": map[string]any{"com.cumulocity.authn": map[string]any{"token": token}}})
	slow, _ := rep[0]["clientId"].(string)
	if slow == "" {
		t.Fatalf("handshake: %v", rep)
	}
	if rep := h.bayeuxPost(map[string]any{"channel": "/meta/subscribe", "clientId": slow, "subscription": "/measurements/*"}); rep[0]["successful"] != true {
		t.Fatalf("subscribe: %v", rep)
	}
	h.eventually(realtimeWait, func() error {
		text, err := h.metrics()
		if err != nil {
			return err
		}
		if !strings.Contains(text, "\n"+`lwm2m_agent_realtime_clients_dropped_total{reason="queue_full"} 1`+"\n") {
			return fmt.Errorf("the slow client is not dropped")
		}
		return nil
	})
	rep = h.bayeuxPost(map[string]any{"channel": "/meta/connect", "clientId": slow, "connectionType": "long-polling"})
	adv, _ := rep[0]["advice"].(map[string]any)
	if rep[0]["successful"] != false || !strings.HasPrefix(fmt.Sprint(rep[0]["error"]), "402::") || adv["reconnect"] != "handshake" {
		t.Fatalf("connect of the dropped client: %v", rep)
	}
	// the good one goes on receiving: 20 more
	for i := range 20 {
		notification(t, good, fmt.Sprintf("measurement %d after the drop", i), func(bayeux.Message) bool { return true })
	}
	if code := h.call("GET", "/health", nil, nil); code != 200 {
		t.Fatalf("health: HTTP %d", code)
	}
	if n := h.metric("lwm2m_agent_realtime_clients"); n != 1 {
		t.Fatalf("%v realtime clients, want the good one", n)
	}
}

// bayeuxPost sends messages to /notification/realtime over long-polling.
func (h *harness) bayeuxPost(msgs ...map[string]any) []map[string]any {
	h.t.Helper()
	body, _ := json.Marshal(msgs)
	ctx, cancel := context.WithTimeout(h.ctx, realtimeWait)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.base+"/notification/realtime", bytes.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var out []map[string]any
	if err := json.Unmarshal(data, &out); err != nil || len(out) == 0 {
		h.t.Fatalf("HTTP %d: %s: %v", resp.StatusCode, data, err)
	}
	return out
}

// A read answered at once is recorded with its EXECUTING in one store
// write, and still passes through EXECUTING for those who watch: its
// realtime updates are EXECUTING, then SUCCESSFUL with the result. A
// loaded machine may make the simulator answer later than the runner
// waits, so the test reads until one read was recorded in one write,
// five at most, and checks the announcements of every one.
func TestReadRecordedInOneWrite(t *testing.T) {
	h := startAgent(t)
	sim := h.simulate(1, func(c *simulator.Config) { c.NotifyInterval = 0 })
	id := h.deviceIDs(sim)[sim.Endpoints()[0]]
	c := h.bayeux("management/admin", adminPassword, bayeux.WebSocket)
	if err := c.Subscribe(h.ctx, "/operations/"+id); err != nil {
		t.Fatal(err)
	}
	before := h.agent.Ops.Stats()
	for i := 0; i < 5 && h.agent.Ops.Stats().Executed == before.Executed; i++ {
		op := h.shell(id, "read /3/0/0", 10*time.Second)
		if op.Status != "SUCCESSFUL" || op.Command.Result == "" {
			t.Fatalf("read: %+v", op)
		}
		var statuses []string
		for {
			m, _ := notification(t, c, "the read's outcome", func(m bayeux.Message) bool { return object(m)["id"] == op.ID })
			o := object(m)
			statuses = append(statuses, fmt.Sprint(m.Data.RealtimeAction, " ", o["status"]))
			if o["status"] == "SUCCESSFUL" {
				if cmd, _ := o["c8y_Command"].(map[string]any); cmd["result"] != op.Command.Result {
					t.Errorf("announced result %v, want %q", cmd["result"], op.Command.Result)
				}
				break
			}
		}
		if want := []string{"CREATE PENDING", "UPDATE EXECUTING", "UPDATE SUCCESSFUL"}; !sameJSON(statuses, want) {
			t.Errorf("announced %q, want %q", statuses, want)
		}
	}
	if got := h.agent.Ops.Stats(); got.Executed != before.Executed+1 {
		t.Errorf("runner: %d reads recorded in one write of %d sent; want one", got.Executed-before.Executed, got.Sent-before.Sent)
	}
}
