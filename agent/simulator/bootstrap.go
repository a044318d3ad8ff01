package simulator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/net/responsewriter"
	"github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/lwm2m-agent/lwm2m-agent/agent/codec"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// bootstrapLinger keeps the bootstrap connection open for a while after
// Bootstrap-Finish, so that a retransmitted Finish (its answer lost) is
// answered from go-coap's message cache instead of going unanswered.
const bootstrapLinger = 5 * time.Second

// ErrBootstrapFinish is wrapped by the error a device records when it
// refuses a Bootstrap-Finish because the bootstrap server left it without
// a usable LwM2M server account.
var ErrBootstrapFinish = errors.New("bootstrap finish refused")

// bootstrap runs a Client Initiated Bootstrap (Core TS 1.1, 5.2.7.1): it
// connects to the bootstrap-server account of the Security object and
// sends the Bootstrap-Request. The bootstrap server's requests are served
// by handleBootstrap; its Bootstrap-Finish starts the registration. No
// Finish within Config.BootstrapTimeout fails the bootstrap, to be tried
// again after a back-off.
func (d *Device) bootstrap(ctx context.Context) error {
	if err := d.sim.pace.wait(ctx); err != nil {
		return err
	}
	d.mu.Lock()
	a, err := d.accountLocked(true)
	old := d.bsLink
	d.bsLink, d.bsWaiting = nil, false
	d.mu.Unlock()
	_ = old.close()
	if err != nil {
		d.retryLater()
		return fmt.Errorf("bootstrap: %w", err)
	}
	l, err := d.connect(ctx, a, true)
	if err != nil {
		d.retryLater()
		return fmt.Errorf("bootstrap: %w", err)
	}
	d.mu.Lock()
	if d.stopped {
		d.mu.Unlock()
		_ = l.close()
		return errStopped
	}
	// The bootstrap server may send its first request before the answer
	// to ours arrives: be ready for it before asking.
	d.bsLink, d.bsWaiting = l, true
	d.mu.Unlock()
	d.sim.sched.after(d.bsTimer, d.sim.cfg.BootstrapTimeout)

	rctx, cancel := context.WithTimeout(ctx, exchangeTimeout)
	defer cancel()
	req, err := l.cc.NewPostRequest(rctx, "/bs", message.TextPlain, nil)
	if err != nil {
		d.abandonBootstrap(l)
		return fmt.Errorf("bootstrap request: %w", err)
	}
	defer l.cc.ReleaseMessage(req)
	req.AddQuery("ep=" + d.endpoint)
	if d.sim.cfg.Version != "1.0" {
		// The preferred content format (Core TS 1.1, 5.2.7.1).
		req.AddQuery("pct=" + strconv.Itoa(int(d.preferredFormat())))
	}
	resp, err := l.cc.Do(req)
	if err != nil {
		d.abandonBootstrap(l)
		return fmt.Errorf("bootstrap request to %s: %w", a.uri, err)
	}
	defer l.cc.ReleaseMessage(resp)
	if resp.Code() != codes.Changed {
		d.abandonBootstrap(l)
		return fmt.Errorf("bootstrap request to %s: server answered %v%s", a.uri, resp.Code(), diagnostic(resp))
	}
	d.log.Debug("bootstrap requested", "peer", a.uri)
	return nil
}

// abandonBootstrap gives up the bootstrap on l and retries later.
func (d *Device) abandonBootstrap(l *link) {
	d.mu.Lock()
	if d.bsLink == l {
		d.bsLink, d.bsWaiting = nil, false
	}
	d.mu.Unlock()
	d.sim.sched.stop(d.bsTimer)
	_ = l.close()
	d.retryLater()
}

// bootstrapTimer fires BootstrapTimeout after a Bootstrap-Request, or
// bootstrapLinger after the Finish: either way the bootstrap connection
// closes; without a Finish the bootstrap has failed.
func (d *Device) bootstrapTimer(time.Time) {
	d.mu.Lock()
	l, waiting := d.bsLink, d.bsWaiting
	d.bsLink, d.bsWaiting = nil, false
	d.mu.Unlock()
	_ = l.close()
	if waiting {
		err := fmt.Errorf("bootstrap: no Bootstrap-Finish within %v", d.sim.cfg.BootstrapTimeout)
		d.sim.stats.errors.Add(1)
		d.fail(err)
		d.log.Debug("bootstrap failed", "err", err)
		d.retryLater()
	}
}

