package simulator

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/model"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// Report says how a resource's measurements reach the server.
type Report string

const (
	// ReportNotify hands every measurement to the server's observations
	// of the resource (or of its instance or object), as a notification,
	// even when it equals the last one: the device reports what it
	// measured. Nothing goes out while the server observes nothing.
	ReportNotify Report = "notify"
	// ReportSend sends every measurement with the LwM2M Send operation
	// (POST /dp, SenML CBOR; LwM2M 1.1 and later), observed or not. The
	// measurements of one period go in one Send.
	ReportSend Report = "send"
)

// Objects are what the devices have beyond the built-in objects, and
// the values their resources hold and report (Config.Objects).
type Objects struct {
	// Defs are object definitions (from DDF files, model.ParseDDF) the
	// devices have besides the built-in ones. An object has the instances
	// Resources name, else instance 0; an instance holds the resources
	// Resources give, its mandatory readable ones at their type's zero
	// value otherwise ("", 0, false, no bytes), and its executable ones.
	Defs []model.ObjectDef
	// Resources give resources of Defs' objects, or of the built-in ones,
	// their values, how they change and how they are reported.
	Resources []Resource
}

// Resource is one resource of every device: the values it takes, how
// often it is measured and how each measurement is reported. Exactly one
// of Values, Counter, Walk and RandomBytes says what it holds.
type Resource struct {
	// Path is a resource (/O/I/R), or a resource instance of a multiple
	// resource (/O/I/R/N).
	Path node.Path
	// Values are taken in turn: the resource holds the first from the
	// start, each measurement takes the next, and after the last the
	// first again; one value is a constant. Each is of the resource's type
	// (opaque bytes for an opaque resource).
	Values []node.Value
	// Counter counts measurements.
	Counter *Counter
	// Walk moves at random.
	Walk *Walk
	// RandomBytes makes each measurement that many random bytes (opaque
	// resources only); the resource holds as many zero bytes at first.
	RandomBytes int
	// Every is how often the device measures the resource anew and
	// reports it; 0 keeps the first value for the server to read.
	Every time.Duration
	// Report is how each measurement is reported (default ReportNotify).
	Report Report
}

// Counter counts by Step from Start: the resource holds Start from the
// start, and the k-th measurement makes it Start + k×Step.
type Counter struct {
	Start float64 `json:"start"`
	Step  float64 `json:"step"`
}

// Walk is a random walk: the resource starts at Start, and each
// measurement after the first moves it by a step drawn evenly from
// [-Step, Step], kept within [Min, Max]. Integer resources take whole
// steps.
type Walk struct {
	Start float64 `json:"start"`
	Step  float64 `json:"step"`
	Min   float64 `json:"min"`
	Max   float64 `json:"max"`
}

// Limits of Objects: each period is a timer per device, each random
// measurement a buffer.
const (
	MinEvery       = 10 * time.Millisecond
	MaxRandomBytes = 64 << 10
)

// validate reports every problem of o together, each prefixed with the
// definition or path it is about.
func (o Objects) validate(version string) error { return errors.Join(o.problems(version)...) }

// problems lists every problem of o on devices of the LwM2M version.
func (o Objects) problems(version string) []error {
	var errs []error
	seen := map[uint16]bool{}
	for _, od := range o.Defs {
		switch {
		case defs[od.ID] != nil:
			errs = append(errs, fmt.Errorf("object %d (%s): the simulator has object %d (%s) built in; give values to its resources instead", od.ID, od.Name, od.ID, defs[od.ID].name))
		case seen[od.ID]:
			errs = append(errs, fmt.Errorf("object %d (%s): defined twice", od.ID, od.Name))
		default:
			if err := od.Validate(); err != nil {
				errs = append(errs, fmt.Errorf("object %d (%s): %w", od.ID, od.Name, err))
			}
		}
		seen[od.ID] = true
	}
	table := o.table()
	paths := map[node.Path]bool{}
	for _, r := range o.Resources {
		for _, err := range r.problems(table, version) {
			errs = append(errs, fmt.Errorf("%v: %w", r.Path, err))
		}
		if paths[r.Path] {
			errs = append(errs, fmt.Errorf("%v: given twice", r.Path))
		}
		paths[r.Path] = true
	}
	return errs
}

// table is the object table of devices with o.
func (o Objects) table() *objTable {
	if len(o.Defs) == 0 {
		return builtin
	}
	extra := make([]*objDef, 0, len(o.Defs))
	for _, od := range o.Defs {
		if defs[od.ID] == nil {
			extra = append(extra, fromDef(od))
		}
	}
	return newObjTable(extra)
}

