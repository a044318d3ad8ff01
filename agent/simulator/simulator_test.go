package simulator

import (
	"context"

	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"

	"github.com/lwm2m-agent/lwm2m-agent/agent/codec"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

func TestRegisterAndRead(t *testing.T) {
	for _, tc := range []struct {
		version string
		native  codec.Format
	}{
		{"1.0", codec.TLV},
		{"1.1", codec.SenMLCBOR},
		{"1.2", codec.SenMLCBOR},
	} {
		t.Run(tc.version, func(t *testing.T) {
			srv := startServer(t)
			runSim(t, srv, func(c *Config) { c.Version = tc.version; c.Prefix = "dev"; c.Start = 7 })
			reg := srv.reg("dev-7")

			want := map[string]string{"ep": "dev-7", "lt": "60", "lwm2m": tc.version, "b": "U"}
			for k, v := range want {
				if reg.query[k] != v {
					t.Errorf("register query %s=%q, want %q (all: %v)", k, reg.query[k], v, reg.query)
				}
			}
			var targets []string
			for _, l := range reg.links {
				targets = append(targets, l.Target)
			}
			wantTargets := []string{"/", "/1/0", "/3/0", "/4/0", "/5/0", "/6/0", "/19/0", "/3303/0", "/10268/0"}
			if !slices.Equal(targets, wantTargets) {
				t.Errorf("registered links %v, want %v", targets, wantTargets)
			}
			if rt, _ := reg.links[0].Attr("rt"); rt != "oma.lwm2m" {
				t.Errorf("root link rt=%q", rt)
			}
			if ct, _ := reg.links[0].Attr("ct"); ct != itoa(int(tc.native)) {
				t.Errorf("root link ct=%q, want %d", ct, tc.native)
			}

			// No Accept: the device's preferred format.
			r := srv.must(reg, get("/3/0", -1))
			if !r.hasCF || r.format != tc.native {
				t.Errorf("read without Accept answered in %v, want %v", r.format, tc.native)
			}
			for _, f := range []codec.Format{codec.TLV, codec.SenMLCBOR, codec.SenMLJSON} {
				r := srv.must(reg, get("/3/0", int(f)))
				if r.format != f {
					t.Errorf("Accept %v answered in %v", f, r.format)
				}
				vals := decode(t, r, "/3/0")
				for path, want := range map[string]string{
					"/3/0/0":    "lwm2m-agent",
					"/3/0/1":    "simulator",
					"/3/0/2":    "dev-7",
					"/3/0/3":    "1.0.0",
					"/3/0/16":   "U",
					"/3/0/6/0":  "1",
					"/3/0/6/1":  "5",
					"/3/0/7/1":  "5000",
					"/3/0/11/0": "0",
				} {
					if got := vals[path].Text(); got != want {
						t.Errorf("%v: %s = %q, want %q", f, path, got, want)
					}
				}
				if _, ok := vals["/3/0/4"]; ok {
					t.Errorf("%v: read returned the executable /3/0/4", f)
				}
				if ct := vals["/3/0/13"]; ct.Type != node.TypeTime || time.Since(ct.Time).Abs() > 5*time.Second {
					t.Errorf("%v: current time %v", f, ct.Interface())
				}
			}
			// A single resource as text; an object with its instances.
			r = srv.must(reg, get("/3303/0/5701", int(codec.Text)))
			if string(r.payload) != "Cel" {
				t.Errorf("read /3303/0/5701 as text: %q", r.payload)
			}
			vals := decode(t, srv.must(reg, get("/3303", int(codec.SenMLJSON))), "/3303")
			if v := vals["/3303/0/5700"]; v.Type != node.TypeFloat || v.Float < -40 || v.Float > 85 {
				t.Errorf("temperature %v", v.Interface())
			}
			vals = decode(t, srv.must(reg, get("/3/0/6/1", int(codec.TLV))), "/3/0/6/1")
			if len(vals) != 1 || vals["/3/0/6/1"].Int != 5 {
				t.Errorf("read of a resource instance: %s", fmtValues(vals))
			}
		})
	}
}

func itoa(i int) string { return fmtNum(float64(i)) }

func TestWriteThenRead(t *testing.T) {
	srv := startServer(t)
	sim := runSim(t, srv, nil)
	reg := srv.reg("sim-0")
	dev := sim.Device("sim-0")

	// Text on a resource.
	if r := srv.must(reg, put("/3/0/14", int(codec.Text), []byte("+02:00"))); r.code != codes.Changed {
		t.Fatalf("write /3/0/14: %v %s", r.code, r.payload)
	}
	if r := srv.must(reg, get("/3/0/14", int(codec.Text))); string(r.payload) != "+02:00" {
		t.Errorf("read back /3/0/14: %q", r.payload)
	}
	if v, _ := dev.Value(node.MustParsePath("/3/0/14")); v.Str != "+02:00" {
		t.Errorf("device value %q", v.Str)
	}

	// TLV replace on the instance, several resources at once.
	payload, err := codec.Encode(codec.TLV, node.MustParsePath("/3/0"), []node.Record{
		{Path: node.MustParsePath("/3/0/14"), Value: node.String("-05:00")},
		{Path: node.MustParsePath("/3/0/15"), Value: node.String("America/New_York")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if r := srv.must(reg, put("/3/0", int(codec.TLV), payload)); r.code != codes.Changed {
		t.Fatalf("TLV write /3/0: %v %s", r.code, r.payload)
	}
	vals := decode(t, srv.must(reg, get("/3/0", int(codec.TLV))), "/3/0")
	if vals["/3/0/14"].Str != "-05:00" || vals["/3/0/15"].Str != "America/New_York" {
		t.Errorf("after TLV write: 14=%q 15=%q", vals["/3/0/14"].Str, vals["/3/0/15"].Str)
	}

	// SenML CBOR partial update; the lifetime goes out in an Update.
	payload, err = codec.Encode(codec.SenMLCBOR, node.MustParsePath("/1/0"), []node.Record{
		{Path: node.MustParsePath("/1/0/1"), Value: node.Int(120)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if r := srv.must(reg, post("/1/0", int(codec.SenMLCBOR), payload)); r.code != codes.Changed {
		t.Fatalf("SenML write /1/0: %v %s", r.code, r.payload)
	}
	srv.wait(5*time.Second, "update with the new lifetime", func() bool { return reg.query["lt"] == "120" })

	// Current Time moves the device clock.
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	payload, _ = codec.Encode(codec.Text, node.MustParsePath("/3/0/13"), []node.Record{{Path: node.MustParsePath("/3/0/13"), Value: node.TimeValue(at)}})
	if r := srv.must(reg, put("/3/0/13", int(codec.Text), payload)); r.code != codes.Changed {
		t.Fatalf("write current time: %v %s", r.code, r.payload)
	}
	if v, _ := dev.Value(node.MustParsePath("/3/0/13")); v.Time.Sub(at).Abs() > 3*time.Second {
		t.Errorf("current time after write %v, want about %v", v.Time, at)
	}
}

func TestRefusals(t *testing.T) {
	srv := startServer(t)
	runSim(t, srv, nil)
	reg := srv.reg("sim-0")
	tlvInt := func(p string, v int64) []byte {
		b, err := codec.Encode(codec.TLV, node.MustParsePath(p), []node.Record{{Path: node.MustParsePath(p), Value: node.Int(v)}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	senml := func(base string, recs ...node.Record) []byte {
		b, err := codec.Encode(codec.SenMLJSON, node.MustParsePath(base), recs)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct {
		name string
		rq   request
		want codes.Code
	}{
		{"write read-only resource", put("/3/0/0", int(codec.Text), []byte("other")), codes.MethodNotAllowed},
		{"write read-only inside instance write", put("/3/0", int(codec.SenMLJSON), senml("/3/0", node.Record{Path: node.MustParsePath("/3/0/1"), Value: node.String("x")})), codes.MethodNotAllowed},
		{"write executable", put("/3/0/4", int(codec.Text), []byte("1")), codes.MethodNotAllowed},
		{"read executable", get("/3/0/4", -1), codes.MethodNotAllowed},
		{"read write-only", get("/5/0/0", -1), codes.MethodNotAllowed},
		{"execute readable", post("/3/0/0", -1, nil), codes.MethodNotAllowed},
		{"read missing resource", get("/3/0/99", -1), codes.NotFound},
		{"read missing instance", get("/3303/9", -1), codes.NotFound},
		{"read missing object", get("/42", -1), codes.NotFound},
		{"read missing resource instance", get("/3/0/6/7", -1), codes.NotFound},
		{"read a non-path", get("/rd", -1), codes.NotFound},
		{"write missing resource", put("/3/0/99", int(codec.Text), []byte("1")), codes.NotFound},
		{"security object", get("/0/0", -1), codes.Unauthorized},
		{"bad text value", put("/1/0/1", int(codec.Text), []byte("soon")), codes.BadRequest},
		{"bad TLV", put("/3/0/14", int(codec.TLV), []byte{0xff}), codes.BadRequest},
		{"wrong SenML type", put("/1/0/1", int(codec.SenMLJSON), senml("/1/0/1", node.Record{Path: node.MustParsePath("/1/0/1"), Value: node.String("x")})), codes.BadRequest},
		{"value outside the written path", put("/1/0/1", int(codec.TLV), tlvInt("/1/0/2", 5)), codes.BadRequest},
		{"write without content format", put("/3/0/14", -1, []byte("x")), codes.BadRequest},
		{"write unknown content format", put("/3/0/14", 9999, []byte("x")), codes.UnsupportedMediaType},
		{"read unknown content format", get("/3/0", 9999), codes.NotAcceptable},
		{"read instance as text", get("/3/0", int(codec.Text)), codes.NotAcceptable},
		{"delete mandatory instance", request{code: codes.DELETE, path: "/3/0", accept: -1, format: -1}, codes.MethodNotAllowed},
		{"delete resource", request{code: codes.DELETE, path: "/3303/0/5700", accept: -1, format: -1}, codes.MethodNotAllowed},
		{"create existing instance", post("/3303", int(codec.SenMLJSON), senml("/3303", node.Record{Path: node.MustParsePath("/3303/0/5750"), Value: node.String("x")})), codes.BadRequest},
		{"create single-instance object", post("/3", int(codec.SenMLJSON), senml("/3", node.Record{Path: node.MustParsePath("/3/1/14"), Value: node.String("x")})), codes.BadRequest},
		{"unknown attribute", request{code: codes.PUT, path: "/3/0/9", accept: -1, format: -1, queries: []string{"foo=1"}}, codes.BadRequest},
		{"gt on a string", request{code: codes.PUT, path: "/3/0/14", accept: -1, format: -1, queries: []string{"gt=1"}}, codes.BadRequest},
		{"lt above gt", request{code: codes.PUT, path: "/3/0/9", accept: -1, format: -1, queries: []string{"lt=50", "gt=40"}}, codes.BadRequest},
		{"attributes on a missing path", request{code: codes.PUT, path: "/3/0/99", accept: -1, format: -1, queries: []string{"pmin=1"}}, codes.NotFound},
		{"firmware update without package", post("/5/0/2", -1, nil), codes.MethodNotAllowed},
		{"execute with binary arguments", post("/3303/0/5605", int(codec.Text), []byte{0, 1, 2}), codes.BadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := srv.must(reg, tc.rq)
			if r.code != tc.want {
				t.Errorf("%v %s: %v %q, want %v", tc.rq.code, tc.rq.path, r.code, r.payload, tc.want)
			}
		})
	}
	// Nothing refused above changed the device.
	vals := decode(t, srv.must(reg, get("/3/0", int(codec.SenMLJSON))), "/3/0")
	if vals["/3/0/0"].Str != "lwm2m-agent" || vals["/3/0/14"].Str != "+00:00" {
		t.Errorf("refused writes changed values: %s", fmtValues(vals))
	}
}

func TestExecute(t *testing.T) {
	srv := startServer(t)
	sim := runSim(t, srv, nil)
	reg := srv.reg("sim-0")
	dev := sim.Device("sim-0")

	// Reset min/max of the temperature sensor.
	if r := srv.must(reg, post("/3303/0/5605", -1, nil)); r.code != codes.Changed {
		t.Fatalf("execute 5605: %v", r.code)
	}
	// Registration update trigger.
	srv.mu.Lock()
	before := reg.updates
	srv.mu.Unlock()
	if r := srv.must(reg, post("/1/0/8", int(codec.Text), []byte("0='x'"))); r.code != codes.Changed {
		t.Fatalf("execute /1/0/8: %v", r.code)
	}
	srv.wait(5*time.Second, "update after the trigger", func() bool { return reg.updates > before })
	if args, ok := dev.Executed(node.MustParsePath("/1/0/8")); !ok || args != "0='x'" {
		t.Errorf("arguments of the last execute of /1/0/8: %q %v, want 0='x'", args, ok)
	}
	if _, ok := dev.Executed(node.MustParsePath("/3/0/4")); ok {
		t.Error("/3/0/4 counted as executed before it was")
	}

	// Reboot answers, then the device registers anew.
	if r := srv.must(reg, post("/3/0/4", -1, nil)); r.code != codes.Changed {
		t.Fatalf("execute /3/0/4: %v", r.code)
	}
	srv.wait(5*time.Second, "registration after reboot", func() bool {
		return srv.countLocked("register sim-0") == 2 && dev.RegistrationID() == "2"
	})
}

// observer collects the notifications of one observation.
type observer struct {
	mu    sync.Mutex
	got   []response
	ready chan struct{}
}

func (o *observer) add(m *pool.Message) {
	r := readResponse(m)
	o.mu.Lock()
	o.got = append(o.got, r)
	o.mu.Unlock()
	select {
	case o.ready <- struct{}{}:
	default:
	}
}

func (o *observer) all() []response {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]response(nil), o.got...)
}

func (o *observer) waitFor(t *testing.T, n int, timeout time.Duration) []response {
	t.Helper()
	deadline := time.After(timeout)
	for {
		if got := o.all(); len(got) >= n {
			return got
		}
		select {
		case <-o.ready:
		case <-deadline:
			t.Fatalf("%d notifications, want %d", len(o.all()), n)
		}
	}
}

// settles waits until no notification comes for a look, as after the
// observation was cancelled: those already on their way may land in the
// first looks, but a device that goes on notifying fails the test after
// within.
func (o *observer) settles(t *testing.T, look, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		n := len(o.all())
		time.Sleep(look)
		m := len(o.all())
		if m == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d notifications in the last %v, still coming %v after the cancel", m-n, look, within)
		}
	}
}

func observe(t *testing.T, reg *testReg, path string, accept codec.Format) (*observer, func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, err := reg.conn.NewObserveRequest(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.conn.ReleaseMessage(req)
	req.SetAccept(message.MediaType(accept))
	o := &observer{ready: make(chan struct{}, 1)}
	obs, err := reg.conn.DoObserve(req, o.add)
	if err != nil {
		t.Fatalf("observe %s: %v", path, err)
	}
	return o, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if err := obs.Cancel(ctx); err != nil {
			t.Errorf("cancel observation of %s: %v", path, err)
		}
	}
}

func TestObserve(t *testing.T) {
	for _, tc := range []struct {
		version string
		format  codec.Format
		con     bool
	}{
		{"1.0", codec.TLV, false},
		{"1.1", codec.SenMLCBOR, false},
		{"1.1", codec.SenMLCBOR, true},
	} {
		name := tc.version + "-" + tc.format.String()
		if tc.con {
			name += "-con"
		}
		t.Run(strings.ReplaceAll(name, "/", "_"), func(t *testing.T) {
			srv := startServer(t)
			sim := runSim(t, srv, func(c *Config) { c.Version = tc.version; c.NotifyCON = tc.con })
			reg := srv.reg("sim-0")
			o, cancel := observe(t, reg, "/3303/0/5700", tc.format)
			got := o.waitFor(t, 4, 5*time.Second)
			seen := map[float64]bool{}
			last := int64(-1)
			for _, r := range got {
				if r.code != codes.Content || r.format != tc.format {
					t.Fatalf("notification %v in %v", r.code, r.format)
				}
				if r.observe <= last {
					t.Errorf("observe sequence %d after %d", r.observe, last)
				}
				last = r.observe
				seen[decode(t, r, "/3303/0/5700")["/3303/0/5700"].Float] = true
			}
			if len(seen) < 3 {
				t.Errorf("%d distinct temperatures in %d notifications", len(seen), len(got))
			}
			cancel()
			o.settles(t, 300*time.Millisecond, 5*time.Second)
			if s := sim.Stats(); s.Notifications < 3 { // the first answer is no notification
				t.Errorf("stats count %d notifications", s.Notifications)
			}
		})
	}
}

func TestObserveInstanceAndSetValue(t *testing.T) {
	srv := startServer(t)
	sim := runSim(t, srv, func(c *Config) { c.NotifyInterval = 0 })
	reg := srv.reg("sim-0")
	dev := sim.Device("sim-0")

	o, cancel := observe(t, reg, "/3/0", codec.SenMLJSON)
	defer cancel()
	first := o.waitFor(t, 1, 3*time.Second)[0]
	if v := decode(t, first, "/3/0")["/3/0/9"]; v.Type != node.TypeInteger {
		t.Fatalf("first answer lacks the battery level: %v", v)
	}
	dev.SetValue(node.MustParsePath("/3/0/9"), node.Int(42))
	got := o.waitFor(t, 2, 3*time.Second)
	if v := decode(t, got[1], "/3/0")["/3/0/9"]; v.Int != 42 {
		t.Errorf("notification after SetValue: battery %v", v.Interface())
	}
	// A value that does not change notifies nobody.
	dev.SetValue(node.MustParsePath("/3/0/9"), node.Int(42))
	time.Sleep(200 * time.Millisecond)
	if n := len(o.all()); n != 2 {
		t.Errorf("%d notifications, want 2: an unchanged value notified", n)
	}
}

func TestObservePeriods(t *testing.T) {
	srv := startServer(t)
	sim := runSim(t, srv, func(c *Config) { c.NotifyInterval = 20 * time.Millisecond })
	reg := srv.reg("sim-0")
	attrsOn := func(path string, qs ...string) {
		r := srv.must(reg, request{code: codes.PUT, path: path, accept: -1, format: -1, queries: qs})
		if r.code != codes.Changed {
			t.Fatalf("write attributes %s %v: %v %s", path, qs, r.code, r.payload)
		}
	}

	// pmin on the instance holds back the changing temperature.
	attrsOn("/3303/0", "pmin=1")
	start := time.Now()
	o, cancel := observe(t, reg, "/3303/0/5700", codec.SenMLCBOR)
	o.waitFor(t, 3, 5*time.Second) // the answer and two notifications
	// At most one notification a second since the answer, and one more for
	// a late arrival; without pmin it would be one every 20 ms.
	elapsed := time.Since(start)
	if n, most := len(o.all()), 2+int(elapsed/time.Second); n > most {
		t.Errorf("%d messages in %v with pmin=1 (value changing every 20 ms), want at most %d", n, elapsed, most)
	}
	cancel()

	// pmax makes a value that never changes report anyway.
	attrsOn("/3/0/10", "pmax=1")
	o, cancel = observe(t, reg, "/3/0/10", codec.SenMLCBOR)
	defer cancel()
	o.waitFor(t, 3, 3500*time.Millisecond)

	// Discover shows the attributes where they were written.
	r := srv.must(reg, get("/3/0", int(codec.LinkFmt)))
	links, err := codec.ParseLinks(r.payload)
	if err != nil || r.format != codec.LinkFmt {
		t.Fatalf("discover /3/0: %v %v %q", err, r.format, r.payload)
	}
	attrOf := func(target, key string) string {
		for _, l := range links {
			if l.Target == target {
				v, _ := l.Attr(key)
				return v
			}
		}
		return "<missing>"
	}
	if got := attrOf("/3/0/10", "pmax"); got != "1" {
		t.Errorf("discover /3/0/10 pmax=%q in %s", got, r.payload)
	}
	if got := attrOf("/3/0/6", "dim"); got != "2" {
		t.Errorf("discover /3/0/6 dim=%q in %s", got, r.payload)
	}
	if got := attrOf("/3/0/4", "x"); got != "" {
		t.Errorf("discover lacks the executable /3/0/4: %s", r.payload)
	}
	// Removing an attribute (named without value) takes it out of Discover.
	attrsOn("/3/0/10", "pmax")
	r = srv.must(reg, get("/3/0/10", int(codec.LinkFmt)))
	if strings.Contains(string(r.payload), "pmax") {
		t.Errorf("pmax still listed after removal: %s", r.payload)
	}
	if sim.Stats().Requests == 0 {
		t.Errorf("no requests counted")
	}
}

func TestObserveThresholds(t *testing.T) {
	srv := startServer(t)
	sim := runSim(t, srv, func(c *Config) { c.NotifyInterval = 0 })
	reg := srv.reg("sim-0")
	dev := sim.Device("sim-0")
	p := node.MustParsePath("/4/0/2")
	dev.SetValue(p, node.Int(-80))
	r := srv.must(reg, request{code: codes.PUT, path: "/4/0/2", accept: -1, format: -1, queries: []string{"gt=-70", "st=5"}})
	if r.code != codes.Changed {
		t.Fatalf("write attributes: %v %s", r.code, r.payload)
	}
	o, cancel := observe(t, reg, "/4/0/2", codec.Text)
	defer cancel()
	o.waitFor(t, 1, 3*time.Second)
	for _, tc := range []struct {
		v      int64
		notify bool
	}{
		{-78, false}, // moved 2 < st
		{-74, true},  // moved 6 since -80
		{-72, false}, // moved 2 since -74
		{-69, true},  // crossed gt
		{-68, false},
		{-71, true}, // crossed gt back
	} {
		n := len(o.all())
		dev.SetValue(p, node.Int(tc.v))
		if tc.notify {
			// The next notification is of this value: one of a value that
			// should not have notified would come first.
			got := o.waitFor(t, n+1, 3*time.Second)
			if v := string(got[n].payload); v != strconv.FormatInt(tc.v, 10) {
				t.Errorf("value %d: notified %s", tc.v, v)
			}
			continue
		}
		// No notification is the absence of one: look for a while.
		time.Sleep(100 * time.Millisecond)
		if got := o.all(); len(got) > n {
			t.Errorf("value %d: notified %s, want no notification", tc.v, got[n].payload)
		}
	}
}

func TestCreateAndDelete(t *testing.T) {
	srv := startServer(t)
	sim := runSim(t, srv, nil)
	reg := srv.reg("sim-0")
	dev := sim.Device("sim-0")
	for _, tc := range []struct {
		name    string
		format  codec.Format
		base    string
		recs    []node.Record
		wantLoc string
	}{
		{"TLV with instance", codec.TLV, "/3303", []node.Record{{Path: node.MustParsePath("/3303/4/5750"), Value: node.String("outdoor")}}, "/3303/4"},
		{"TLV without instance", codec.TLV, "/3303/1", []node.Record{{Path: node.MustParsePath("/3303/1/5750"), Value: node.String("cellar")}}, "/3303/1"},
		{"SenML JSON", codec.SenMLJSON, "/3303", []node.Record{{Path: node.MustParsePath("/3303/2/5750"), Value: node.String("attic")}}, "/3303/2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			payload, err := codec.Encode(tc.format, node.MustParsePath(tc.base), tc.recs)
			if err != nil {
				t.Fatal(err)
			}
			if tc.name == "TLV without instance" {
				// Encode wraps nothing at instance level: resources only.
				if payload[0]>>6 == 0 {
					t.Fatalf("TLV payload %x starts with an instance wrapper", payload)
				}
			}
			r := srv.must(reg, post("/3303", int(tc.format), payload))
			if r.code != codes.Created || "/"+strings.TrimPrefix(r.loc, "/") != tc.wantLoc {
				t.Fatalf("create: %v location %q %s, want 2.01 %s", r.code, r.loc, r.payload, tc.wantLoc)
			}
			want := tc.recs[0]
			p := node.MustParsePath(tc.wantLoc + "/5750")
			if v, _ := dev.Value(p); v.Str != want.Value.Str {
				t.Errorf("%v = %q", p, v.Str)
			}
			// Resources the payload left out take the defaults.
			if v, _ := dev.Value(node.MustParsePath(tc.wantLoc + "/5701")); v.Str != "Cel" {
				t.Errorf("new instance units %q", v.Str)
			}
		})
	}
	srv.wait(5*time.Second, "update listing the new instances", func() bool {
		return slices.ContainsFunc(reg.links, func(l codec.Link) bool { return l.Target == "/3303/4" })
	})
	r := srv.must(reg, request{code: codes.DELETE, path: "/3303/4", accept: -1, format: -1})
	if r.code != codes.Deleted {
		t.Fatalf("delete: %v", r.code)
	}
	if r := srv.must(reg, get("/3303/4", -1)); r.code != codes.NotFound {
		t.Errorf("read after delete: %v", r.code)
	}
	srv.wait(5*time.Second, "update without the deleted instance", func() bool {
		return !slices.ContainsFunc(reg.links, func(l codec.Link) bool { return l.Target == "/3303/4" })
	})
}

func TestUpdatesAndReregistration(t *testing.T) {
	srv := startServer(t)
	sim := runSim(t, srv, func(c *Config) { c.Lifetime = 2 * time.Second })
	reg := srv.reg("sim-0")
	srv.wait(5*time.Second, "two updates", func() bool { return reg.updates >= 2 && sim.Stats().Updates >= 2 })
	// The server forgets the registration: the next Update gets 4.04 and
	// the device registers again.
	srv.mu.Lock()
	srv.refuse = codes.NotFound
	srv.mu.Unlock()
	srv.wait(5*time.Second, "registration after 4.04", func() bool { return srv.countLocked("register sim-0") == 2 })
	srv.mu.Lock()
	srv.refuse = 0
	srv.mu.Unlock()
	if sim.Registered() != 1 {
		// The new registration may still be on its way.
		srv.wait(2*time.Second, "registered", func() bool { return sim.Registered() == 1 })
	}
}

func TestStopDeregisterAndShutdown(t *testing.T) {
	srv := startServer(t)
	sim, err := New(Config{Server: srv.addr, Count: 3, Lifetime: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sim.Run(ctx) }()
	for _, ep := range sim.Endpoints() {
		srv.reg(ep)
	}
	srv.wait(5*time.Second, "all registered", func() bool { return sim.Registered() == 3 })

	// Deregister: the server hears of it.
	dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer dcancel()
	if err := sim.Device("sim-0").Deregister(dctx); err != nil {
		t.Fatalf("deregister: %v", err)
	}
	if srv.count("deregister sim-0") != 1 {
		t.Errorf("events %v", srv.eventsCopy())
	}
	// Stop: silence, no de-registration, no more updates.
	sim.Device("sim-1").Stop()
	n := srv.count("update sim-1")
	time.Sleep(2500 * time.Millisecond)
	if m := srv.count("update sim-1"); m != n {
		t.Errorf("stopped device sent %d updates", m-n)
	}
	if got := sim.Registered(); got != 1 {
		t.Errorf("registered %d, want 1", got)
	}

	// Shutdown de-registers whoever is left, and only them.
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return")
	}
	ev := srv.eventsCopy()
	if srv.count("deregister sim-2") != 1 || srv.count("deregister sim-1") != 0 {
		t.Errorf("events after shutdown %v", ev)
	}
	if s := sim.Stats(); s.Deregistrations != 2 || s.Registered != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestSilentDevice(t *testing.T) {
	srv := startServer(t)
	sim := runSim(t, srv, nil)
	reg := srv.reg("sim-0")
	dev := sim.Device("sim-0")
	dev.SetSilent(true)
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	req, _ := reg.conn.NewGetRequest(ctx, "/3/0")
	_, err := reg.conn.Do(req)
	reg.conn.ReleaseMessage(req)
	if err == nil {
		t.Fatalf("a silent device answered")
	}
	dev.SetSilent(false)
	if r := srv.must(reg, get("/3/0/0", int(codec.Text))); string(r.payload) != "lwm2m-agent" {
		t.Errorf("after silence: %v %q", r.code, r.payload)
	}
}

func TestSend(t *testing.T) {
	srv := startServer(t)
	sim := runSim(t, srv, nil)
	srv.reg("sim-0")
	dev := sim.Device("sim-0")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := dev.Send(ctx, node.MustParsePath("/3303/0/5700"), node.MustParsePath("/3/0/9")); err != nil {
		t.Fatal(err)
	}
	srv.mu.Lock()
	body := srv.sends[0]
	srv.mu.Unlock()
	recs, err := codec.Decode(codec.SenMLCBOR, node.Root, body, resolver)
	if err != nil {
		t.Fatalf("decode send: %v", err)
	}
	var paths []string
	for _, r := range recs {
		paths = append(paths, r.Path.String())
		if r.Time.IsZero() {
			t.Errorf("%v sent without a time", r.Path)
		}
	}
	if !slices.Equal(paths, []string{"/3303/0/5700", "/3/0/9"}) {
		t.Errorf("sent %v", paths)
	}
	if sim.Stats().Sends != 1 {
		t.Errorf("stats %+v", sim.Stats())
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // prefix of the error; "" for none
	}{
		{"defaults", Config{Server: "127.0.0.1:5783"}, ""},
		{"no server", Config{}, "server"},
		{"server without port", Config{Server: "localhost"}, "server"},
		{"negative count", Config{Server: "a:1", Count: -1}, "count"},
		{"bad version", Config{Server: "a:1", Version: "2.0"}, "version"},
		{"short lifetime", Config{Server: "a:1", Lifetime: time.Millisecond}, "lifetime"},
		{"bad binding", Config{Server: "a:1", Binding: "T"}, "binding"},
		{"negative rate", Config{Server: "a:1", RegisterRate: -1}, "register rate"},
		{"bad bind", Config{Server: "a:1", Bind: "localhost"}, "bind"},
		{"server URI", Config{Server: "coap://a"}, ""},
		{"server with a path", Config{Server: "coap://a:1/rd"}, "server"},
		{"server of another scheme", Config{Server: "http://a:1"}, "server"},
		{"coaps server without keys", Config{Server: "coaps://a:1"}, "server"},
		{"bootstrap only", Config{Bootstrap: "coap://a:1"}, ""},
		{"bad bootstrap", Config{Bootstrap: "a:1"}, "bootstrap"},
		{"coaps bootstrap without keys", Config{Bootstrap: "coaps://a:1"}, "bootstrap"},
		{"devices", Config{Devices: []DeviceConfig{{Endpoint: "e", ServerURI: "coaps://a", PSKIdentity: "i", PSK: []byte{1}}}}, ""},
		{"device without endpoint", Config{Server: "a:1", Devices: []DeviceConfig{{}}}, "device 0"},
		{"device without key", Config{Devices: []DeviceConfig{{Endpoint: "e", ServerURI: "coaps://a", PSKIdentity: "i"}}}, "device 0"},
		{"device without server", Config{Devices: []DeviceConfig{{Endpoint: "e"}}}, "device 0"},
		{"endpoint twice", Config{Server: "a:1", Devices: []DeviceConfig{{Endpoint: "e"}, {Endpoint: "e"}}}, "device 1"},
		{"sleeping", Config{Server: "a:1", AwakeTime: 5 * time.Second, UpdateEvery: 20 * time.Second}, ""},
		{"negative awake time", Config{Server: "a:1", AwakeTime: -time.Second}, "awake time"},
		{"awake as long as the period", Config{Server: "a:1", AwakeTime: 20 * time.Second, UpdateEvery: 20 * time.Second}, "awake time"},
		{"updates beyond the lifetime", Config{Server: "a:1", UpdateEvery: 300 * time.Second}, "update every"},
		{"record too large", Config{Server: "a:1", Record: 1 << 20}, "record"},
		{"certificate suite", Config{Server: "a:1", CipherSuites: []piondtls.CipherSuiteID{piondtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}}, "cipher suites"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error %v, want prefix %q", err, tc.want)
			}
		})
	}
}
