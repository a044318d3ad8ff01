package session

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/lwm2m"
	"github.com/lwm2m-agent/lwm2m-agent/agent/refusal"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/storetest"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"
)

// testAgent is the LwM2M server with these hooks over a store, as the
// agent wires them.
type testAgent struct {
	srv   *lwm2m.Server
	state *StateWriter
	hooks *Hooks
}

// startAgent serves the LwM2M server with hooks that read st and a state
// writer (flushing every interval unless someone waits) that writes to
// writes, until tb ends: the server stops first, then the writer, which
// stores what is queued.
func startAgent(tb testing.TB, st, writes store.Engine, interval time.Duration, mod func(*Config)) testAgent {
	tb.Helper()
	state := NewStateWriter(writes, 8192, interval, nil)
	wctx, stopWriter := context.WithCancel(context.Background())
	go state.Run(wctx)
	cfg := Config{Store: st, State: state, Refused: refusal.New(nil, 0)}
	if mod != nil {
		mod(&cfg)
	}
	h := New(cfg)
	srv, err := lwm2m.NewServer(lwm2m.Config{Addr: "127.0.0.1:0", RegisterInterval: -1, PeerRate: -1}, h)
	if err != nil {
		tb.Fatal(err)
	}
	sctx, stopServer := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = srv.Serve(sctx); close(done) }()
	tb.Cleanup(func() { stopServer(); <-done; h.Wait(); stopWriter(); <-state.Done() })
	return testAgent{srv: srv, state: state, hooks: h}
}

// createNoSecDevices creates NO_SEC devices plain-0 to plain-(n-1) in the
// tenant acme and returns their IDs.
func createNoSecDevices(tb testing.TB, st store.Engine, n int) []string {
	tb.Helper()
	ctx := context.Background()
	ids := make([]string, n)
	for i := range n {
		ep := fmt.Sprintf("plain-%d", i)
		id, err := st.CreateIncompleteDevice(ctx, "acme", store.NewDevice{Endpoint: ep, Registration: store.DeviceRegistration{
			Params: map[string]any{"endpointId": ep, "securityMode": "NO_SEC"},
		}})
		if err != nil {
			tb.Fatal(err)
		}
		if err := st.CompleteDevice(ctx, "acme", id); err != nil {
			tb.Fatal(err)
		}
		ids[i] = id
	}
	return ids
}

// client is a device's CoAP socket.
type client struct {
	conn *udpClient.Conn
}

