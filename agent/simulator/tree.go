package simulator

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"time"
	"unicode/utf8"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// opError is a refusal with the CoAP code the device answers.
type opError struct {
	code codes.Code
	msg  string
}

func (e *opError) Error() string { return e.code.String() + ": " + e.msg }

func refuse(code codes.Code, format string, args ...any) error {
	return &opError{code: code, msg: fmt.Sprintf(format, args...)}
}

// codeOf is the CoAP code an error answers with; 0 for no error.
func codeOf(err error) codes.Code {
	if err == nil {
		return 0
	}
	var oe *opError
	if errors.As(err, &oe) {
		return oe.code
	}
	return codes.InternalServerError
}

// resource holds the value of one resource of one instance. Values are
// never changed in place: a write stores a new *resource, so the template's
// resources can be shared by every device until one of them writes.
type resource struct {
	v     node.Value
	multi []resInst // resource instances, sorted by ID, for multiple resources
}

type resInst struct {
	id uint16
	v  node.Value
}

// present marks an executable resource that exists but holds no value.
var present = &resource{}

// instance is one object instance; res is indexed like objDef.res and nil
// where the device lacks the resource.
type instance struct {
	id  uint16
	res []*resource
}

func newInstance(def *objDef, id uint16) *instance {
	return &instance{id: id, res: make([]*resource, len(def.res))}
}

func (in *instance) clone() *instance {
	c := &instance{id: in.id, res: make([]*resource, len(in.res))}
	copy(c.res, in.res)
	return c
}

// objState is the device's copy of one object: its instances by ID.
type objState struct {
	def   *objDef
	insts []*instance // sorted by ID
}

func (o *objState) instance(id uint16) *instance {
	i := sort.Search(len(o.insts), func(i int) bool { return o.insts[i].id >= id })
	if i < len(o.insts) && o.insts[i].id == id {
		return o.insts[i]
	}
	return nil
}

func (o *objState) put(in *instance) {
	i := sort.Search(len(o.insts), func(i int) bool { return o.insts[i].id >= in.id })
	if i < len(o.insts) && o.insts[i].id == in.id {
		o.insts[i] = in
		return
	}
	o.insts = append(o.insts, nil)
	copy(o.insts[i+1:], o.insts[i:])
	o.insts[i] = in
}

func (o *objState) remove(id uint16) bool {
	i := sort.Search(len(o.insts), func(i int) bool { return o.insts[i].id >= id })
	if i < len(o.insts) && o.insts[i].id == id {
		o.insts = append(o.insts[:i], o.insts[i+1:]...)
		return true
	}
	return false
}

// tree is a device's object tree. It is not safe for concurrent use; the
// device's mutex guards it.
type tree struct {
	objs  map[uint16]*objState
	clock time.Duration // offset of the device's Current Time from the host clock
}

func (t *tree) object(id uint16) *objState { return t.objs[id] }

// value returns the value at a resource or resource-instance path.
func (t *tree) value(p node.Path, now time.Time) (node.Value, bool) {
	rd, _, res, err := t.lookupResource(p)
	if err != nil || res == present {
		return node.Value{}, false
	}
	if rd.multiple {
		if p.Depth != 4 {
			return node.Value{}, false
		}
		for _, ri := range res.multi {
			if ri.id == p.ResourceInstance {
				return ri.v, true
			}
		}
		return node.Value{}, false
	}
	if p.Depth != 3 {
		return node.Value{}, false
	}
	return t.dynamic(p, res.v, now), true
}

// dynamic gives values that follow the clock their current value.
func (t *tree) dynamic(p node.Path, v node.Value, now time.Time) node.Value {
	if p.Object == objDevice && p.Resource == resDevCurrentTime {
		return node.TimeValue(now.Add(t.clock).UTC().Truncate(time.Second))
	}
	return v
}

// lookupResource finds the resource at p (depth 3 or 4) and refuses with
// 4.04 when the object, instance or resource does not exist.
func (t *tree) lookupResource(p node.Path) (*resDef, *instance, *resource, error) {
	o := t.objs[p.Object]
	if o == nil {
		return nil, nil, nil, refuse(codes.NotFound, "object %d not found", p.Object)
	}
	in := o.instance(p.Instance)
	if in == nil {
		return nil, nil, nil, refuse(codes.NotFound, "instance /%d/%d not found", p.Object, p.Instance)
	}
	rd := o.def.resource(p.Resource)
	if rd == nil || in.res[rd.idx] == nil {
		return nil, nil, nil, refuse(codes.NotFound, "resource %v not found", p.ResourceOf())
	}
	return rd, in, in.res[rd.idx], nil
}

