package simulator

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/net/responsewriter"
	"github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/lwm2m-agent/lwm2m-agent/agent/codec"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// reply is the device's answer to one request and what follows it.
type reply struct {
	code     codes.Code
	format   codec.Format
	payload  []byte
	hasBody  bool
	observe  int64 // Observe option of the answer; -1 for none
	location []string
	work     uint8       // exchanges to start afterwards
	out      []*outgoing // notifications the request caused
	diag     string      // diagnostic payload of a refusal
}

func answer(code codes.Code) reply { return reply{code: code, observe: -1} }

func content(f codec.Format, payload []byte) reply {
	return reply{code: codes.Content, format: f, payload: payload, hasBody: true, observe: -1}
}

// fail turns an error into the refusal a device sends: the code of an
// opError, 4.15 and 4.00 for payloads the codecs reject, 5.00 otherwise.
func fail(err error, decoding bool) reply {
	var oe *opError
	switch {
	case errors.As(err, &oe):
		return reply{code: oe.code, observe: -1, diag: oe.msg}
	case errors.Is(err, codec.ErrUnsupported) && decoding:
		return reply{code: codes.UnsupportedMediaType, observe: -1, diag: err.Error()}
	case errors.Is(err, codec.ErrUnsupported):
		return reply{code: codes.NotAcceptable, observe: -1, diag: err.Error()}
	case decoding:
		return reply{code: codes.BadRequest, observe: -1, diag: err.Error()}
	}
	return reply{code: codes.InternalServerError, observe: -1, diag: err.Error()}
}

// handle answers the server's requests on the device's connection. It runs
// on go-coap's per-connection goroutine and never waits for the network.
func (d *Device) handle(w *responsewriter.ResponseWriter[*client.Conn], r *pool.Message) {
	if r.Type() == message.Reset {
		// The server rejects a notification: forget that observation.
		d.mu.Lock()
		d.ackLocked(r.MessageID(), true)
		d.mu.Unlock()
		return
	}
	if c := r.Code(); c < codes.GET || c > codes.IPATCH {
		return
	}
	d.mu.Lock()
	stopped := d.stopped
	d.mu.Unlock()
	if stopped {
		return
	}
	now := time.Now()
	d.answered(r, now)
	rep := d.serve(r, now)
	d.sim.stats.requests.Add(1)
	if rep.code >= codes.BadRequest {
		d.sim.stats.errors.Add(1)
		d.log.Debug("refused", "code", rep.code.String(), "reason", rep.diag)
	}
	var body *bytes.Reader
	if rep.hasBody {
		body = bytes.NewReader(rep.payload)
	}
	var err error
	if body != nil {
		err = w.SetResponse(rep.code, message.MediaType(rep.format), body)
	} else {
		err = w.SetResponse(rep.code, 0, nil)
		if rep.diag != "" {
			w.Message().SetBody(bytes.NewReader([]byte(rep.diag)))
		}
	}
	if err == nil {
		if rep.observe >= 0 {
			w.Message().SetObserve(uint32(rep.observe))
		}
		for _, seg := range rep.location {
			w.Message().AddOptionString(message.LocationPath, seg)
		}
	}
	d.emit(rep.out)
	if rep.work != 0 {
		d.requestWork(rep.work)
	}
}

// serve decides the answer to one request.
func (d *Device) serve(r *pool.Message, now time.Time) reply {
	p := node.Root
	if s, err := r.Path(); err == nil && s != "" {
		q, err := node.ParsePath(s)
		if err != nil {
			return reply{code: codes.NotFound, observe: -1, diag: err.Error()}
		}
		p = q
	}
	if p.Depth >= 1 && defs[p.Object] != nil && defs[p.Object].dmHidden {
		return reply{code: codes.Unauthorized, observe: -1, diag: "the security object is not accessible"}
	}
	switch r.Code() {
	case codes.GET:
		if a, err := r.Accept(); err == nil && a == message.AppLinkFormat {
			return d.discover(p)
		}
		return d.read(r, p, now)
	case codes.PUT:
		return d.put(r, p, now)
	case codes.POST:
		return d.post(r, p, now)
	case codes.DELETE:
		return d.delete(p, now)
	case codes.FETCH:
		if d.sim.cfg.Version != "1.0" {
			return d.fetch(r, p, now)
		}
	case codes.IPATCH:
		if d.sim.cfg.Version != "1.0" {
			return d.ipatch(r, p, now)
		}
	}
	return reply{code: codes.MethodNotAllowed, observe: -1, diag: r.Code().String() + " is not supported"}
}