// target finds the definition of the resource r gives values to, or
// says why it cannot have them.
func (r Resource) target(t *objTable) (*resDef, error) {
	p := r.Path
	if p.Depth < 3 {
		return nil, errors.New("not a resource path (/O/I/R or /O/I/R/N)")
	}
	od := t.byID[p.Object]
	switch {
	case od == nil:
		return nil, fmt.Errorf("object %d is neither built in nor defined by a DDF file", p.Object)
	case p.Object == objSecurity || p.Object == objServer:
		return nil, fmt.Errorf("object %d (%s) holds the device's server accounts, which bootstrapping writes", p.Object, od.name)
	case defs[p.Object] != nil && p.Instance != 0:
		return nil, fmt.Errorf("the simulator's object %d (%s) has instance 0 only", p.Object, od.name)
	case !od.multiple && p.Instance != 0:
		return nil, fmt.Errorf("object %d (%s) has a single instance, 0", p.Object, od.name)
	}
	rd := od.byID[p.Resource]
	switch {
	case rd == nil:
		return nil, fmt.Errorf("object %d (%s) has no resource %d", p.Object, od.name, p.Resource)
	case rd.ops.has(opE):
		return nil, fmt.Errorf("resource %d (%s) is executable and holds no value", rd.id, rd.name)
	case rd.multiple && p.Depth == 3:
		return nil, fmt.Errorf("resource %d (%s) is a multiple resource: give values to its instances, %v", rd.id, rd.name, p.Child(0))
	case !rd.multiple && p.Depth == 4:
		return nil, fmt.Errorf("resource %d (%s) is a single resource: %v", rd.id, rd.name, p.ResourceOf())
	}
	return rd, nil
}

// problems lists what is wrong with r on devices of table t.
func (r Resource) problems(t *objTable, version string) []error {
	rd, err := r.target(t)
	if err != nil {
		return []error{err}
	}
	n := 0
	if len(r.Values) > 0 {
		n++
	}
	if r.Counter != nil {
		n++
	}
	if r.Walk != nil {
		n++
	}
	if r.RandomBytes != 0 {
		n++
	}
	if n != 1 {
		return []error{errors.New("needs exactly one of value, hex, file, counter, walk and randomBytes")}
	}
	numeric := rd.typ == node.TypeInteger || rd.typ == node.TypeUnsignedInteger || rd.typ == node.TypeFloat
	var errs []error
	for i, v := range r.Values {
		if _, ok := coerce(v, rd.typ); !ok {
			errs = append(errs, fmt.Errorf("value %d is %v, resource %d (%s) is %v", i, v.Type, rd.id, rd.name, rd.typ))
		}
	}
	if c := r.Counter; c != nil {
		switch {
		case !numeric:
			errs = append(errs, fmt.Errorf("counter: resource %d (%s) is %v, not a number", rd.id, rd.name, rd.typ))
		case rd.typ != node.TypeFloat && (c.Start != math.Trunc(c.Start) || c.Step != math.Trunc(c.Step)):
			errs = append(errs, fmt.Errorf("counter: resource %d (%s) is %v: start and step must be whole", rd.id, rd.name, rd.typ))
		case rd.typ == node.TypeUnsignedInteger && (c.Start < 0 || c.Step < 0):
			errs = append(errs, fmt.Errorf("counter: resource %d (%s) is unsigned: start and step must not be negative", rd.id, rd.name))
		}
	}
	if w := r.Walk; w != nil {
		switch {
		case !numeric:
			errs = append(errs, fmt.Errorf("walk: resource %d (%s) is %v, not a number", rd.id, rd.name, rd.typ))
		case !(w.Step > 0):
			errs = append(errs, fmt.Errorf("walk: step %v must be above 0", w.Step))
		case !(w.Min <= w.Start && w.Start <= w.Max):
			errs = append(errs, fmt.Errorf("walk: start %v is not within min %v and max %v", w.Start, w.Min, w.Max))
		case rd.typ == node.TypeUnsignedInteger && w.Min < 0:
			errs = append(errs, fmt.Errorf("walk: resource %d (%s) is unsigned: min must not be negative", rd.id, rd.name))
		}
	}
	if r.RandomBytes != 0 {
		switch {
		case rd.typ != node.TypeOpaque:
			errs = append(errs, fmt.Errorf("randomBytes: resource %d (%s) is %v, not opaque", rd.id, rd.name, rd.typ))
		case r.RandomBytes < 0 || r.RandomBytes > MaxRandomBytes:
			errs = append(errs, fmt.Errorf("randomBytes: %d is not between 1 and %d", r.RandomBytes, MaxRandomBytes))
		}
	}
	changes := len(r.Values) > 1 || r.Counter != nil || r.Walk != nil || r.RandomBytes != 0
	switch {
	case r.Every < 0:
		errs = append(errs, fmt.Errorf("every: %v is negative", r.Every))
	case r.Every == 0 && changes:
		errs = append(errs, errors.New("every: needed, for the values to change"))
	case r.Every > 0 && r.Every < MinEvery:
		errs = append(errs, fmt.Errorf("every: %v is shorter than %v", r.Every, MinEvery))
	case r.Every > 0 && !rd.ops.has(opR):
		errs = append(errs, fmt.Errorf("every: resource %d (%s) is not readable, so its measurements cannot be reported", rd.id, rd.name))
	}
	switch r.Report {
	case "", ReportNotify:
	case ReportSend:
		if version == "1.0" {
			errs = append(errs, errors.New("report: send needs LwM2M 1.1 or later; LwM2M 1.0 has no Send operation"))
		}
	default:
		errs = append(errs, fmt.Errorf("report: %q is not notify or send", r.Report))
	}
	return errs
}