// handleBootstrap answers the bootstrap server's requests on the
// bootstrap connection.
func (d *Device) handleBootstrap(w *responsewriter.ResponseWriter[*client.Conn], r *pool.Message) {
	if c := r.Code(); c < codes.GET || c > codes.IPATCH {
		return
	}
	d.mu.Lock()
	waiting := d.bsWaiting && d.bsLink != nil && d.bsLink.cc == w.Conn()
	d.mu.Unlock()
	var rep reply
	if waiting {
		rep = d.serveBootstrap(r, time.Now())
	} else {
		rep = reply{code: codes.MethodNotAllowed, observe: -1, diag: "no bootstrap in progress"}
	}
	d.sim.stats.requests.Add(1)
	if rep.code >= codes.BadRequest {
		d.sim.stats.errors.Add(1)
		d.log.Debug("bootstrap request refused", "code", rep.code.String(), "reason", rep.diag)
	}
	var err error
	if rep.hasBody {
		err = w.SetResponse(rep.code, message.MediaType(rep.format), bytes.NewReader(rep.payload))
	} else {
		err = w.SetResponse(rep.code, 0, nil)
		if err == nil && rep.diag != "" {
			w.Message().SetBody(bytes.NewReader([]byte(rep.diag)))
		}
	}
	if err != nil {
		d.log.Debug("bootstrap answer", "err", err)
	}
	if rep.work != 0 {
		d.requestWork(rep.work)
	}
}

// serveBootstrap decides the answer to one request of the bootstrap
// server (Core TS 1.1, 5.2.7 and 6.1.7).
func (d *Device) serveBootstrap(r *pool.Message, now time.Time) reply {
	raw, _ := r.Path()
	if r.Code() == codes.POST {
		if raw == "/bs" || raw == "bs" {
			return d.bootstrapFinish()
		}
		return reply{code: codes.BadRequest, observe: -1, diag: "POST during bootstrap is only Bootstrap-Finish on /bs"}
	}
	p := node.Root
	if raw != "" && raw != "/" {
		q, err := node.ParsePath(raw)
		if err != nil {
			return reply{code: codes.BadRequest, observe: -1, diag: err.Error()}
		}
		p = q
	}
	switch r.Code() {
	case codes.GET:
		if d.sim.cfg.Version == "1.0" {
			// LwM2M 1.0 has neither Bootstrap-Discover nor Bootstrap-Read.
			return reply{code: codes.MethodNotAllowed, observe: -1, diag: "bootstrap discover and read need LwM2M 1.1"}
		}
		if a, err := r.Accept(); err == nil && a == message.AppLinkFormat {
			return d.bootstrapDiscover(p)
		}
		return d.bootstrapRead(r, p, now)
	case codes.PUT:
		body, err := r.ReadBody()
		if err != nil {
			return reply{code: codes.BadRequest, observe: -1, diag: err.Error()}
		}
		return d.bootstrapWrite(r, p, body)
	case codes.DELETE:
		return d.bootstrapDelete(p)
	}
	return reply{code: codes.MethodNotAllowed, observe: -1, diag: r.Code().String() + " is not a bootstrap operation"}
}

