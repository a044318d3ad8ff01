package simulator

import (
	"context"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

func testTree(t *testing.T) tree {
	t.Helper()
	s, err := New(Config{Server: "127.0.0.1:5783"})
	if err != nil {
		t.Fatal(err)
	}
	return s.devices[0].tree
}

func rec(p string, v node.Value) node.Record {
	return node.Record{Path: node.MustParsePath(p), Value: v}
}

func TestTreeWrite(t *testing.T) {
	for _, tc := range []struct {
		name    string
		base    string
		recs    []node.Record
		mode    writeMode
		code    codes.Code // 0: success
		check   string     // a path to read afterwards
		want    string     // its value as text, or "" to skip
		changed int
	}{
		{"replace a string", "/3/0/14", []node.Record{rec("/3/0/14", node.String("+01:00"))}, writeReplace, 0, "/3/0/14", "+01:00", 1},
		{"same value changes nothing", "/3/0/14", []node.Record{rec("/3/0/14", node.String("+00:00"))}, writeReplace, 0, "/3/0/14", "+00:00", 0},
		{"integer from a float", "/1/0/1", []node.Record{rec("/1/0/1", node.Float(90))}, writeReplace, 0, "/1/0/1", "90", 1},
		{"integer from a fraction", "/1/0/1", []node.Record{rec("/1/0/1", node.Float(90.5))}, writeReplace, codes.BadRequest, "/1/0/1", "300", 0},
		{"read-only", "/3/0/0", []node.Record{rec("/3/0/0", node.String("x"))}, writeReplace, codes.MethodNotAllowed, "/3/0/0", "lwm2m-agent", 0},
		{"read-only allowed on create", "/3/0/0", []node.Record{rec("/3/0/0", node.String("x"))}, writeCreate, 0, "/3/0/0", "x", 1},
		{"executable", "/3/0", []node.Record{rec("/3/0/4", node.String("x"))}, writeUpdate, codes.MethodNotAllowed, "", "", 0},
		{"all or nothing", "/3/0", []node.Record{rec("/3/0/14", node.String("+03:00")), rec("/3/0/1", node.String("x"))}, writeUpdate, codes.MethodNotAllowed, "/3/0/14", "+00:00", 0},
		{"missing resource", "/3/0/99", []node.Record{rec("/3/0/99", node.Int(1))}, writeReplace, codes.NotFound, "", "", 0},
		{"missing instance", "/3303/5", []node.Record{rec("/3303/5/5750", node.String("x"))}, writeUpdate, codes.NotFound, "", "", 0},
		{"object level", "/3", []node.Record{rec("/3/0/14", node.String("x"))}, writeReplace, codes.MethodNotAllowed, "", "", 0},
		{"outside base", "/3/0/14", []node.Record{rec("/3/0/15", node.String("x"))}, writeReplace, codes.BadRequest, "", "", 0},
		{"two values for one resource", "/3/0/14", []node.Record{rec("/3/0/14", node.String("a")), rec("/3/0/14", node.String("b"))}, writeReplace, codes.BadRequest, "", "", 0},
		{"instance of a single resource", "/3/0", []node.Record{rec("/3/0/14/0", node.String("x"))}, writeUpdate, codes.BadRequest, "", "", 0},
		{"multiple resource as a whole", "/3/0", []node.Record{rec("/3/0/6", node.Int(1))}, writeCreate, codes.BadRequest, "", "", 0},
		{"replace multiple resource", "/3/0/6", []node.Record{rec("/3/0/6/3", node.Int(7))}, writeCreate, 0, "/3/0/6/0", "", 1},
		{"merge resource instance", "/3/0/6/3", []node.Record{rec("/3/0/6/3", node.Int(7))}, writeCreate, 0, "/3/0/6/1", "5", 1},
		{"time from an integer", "/3/0/13", []node.Record{rec("/3/0/13", node.Int(time.Now().Unix()+3600))}, writeReplace, 0, "", "", 1},
		{"string type mismatch", "/3/0/14", []node.Record{rec("/3/0/14", node.Int(1))}, writeReplace, codes.BadRequest, "", "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := testTree(t)
			changed, err := tr.write(node.MustParsePath(tc.base), tc.recs, tc.mode)
			if got := codeOf(err); got != tc.code {
				t.Fatalf("write: %v (code %v), want code %v", err, got, tc.code)
			}
			if len(changed) != tc.changed {
				t.Errorf("changed %v, want %d paths", changed, tc.changed)
			}
			if tc.check == "" {
				return
			}
			v, ok := tr.value(node.MustParsePath(tc.check), time.Now())
			if tc.want == "" {
				if ok {
					t.Errorf("%s still holds %q", tc.check, v.Text())
				}
				return
			}
			if !ok || v.Text() != tc.want {
				t.Errorf("%s = %q (%v), want %q", tc.check, v.Text(), ok, tc.want)
			}
		})
	}
}

