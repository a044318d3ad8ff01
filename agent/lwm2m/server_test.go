package lwm2m

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/codec"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

func TestRegister(t *testing.T) {
	s, h := startServer(t, Config{})
	d := newDevice(t, s.Addr())
	res, id := d.register([]string{"ep=urn:imei:1", "lt=120", "lwm2m=1.1", "b=U", "Q", "sms=+123", "at=30000"},
		`</lwm2m>;rt="oma.lwm2m";ct=110, </lwm2m/1/0>,</lwm2m/3/0>,</lwm2m/3303>;ver=1.1`)
	if res.code != codes.Created {
		t.Fatalf("code = %v, want 2.01", res.code)
	}
	if !strings.HasPrefix(res.location, "/rd/") && !strings.HasPrefix(res.location, "rd/") {
		t.Fatalf("location = %q, want rd/{id}", res.location)
	}
	e := h.wait(t, "registered", 2*time.Second)
	reg := e.reg
	if reg.ID != id || reg.Endpoint != "urn:imei:1" || reg.Version != "1.1" || reg.Lifetime != 120*time.Second ||
		reg.Binding != "U" || !reg.Queue || reg.SMS != "+123" || !reg.HasAwakeTime || reg.AwakeTime != 30*time.Second ||
		reg.ContentFormat != codec.SenMLJSON || reg.RootPath != "/lwm2m/" || reg.Tenant != "t1" || reg.DeviceID != "dev-urn:imei:1" {
		t.Fatalf("registration = %+v", reg)
	}
	if got := strings.Join(reg.Paths(), ","); got != "/1/0,/3/0,/3303" {
		t.Fatalf("objects = %s", got)
	}
	if reg.Objects[2].Version != "1.1" {
		t.Fatalf("object version = %q", reg.Objects[2].Version)
	}
	if reg.Address != d.conn.LocalAddr().String() {
		t.Fatalf("address = %s, want %s", reg.Address, d.conn.LocalAddr())
	}
	if got, ok := s.Registration("urn:imei:1"); !ok || got.ID != id {
		t.Fatalf("Registration() = %+v, %v", got, ok)
	}
	if n := len(s.Registrations()); n != 1 {
		t.Fatalf("Registrations() has %d", n)
	}
}

func TestRegisterRefusals(t *testing.T) {
	s, h := startServer(t, Config{MaxRegistrations: 3})
	h.mu.Lock()
	h.refuse["stranger"] = true
	h.mu.Unlock()
	tests := []struct {
		name    string
		queries []string
		payload string
		want    codes.Code
	}{
		{"1.0", []string{"ep=v10", "lwm2m=1.0"}, "</3/0>", codes.Created},
		{"no version means 1.0", []string{"ep=v0"}, "</3/0>", codes.Created},
		{"authorize refuses", []string{"ep=stranger", "lwm2m=1.1"}, "</3/0>", codes.Forbidden},
		{"1.1", []string{"ep=v11", "lwm2m=1.1"}, "</3/0>", codes.Created},
		{"1.2 is refused when full", []string{"ep=v12", "lwm2m=1.2"}, "</3/0>", codes.ServiceUnavailable},
		{"1.3", []string{"ep=v13", "lwm2m=1.3"}, "</3/0>", codes.PreconditionFailed},
		{"2.0", []string{"ep=v20", "lwm2m=2.0"}, "</3/0>", codes.PreconditionFailed},
		{"missing endpoint", []string{"lwm2m=1.1"}, "</3/0>", codes.BadRequest},
		{"bad lifetime", []string{"ep=x", "lt=soon"}, "</3/0>", codes.BadRequest},
		{"not link format", []string{"ep=y"}, "3/0", codes.BadRequest},
		{"re-register when full", []string{"ep=v10", "lwm2m=1.2"}, "</3/0>", codes.Created},
	}
	d := newDevice(t, s.Addr())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, _ := d.register(tt.queries, tt.payload)
			if res.code != tt.want {
				t.Fatalf("code = %v, want %v", res.code, tt.want)
			}
		})
	}
	if _, ok := s.Registration("stranger"); ok {
		t.Fatal("refused endpoint is registered")
	}
	if reg, ok := s.Registration("v10"); !ok || reg.Version != "1.2" {
		t.Fatalf("re-registration = %+v, %v", reg, ok)
	}
}

