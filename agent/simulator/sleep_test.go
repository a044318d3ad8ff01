package simulator

import (
	"context"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/testbound"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/lwm2m-agent/lwm2m-agent/agent/codec"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// getWithin reads path from the device and reports whether it answered
// within d.
func getWithin(t *testing.T, reg *testReg, path string, d time.Duration) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	req, err := reg.conn.NewGetRequest(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.conn.ReleaseMessage(req)
	resp, err := reg.conn.Do(req)
	if err != nil {
		return false
	}
	defer reg.conn.ReleaseMessage(resp)
	if resp.Code() != codes.Content {
		t.Fatalf("GET %s: %v", path, resp.Code())
	}
	return true
}

// TestSleepingDevice checks a device with an awake time: it announces it
// (at=), answers while awake after its Register and each Update, drops
// requests while asleep, and records both with its windows.
func TestSleepingDevice(t *testing.T) {
	// The awake time leaves room for a loaded machine between the test
	// seeing the device awake and its request reaching the device.
	const awake = 2 * time.Second
	srv := startServer(t)
	sim := runSim(t, srv, func(c *Config) {
		c.AwakeTime = awake
		c.UpdateEvery = 2 * awake
		c.Record = 32
		c.NotifyInterval = 0
	})
	reg := srv.reg("sim-0")
	dev := sim.Device("sim-0")
	if got := reg.query["at"]; got != "2000" {
		t.Fatalf("Register at=%q, want 2000", got)
	}

	// Awake right after registering.
	if !getWithin(t, reg, "/3/0/0", time.Second) {
		t.Fatal("no answer right after the Register")
	}
	srv.wait(2*awake, "asleep", func() bool { return !dev.Awake() })
	if getWithin(t, reg, "/3/0/1", 500*time.Millisecond) {
		t.Fatal("a sleeping device answered")
	}
	// Awake again after the Update: the device records the window once it
	// has the server's answer, which comes after the server counted the
	// Update.
	srv.wait(4*awake, "an Update", func() bool { return reg.updates >= 1 })
	testbound.Until(t, 2*awake, "the Update's awake window", func() bool {
		w := dev.Wakeups()
		return len(w) >= 2
	})
	if !dev.Awake() {
		t.Fatal("asleep right after an Update")
	}
	if !getWithin(t, reg, "/3/0/2", time.Second) {
		t.Fatal("no answer right after the Update")
	}

	reqs := dev.Requests()
	want := []Request{
		{Method: "GET", Path: "/3/0/0", Wakeup: 1, Answered: true},
		{Method: "GET", Path: "/3/0/1", Wakeup: 1, Asleep: true},
		{Method: "GET", Path: "/3/0/2", Wakeup: 2, Answered: true},
	}
	if len(reqs) != len(want) {
		t.Fatalf("requests %+v, want %d", reqs, len(want))
	}
	for i, r := range reqs {
		r.Time = time.Time{}
		if r != want[i] {
			t.Errorf("request %d: %+v, want %+v", i, r, want[i])
		}
	}
	if dev.Dropped() != 1 {
		t.Errorf("dropped %d, want 1", dev.Dropped())
	}
	wakes := dev.Wakeups()
	if len(wakes) != 2 || wakes[0].Update || !wakes[1].Update || wakes[0].Seq != 1 || wakes[1].Seq != 2 {
		t.Fatalf("wakeups %+v, want a Register then an Update", wakes)
	}
	for i, w := range wakes {
		if got := w.End.Sub(w.Start); got < awake || got > awake+3*time.Second {
			t.Errorf("wakeup %d lasts %v, want the awake time plus the exchange", i, got)
		}
	}
	if r := reqs[0]; r.Time.Before(wakes[0].Start) || !r.Time.Before(wakes[0].End) {
		t.Errorf("answered request at %v outside the window %+v", r.Time, wakes[0])
	}
	if r := reqs[1]; !r.Time.After(wakes[0].End) || !r.Time.Before(wakes[1].Start) {
		t.Errorf("dropped request at %v not between the windows %+v", r.Time, wakes)
	}
}

// TestIgnore checks that an awake device drops exactly the requests it
// was told to ignore, retransmissions included, and answers the next.
func TestIgnore(t *testing.T) {
	srv := startServer(t)
	sim := runSim(t, srv, func(c *Config) { c.Record = 8 })
	reg := srv.reg("sim-0")
	dev := sim.Device("sim-0")
	dev.Ignore(node.ResourcePath(3, 0, 0), 1)
	if getWithin(t, reg, "/3/0/0", 300*time.Millisecond) {
		t.Fatal("an ignored request was answered")
	}
	if !getWithin(t, reg, "/3/0/1", 500*time.Millisecond) {
		t.Fatal("another path was not answered")
	}
	if r := srv.must(reg, get("/3/0/0", int(codec.Text))); string(r.payload) != "lwm2m-agent" {
		t.Fatalf("the request after the ignored one: %v %q", r.code, r.payload)
	}
	reqs := dev.Requests()
	if len(reqs) != 3 || reqs[0].Answered || reqs[0].Asleep || !reqs[1].Answered || !reqs[2].Answered {
		t.Fatalf("requests %+v", reqs)
	}
}

func TestRecordBounded(t *testing.T) {
	srv := startServer(t)
	sim := runSim(t, srv, func(c *Config) { c.Record = 4 })
	reg := srv.reg("sim-0")
	for range 10 {
		srv.must(reg, get("/3/0/0", int(codec.Text)))
	}
	srv.must(reg, get("/3/0/1", int(codec.Text)))
	reqs := sim.Device("sim-0").Requests()
	if len(reqs) != 4 || reqs[3].Path != "/3/0/1" {
		t.Fatalf("requests %+v, want the last 4", reqs)
	}
}

// TestRepeatWhileAsleep checks that a copy of a request the device
// answered, arriving once it sleeps (the server's CoAP retransmission of
// a request whose answer it had not taken yet), is dropped and recorded
// as a Repeat, and that a new request then is not.
func TestRepeatWhileAsleep(t *testing.T) {
	srv := startRaw(t)
	sim, err := New(Config{Server: srv.addr(), Version: "1.1", AwakeTime: 2 * time.Second, UpdateEvery: time.Minute, Record: 8})
	if err != nil {
		t.Fatal(err)
	}
	stop := runRaw(t, sim)
	defer stop()
	srv.register()
	waitRegistered(t, sim)
	dev := sim.Device(sim.Endpoints()[0])

	get := func(mid int32, tok byte) message.Message {
		return message.Message{Type: message.Confirmable, MessageID: mid, Token: message.Token{0xcd, tok}, Code: codes.GET,
			Options: message.Options{opt(message.URIPath, "3"), opt(message.URIPath, "0"), opt(message.URIPath, "0")}}
	}
	first := get(500, 1)
	srv.send(first)
	if ack := srv.expect("the answer", func(m message.Message) bool { return m.MessageID == 500 }); ack.Code != codes.Content {
		t.Fatalf("answer %v", ack.String())
	}
	testbound.Until(t, 5*time.Second, "the device asleep", func() bool { return !dev.Awake() })
	srv.send(first)
	srv.send(get(501, 2))
	testbound.Until(t, 5*time.Second, "both requests dropped", func() bool { return dev.Dropped() == 2 })

	want := []Request{
		{Method: "GET", Path: "/3/0/0", Wakeup: 1, Answered: true},
		{Method: "GET", Path: "/3/0/0", Wakeup: 1, Asleep: true, Repeat: true},
		{Method: "GET", Path: "/3/0/0", Wakeup: 1, Asleep: true},
	}
	reqs := dev.Requests()
	if len(reqs) != len(want) {
		t.Fatalf("requests %+v, want %d", reqs, len(want))
	}
	for i, r := range reqs {
		r.Time = time.Time{}
		if r != want[i] {
			t.Errorf("request %d: %+v, want %+v", i, r, want[i])
		}
	}
}