// first is the value the resource holds before its first measurement.
func (r *Resource) first(t node.Type) node.Value {
	switch {
	case len(r.Values) > 0:
		v, _ := coerce(r.Values[0], t)
		return v
	case r.Counter != nil:
		return number(r.Counter.Start, t)
	case r.Walk != nil:
		return number(r.Walk.Start, t)
	}
	return node.Opaque(make([]byte, r.RandomBytes))
}

// measure returns the k-th value (0: the one held from the start, which
// first also gives); prev is the value the resource holds, rng the
// device's.
func (r *Resource) measure(k uint64, prev node.Value, t node.Type, rng interface {
	Float64() float64
	Uint64() uint64
}) node.Value {
	switch {
	case len(r.Values) > 0:
		v, _ := coerce(r.Values[k%uint64(len(r.Values))], t)
		return v
	case r.Counter != nil:
		return number(r.Counter.Start+float64(k)*r.Counter.Step, t)
	case r.Walk != nil:
		if k == 0 {
			return number(r.Walk.Start, t)
		}
		cur, ok := numberOf(prev)
		if !ok {
			cur = r.Walk.Start
		}
		step := (2*rng.Float64() - 1) * r.Walk.Step
		if t != node.TypeFloat {
			step = math.Round(step)
		}
		return number(math.Max(r.Walk.Min, math.Min(r.Walk.Max, cur+step)), t)
	}
	b := make([]byte, r.RandomBytes)
	for i := 0; i < len(b); i += 8 {
		x := rng.Uint64()
		for j := i; j < len(b) && j < i+8; j++ {
			b[j] = byte(x)
			x >>= 8
		}
	}
	return node.Opaque(b)
}

// number is f as a value of the numeric type t.
func number(f float64, t node.Type) node.Value {
	switch t {
	case node.TypeInteger:
		return node.Int(int64(math.Round(f)))
	case node.TypeUnsignedInteger:
		return node.Uint(uint64(math.Max(0, math.Round(f))))
	}
	return node.Float(f)
}

// numberOf is the value of a numeric resource as a number.
func numberOf(v node.Value) (float64, bool) {
	switch v.Type {
	case node.TypeInteger:
		return float64(v.Int), true
	case node.TypeUnsignedInteger:
		return float64(v.Uint), true
	case node.TypeFloat:
		return v.Float, true
	}
	return 0, false
}

// zero is the value a mandatory resource nobody gave a value holds.
func zero(t node.Type) node.Value {
	switch t {
	case node.TypeString:
		return node.String("")
	case node.TypeInteger:
		return node.Int(0)
	case node.TypeUnsignedInteger:
		return node.Uint(0)
	case node.TypeFloat:
		return node.Float(0)
	case node.TypeBoolean:
		return node.Bool(false)
	case node.TypeTime:
		return node.TimeValue(time.Unix(0, 0).UTC())
	case node.TypeObjlnk:
		return node.Link(math.MaxUint16, math.MaxUint16) // the null link
	case node.TypeCorelnk:
		return node.CoreLink("")
	}
	return node.Opaque(nil)
}

// valueGroup is the resources measured with one period and reported one
// way: one timer per device, and one Send per period.
type valueGroup struct {
	every  time.Duration
	report Report
	specs  []int // indexes into Config.Objects.Resources
}

// groups sorts the measured resources of o into valueGroups.
func (o Objects) groups() []*valueGroup {
	var out []*valueGroup
	for i, r := range o.Resources {
		if r.Every <= 0 {
			continue
		}
		rep := r.Report
		if rep == "" {
			rep = ReportNotify
		}
		at := slices.IndexFunc(out, func(g *valueGroup) bool { return g.every == r.Every && g.report == rep })
		if at < 0 {
			out = append(out, &valueGroup{every: r.Every, report: rep})
			at = len(out) - 1
		}
		out[at].specs = append(out[at].specs, i)
	}
	return out
}