// TestRegisterDuplicateParameter: a Register that gives a parameter
// twice is refused with a diagnostic naming it, and registers nothing
// under either value.
func TestRegisterDuplicateParameter(t *testing.T) {
	s, _ := startServer(t, Config{})
	tests := []struct {
		name    string
		queries []string
		param   string
	}{
		{"ep", []string{"ep=dup-a", "lwm2m=1.1", "ep=dup-b"}, "ep"},
		{"ep same value", []string{"ep=dup-a", "ep=dup-a"}, "ep"},
		{"lt", []string{"ep=dup-a", "lt=60", "lt=86400"}, "lt"},
		{"lwm2m", []string{"ep=dup-a", "lwm2m=1.1", "lwm2m=1.0"}, "lwm2m"},
		{"b", []string{"ep=dup-a", "b=U", "b=UQ"}, "b"},
	}
	d := newDevice(t, s.Addr())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, _ := d.register(tt.queries, "</3/0>")
			if res.code != codes.BadRequest {
				t.Fatalf("code = %v, want 4.00", res.code)
			}
			if want := `parameter "` + tt.param + `" given twice`; !strings.Contains(res.diag, want) {
				t.Fatalf("diagnostic %q does not contain %s", res.diag, want)
			}
			if res.location != "" {
				t.Fatalf("location = %q on a refusal", res.location)
			}
		})
	}
	// The answers came after the server had decided, so nothing can be
	// registered later.
	if regs := s.Registrations(); len(regs) != 0 {
		t.Fatalf("registered after refusals: %+v", regs)
	}
}

func TestUpdate(t *testing.T) {
	s, h, d := registered(t, Config{}, "upd")
	reg, _ := s.Registration("upd")

	res, err := d.do(codes.POST, "/rd/"+reg.ID, []string{"lt=600", "b=UQ"}, message.AppLinkFormat, []byte("</3/0>,</5/0>"))
	if err != nil || res.code != codes.Changed {
		t.Fatalf("update = %v, %v", res.code, err)
	}
	e := h.wait(t, "updated", 2*time.Second)
	if e.reg.Lifetime != 600*time.Second || e.reg.Binding != "UQ" || !e.reg.Queue || strings.Join(e.reg.Paths(), ",") != "/3/0,/5/0" {
		t.Fatalf("updated registration = %+v", e.reg)
	}
	if !e.reg.UpdatedAt.After(reg.UpdatedAt) || !e.reg.RegisteredAt.Equal(reg.RegisteredAt) {
		t.Fatalf("times: registered %v→%v updated %v→%v", reg.RegisteredAt, e.reg.RegisteredAt, reg.UpdatedAt, e.reg.UpdatedAt)
	}

	// Same registration from another socket: the address moves, and
	// requests follow it.
	d2 := newDevice(t, s.Addr())
	d2.manuf = "moved"
	res, err = d2.do(codes.POST, "/rd/"+reg.ID, nil, message.TextPlain, nil)
	if err != nil || res.code != codes.Changed {
		t.Fatalf("update from new address = %v, %v", res.code, err)
	}
	e = h.wait(t, "updated", 2*time.Second)
	if e.reg.Address != d2.conn.LocalAddr().String() || e.reg.Lifetime != 600*time.Second {
		t.Fatalf("after move: %+v", e.reg)
	}
	recs, err := s.Read(context.Background(), "upd", node.ResourcePath(3, 0, 0))
	if err != nil {
		t.Fatalf("read after move: %v", err)
	}
	if len(recs) != 1 || recs[0].Value.Str != "moved" {
		t.Fatalf("read after move = %+v", recs)
	}

	res, err = d.do(codes.POST, "/rd/nosuchid", nil, message.TextPlain, nil)
	if err != nil || res.code != codes.NotFound {
		t.Fatalf("update unknown = %v, %v", res.code, err)
	}
}