func TestTreeCurrentTimeFollowsClock(t *testing.T) {
	tr := testTree(t)
	p := node.MustParsePath("/3/0/13")
	at := time.Now().Add(48 * time.Hour)
	if _, err := tr.write(p, []node.Record{{Path: p, Value: node.TimeValue(at)}}, writeReplace); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(10 * time.Second)
	v, _ := tr.value(p, later)
	if d := v.Time.Sub(at.Add(10 * time.Second)); d.Abs() > 2*time.Second {
		t.Errorf("clock after write is off by %v", d)
	}
}

func TestTreeCreateRemove(t *testing.T) {
	tr := testTree(t)
	tmpl := newTemplate(Config{Server: "x:1"}.withDefaults(), builtin)
	id, err := tr.create(objTemperature, nil, nil, tmpl.defaults(objTemperature))
	if err != nil || id != 1 {
		t.Fatalf("create without payload: id %d, %v", id, err)
	}
	if v, ok := tr.value(node.MustParsePath("/3303/1/5701"), time.Now()); !ok || v.Str != "Cel" {
		t.Errorf("defaults of the new instance: %v", v)
	}
	if _, err := tr.create(objTemperature, nil, []node.Record{rec("/3303/1/5750", node.String("x"))}, nil); codeOf(err) != codes.BadRequest {
		t.Errorf("create of an existing instance: %v", err)
	}
	if _, err := tr.create(objTemperature, nil, []node.Record{rec("/3303/7/5750", node.String("x")), rec("/3303/8/5750", node.String("y"))}, nil); codeOf(err) != codes.BadRequest {
		t.Errorf("create of two instances: %v", err)
	}
	if _, err := tr.create(objTemperature, nil, []node.Record{rec("/3303/7/5605", node.String("x"))}, nil); codeOf(err) != codes.MethodNotAllowed {
		t.Errorf("create with a value for an executable: %v", err)
	}
	if tr.object(objTemperature).instance(7) != nil {
		t.Errorf("a refused create left an instance behind")
	}
	if err := tr.remove(node.MustParsePath("/3303/1")); err != nil {
		t.Fatal(err)
	}
	if err := tr.remove(node.MustParsePath("/3303/1")); codeOf(err) != codes.NotFound {
		t.Errorf("second delete: %v", err)
	}
}

func TestCoerce(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   node.Value
		to   node.Type
		ok   bool
		want string
	}{
		{"same type", node.Int(5), node.TypeInteger, true, "5"},
		{"uint to int", node.Uint(5), node.TypeInteger, true, "5"},
		{"huge uint to int", node.Uint(1 << 63), node.TypeInteger, false, ""},
		{"whole float to int", node.Float(-3), node.TypeInteger, true, "-3"},
		{"fraction to int", node.Float(2.5), node.TypeInteger, false, ""},
		{"negative int to uint", node.Int(-1), node.TypeUnsignedInteger, false, ""},
		{"int to float", node.Int(2), node.TypeFloat, true, "2"},
		{"seconds to time", node.Int(1700000000), node.TypeTime, true, "1700000000"},
		{"string to corelnk", node.String("</1>"), node.TypeCorelnk, true, "</1>"},
		{"raw to opaque", node.Value{Type: node.TypeNone, Bytes: []byte{1}}, node.TypeOpaque, true, "01"},
		{"string to int", node.String("5"), node.TypeInteger, false, ""},
		{"bool to int", node.Bool(true), node.TypeInteger, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, ok := coerce(tc.in, tc.to)
			if ok != tc.ok {
				t.Fatalf("coerce %v to %v: ok %v", tc.in.Interface(), tc.to, ok)
			}
			if ok && (v.Type != tc.to || v.Text() != tc.want) {
				t.Errorf("coerce %v to %v = %v %q", tc.in.Interface(), tc.to, v.Type, v.Text())
			}
		})
	}
}

