package simulator

import (
	"encoding/hex"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/lwm2m-agent/lwm2m-agent/agent/codec"
	"github.com/lwm2m-agent/lwm2m-agent/agent/model"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// exampleDir holds the objects file and DDF shipped as the documented
// example; the tests use them as a user would.
const exampleDir = "../../examples/simulator"

func exampleObjects(t *testing.T) Objects {
	t.Helper()
	o, err := LoadObjects(filepath.Join(exampleDir, "frame-sensor.json"), nil)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestExampleObjects(t *testing.T) {
	// the agent takes the example's DDF as it is (strict schema)
	f, err := os.Open(filepath.Join(exampleDir, "frame-sensor.xml"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := model.ParseDDFStrict(f); err != nil {
		t.Fatalf("the example DDF does not follow LWM2M.xsd: %v", err)
	}
	o := exampleObjects(t)
	if len(o.Defs) != 1 || o.Defs[0].ID != 32050 {
		t.Fatalf("defs %+v", o.Defs)
	}
	want := map[string]Resource{
		"/32050/0/0": {Values: []node.Value{node.Opaque([]byte{0x66, 0x08}), node.Opaque([]byte{0x70, 0x08}),
			node.Opaque([]byte{0x7a, 0x08}), node.Opaque([]byte{0x70, 0x08})}, Every: 5 * time.Second, Report: ReportNotify},
		"/32050/0/1":   {Counter: &Counter{Start: 0, Step: 1}, Every: 5 * time.Second, Report: ReportNotify},
		"/32050/0/2":   {Walk: &Walk{Start: 3.6, Step: 0.01, Min: 3, Max: 3.7}, Every: time.Minute, Report: ReportNotify},
		"/32050/0/3":   {Values: []node.Value{node.String("boiler room")}, Report: ReportNotify},
		"/32050/0/4/0": {RandomBytes: 8, Every: 30 * time.Second, Report: ReportSend},
	}
	if len(o.Resources) != len(want) {
		t.Fatalf("%d resources, want %d", len(o.Resources), len(want))
	}
	for _, r := range o.Resources {
		w, ok := want[r.Path.String()]
		w.Path = r.Path
		if !ok || !sameResourceSpec(r, w) {
			t.Errorf("%v: %+v\nwant %+v", r.Path, r, w)
		}
	}
	if err := (Config{Server: "a:1", Objects: o}).Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	if err := (Config{Server: "a:1", Version: "1.0", Objects: o}).Validate(); err == nil ||
		err.Error() != "objects: /32050/0/4/0: report: send needs LwM2M 1.1 or later; LwM2M 1.0 has no Send operation" {
		t.Errorf("Validate for LwM2M 1.0: %v", err)
	}
}

func sameResourceSpec(a, b Resource) bool {
	return a.Path == b.Path && slices.EqualFunc(a.Values, b.Values, node.Value.Equal) &&
		(a.Counter == nil) == (b.Counter == nil) && (a.Counter == nil || *a.Counter == *b.Counter) &&
		(a.Walk == nil) == (b.Walk == nil) && (a.Walk == nil || *a.Walk == *b.Walk) &&
		a.RandomBytes == b.RandomBytes && a.Every == b.Every && a.Report == b.Report
}

// The objects file of the SDK's example decoder's guide, beside its DDF.
func TestTempframeObjects(t *testing.T) {
	dir := t.TempDir()
	ddf, err := os.ReadFile("../../sdk/examples/tempframe/tempframe.xml")
	if err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{
		"tempframe.xml": string(ddf),
		"tempframe-sim.json": `{"ddf": ["tempframe.xml"], "every": "2s",
 "resources": {"/32001/0/0": {"hex": ["6608", "7008", "7a08", "9cff"]}}}`,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	o, err := LoadObjects(filepath.Join(dir, "tempframe-sim.json"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := (Config{Server: "a:1", Objects: o}).Validate(); err != nil || len(o.Resources) != 1 || len(o.Resources[0].Values) != 4 ||
		o.Resources[0].Every != 2*time.Second || o.Resources[0].Report != ReportNotify {
		t.Errorf("%+v, %v", o, err)
	}
}

// Each bad objects file and every problem it is refused for, at once.
func TestLoadObjectsProblems(t *testing.T) {
	dir := t.TempDir()
	ddf, err := os.ReadFile(filepath.Join(exampleDir, "frame-sensor.xml"))
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("sensor.xml", string(ddf))
	write("temperature.xml", strings.NewReplacer("<ObjectID>32050</ObjectID>", "<ObjectID>3303</ObjectID>").Replace(string(ddf)))
	write("frame.bin", "\x01\x02\x03")
	write("big.bin", strings.Repeat("x", maxValueFile+1))
	write("number.txt", " 42\n")
	for _, tc := range []struct {
		name string
		json string
		want []string // the lines after "objects FILE: "
	}{
		{"unknown member", `{"ddf":["sensor.xml"],"resource":{}}`, []string{`unknown field "resource"`}},
		{"missing DDF", `{"ddf":["none.xml"]}`, []string{"ddf: open " + filepath.Join(dir, "none.xml") + ": no such file or directory"}},
		{"a built-in object redefined", `{"ddf":["temperature.xml"]}`,
			[]string{"object 3303 (Frame Sensor): the simulator has object 3303 (Temperature) built in; give values to its resources instead"}},
		{"every problem of the resources", `{"ddf":["sensor.xml"],"every":"1s","resources":{
			"/32050/0/0": {"hex": "0g"},
			"/32050/0/1": {"value": "many"},
			"/32050/0/2": {"counter": {"start": 0, "step": 1}, "walk": {"start": 1, "step": 1, "min": 0, "max": 2}},
			"/32050/0/3": {"file": "big.bin"},
			"/32050/0/4": {"randomBytes": 4},
			"/32050/0/5": {"value": 1},
			"/32050/0/9": {"value": 1},
			"/32051/0/0": {"value": 1},
			"/3303/1/5700": {"value": 1},
			"/1/0/1": {"value": 60},
			"/32050/1/1": {"counter": {"start": 0.5, "step": 1}, "every": "soon", "report": "shout"},
			"/32050/2/2": {"walk": {"start": 5, "step": 0, "min": 0, "max": 4}},
			"/32050/3/1": {"randomBytes": 4, "colour": "red"},
			"/32050/4/0": {"value": "0a", "every": "1ms"},
			"/3303/0/5700": {"hex": "00"}}}`,
			[]string{
				"/1/0/1: object 1 (LwM2M Server) holds the device's server accounts, which bootstrapping writes",
				"/3303/0/5700: value 0 is OPAQUE, resource 5700 (Sensor Value) is FLOAT",
				"/3303/1/5700: the simulator's object 3303 (Temperature) has instance 0 only",
				`/32050/0/0: hex: "0g" is not hex`,
				`/32050/0/1: value: "many" is not an integer`,
				"/32050/0/2: needs exactly one of value, hex, file, counter, walk and randomBytes",
				"/32050/0/3: file: " + filepath.Join(dir, "big.bin") + " is larger than 65536 bytes",
				"/32050/0/4: resource 4 (Diagnostics) is a multiple resource: give values to its instances, /32050/0/4/0",
				"/32050/0/5: resource 5 (Reset Counter) is executable and holds no value",
				"/32050/0/9: object 32050 (Frame Sensor) has no resource 9",
				`/32050/1/1: every: invalid duration "soon"`,
				"/32050/2/2: walk: step 0 must be above 0",
				`/32050/3/1: unknown field "colour"`,
				"/32050/4/0: every: 1ms is shorter than 10ms",
				"/32051/0/0: object 32051 is neither built in nor defined by a DDF file",
			}},
		{"generators without a period, counters of whole numbers, reports", `{"ddf":["sensor.xml"],"resources":{
			"/32050/0/1": {"counter": {"start": 0.5, "step": 1}, "every": "1s", "report": "shout"},
			"/32050/0/0": {"hex": ["00", "01"]},
			"/32050/0/2": {"file": "number.txt", "every": "1s"},
			"/32050/1/0": {"file": "frame.bin", "report": "send", "every": "1s"}}}`,
			[]string{
				"/32050/0/0: every: needed, for the values to change",
				"/32050/0/1: counter: resource 1 (Frame Counter) is INTEGER: start and step must be whole",
				`/32050/0/1: report: "shout" is not notify or send`,
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := write(strings.ReplaceAll(tc.name, " ", "-")+".json", tc.json)
			_, err := LoadObjects(file, nil)
			want := "objects " + file + ": " + strings.Join(tc.want, "\n")
			if err == nil || err.Error() != want {
				t.Errorf("got:\n%v\nwant:\n%s", err, want)
			}
		})
	}
	// values from files, typed by the resource
	o, err := LoadObjects(write("files.json", `{"ddf":["sensor.xml"],"resources":{
		"/32050/0/0": {"file": "frame.bin"}, "/32050/0/1": {"file": "number.txt"}, "/32050/0/3": {"file": "number.txt"}}}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []node.Value{node.Opaque([]byte{1, 2, 3}), node.Int(42), node.String(" 42\n")} {
		if got := o.Resources[i].Values; len(got) != 1 || !got[0].Equal(want) {
			t.Errorf("%v: %v, want %v", o.Resources[i].Path, got, want)
		}
	}
	// DDF files of the command line, without an objects file
	if o, err := LoadObjects("", []string{filepath.Join(dir, "sensor.xml")}); err != nil || len(o.Defs) != 1 || len(o.Resources) != 0 {
		t.Errorf("--ddf alone: %+v %v", o, err)
	}
}

func TestResourceMeasure(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	hexes := func(s ...string) []node.Value {
		var out []node.Value
		for _, h := range s {
			b, _ := hex.DecodeString(h)
			out = append(out, node.Opaque(b))
		}
		return out
	}
	for _, tc := range []struct {
		name string
		r    Resource
		typ  node.Type
		want []node.Value // the first measurements, in order
	}{
		{"constant", Resource{Values: []node.Value{node.String("x")}}, node.TypeString,
			[]node.Value{node.String("x"), node.String("x"), node.String("x")}},
		{"byte sequences in turn", Resource{Values: hexes("01", "0203", "")}, node.TypeOpaque, hexes("01", "0203", "", "01", "0203")},
		{"integer counter", Resource{Counter: &Counter{Start: 10, Step: -3}}, node.TypeInteger,
			[]node.Value{node.Int(10), node.Int(7), node.Int(4), node.Int(1), node.Int(-2)}},
		{"unsigned counter", Resource{Counter: &Counter{Start: 0, Step: 2}}, node.TypeUnsignedInteger,
			[]node.Value{node.Uint(0), node.Uint(2), node.Uint(4)}},
		{"float counter", Resource{Counter: &Counter{Start: 0.5, Step: 0.25}}, node.TypeFloat,
			[]node.Value{node.Float(0.5), node.Float(0.75), node.Float(1)}},
		{"integers typed from literals", Resource{Values: []node.Value{node.Uint(3)}}, node.TypeInteger, []node.Value{node.Int(3)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if first := tc.r.first(tc.typ); !first.Equal(tc.want[0]) {
				t.Errorf("first value %v, want %v", first, tc.want[0])
			}
			prev := tc.r.first(tc.typ)
			for k, want := range tc.want {
				v := tc.r.measure(uint64(k), prev, tc.typ, rng)
				if !v.Equal(want) || v.Type != tc.typ {
					t.Errorf("measurement %d: %v (%v), want %v", k, v, v.Type, want)
				}
				prev = v
			}
		})
	}
	// a walk moves by at most its step, whole steps for integers, within
	// its bounds, and does move
	for _, typ := range []node.Type{node.TypeFloat, node.TypeInteger} {
		r := Resource{Walk: &Walk{Start: 5, Step: 2, Min: 0, Max: 8}}
		prev := r.first(typ)
		seen := map[float64]bool{}
		for k := range 2000 {
			v := r.measure(uint64(k), prev, typ, rng)
			f, _ := numberOf(v)
			p, _ := numberOf(prev)
			if v.Type != typ || f < 0 || f > 8 || f-p > 2 || p-f > 2 || (typ == node.TypeInteger && f != float64(int64(f))) {
				t.Fatalf("%v walk: %v after %v", typ, v, prev)
			}
			seen[f] = true
			prev = v
		}
		if !seen[0] || !seen[8] || len(seen) < 9 {
			t.Errorf("%v walk visited %d values, bounds %v %v", typ, len(seen), seen[0], seen[8])
		}
	}
	r := Resource{RandomBytes: 13}
	a, b := r.measure(0, node.Value{}, node.TypeOpaque, rng), r.measure(1, node.Value{}, node.TypeOpaque, rng)
	if len(a.Bytes) != 13 || len(b.Bytes) != 13 || a.Equal(b) || len(r.first(node.TypeOpaque).Bytes) != 13 {
		t.Errorf("random bytes %x, %x", a.Bytes, b.Bytes)
	}
}

// A device with the example's object registers it, answers reads of it,
// notifies its observer of every measurement at the file's rate (the same
// frames in turn, equal or not) and sends the measurements of the send
// resources with LwM2M Send.
func TestObjectsNotifyAndSend(t *testing.T) {
	o := exampleObjects(t)
	for i := range o.Resources {
		r := &o.Resources[i]
		switch r.Path.String() {
		case "/32050/0/0":
			r.Every = 50 * time.Millisecond
		case "/32050/0/1":
			// a counter measured with the frames, reported by Send
			r.Every, r.Report = 50*time.Millisecond, ReportSend
		}
	}
	srv := startServer(t)
	sim := runSim(t, srv, func(c *Config) { c.Objects = o; c.NotifyInterval = 0 })
	reg := srv.reg("sim-0")
	var links []string
	for _, l := range reg.links {
		links = append(links, l.Target)
	}
	if !slices.Contains(links, "/32050/0") {
		t.Errorf("registered %v, without /32050/0", links)
	}
	r := srv.must(reg, get("/32050/0", int(codec.SenMLJSON)))
	vals := decode(t, r, "/32050/0")
	if r.code != codes.Content || vals["/32050/0/3"].Str != "boiler room" || len(vals["/32050/0/4/0"].Bytes) != 8 || vals["/32050/0/0"].Type != node.TypeOpaque {
		t.Fatalf("read /32050/0: %v %s", r.code, fmtValues(vals))
	}
	// writes are typed by the DDF too
	if r := srv.must(reg, put("/32050/0/3", int(codec.Text), []byte("cellar"))); r.code != codes.Changed {
		t.Fatalf("write /32050/0/3: %v %s", r.code, r.payload)
	}
	if v, _ := sim.Device("sim-0").Value(node.MustParsePath("/32050/0/3")); v.Str != "cellar" {
		t.Errorf("after the write: %v", v)
	}

	obs, cancel := observe(t, reg, "/32050/0/0", codec.SenMLCBOR)
	defer cancel()
	got := obs.waitFor(t, 9, 10*time.Second)
	frames := []string{"6608", "7008", "7a08", "7008"}
	var seq []string
	for _, n := range got[1:] { // the first is the answer to the Observe
		seq = append(seq, hex.EncodeToString(decode(t, n, "/32050/0/0")["/32050/0/0"].Bytes))
	}
	// the frames come in turn from wherever the device was
	start := slices.Index(frames, seq[0])
	if start < 0 {
		t.Fatalf("notified %v", seq)
	}
	for i, s := range seq {
		if want := frames[(start+i)%len(frames)]; s != want {
			t.Fatalf("notification %d: %s, want %s (all: %v)", i, s, want, seq)
		}
	}

	// the counter goes by Send, one record per measurement, in order,
	// each with its time
	var counts []int64
	srv.wait(10*time.Second, "5 counter values sent", func() bool {
		counts = counts[:0]
		for _, body := range srv.sends {
			recs, err := codec.Decode(codec.SenMLCBOR, node.Root, body, sim.objs)
			if err != nil {
				t.Errorf("decode send: %v", err)
				return true
			}
			for _, rec := range recs {
				if rec.Path.String() != "/32050/0/1" || rec.Time.IsZero() {
					t.Errorf("sent %v at %v", rec.Path, rec.Time)
				}
				counts = append(counts, rec.Value.Int)
			}
		}
		return len(counts) >= 5
	})
	for i := 1; i < len(counts); i++ {
		if counts[i] != counts[i-1]+1 {
			t.Fatalf("counter values sent %v: not one after the other", counts)
		}
	}
	if s := sim.Stats(); s.Measurements < 14 || s.Sends == 0 {
		t.Errorf("stats %+v", s)
	}
}