// exists reports whether p names something in the tree (for Write-Attributes
// and Discover).
func (t *tree) exists(p node.Path) error {
	switch p.Depth {
	case 0:
		return nil
	case 1:
		if t.objs[p.Object] == nil {
			return refuse(codes.NotFound, "object %d not found", p.Object)
		}
		return nil
	case 2:
		o := t.objs[p.Object]
		if o == nil || o.instance(p.Instance) == nil {
			return refuse(codes.NotFound, "instance %v not found", p)
		}
		return nil
	}
	rd, _, res, err := t.lookupResource(p)
	if err != nil {
		return err
	}
	if p.Depth == 4 {
		if !rd.multiple {
			return refuse(codes.NotFound, "%v is a single resource", p.ResourceOf())
		}
		for _, ri := range res.multi {
			if ri.id == p.ResourceInstance {
				return nil
			}
		}
		return refuse(codes.NotFound, "resource instance %v not found", p)
	}
	return nil
}

// read returns the records under p: every readable resource of an object
// or instance, one resource, or one resource instance.
func (t *tree) read(p node.Path, now time.Time) ([]node.Record, error) {
	switch p.Depth {
	case 0:
		return nil, refuse(codes.MethodNotAllowed, "read of the root is not allowed")
	case 1, 2:
		o := t.objs[p.Object]
		if o == nil {
			return nil, refuse(codes.NotFound, "object %d not found", p.Object)
		}
		var recs []node.Record
		if p.Depth == 2 {
			in := o.instance(p.Instance)
			if in == nil {
				return nil, refuse(codes.NotFound, "instance %v not found", p)
			}
			return t.appendInstance(recs, o.def, in, now), nil
		}
		for _, in := range o.insts {
			recs = t.appendInstance(recs, o.def, in, now)
		}
		return recs, nil
	}
	rd, _, res, err := t.lookupResource(p)
	if err != nil {
		return nil, err
	}
	if !rd.ops.has(opR) {
		return nil, refuse(codes.MethodNotAllowed, "resource %v is not readable", p.ResourceOf())
	}
	rp := p.ResourceOf()
	if !rd.multiple {
		if p.Depth == 4 {
			return nil, refuse(codes.NotFound, "%v is a single resource", rp)
		}
		return []node.Record{{Path: rp, Value: t.dynamic(rp, res.v, now)}}, nil
	}
	if p.Depth == 4 {
		for _, ri := range res.multi {
			if ri.id == p.ResourceInstance {
				return []node.Record{{Path: p, Value: ri.v}}, nil
			}
		}
		return nil, refuse(codes.NotFound, "resource instance %v not found", p)
	}
	recs := make([]node.Record, 0, len(res.multi))
	for _, ri := range res.multi {
		recs = append(recs, node.Record{Path: rp.Child(ri.id), Value: ri.v})
	}
	return recs, nil
}

func (t *tree) appendInstance(recs []node.Record, def *objDef, in *instance, now time.Time) []node.Record {
	for i, res := range in.res {
		rd := def.res[i]
		if res == nil || !rd.ops.has(opR) {
			continue
		}
		rp := node.ResourcePath(def.id, in.id, rd.id)
		if rd.multiple {
			for _, ri := range res.multi {
				recs = append(recs, node.Record{Path: rp.Child(ri.id), Value: ri.v})
			}
			continue
		}
		recs = append(recs, node.Record{Path: rp, Value: t.dynamic(rp, res.v, now)})
	}
	return recs
}

// writeMode tells how a write treats what the payload does not name.
type writeMode uint8

const (
	writeReplace writeMode = iota // PUT: a written multiple resource loses instances not in the payload
	writeUpdate                   // POST: resource instances are merged
	writeCreate                   // Create: no W check, the instance is new
)