func TestParseAttrQueries(t *testing.T) {
	res := node.MustParsePath("/3/0/9")
	inst := node.MustParsePath("/3/0")
	for _, tc := range []struct {
		name    string
		path    node.Path
		queries []string
		before  attrs
		code    codes.Code
		want    map[attr]float64
		cancel  bool
	}{
		{"periods", inst, []string{"pmin=10", "pmax=60"}, attrs{}, 0, map[attr]float64{attrPmin: 10, attrPmax: 60}, false},
		{"thresholds", res, []string{"gt=50.5", "lt=10", "st=2"}, attrs{}, 0, map[attr]float64{attrGt: 50.5, attrLt: 10, attrSt: 2}, false},
		{"evaluation periods", res, []string{"epmin=1", "epmax=5"}, attrs{}, 0, map[attr]float64{attrEpmin: 1, attrEpmax: 5}, false},
		{"unset keeps others", res, []string{"pmin"}, func() attrs { var a attrs; a.put(attrPmin, 3); a.put(attrPmax, 9); return a }(), 0, map[attr]float64{attrPmax: 9}, false},
		{"cancel", res, []string{"cancel"}, attrs{}, 0, map[attr]float64{}, true},
		{"none", res, nil, attrs{}, codes.BadRequest, nil, false},
		{"unknown", res, []string{"foo=1"}, attrs{}, codes.BadRequest, nil, false},
		{"negative period", res, []string{"pmin=-1"}, attrs{}, codes.BadRequest, nil, false},
		{"fractional period", res, []string{"pmax=1.5"}, attrs{}, codes.BadRequest, nil, false},
		{"threshold on an instance", inst, []string{"gt=1"}, attrs{}, codes.BadRequest, nil, false},
		{"not a number", res, []string{"st=abc"}, attrs{}, codes.BadRequest, nil, false},
		{"infinite", res, []string{"gt=Inf"}, attrs{}, codes.BadRequest, nil, false},
		{"negative step", res, []string{"st=-1"}, attrs{}, codes.BadRequest, nil, false},
		{"lt not below gt", res, []string{"lt=5", "gt=5"}, attrs{}, codes.BadRequest, nil, false},
		{"no room for st", res, []string{"lt=5", "gt=8", "st=2"}, attrs{}, codes.BadRequest, nil, false},
		{"cancel with value", res, []string{"cancel=1"}, attrs{}, codes.BadRequest, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseAttrQueries(tc.queries, tc.path)
			var a attrs
			if err == nil {
				a, err = c.apply(tc.before)
			}
			if got := codeOf(err); got != tc.code {
				t.Fatalf("error %v, want code %v", err, tc.code)
			}
			if err != nil {
				return
			}
			if c.cancel != tc.cancel {
				t.Errorf("cancel %v", c.cancel)
			}
			for k := attr(0); k < numAttrs; k++ {
				want, set := tc.want[k]
				if a.has(k) != set || a.get(k) != want {
					t.Errorf("%s: has %v value %v, want %v %v", attrNames[k], a.has(k), a.get(k), set, want)
				}
			}
		})
	}
}

func TestPeriods(t *testing.T) {
	for _, tc := range []struct {
		name       string
		pmin, pmax float64 // -1: unset
		wantMin    time.Duration
		wantMax    time.Duration
	}{
		{"none", -1, -1, 0, 0},
		{"both", 2, 10, 2 * time.Second, 10 * time.Second},
		{"pmax not above pmin is ignored", 10, 10, 10 * time.Second, 0},
		{"pmax alone", -1, 5, 0, 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var a attrs
			if tc.pmin >= 0 {
				a.put(attrPmin, tc.pmin)
			}
			if tc.pmax >= 0 {
				a.put(attrPmax, tc.pmax)
			}
			pmin, pmax := periods(a)
			if pmin != tc.wantMin || pmax != tc.wantMax {
				t.Errorf("periods %v %v, want %v %v", pmin, pmax, tc.wantMin, tc.wantMax)
			}
		})
	}
}

func TestSchedulerOrder(t *testing.T) {
	s := newScheduler()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fired := make(chan int, 10)
	mk := func(i int) *timer { return newTimer(func(time.Time) { fired <- i }) }
	a, b, c, d := mk(1), mk(2), mk(3), mk(4)
	go s.run(ctx)
	s.after(c, 60*time.Millisecond)
	s.after(a, 20*time.Millisecond)
	s.after(b, 40*time.Millisecond)
	s.after(d, 30*time.Millisecond)
	s.stop(d)                       // disarmed: never fires
	s.after(b, 10*time.Millisecond) // moved ahead of a
	var got []int
	for range 3 {
		select {
		case i := <-fired:
			got = append(got, i)
		case <-time.After(2 * time.Second):
			t.Fatalf("fired %v", got)
		}
	}
	if got[0] != 2 || got[1] != 1 || got[2] != 3 {
		t.Errorf("fired in order %v, want [2 1 3]", got)
	}
	select {
	case i := <-fired:
		t.Errorf("stopped timer %d fired", i)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestWorkQueueHoldsADeviceOnce(t *testing.T) {
	q := newWorkQueue()
	d1, d2 := &Device{endpoint: "a"}, &Device{endpoint: "b"}
	q.push(d1)
	q.push(d2)
	q.push(d1)
	if got := q.pop(); got != d1 {
		t.Fatalf("first %v", got)
	}
	q.push(d1) // popped: may queue again
	if got := q.pop(); got != d2 {
		t.Fatalf("second %v", got)
	}
	if got := q.pop(); got != d1 {
		t.Fatalf("third %v", got)
	}
	q.close()
	if got := q.pop(); got != nil {
		t.Errorf("pop after close: %v", got)
	}
}

func TestBackoffGrowsAndCaps(t *testing.T) {
	prev := time.Duration(0)
	for n := 1; n <= 10; n++ {
		d := backoff(n)
		if d > 75*time.Second {
			t.Errorf("backoff(%d) = %v, over the cap", n, d)
		}
		if n <= 5 && d < prev/2 {
			t.Errorf("backoff(%d) = %v shrank from %v", n, d, prev)
		}
		prev = d
	}
}