// read answers Read and Observe.
func (d *Device) read(r *pool.Message, p node.Path, now time.Time) reply {
	f := d.preferredFormat()
	if a, err := r.Accept(); err == nil {
		f = codec.Format(a)
	}
	obs, obsErr := r.Observe()
	d.mu.Lock()
	defer d.mu.Unlock()
	recs, err := d.tree.read(p, now)
	if err != nil {
		return fail(err, false)
	}
	payload, err := codec.Encode(f, p, recs)
	if err != nil {
		return fail(err, false)
	}
	rep := content(f, payload)
	if obsErr == nil {
		switch obs {
		case 0:
			if o := d.observeLocked(r.Token(), p, f, now); o != nil {
				rep.observe = int64(o.seq)
			}
		case 1:
			if !d.cancelLocked(r.Token(), p) {
				d.cancelLocked(nil, p)
			}
		}
	}
	return rep
}

// put answers Write (replace) and Write-Attributes.
func (d *Device) put(r *pool.Message, p node.Path, now time.Time) reply {
	body, err := r.ReadBody()
	if err != nil {
		return reply{code: codes.BadRequest, observe: -1, diag: err.Error()}
	}
	queries, _ := r.Queries()
	if len(body) == 0 && len(queries) > 0 {
		return d.writeAttributes(p, queries, now)
	}
	return d.write(r, p, body, writeReplace, now)
}