// write applies recs to the tree under base, after checking all of them
// first so that a refused write changes nothing. It returns the resource
// paths whose value changed.
func (t *tree) write(base node.Path, recs []node.Record, mode writeMode) ([]node.Path, error) {
	if base.Depth < 2 {
		return nil, refuse(codes.MethodNotAllowed, "write on %v is not allowed", base)
	}
	o := t.objs[base.Object]
	if o == nil {
		return nil, refuse(codes.NotFound, "object %d not found", base.Object)
	}
	old := o.instance(base.Instance)
	if old == nil {
		return nil, refuse(codes.NotFound, "instance %v not found", node.InstancePath(base.Object, base.Instance))
	}
	if base.Depth >= 3 {
		rd := o.def.resource(base.Resource)
		if rd == nil || old.res[rd.idx] == nil {
			return nil, refuse(codes.NotFound, "resource %v not found", base.ResourceOf())
		}
		if base.Depth == 4 && !rd.multiple {
			return nil, refuse(codes.NotFound, "%v is a single resource", base.ResourceOf())
		}
		if base.Depth == 3 && !rd.multiple && len(recs) != 1 {
			return nil, refuse(codes.BadRequest, "write on %v needs exactly one value, got %d", base, len(recs))
		}
	}
	if len(recs) == 0 && base.Depth != 3 {
		return nil, refuse(codes.BadRequest, "empty payload")
	}
	// Group the new values per resource, checking each.
	type newRes struct {
		rd    *resDef
		v     node.Value
		multi []resInst
	}
	var staged []*newRes
	byIdx := map[int]*newRes{}
	if base.Depth == 3 {
		// A write on a multiple resource with no instances empties it.
		rd := o.def.resource(base.Resource)
		if err := checkWritable(rd, base, mode); err != nil {
			return nil, err
		}
		nr := &newRes{rd: rd}
		byIdx[rd.idx] = nr
		staged = append(staged, nr)
	}
	for _, rec := range recs {
		p := rec.Path
		if p.Depth < 3 || !base.Contains(p) {
			return nil, refuse(codes.BadRequest, "value for %v is outside %v", p, base)
		}
		rd := o.def.resource(p.Resource)
		if rd == nil || (mode != writeCreate && old.res[rd.idx] == nil) {
			return nil, refuse(codes.NotFound, "resource %v not found", p.ResourceOf())
		}
		if err := checkWritable(rd, p, mode); err != nil {
			return nil, err
		}
		if rd.multiple != (p.Depth == 4) {
			if rd.multiple {
				return nil, refuse(codes.BadRequest, "%v is a multiple resource: write its instances", p)
			}
			return nil, refuse(codes.BadRequest, "%v is a single resource", p.ResourceOf())
		}
		v, ok := coerce(rec.Value, rd.typ)
		if !ok {
			return nil, refuse(codes.BadRequest, "value for %v is %v, want %v", p, rec.Value.Type, rd.typ)
		}
		if (v.Type == node.TypeString || v.Type == node.TypeCorelnk) && !utf8.ValidString(v.Str) {
			return nil, refuse(codes.BadRequest, "value for %v is not UTF-8", p)
		}
		nr := byIdx[rd.idx]
		if nr == nil {
			nr = &newRes{rd: rd}
			byIdx[rd.idx] = nr
			staged = append(staged, nr)
		}
		if rd.multiple {
			nr.multi = setInst(nr.multi, p.ResourceInstance, v)
		} else {
			nr.v = v
		}
	}
	in := old.clone()
	var changed []node.Path
	for _, nr := range staged {
		rp := node.ResourcePath(o.def.id, in.id, nr.rd.id)
		prev := in.res[nr.rd.idx]
		var next *resource
		if nr.rd.multiple {
			multi := nr.multi
			// Merge into the existing instances unless the whole resource
			// is replaced (PUT on the instance or on the resource itself).
			if prev != nil && (mode == writeUpdate || base.Depth == 4) {
				multi = append([]resInst(nil), prev.multi...)
				for _, ri := range nr.multi {
					multi = setInst(multi, ri.id, ri.v)
				}
			}
			next = &resource{multi: multi}
		} else {
			next = &resource{v: nr.v}
		}
		if nr.rd.id == resDevCurrentTime && o.def.id == objDevice {
			t.clock = time.Until(next.v.Time).Round(time.Second)
		}
		if prev == nil || !sameResource(prev, next) {
			changed = append(changed, rp)
		}
		in.res[nr.rd.idx] = next
	}
	o.put(in)
	return changed, nil
}

func checkWritable(rd *resDef, p node.Path, mode writeMode) error {
	if rd.ops.has(opE) {
		return refuse(codes.MethodNotAllowed, "resource %v is executable, not writable", p.ResourceOf())
	}
	if mode != writeCreate && !rd.ops.has(opW) {
		return refuse(codes.MethodNotAllowed, "resource %v is not writable", p.ResourceOf())
	}
	return nil
}

func setInst(multi []resInst, id uint16, v node.Value) []resInst {
	i := sort.Search(len(multi), func(i int) bool { return multi[i].id >= id })
	if i < len(multi) && multi[i].id == id {
		multi[i].v = v
		return multi
	}
	multi = append(multi, resInst{})
	copy(multi[i+1:], multi[i:])
	multi[i] = resInst{id: id, v: v}
	return multi
}

func sameResource(a, b *resource) bool {
	if len(a.multi) != len(b.multi) {
		return false
	}
	for i := range a.multi {
		if a.multi[i].id != b.multi[i].id || !a.multi[i].v.Equal(b.multi[i].v) {
			return false
		}
	}
	return len(a.multi) > 0 || a.v.Equal(b.v)
}