// bootstrapDiscover lists the objects and instances the device has, with
// the short server ID and URI of each LwM2M server account (Core TS 1.1,
// 5.2.7.3). It is allowed on the root and on an object.
func (d *Device) bootstrapDiscover(p node.Path) reply {
	if p.Depth > 1 {
		return reply{code: codes.BadRequest, observe: -1, diag: "bootstrap discover is on / or /{object}"}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var links []codec.Link
	if p.Depth == 0 {
		links = append(links, codec.Link{Target: "/", Attrs: []codec.LinkAttr{
			{Key: "lwm2m", Value: d.sim.cfg.Version, HasValue: true},
		}})
	} else if d.tree.object(p.Object) == nil {
		return reply{code: codes.NotFound, observe: -1, diag: fmt.Sprintf("object %d not found", p.Object)}
	}
	for _, id := range d.sim.objs.ids {
		if p.Depth == 1 && id != p.Object {
			continue
		}
		o := d.tree.object(id)
		if len(o.insts) == 0 {
			links = append(links, codec.Link{Target: node.ObjectPath(id).String()})
			continue
		}
		for _, in := range o.insts {
			l := codec.Link{Target: node.InstancePath(id, in.id).String()}
			val := func(r uint16) (node.Value, bool) {
				return d.tree.value(node.ResourcePath(id, in.id, r), time.Time{})
			}
			switch id {
			case objSecurity:
				if bs, _ := val(resSecBS); !bs.Bool {
					if v, ok := val(resSecSSID); ok {
						l.Attrs = append(l.Attrs, codec.LinkAttr{Key: "ssid", Value: strconv.FormatInt(v.Int, 10), HasValue: true})
					}
					if v, ok := val(resSecURI); ok {
						l.Attrs = append(l.Attrs, codec.LinkAttr{Key: "uri", Value: v.Str, HasValue: true, Quoted: true})
					}
				}
			case objServer:
				if v, ok := val(0); ok {
					l.Attrs = append(l.Attrs, codec.LinkAttr{Key: "ssid", Value: strconv.FormatInt(v.Int, 10), HasValue: true})
				}
			}
			links = append(links, l)
		}
	}
	return content(codec.LinkFmt, codec.FormatLinks(links))
}

// bootstrapRead answers Bootstrap-Read, which LwM2M 1.1 allows on the
// Server object only (and Access Control, which the device lacks).
func (d *Device) bootstrapRead(r *pool.Message, p node.Path, now time.Time) reply {
	if p.Depth == 0 || p.Depth > 2 || p.Object != objServer {
		return reply{code: codes.Unauthorized, observe: -1, diag: "bootstrap read is allowed on the server object and its instances"}
	}
	f := d.preferredFormat()
	if a, err := r.Accept(); err == nil {
		f = codec.Format(a)
	}
	d.mu.Lock()
	recs, err := d.tree.read(p, now)
	d.mu.Unlock()
	if err != nil {
		return fail(err, false)
	}
	payload, err := codec.Encode(f, p, recs)
	if err != nil {
		return fail(err, false)
	}
	return content(f, payload)
}

// bootstrapWrite answers Bootstrap-Write: the payload's values are
// written whether or not their instances and resources exist, creating
// what is missing (Core TS 1.1, 5.2.7.4). Nothing changes when any value
// is refused.
func (d *Device) bootstrapWrite(r *pool.Message, p node.Path, body []byte) reply {
	if p.Depth == 0 || p.Depth == 4 {
		return reply{code: codes.BadRequest, observe: -1, diag: fmt.Sprintf("bootstrap write on %v is not allowed", p)}
	}
	cf, err := r.ContentFormat()
	if err != nil {
		return reply{code: codes.BadRequest, observe: -1, diag: "bootstrap write without content format"}
	}
	recs, err := codec.Decode(codec.Format(cf), p, body, d.sim.objs)
	if err != nil {
		return fail(err, true)
	}
	if len(recs) == 0 {
		return reply{code: codes.BadRequest, observe: -1, diag: "bootstrap write without values"}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	o := d.tree.object(p.Object)
	if o == nil {
		return reply{code: codes.NotFound, observe: -1, diag: fmt.Sprintf("object %d not found", p.Object)}
	}
	// Group by instance, keeping the payload's order of instances.
	var order []uint16
	byInst := map[uint16][]node.Record{}
	for _, rec := range recs {
		if rec.Path.Depth < 3 || !p.Contains(rec.Path) {
			return reply{code: codes.BadRequest, observe: -1, diag: fmt.Sprintf("value for %v is outside %v", rec.Path, p)}
		}
		id := rec.Path.Instance
		if _, ok := byInst[id]; !ok {
			order = append(order, id)
		}
		byInst[id] = append(byInst[id], rec)
	}
	if !o.def.multiple && (len(order) > 1 || (len(o.insts) > 0 && o.instance(order[0]) == nil)) {
		return reply{code: codes.BadRequest, observe: -1, diag: fmt.Sprintf("object %d allows one instance", p.Object)}
	}
	// Write into a copy of the object so that a refusal leaves it as it was.
	work := &objState{def: o.def, insts: make([]*instance, len(o.insts))}
	copy(work.insts, o.insts)
	t := tree{objs: map[uint16]*objState{p.Object: work}, clock: d.tree.clock}
	for _, id := range order {
		if id > node.MaxID {
			return reply{code: codes.BadRequest, observe: -1, diag: fmt.Sprintf("instance ID %d out of range", id)}
		}
		if work.instance(id) == nil {
			work.put(d.newBootstrapInstance(o.def, id))
		}
		if _, err := t.write(node.InstancePath(p.Object, id), byInst[id], writeCreate); err != nil {
			return fail(err, true)
		}
	}
	o.insts = work.insts
	if p.Object == objDevice {
		d.tree.clock = t.clock
	}
	d.sendObjects = true
	return answer(codes.Changed)
}

// newBootstrapInstance is an empty instance of def with the executable
// resources the device implements for it.
func (d *Device) newBootstrapInstance(def *objDef, id uint16) *instance {
	in := newInstance(def, id)
	if tmpl := d.sim.tmpl.defaults(def.id); tmpl != nil && def.id != objServer && def.id != objSecurity {
		copy(in.res, tmpl.res)
		return in
	}
	for i, rd := range def.res {
		if rd.ops.has(opE) {
			in.res[i] = present
		}
	}
	return in
}

// bootstrapDelete answers Bootstrap-Delete on /, an object or an
// instance (Core TS 1.1, 5.2.7.5). The bootstrap-server account is never
// deleted. Only the Security and Server objects are configuration the
// bootstrap server owns: the instances of the other objects stand for the
// device's own hardware and functions, so a delete of / or of their object
// leaves them, and a delete naming one of them is refused.
func (d *Device) bootstrapDelete(p node.Path) reply {
	if p.Depth > 2 {
		return reply{code: codes.BadRequest, observe: -1, diag: fmt.Sprintf("bootstrap delete on %v is not allowed", p)}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	keep := func(o uint16, in *instance) bool {
		if o != objSecurity {
			return false
		}
		v, _ := d.tree.value(node.ResourcePath(objSecurity, in.id, resSecBS), time.Time{})
		return v.Bool
	}
	deletable := func(o uint16) bool { return o == objSecurity || o == objServer }
	switch p.Depth {
	case 0, 1:
		if p.Depth == 1 && d.tree.object(p.Object) == nil {
			return reply{code: codes.NotFound, observe: -1, diag: fmt.Sprintf("object %d not found", p.Object)}
		}
		for _, id := range d.sim.objs.ids {
			if (p.Depth == 1 && id != p.Object) || !deletable(id) {
				continue
			}
			o := d.tree.object(id)
			var left []*instance
			for _, in := range o.insts {
				if keep(id, in) {
					left = append(left, in)
				}
			}
			o.insts = left
		}
	case 2:
		o := d.tree.object(p.Object)
		if o == nil {
			return reply{code: codes.NotFound, observe: -1, diag: fmt.Sprintf("object %d not found", p.Object)}
		}
		in := o.instance(p.Instance)
		if in == nil {
			return reply{code: codes.NotFound, observe: -1, diag: fmt.Sprintf("instance %v not found", p)}
		}
		if keep(p.Object, in) {
			return reply{code: codes.BadRequest, observe: -1, diag: "the bootstrap-server account cannot be deleted"}
		}
		if !deletable(p.Object) {
			return reply{code: codes.BadRequest, observe: -1, diag: fmt.Sprintf("instance %v belongs to the device", p)}
		}
		o.remove(p.Instance)
	}
	d.sendObjects = true
	return answer(codes.Deleted)
}

// bootstrapFinish answers Bootstrap-Finish: 2.04 when the configuration
// holds an LwM2M server account the device can use, after which it
// registers there; 4.06 otherwise (Core TS 1.1, 5.2.7.6), and the
// bootstrap server may correct the configuration and finish again.
func (d *Device) bootstrapFinish() reply {
	d.mu.Lock()
	a, err := d.accountLocked(false)
	if err != nil {
		d.mu.Unlock()
		err = fmt.Errorf("%w: %w", ErrBootstrapFinish, err)
		d.fail(err)
		d.log.Warn("bootstrap finish refused", "err", err)
		return reply{code: codes.NotAcceptable, observe: -1, diag: err.Error()}
	}
	d.bsWaiting = false
	d.needBS = false
	d.bootstraps++
	d.srv = a.srv
	d.failures = 0
	// The configuration is new: whatever registration there was is void.
	d.epoch++
	d.dropObservationsLocked()
	d.setRegisteredLocked(false)
	now := time.Now()
	lb := node.ResourcePath(objServer, a.srv, 12) // Last Bootstrapped
	if _, err := d.tree.write(node.InstancePath(objServer, a.srv), []node.Record{{Path: lb, Value: node.TimeValue(now.UTC().Truncate(time.Second))}}, writeCreate); err != nil {
		d.log.Debug("last bootstrapped", "err", err)
	}
	d.mu.Unlock()
	d.sim.stats.bootstraps.Add(1)
	d.sim.sched.after(d.bsTimer, bootstrapLinger)
	d.log.Debug("bootstrapped", "peer", a.uri, "ssid", a.ssid)
	rep := answer(codes.Changed)
	rep.work = workRegister
	return rep
}