// write decodes a Write payload by its Content-Format and applies it.
func (d *Device) write(r *pool.Message, p node.Path, body []byte, mode writeMode, now time.Time) reply {
	if p.Depth < 2 {
		return reply{code: codes.MethodNotAllowed, observe: -1, diag: fmt.Sprintf("write on %v is not allowed", p)}
	}
	cf, err := r.ContentFormat()
	if err != nil {
		return reply{code: codes.BadRequest, observe: -1, diag: "write without content format"}
	}
	if err := d.strict10(codec.Format(cf), p, body); err != nil {
		return fail(err, true)
	}
	recs, err := codec.Decode(codec.Format(cf), p, body, d.sim.objs)
	if err != nil {
		return fail(err, true)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.checkFirmwareWriteLocked(recs); err != nil {
		return fail(err, true)
	}
	changed, err := d.tree.write(p, recs, mode)
	if err != nil {
		return fail(err, true)
	}
	rep := answer(codes.Changed)
	var more []node.Path
	rep.work, more = d.afterWriteLocked(changed)
	rep.out = d.changedLocked(append(changed, more...), now)
	return rep
}

// post answers Create (on an object), Write partial update (on an
// instance) and Execute (on a resource).
func (d *Device) post(r *pool.Message, p node.Path, now time.Time) reply {
	body, err := r.ReadBody()
	if err != nil {
		return reply{code: codes.BadRequest, observe: -1, diag: err.Error()}
	}
	switch p.Depth {
	case 1:
		return d.create(r, p, body, now)
	case 2:
		return d.write(r, p, body, writeUpdate, now)
	case 3:
		return d.execute(r, p, body, now)
	}
	return reply{code: codes.MethodNotAllowed, observe: -1, diag: fmt.Sprintf("POST on %v is not allowed", p)}
}

func (d *Device) execute(r *pool.Message, p node.Path, args []byte, now time.Time) reply {
	if cf, err := r.ContentFormat(); err == nil && cf != message.TextPlain {
		return reply{code: codes.UnsupportedMediaType, observe: -1, diag: "execute arguments must be text/plain"}
	}
	for _, c := range string(args) {
		if c > unicode.MaxASCII || !unicode.IsPrint(c) {
			return reply{code: codes.BadRequest, observe: -1, diag: "execute arguments must be printable ASCII"}
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	rd, _, _, err := d.tree.lookupResource(p)
	if err != nil {
		return fail(err, false)
	}
	if !rd.ops.has(opE) {
		return reply{code: codes.MethodNotAllowed, observe: -1, diag: fmt.Sprintf("resource %v is not executable", p)}
	}
	changed, work, err := d.executeLocked(p, now)
	if err != nil {
		return fail(err, false)
	}
	if d.execArgs == nil {
		d.execArgs = map[node.Path]string{}
	}
	d.execArgs[p] = string(args) // bounded by the executable resources
	rep := answer(codes.Changed)
	rep.work = work
	rep.out = d.changedLocked(changed, now)
	return rep
}

func (d *Device) create(r *pool.Message, p node.Path, body []byte, now time.Time) reply {
	cf, err := r.ContentFormat()
	if err != nil {
		return reply{code: codes.BadRequest, observe: -1, diag: "create without content format"}
	}
	f := codec.Format(cf)
	d.mu.Lock()
	defer d.mu.Unlock()
	o := d.tree.object(p.Object)
	if o == nil {
		return reply{code: codes.NotFound, observe: -1, diag: fmt.Sprintf("object %d not found", p.Object)}
	}
	base := p
	if (f == codec.TLV || f == codec.OldTLV) && len(body) > 0 && body[0]>>6 != 0 {
		// Resources without an object-instance wrapper: the device picks
		// the instance ID (Core TS 1.0, 5.4.5).
		id := uint16(0)
		for o.instance(id) != nil {
			id++
		}
		base = node.InstancePath(p.Object, id)
	}
	if err := d.strict10(f, p, body); err != nil {
		return fail(err, true)
	}
	recs, err := codec.Decode(f, base, body, d.sim.objs)
	if err != nil {
		return fail(err, true)
	}
	if id, ok := emptyInstanceTLV(f, body); ok && o.instance(id) == nil {
		// An Object Instance TLV without resources names the new
		// instance and nothing else.
		base = node.InstancePath(p.Object, id)
	}
	var want *uint16
	if base.Depth == 2 && len(recs) == 0 {
		want = &base.Instance
	}
	id, err := d.tree.create(p.Object, want, recs, d.sim.tmpl.defaults(p.Object))
	if err != nil {
		return fail(err, true)
	}
	d.sendObjects = true
	rep := answer(codes.Created)
	rep.location = []string{fmt.Sprint(p.Object), fmt.Sprint(id)}
	rep.work = workUpdate
	rep.out = d.changedLocked([]node.Path{node.InstancePath(p.Object, id)}, now)
	return rep
}

func (d *Device) delete(p node.Path, now time.Time) reply {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.tree.remove(p); err != nil {
		return fail(err, false)
	}
	d.sendObjects = true
	// Observers of the instance, or of anything in it, get a 4.04.
	rep := answer(codes.Deleted)
	rep.work = workUpdate
	for _, o := range append([]*observation(nil), d.obs...) {
		if p.Contains(o.path) {
			if n := d.notifyLocked(o, now); n != nil {
				rep.out = append(rep.out, n)
			}
		}
	}
	for q := range d.attrs {
		if p.Contains(q) {
			delete(d.attrs, q)
		}
	}
	return rep
}

// writeAttributes answers Write-Attributes: the attributes are kept per
// path and govern the observations of that path and below.
func (d *Device) writeAttributes(p node.Path, queries []string, now time.Time) reply {
	if p.Depth == 0 {
		return reply{code: codes.MethodNotAllowed, observe: -1, diag: "write-attributes on the root"}
	}
	c, err := parseAttrQueries(queries, p)
	if err != nil {
		return fail(err, true)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.tree.exists(p); err != nil {
		return fail(err, false)
	}
	if p.Depth >= 3 && (c.set.has(attrGt) || c.set.has(attrLt) || c.set.has(attrSt)) {
		rd, _ := d.sim.objs.resDef(p)
		switch rd.typ {
		case node.TypeInteger, node.TypeUnsignedInteger, node.TypeFloat:
		default:
			return reply{code: codes.BadRequest, observe: -1, diag: fmt.Sprintf("gt, lt and st need a numeric resource; %v is %v", p, rd.typ)}
		}
	}
	a, err := c.apply(d.attrs[p])
	if err != nil {
		return fail(err, true)
	}
	if a.set == 0 {
		delete(d.attrs, p)
	} else {
		if d.attrs == nil {
			d.attrs = map[node.Path]attrs{}
		}
		d.attrs[p] = a
	}
	if c.cancel {
		d.cancelLocked(nil, p)
	}
	// New periods apply to running observations from now on.
	for _, o := range d.obs {
		if p.Contains(o.path) || o.path.Contains(p) {
			d.armLocked(o)
		}
	}
	_ = now
	return answer(codes.Changed)
}

// discover answers Discover with the links under p and their attributes.
func (d *Device) discover(p node.Path) reply {
	d.mu.Lock()
	defer d.mu.Unlock()
	if p.Depth == 0 || p.Depth == 4 {
		return reply{code: codes.MethodNotAllowed, observe: -1, diag: fmt.Sprintf("discover on %v is not allowed", p)}
	}
	if err := d.tree.exists(p); err != nil {
		return fail(err, false)
	}
	v11 := d.sim.cfg.Version != "1.0"
	var links []codec.Link
	link := func(q node.Path, extra ...codec.LinkAttr) {
		l := codec.Link{Target: q.String(), Attrs: extra}
		if a, ok := d.attrs[q]; ok {
			for k := attr(0); k < numAttrs; k++ {
				if a.has(k) {
					l.Attrs = append(l.Attrs, codec.LinkAttr{Key: attrNames[k], Value: fmtNum(a.get(k)), HasValue: true})
				}
			}
		}
		links = append(links, l)
	}
	resources := func(o *objState, in *instance, withInstances bool) {
		for i, res := range in.res {
			if res == nil {
				continue
			}
			rd := o.def.res[i]
			rp := node.ResourcePath(o.def.id, in.id, rd.id)
			if !rd.multiple {
				link(rp)
				continue
			}
			link(rp, codec.LinkAttr{Key: "dim", Value: fmt.Sprint(len(res.multi)), HasValue: true})
			if withInstances {
				for _, ri := range res.multi {
					link(rp.Child(ri.id))
				}
			}
		}
	}
	o := d.tree.object(p.Object)
	switch p.Depth {
	case 1:
		link(p)
		for _, in := range o.insts {
			link(node.InstancePath(p.Object, in.id))
			resources(o, in, false)
		}
	case 2:
		in := o.instance(p.Instance)
		link(p)
		resources(o, in, false)
	case 3:
		in := o.instance(p.Instance)
		rd := o.def.resource(p.Resource)
		one := &instance{id: in.id, res: make([]*resource, len(in.res))}
		one.res[rd.idx] = in.res[rd.idx]
		resources(o, one, v11)
	}
	return content(codec.LinkFmt, codec.FormatLinks(links))
}

func fmtNum(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// emptyInstanceTLV reports the instance ID of a TLV payload that is one
// Object Instance TLV without content.
func emptyInstanceTLV(f codec.Format, body []byte) (uint16, bool) {
	if f != codec.TLV && f != codec.OldTLV || len(body) < 2 || body[0]>>6 != 0 || body[0]&0x18 != 0 || body[0]&0x07 != 0 {
		return 0, false
	}
	if body[0]&0x20 == 0 {
		return uint16(body[1]), len(body) == 2
	}
	if len(body) != 3 {
		return 0, false
	}
	return uint16(body[1])<<8 | uint16(body[2]), true
}