func TestDeregister(t *testing.T) {
	s, h, d := registered(t, Config{}, "bye")
	reg, _ := s.Registration("bye")
	res, err := d.do(codes.DELETE, "/rd/"+reg.ID, nil, 0, nil)
	if err != nil || res.code != codes.Deleted {
		t.Fatalf("de-register = %v, %v", res.code, err)
	}
	if e := h.wait(t, "deregistered", 2*time.Second); e.reg.ID != reg.ID {
		t.Fatalf("deregistered %+v", e.reg)
	}
	if _, ok := s.Registration("bye"); ok {
		t.Fatal("still registered")
	}
	if _, err := s.Read(context.Background(), "bye", node.InstancePath(3, 0)); !errors.Is(err, ErrNotRegistered) {
		t.Fatalf("read after de-register: %v", err)
	}
	res, err = d.do(codes.DELETE, "/rd/"+reg.ID, nil, 0, nil)
	if err != nil || res.code != codes.NotFound {
		t.Fatalf("second de-register = %v, %v", res.code, err)
	}
}

func TestExpiry(t *testing.T) {
	s, h := startServer(t, Config{ExpiryGrace: -1})
	d := newDevice(t, s.Addr())
	long, _ := d.register([]string{"ep=long", "lt=3600"}, "</3/0>")
	d2 := newDevice(t, s.Addr())
	short, _ := d2.register([]string{"ep=short", "lt=1"}, "</3/0>")
	if long.code != codes.Created || short.code != codes.Created {
		t.Fatalf("register: %v %v", long.code, short.code)
	}
	start := time.Now()
	e := h.wait(t, "expired", 3*time.Second)
	if e.reg.Endpoint != "short" {
		t.Fatalf("expired %s", e.reg.Endpoint)
	}
	if el := time.Since(start); el < 900*time.Millisecond {
		t.Fatalf("expired after %v, lifetime is 1s", el)
	}
	if _, ok := s.Registration("short"); ok {
		t.Fatal("expired registration still there")
	}
	if _, ok := s.Registration("long"); !ok {
		t.Fatal("long registration gone")
	}
	if st := s.Stats(); st.Expiries != 1 || st.Registrations != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestUpdateKeepsAlive(t *testing.T) {
	s, h := startServer(t, Config{ExpiryGrace: -1})
	d := newDevice(t, s.Addr())
	// Updates every half second over twice the lifetime of 2 s:
	// each comes well within the lifetime even on a loaded machine, and
	// without them the registration would have expired.
	_, id := d.register([]string{"ep=alive", "lt=2"}, "</3/0>")
	for range 8 {
		time.Sleep(500 * time.Millisecond)
		if res, err := d.do(codes.POST, "/rd/"+id, nil, message.TextPlain, nil); err != nil || res.code != codes.Changed {
			t.Fatalf("update: %v %v", res.code, err)
		}
	}
	h.none(t, "expired", 100*time.Millisecond)
	if _, ok := s.Registration("alive"); !ok {
		t.Fatal("updated registration expired")
	}
}

func TestDeviceManagement(t *testing.T) {
	s, _, d := registered(t, Config{}, "dm")
	ctx := context.Background()

	t.Run("read instance", func(t *testing.T) {
		recs, err := s.Read(ctx, "dm", node.InstancePath(3, 0))
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 2 || recs[0].Path != node.ResourcePath(3, 0, 0) || recs[0].Value.Str != "Open Mobile Alliance" ||
			recs[1].Path != node.ResourcePath(3, 0, 9) || recs[1].Value.Int != 87 {
			t.Fatalf("records = %+v", recs)
		}
		if r, _ := d.lastRequest("/3/0"); r.accept != message.MediaType(codec.TLV) {
			t.Fatalf("accept = %v, want TLV (declared ct)", r.accept)
		}
	})
	t.Run("read not found", func(t *testing.T) {
		_, err := s.Read(ctx, "dm", node.InstancePath(4, 0))
		var re *ResponseError
		if !errors.As(err, &re) || re.Code != codes.NotFound {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("write replace", func(t *testing.T) {
		err := s.Write(ctx, "dm", node.ResourcePath(1, 0, 1), []node.Record{{Path: node.ResourcePath(1, 0, 1), Value: node.Int(300)}}, true)
		if err != nil {
			t.Fatal(err)
		}
		r, _ := d.lastRequest("/1/0/1")
		if r.code != codes.PUT || r.format != message.MediaType(codec.TLV) {
			t.Fatalf("request = %+v", r)
		}
		recs, err := codec.Decode(codec.TLV, node.ResourcePath(1, 0, 1), r.body, node.ResolverFunc(func(node.Path) (node.Type, bool) { return node.TypeInteger, true }))
		if err != nil || len(recs) != 1 || recs[0].Value.Int != 300 {
			t.Fatalf("payload = %x → %+v, %v", r.body, recs, err)
		}
	})
	t.Run("write partial update", func(t *testing.T) {
		err := s.Write(ctx, "dm", node.InstancePath(1, 0), []node.Record{{Path: node.ResourcePath(1, 0, 1), Value: node.Int(60)}}, false)
		if err != nil {
			t.Fatal(err)
		}
		if r, _ := d.lastRequest("/1/0"); r.code != codes.POST {
			t.Fatalf("request = %+v", r)
		}
	})
	t.Run("execute", func(t *testing.T) {
		if err := s.Execute(ctx, "dm", node.ResourcePath(3, 0, 4), "0='now'"); err != nil {
			t.Fatal(err)
		}
		r, _ := d.lastRequest("/3/0/4")
		if r.code != codes.POST || string(r.body) != "0='now'" || r.format != message.TextPlain {
			t.Fatalf("request = %+v", r)
		}
	})
	t.Run("create", func(t *testing.T) {
		p, err := s.Create(ctx, "dm", node.ObjectPath(3303), []node.Record{{Path: node.ResourcePath(3303, 0, 5700), Value: node.Float(21.5)}})
		if err != nil {
			t.Fatal(err)
		}
		if p != node.InstancePath(3303, 7) {
			t.Fatalf("created %s, want /3303/7 from Location-Path", p)
		}
	})
	t.Run("delete", func(t *testing.T) {
		if err := s.Delete(ctx, "dm", node.InstancePath(3303, 7)); err != nil {
			t.Fatal(err)
		}
		err := s.Delete(ctx, "dm", node.InstancePath(3, 0))
		var re *ResponseError
		if !errors.As(err, &re) || re.Code != codes.MethodNotAllowed || re.Message != "not here" {
			t.Fatalf("delete /3/0: %v", err)
		}
	})
	t.Run("discover", func(t *testing.T) {
		links, err := s.Discover(ctx, "dm", node.InstancePath(3, 0))
		if err != nil {
			t.Fatal(err)
		}
		if len(links) != 4 || links[2].Target != "/3/0/9" {
			t.Fatalf("links = %+v", links)
		}
		if v, ok := links[2].Attr("pmin"); !ok || v != "10" {
			t.Fatalf("pmin = %q %v", v, ok)
		}
	})
	t.Run("write attributes", func(t *testing.T) {
		if err := s.WriteAttributes(ctx, "dm", node.ResourcePath(3, 0, 9), []string{"pmin=10", "pmax=60"}); err != nil {
			t.Fatal(err)
		}
		r, _ := d.lastRequest("/3/0/9")
		if r.code != codes.PUT || strings.Join(r.queries, "&") != "pmin=10&pmax=60" || len(r.body) != 0 {
			t.Fatalf("request = %+v", r)
		}
	})
	t.Run("unknown endpoint", func(t *testing.T) {
		if _, err := s.Read(ctx, "nobody", node.InstancePath(3, 0)); !errors.Is(err, ErrNotRegistered) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestAlternateRootPath(t *testing.T) {
	s, _ := startServer(t, Config{})
	d := newDevice(t, s.Addr())
	d.register([]string{"ep=alt"}, `</lwm2m>;rt="oma.lwm2m",</lwm2m/3/0>`)
	// The device serves nothing under /lwm2m, so a 4.04 shows where the
	// request went.
	_, _ = s.Read(context.Background(), "alt", node.InstancePath(3, 0))
	if _, ok := d.lastRequest("/lwm2m/3/0"); !ok {
		t.Fatal("request did not use the alternate path /lwm2m/3/0")
	}
}

func TestBlockwiseRead(t *testing.T) {
	s, _, d := registered(t, Config{}, "big")
	big := strings.Repeat("0123456789abcdef", 300) // 4800 bytes
	d.mu.Lock()
	d.manuf = big
	d.mu.Unlock()
	recs, err := s.Read(context.Background(), "big", node.ResourcePath(3, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Value.Str != big {
		t.Fatalf("read %d records, value length %d", len(recs), len(recs[0].Value.Str))
	}
}

func TestRequestTimeout(t *testing.T) {
	s, _, d := registered(t, Config{RequestTimeout: 300 * time.Millisecond}, "slow")
	d.setDelay(time.Second)
	start := time.Now()
	_, err := s.Read(context.Background(), "slow", node.ResourcePath(3, 0, 13))
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	if el := time.Since(start); el > 900*time.Millisecond {
		t.Fatalf("timed out after %v", el)
	}
	if s.Stats().RequestTimeouts == 0 {
		t.Fatal("timeout not counted")
	}
}

func TestNStart(t *testing.T) {
	s, _, d := registered(t, Config{NStart: 1}, "nstart")
	d.setDelay(200 * time.Millisecond)
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for range 3 {
		wg.Go(func() {
			_, err := s.Read(context.Background(), "nstart", node.ResourcePath(3, 0, 13))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	d.mu.Lock()
	arr := append([]time.Time(nil), d.arrivals...)
	d.mu.Unlock()
	if len(arr) != 3 {
		t.Fatalf("device saw %d requests, want 3", len(arr))
	}
	// With one request in flight, each arrives only after the previous
	// one was answered, which the device delays by 200 ms.
	for i := 1; i < len(arr); i++ {
		if gap := arr[i].Sub(arr[i-1]); gap < 150*time.Millisecond {
			t.Fatalf("request %d arrived %v after the previous one: more than NStart in flight", i, gap)
		}
	}
}

func TestNStartWaitRespectsContext(t *testing.T) {
	s, _, d := registered(t, Config{NStart: 1}, "busy")
	// The first read holds the only slot for as long as the device takes:
	// far longer than the second read's deadline, and than a loaded
	// machine takes between its arrival and the second read.
	const delay = 3 * time.Second
	d.setDelay(delay)
	go func() { _, _ = s.Read(context.Background(), "busy", node.ResourcePath(3, 0, 13)) }()
	d.waitArrivals(t, 1, 5*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := s.Read(ctx, "busy", node.InstancePath(3, 0))
	if err == nil {
		t.Fatal("second read got through while the first was in flight")
	}
	if el := time.Since(start); el > delay/2 {
		t.Fatalf("waited %v for a slot with a 100ms deadline", el)
	}
}

func TestObserve(t *testing.T) {
	s, h, d := registered(t, Config{}, "obs")
	ctx := context.Background()
	recs, err := s.Observe(ctx, "obs", node.InstancePath(3, 0))
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].Value.Str != "Open Mobile Alliance" {
		t.Fatalf("first answer = %+v", recs)
	}
	if r, _ := d.lastRequest("/3/0"); r.observe != 0 {
		t.Fatalf("observe option = %d", r.observe)
	}

	for i, con := range []bool{true, false} {
		want := "n" + string(rune('1'+i))
		if err := d.notify(uint32(3+i), con, want); err != nil {
			t.Fatalf("notify: %v", err)
		}
		e := h.wait(t, "values", 2*time.Second)
		if e.observed != node.InstancePath(3, 0) || e.reg.Endpoint != "obs" || len(e.recs) != 1 || e.recs[0].Value.Str != want {
			t.Fatalf("notification %d (con=%v): %+v", i, con, e)
		}
	}
	if got := s.Observations("obs"); len(got) != 1 || got[0] != node.InstancePath(3, 0) {
		t.Fatalf("observations = %v", got)
	}

	// Active cancel: GET with Observe=1 on the same token.
	d.mu.Lock()
	tok := append([]byte(nil), d.obsToken...)
	d.mu.Unlock()
	if err := s.CancelObserve(ctx, "obs", node.InstancePath(3, 0)); err != nil {
		t.Fatal(err)
	}
	r, _ := d.lastRequest("/3/0")
	if r.observe != 1 || string(r.token) != string(tok) {
		t.Fatalf("cancel request: observe=%d token=%x, want 1 and %x", r.observe, r.token, tok)
	}
	// A notification that crosses the cancel is refused with RST.
	d.mu.Lock()
	d.obsToken = tok
	d.mu.Unlock()
	before := d.resetCount()
	_ = d.notify(9, true, "late")
	h.none(t, "values", 300*time.Millisecond)
	if d.resetCount() <= before {
		t.Fatal("late notification was not answered with RST")
	}
	if len(s.Observations("obs")) != 0 {
		t.Fatal("observation still listed")
	}
}

func TestObservationsEndWithRegistration(t *testing.T) {
	s, h, d := registered(t, Config{}, "reobs")
	if _, err := s.Observe(context.Background(), "reobs", node.InstancePath(3, 0)); err != nil {
		t.Fatal(err)
	}
	// The device restarts and registers again: old observations are gone.
	if res, _ := d.register([]string{"ep=reobs", "lwm2m=1.1"}, testLinks); res.code != codes.Created {
		t.Fatalf("re-register: %v", res.code)
	}
	h.wait(t, "registered", 2*time.Second)
	before := d.resetCount()
	_ = d.notify(5, false, "stale")
	h.none(t, "values", 300*time.Millisecond)
	if d.resetCount() != before+1 {
		t.Fatalf("resets %d → %d, want one RST for the stale notification", before, d.resetCount())
	}
	if st := s.Stats(); st.Observations != 0 || st.NotificationsRST == 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestObserveRefused(t *testing.T) {
	s, _, _ := registered(t, Config{}, "noobs")
	_, err := s.Observe(context.Background(), "noobs", node.ResourcePath(5, 0, 3))
	if !errors.Is(err, ErrNotObservable) {
		t.Fatalf("err = %v", err)
	}
	if len(s.Observations("noobs")) != 0 {
		t.Fatal("refused observation is listed")
	}
}

func TestSend(t *testing.T) {
	s, h, d := registered(t, Config{}, "send")
	payload, err := codec.Encode(codec.SenMLCBOR, node.Root, []node.Record{
		{Path: node.ResourcePath(3303, 0, 5700), Value: node.Float(21.5)},
		{Path: node.ResourcePath(3, 0, 9), Value: node.Int(40)},
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := d.do(codes.POST, "/dp", nil, message.MediaType(codec.SenMLCBOR), payload)
	if err != nil || res.code != codes.Changed {
		t.Fatalf("send = %v, %v", res.code, err)
	}
	e := h.wait(t, "values", 2*time.Second)
	if e.observed != node.Root || e.reg.Endpoint != "send" || len(e.recs) != 2 || e.recs[0].Value.Float != 21.5 || e.recs[1].Value.Int != 40 {
		t.Fatalf("values = %+v", e)
	}

	stranger := newDevice(t, s.Addr())
	res, err = stranger.do(codes.POST, "/dp", nil, message.MediaType(codec.SenMLCBOR), payload)
	if err != nil || res.code != codes.Forbidden {
		t.Fatalf("send from unregistered peer = %v, %v", res.code, err)
	}
	res, err = d.do(codes.POST, "/dp", nil, message.MediaType(codec.SenMLCBOR), []byte{0xff, 0x00})
	if err != nil || res.code != codes.BadRequest {
		t.Fatalf("malformed send = %v, %v", res.code, err)
	}
}

func TestServeStops(t *testing.T) {
	baseline := runtime.NumGoroutine()
	h := newRecorder()
	s, err := NewServer(Config{Addr: "127.0.0.1:0"}, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	d := newDevice(t, s.Addr())
	if res, _ := d.register([]string{"ep=stop"}, "</3/0>"); res.code != codes.Created {
		t.Fatalf("register: %v", res.code)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	if _, err := s.Read(context.Background(), "stop", node.InstancePath(3, 0)); !errors.Is(err, ErrNotRegistered) {
		t.Fatalf("read after stop: %v", err)
	}
	if err := s.Serve(context.Background()); err == nil {
		t.Fatal("second Serve succeeded")
	}
	_ = d.conn.Close()
	// Every goroutine the server started has stopped (the device's own
	// may take a moment to notice its close).
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > baseline && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > baseline {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines left over (baseline %d):\n%s", n, baseline, buf[:runtime.Stack(buf, true)])
	}
}

// When a device's CoAP state goes idle the registration lets go of it, so
// an idle device costs only its registration; the next request reaches the
// device over a fresh exchange.
func TestIdleConnectionReleased(t *testing.T) {
	s, _, _ := registered(t, Config{IdleTimeout: 300 * time.Millisecond, RequestTimeout: 200 * time.Millisecond}, "idle")
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.RLock()
		held := s.byEndpoint["idle"].conn != nil
		s.mu.RUnlock()
		if !held {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("registration still holds its idle connection")
		}
		time.Sleep(50 * time.Millisecond)
	}
	recs, err := s.Read(context.Background(), "idle", node.ResourcePath(3, 0, 0))
	if err != nil || len(recs) != 1 || recs[0].Value.Str != "Open Mobile Alliance" {
		t.Fatalf("read after idle: %v, %v", recs, err)
	}
}