func dialAgent(t *testing.T, a testAgent) client {
	t.Helper()
	conn, err := udp.Dial(a.srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return client{conn: conn}
}

// answer is what the agent answered a registration request.
type answer struct {
	code     codes.Code
	location string // the registration's ID, of a Register answered 2.01
	maxAge   uint32
}

// post sends POST path with queries and, when links is not empty, an
// object list.
func (c client) post(path, links string, queries ...string) (answer, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	opts := make([]message.Option, 0, len(queries))
	for _, q := range queries {
		opts = append(opts, message.Option{ID: message.URIQuery, Value: []byte(q)})
	}
	var body io.ReadSeeker // nil, not a nil *bytes.Reader, without links
	if links != "" {
		body = bytes.NewReader([]byte(links))
	}
	req, err := c.conn.NewPostRequest(ctx, path, message.AppLinkFormat, body, opts...)
	if err != nil {
		return answer{}, err
	}
	defer c.conn.ReleaseMessage(req)
	resp, err := c.conn.Do(req)
	if err != nil {
		return answer{}, fmt.Errorf("POST %s: %w", path, err)
	}
	defer c.conn.ReleaseMessage(resp)
	loc, _ := resp.Options().LocationPath()
	maxAge, _ := resp.Options().GetUint32(message.MaxAge)
	return answer{code: resp.Code(), location: strings.TrimPrefix(strings.TrimPrefix(loc, "/"), "rd/"), maxAge: maxAge}, nil
}

func (c client) register(t *testing.T, ep string, queries ...string) answer {
	t.Helper()
	a, err := c.post("/rd", "</1/0>,</3/0>", append([]string{"ep=" + ep, "lwm2m=1.1"}, queries...)...)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func (c client) deregister(t *testing.T, id string) codes.Code {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.conn.Delete(ctx, "/rd/"+id)
	if err != nil {
		t.Fatal(err)
	}
	defer c.conn.ReleaseMessage(resp)
	return resp.Code()
}

// storedState returns what the store holds of the device's registration:
// its availability, its registrationId and lifetime, and how many events
// of type ev it has.
func storedState(t *testing.T, st store.Engine, id, ev string) (status, regID string, lifetime int64, events int) {
	t.Helper()
	ctx := context.Background()
	mo, err := st.GetManagedObject(ctx, "acme", id)
	if err != nil {
		t.Fatal(err)
	}
	if a, ok := mo.Fragments["c8y_Availability"].(map[string]any); ok {
		status, _ = a["status"].(string)
	}
	if lw, ok := mo.Fragments["lwm2m"].(map[string]any); ok {
		regID, _ = lw["registrationId"].(string)
		lifetime = number(lw["lifetime"])
	}
	return status, regID, lifetime, len(eventsOf(t, st, "acme", id, ev))
}

// A Register answered 2.01, and an Update that changed the registration
// answered 2.04, are in the store (state and event) when the device has
// the answer: the writer's interval is an hour, so only the Register's
// own wait can have written them.
func TestRegisterStoredWhenAnswered(t *testing.T) {
	st := storetest.OpenTest(t)
	ids := createNoSecDevices(t, st, 1)
	a := startAgent(t, st, st, time.Hour, nil)
	c := dialAgent(t, a)

	ans := c.register(t, "plain-0", "lt=300")
	if ans.code != codes.Created {
		t.Fatalf("register answered %v", ans.code)
	}
	status, regID, lifetime, events := storedState(t, st, ids[0], EventRegistration)
	if status != "AVAILABLE" || regID != ans.location || lifetime != 300 || events != 1 {
		t.Fatalf("when answered: status %q, registration %q lifetime %d, %d registration events; want AVAILABLE, %q, 300, 1",
			status, regID, lifetime, events, ans.location)
	}

	up, err := c.post("/rd/"+ans.location, "", "lt=600")
	if err != nil || up.code != codes.Changed {
		t.Fatalf("update answered %v (%v)", up.code, err)
	}
	_, _, lifetime, events = storedState(t, st, ids[0], EventRegistrationUpdate)
	if lifetime != 600 || events != 1 {
		t.Fatalf("when the Update was answered: lifetime %d, %d update events; want 600 and 1", lifetime, events)
	}
	if n := a.state.Durable(); n != 2 {
		t.Errorf("%d changes stored durably, want 2", n)
	}
}

// A De-register is not waited for, but its state is written before that
// of the Register that follows: the Register finds the store holding its
// own registration, and so does the store once the writer has drained.
func TestRegisterAfterDeregisterNotOverwritten(t *testing.T) {
	st := storetest.OpenTest(t)
	ids := createNoSecDevices(t, st, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := startAgent(t, st, st, time.Hour, nil)
	c := dialAgent(t, a)
	first := c.register(t, "plain-0", "lt=300")
	if first.code != codes.Created {
		t.Fatalf("register answered %v", first.code)
	}
	if code := c.deregister(t, first.location); code != codes.Deleted {
		t.Fatalf("de-register answered %v", code)
	}
	second := c.register(t, "plain-0", "lt=300")
	if second.code != codes.Created {
		t.Fatalf("second register answered %v", second.code)
	}
	check := func(when string) {
		t.Helper()
		status, regID, _, _ := storedState(t, st, ids[0], EventRegistration)
		if status != "AVAILABLE" || regID != second.location {
			t.Fatalf("%s: status %q, registration %q; want AVAILABLE and %q (the de-registered one was %q)",
				when, status, regID, second.location, first.location)
		}
	}
	check("when answered")
	if n := len(eventsOf(t, st, "acme", ids[0], EventDeregistration)); n != 1 {
		t.Errorf("%d de-registration events, want 1", n)
	}
	// whatever the writer still holds is written now
	if err := a.state.AddDurable(ctx, stateChange{tenant: "acme", device: ids[0]}); err != nil {
		t.Fatal(err)
	}
	check("after a flush")
}

// With the store unreachable, a Register is answered 5.03 with Max-Age
// and leaves no registration, neither in the server nor, once the store
// is back, in the store.
func TestRegisterStoreDown(t *testing.T) {
	direct, proxied, px := storetest.OpenMongoBehindProxy(t)
	ids := createNoSecDevices(t, direct, 2)
	// the lookups that let the device in use the store directly; only
	// the writes of the registration state go through the proxy
	a := startAgent(t, direct, proxied, time.Hour, func(c *Config) { c.StoreTimeout = 3 * time.Second })
	c := dialAgent(t, a)
	if ans := c.register(t, "plain-1", "lt=300"); ans.code != codes.Created {
		t.Fatalf("register with the store up answered %v", ans.code)
	}

	px.SetUp(false)
	start := time.Now()
	ans := c.register(t, "plain-0", "lt=300")
	if ans.code != codes.ServiceUnavailable || ans.maxAge == 0 {
		t.Fatalf("register with the store down answered %v, Max-Age %d; want 5.03 with Max-Age", ans.code, ans.maxAge)
	}
	t.Logf("answered 5.03 after %v", time.Since(start).Round(time.Millisecond))
	if reg, ok := a.srv.Registration("plain-0"); ok {
		t.Fatalf("the server holds registration %s", reg.ID)
	}
	if n := a.srv.Stats().Registrations; n != 1 {
		t.Fatalf("%d registrations live, want only plain-1's", n)
	}

	px.SetUp(true)
	// a Register of another device makes the writer write once more
	// the client finds the store again within its heartbeat; a loaded
	// machine may take a few of them
	var ok bool
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if ok = c.register(t, "plain-1", "lt=300").code == codes.Created; ok {
			break
		}
	}
	if !ok {
		t.Fatal("registers still refused after the store came back")
	}
	if status, regID, _, events := storedState(t, direct, ids[0], EventRegistration); status != "" || regID != "" || events != 0 {
		t.Fatalf("the refused Register left status %q, registration %q, %d events", status, regID, events)
	}
	if ans := c.register(t, "plain-0", "lt=300"); ans.code != codes.Created {
		t.Fatalf("register once the store is back answered %v", ans.code)
	} else if _, regID, _, _ := storedState(t, direct, ids[0], EventRegistration); regID != ans.location {
		t.Fatalf("stored registration %q, want %q", regID, ans.location)
	}
}

// slowStore delays each write of registration state, as a store busy
// with others' writes: the Registers that come meanwhile queue up behind
// it.
type slowStore struct {
	store.Engine
	delay time.Duration
}

func (s slowStore) SaveStates(ctx context.Context, tenant string, fragments map[string]map[string]any, events []store.Event) ([]string, []store.Event, error) {
	time.Sleep(s.delay)
	return s.Engine.SaveStates(ctx, tenant, fragments, events)
}

// Registers of many devices at once share the writer's store rounds:
// each flush takes every change queued while the one before ran.
func TestConcurrentRegistersShareRounds(t *testing.T) {
	const devices = 32
	st := storetest.OpenTest(t)
	ids := createNoSecDevices(t, st, devices)
	a := startAgent(t, st, slowStore{Engine: st, delay: 20 * time.Millisecond}, time.Hour, nil)
	clients := make([]client, devices)
	for i := range clients {
		clients[i] = dialAgent(t, a)
	}
	rounds := a.state.Flushes()
	answers := make([]answer, devices)
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Go(func() {
			var err error
			if answers[i], err = c.post("/rd", "</3/0>", fmt.Sprintf("ep=plain-%d", i), "lt=300"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for i, ans := range answers {
		if ans.code != codes.Created {
			t.Fatalf("device %d answered %v", i, ans.code)
		}
		if _, regID, _, _ := storedState(t, st, ids[i], EventRegistration); regID != ans.location {
			t.Fatalf("device %d: stored registration %q, want %q", i, regID, ans.location)
		}
	}
	n := a.state.Flushes() - rounds
	t.Logf("%d Registers in %d store rounds", devices, n)
	if n >= devices/2 {
		t.Errorf("%d Registers took %d store rounds: their writes were not shared", devices, n)
	}
	if d := a.state.Durable(); d != devices {
		t.Errorf("%d changes stored durably, want %d", d, devices)
	}
}