// coerce converts a decoded value to the resource's type where the wire
// format could not tell them apart (SenML numbers, TLV integers of unknown
// width), and refuses conversions that would lose information.
func coerce(v node.Value, t node.Type) (node.Value, bool) {
	if v.Type == t {
		return v, true
	}
	switch t {
	case node.TypeInteger:
		switch v.Type {
		case node.TypeUnsignedInteger:
			if v.Uint <= math.MaxInt64 {
				return node.Int(int64(v.Uint)), true
			}
		case node.TypeFloat:
			if v.Float == math.Trunc(v.Float) && math.Abs(v.Float) < 1<<63 {
				return node.Int(int64(v.Float)), true
			}
		}
	case node.TypeUnsignedInteger:
		switch v.Type {
		case node.TypeInteger:
			if v.Int >= 0 {
				return node.Uint(uint64(v.Int)), true
			}
		case node.TypeFloat:
			if v.Float >= 0 && v.Float == math.Trunc(v.Float) && v.Float < 1<<64 {
				return node.Uint(uint64(v.Float)), true
			}
		}
	case node.TypeFloat:
		switch v.Type {
		case node.TypeInteger:
			return node.Float(float64(v.Int)), true
		case node.TypeUnsignedInteger:
			return node.Float(float64(v.Uint)), true
		}
	case node.TypeTime:
		switch v.Type {
		case node.TypeInteger:
			return node.TimeValue(time.Unix(v.Int, 0).UTC()), true
		case node.TypeUnsignedInteger:
			if v.Uint <= math.MaxInt64 {
				return node.TimeValue(time.Unix(int64(v.Uint), 0).UTC()), true
			}
		case node.TypeFloat:
			if !math.IsNaN(v.Float) && math.Abs(v.Float) < 1<<62 {
				return node.TimeValue(time.Unix(int64(v.Float), 0).UTC()), true
			}
		}
	case node.TypeCorelnk:
		if v.Type == node.TypeString {
			return node.CoreLink(v.Str), true
		}
	case node.TypeString:
		if v.Type == node.TypeCorelnk {
			return node.String(v.Str), true
		}
	case node.TypeOpaque:
		if v.Type == node.TypeNone {
			return node.Opaque(v.Bytes), true
		}
	}
	return v, false
}

// create adds a new instance of an object from the records of a Create
// request and returns its ID. want, when set, is the ID a request without
// values named (an empty Object Instance TLV). Resources the payload
// leaves out take the defaults of the object's template instance, if it
// has one.
func (t *tree) create(objID uint16, want *uint16, recs []node.Record, defaults *instance) (uint16, error) {
	o := t.objs[objID]
	if o == nil {
		return 0, refuse(codes.NotFound, "object %d not found", objID)
	}
	var id uint16
	haveID := false
	if want != nil {
		id, haveID = *want, true
	}
	for _, rec := range recs {
		if rec.Path.Depth < 2 || rec.Path.Object != objID {
			return 0, refuse(codes.BadRequest, "value for %v is outside /%d", rec.Path, objID)
		}
		if haveID && rec.Path.Instance != id {
			return 0, refuse(codes.BadRequest, "create of more than one instance")
		}
		id, haveID = rec.Path.Instance, true
	}
	if !haveID {
		id = 0
		for o.instance(id) != nil {
			id++
		}
	}
	if id > node.MaxID {
		return 0, refuse(codes.BadRequest, "instance ID %d out of range", id)
	}
	if o.instance(id) != nil {
		return 0, refuse(codes.BadRequest, "instance /%d/%d already exists", objID, id)
	}
	if !o.def.multiple && len(o.insts) > 0 {
		return 0, refuse(codes.BadRequest, "object %d allows one instance", objID)
	}
	in := newInstance(o.def, id)
	if defaults != nil {
		copy(in.res, defaults.res)
	}
	for i, rd := range o.def.res {
		if rd.ops.has(opE) {
			in.res[i] = present
		}
	}
	o.put(in)
	if len(recs) == 0 {
		return id, nil
	}
	if _, err := t.write(node.InstancePath(objID, id), recs, writeCreate); err != nil {
		o.remove(id)
		return 0, err
	}
	return id, nil
}

// remove deletes an object instance.
func (t *tree) remove(p node.Path) error {
	if p.Depth != 2 {
		return refuse(codes.MethodNotAllowed, "delete is only allowed on an object instance, not %v", p)
	}
	o := t.objs[p.Object]
	if o == nil || o.instance(p.Instance) == nil {
		return refuse(codes.NotFound, "instance %v not found", p)
	}
	if p.Object == objServer || p.Object == objDevice {
		return refuse(codes.MethodNotAllowed, "instance %v cannot be deleted", p)
	}
	o.remove(p.Instance)
	return nil
}
