package simulator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/lwm2m-agent/lwm2m-agent/agent/codec"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// exchangeTimeout bounds one Register, Update or Send, retransmissions
// included, so a dead server cannot hold a worker for long.
const exchangeTimeout = 20 * time.Second

// dial returns the connection to the device's LwM2M server, opening it
// for the server account in the Security object if there is none or the
// account changed. The same connection serves every later exchange, so
// the server sees one stable address (or DTLS session) per device.
func (d *Device) dial(ctx context.Context) (*client.Conn, error) {
	d.mu.Lock()
	a, err := d.accountLocked(false)
	cur := d.link
	d.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if cur != nil && cur.key == a.connKey() && !closed(cur) {
		return cur.cc, nil
	}
	l, err := d.connect(ctx, a, false)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	if d.stopped {
		d.mu.Unlock()
		_ = l.close()
		return nil, errStopped
	}
	old := d.link
	if old != nil && old.key == l.key && !closed(old) { // lost a race with another exchange
		d.mu.Unlock()
		_ = l.close()
		return old.cc, nil
	}
	d.link, d.conn, d.srv = l, l.cc, a.srv
	d.mu.Unlock()
	if old != nil {
		// The account changed (a new bootstrap), or the connection closed:
		// the old one is done.
		_ = old.close()
	}
	return l.cc, nil
}

// closed reports whether l's connection has closed: a datagram to a port
// nobody listened on (the server restarting) comes back as an ICMP error
// that ends a connected UDP socket's reads, and the device then dials
// anew, from a new port, as a device whose modem reconnects would.
func closed(l *link) bool {
	select {
	case <-l.cc.Done():
		return true
	default:
		return false
	}
}

// monitor sees every message before go-coap does. It takes the ACKs and
// Resets of notifications (go-coap never sent those, so it would drop
// them), and it drops the server's requests while the device is silent,
// before go-coap would acknowledge them, so the server sees nothing at all.
func (d *Device) monitor(cc *client.Conn, m *pool.Message) (bool, error) {
	if t := m.Type(); (t == message.Acknowledgement || t == message.Reset) && m.Code() == codes.Empty {
		d.mu.Lock()
		hit := d.ackLocked(m.MessageID(), t == message.Reset)
		d.mu.Unlock()
		if hit {
			return true, nil
		}
	}
	if d.screen(m) {
		return true, nil
	}
	c := m.Code()
	if d.silent.Load() {
		return c >= codes.GET && c <= codes.IPATCH, nil
	}
	return d.receiveBlock(cc, m), nil
}

// lifetimeLocked is the lifetime the device registers with, from /1/0/1.
func (d *Device) lifetimeLocked() time.Duration {
	v, ok := d.tree.value(node.ResourcePath(objServer, d.srv, resServerLifetime), time.Time{})
	if !ok || v.Int <= 0 {
		return d.sim.cfg.Lifetime
	}
	return time.Duration(v.Int) * time.Second
}

func (d *Device) bindingLocked() string {
	v, ok := d.tree.value(node.ResourcePath(objServer, d.srv, resServerBinding), time.Time{})
	if !ok || v.Str == "" {
		return d.sim.cfg.Binding
	}
	return v.Str
}

// preferredFormat is what the device registers as its content format and
// answers with when the server does not ask for one.
func (d *Device) preferredFormat() codec.Format {
	return d.sim.cfg.Format
}

// objectLinksLocked is the registration payload: the root link with the
// content format, then every object instance (an object with no instance
// as </O>). The Security object is left out (Core TS 1.1, 6.2.1).
func (d *Device) objectLinksLocked() []byte {
	links := []codec.Link{{Target: "/", Attrs: []codec.LinkAttr{
		{Key: "rt", Value: "oma.lwm2m", HasValue: true, Quoted: true},
		{Key: "ct", Value: strconv.Itoa(int(d.preferredFormat())), HasValue: true},
	}}}
	for _, id := range d.sim.objs.ids {
		o := d.tree.objs[id]
		if o.def.dmHidden {
			continue
		}
		if len(o.insts) == 0 {
			links = append(links, codec.Link{Target: node.ObjectPath(id).String()})
			continue
		}
		for _, in := range o.insts {
			links = append(links, codec.Link{Target: node.InstancePath(id, in.id).String()})
		}
	}
	return codec.FormatLinks(links)
}

// register sends a Register and, on success, schedules the first Update.
func (d *Device) register(ctx context.Context) error {
	d.mu.Lock()
	needBS := d.needBS
	d.mu.Unlock()
	if needBS {
		return d.bootstrap(ctx)
	}
	if err := d.sim.pace.wait(ctx); err != nil {
		return err
	}
	cc, err := d.dial(ctx)
	if err != nil {
		if errors.Is(err, ErrHandshake) {
			d.rebootstrapOnFailure()
		}
		d.retryLater()
		return fmt.Errorf("register: %w", err)
	}
	d.mu.Lock()
	lt := d.lifetimeLocked()
	queries := []string{
		"ep=" + d.endpoint,
		"lt=" + strconv.FormatInt(int64(lt/time.Second), 10),
		"lwm2m=" + d.sim.cfg.Version,
		"b=" + d.bindingLocked(),
	}
	if at := d.sim.cfg.AwakeTime; at > 0 {
		queries = append(queries, "at="+strconv.FormatInt(at.Milliseconds(), 10))
	}
	payload := d.objectLinksLocked()
	d.sendParams, d.sendObjects = false, false
	epoch := d.epoch
	// A new registration voids the observations of the previous one. They
	// go now, not when the answer comes: the server may observe anew
	// before the device has read the answer.
	d.dropObservationsLocked()
	d.mu.Unlock()

	rctx, cancel := context.WithTimeout(ctx, exchangeTimeout)
	defer cancel()
	req, err := cc.NewPostRequest(rctx, "/rd", message.AppLinkFormat, bytes.NewReader(payload))
	if err != nil {
		return fmt.Errorf("register: %w", err)
	}
	defer cc.ReleaseMessage(req)
	for _, q := range queries {
		req.AddQuery(q)
	}
	d.mu.Lock()
	d.wakeLocked(time.Now(), false)
	d.mu.Unlock()
	resp, err := cc.Do(req)
	d.mu.Lock()
	d.sleepLocked(time.Now(), err == nil && resp.Code() == codes.Created)
	d.mu.Unlock()
	if err != nil {
		d.retryLater()
		return fmt.Errorf("register: %w", err)
	}
	defer cc.ReleaseMessage(resp)
	if resp.Code() != codes.Created {
		if resp.Code() >= codes.BadRequest && resp.Code() < codes.InternalServerError {
			d.rebootstrapOnFailure()
		}
		d.retryLater()
		return fmt.Errorf("register: server answered %v%s", resp.Code(), diagnostic(resp))
	}
	loc, err := resp.Options().LocationPath()
	if err != nil || loc == "" {
		d.retryLater()
		return fmt.Errorf("register: answer without location: %v", err)
	}
	now := time.Now()
	d.mu.Lock()
	if d.stopped || d.epoch != epoch {
		d.mu.Unlock()
		return errStopped
	}
	d.location = "/" + strings.TrimPrefix(loc, "/")
	d.lastReg = now
	d.failures = 0
	d.lastErr = nil
	d.setRegisteredLocked(true)
	next := d.updateAfterLocked(lt)
	d.mu.Unlock()
	d.sim.sched.after(d.regTimer, next)
	d.sim.stats.registrations.Add(1)
	d.settle()
	d.log.Debug("registered", "reg_id", d.location)
	return nil
}

// updateAfterLocked is when the next Update is due after a Register or
// Update: every Config.UpdateEvery, or after about half the lifetime,
// jittered so that many devices spread out.
func (d *Device) updateAfterLocked(lt time.Duration) time.Duration {
	if e := d.sim.cfg.UpdateEvery; e > 0 {
		return jitter(e, 0.1)
	}
	return jitter(lt/2, 0.2)
}

// rebootstrapOnFailure makes a device with a bootstrap server bootstrap
// again after its server refused it, as Bootstrap on Registration Failure
// (/1/x/16, true when absent) asks (Core TS 1.1, 6.2.1.1).
func (d *Device) rebootstrapOnFailure() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := d.accountLocked(true); err != nil {
		return
	}
	if v, ok := d.tree.value(node.ResourcePath(objServer, d.srv, 16), time.Time{}); ok && !v.Bool {
		return
	}
	d.needBS = true
}

// diagnostic is the text payload of an error answer, for error messages.
func diagnostic(m *pool.Message) string {
	b, err := m.ReadBody()
	if err != nil || len(b) == 0 {
		return ""
	}
	if len(b) > 200 {
		b = b[:200]
	}
	return fmt.Sprintf(" (%q)", b)
}

// retryLater schedules the next attempt after a back-off. Before the
// registration would expire, that is an Update; after, a new Register.
func (d *Device) retryLater() {
	d.mu.Lock()
	d.failures++
	wait := backoff(d.failures)
	if d.registered {
		deadline := d.lastReg.Add(d.lifetimeLocked())
		if time.Now().Add(wait).After(deadline) {
			// The server will have forgotten us: start over.
			d.setRegisteredLocked(false)
		}
	}
	stopped := d.stopped
	d.mu.Unlock()
	if !stopped {
		d.sim.sched.after(d.regTimer, wait)
	}
}

// update sends an Update to the registration's location: with lt and b
// when they changed, with the object links when instances came or went.
func (d *Device) update(ctx context.Context) error {
	d.mu.Lock()
	if d.link != nil && closed(d.link) {
		d.mu.Unlock()
		if _, err := d.dial(ctx); err != nil {
			return fmt.Errorf("update: %w", err)
		}
		d.mu.Lock()
	}
	if !d.registered || d.conn == nil {
		d.mu.Unlock()
		return d.register(ctx)
	}
	cc, loc := d.conn, d.location
	lt := d.lifetimeLocked()
	var queries []string
	if d.sendParams {
		queries = append(queries, "lt="+strconv.FormatInt(int64(lt/time.Second), 10), "b="+d.bindingLocked())
	}
	var payload []byte
	if d.sendObjects {
		payload = d.objectLinksLocked()
	}
	sentParams, sentObjects := d.sendParams, d.sendObjects
	d.sendParams, d.sendObjects = false, false
	epoch := d.epoch
	d.mu.Unlock()
	restore := func() {
		d.mu.Lock()
		d.sendParams = d.sendParams || sentParams
		d.sendObjects = d.sendObjects || sentObjects
		d.mu.Unlock()
	}

	rctx, cancel := context.WithTimeout(ctx, exchangeTimeout)
	defer cancel()
	var body *bytes.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := cc.NewPostRequest(rctx, loc, message.AppLinkFormat, nil)
	if err != nil {
		return fmt.Errorf("update: %w", err)
	}
	defer cc.ReleaseMessage(req)
	if body != nil {
		req.SetContentFormat(message.AppLinkFormat)
		req.SetBody(body)
	}
	for _, q := range queries {
		req.AddQuery(q)
	}
	d.mu.Lock()
	d.wakeLocked(time.Now(), true)
	d.mu.Unlock()
	resp, err := cc.Do(req)
	d.mu.Lock()
	d.sleepLocked(time.Now(), err == nil && resp.Code() == codes.Changed)
	d.mu.Unlock()
	if err != nil {
		restore()
		d.retryLater()
		return fmt.Errorf("update %s: %w", loc, err)
	}
	defer cc.ReleaseMessage(resp)
	switch resp.Code() {
	case codes.Changed:
	case codes.NotFound:
		// The server lost the registration: register again now.
		d.mu.Lock()
		d.setRegisteredLocked(false)
		d.mu.Unlock()
		d.requestWork(workRegister)
		return fmt.Errorf("update %s: server answered %v, registering again", loc, resp.Code())
	default:
		restore()
		d.retryLater()
		return fmt.Errorf("update %s: server answered %v", loc, resp.Code())
	}
	d.mu.Lock()
	if d.stopped || d.epoch != epoch {
		d.mu.Unlock()
		return nil
	}
	d.lastReg = time.Now()
	d.failures = 0
	next := d.updateAfterLocked(d.lifetimeLocked())
	d.mu.Unlock()
	d.sim.sched.after(d.regTimer, next)
	d.sim.stats.updates.Add(1)
	d.updates.Add(1)
	return nil
}

// deregister sends a De-register for the current registration.
func (d *Device) deregister(ctx context.Context) error {
	d.mu.Lock()
	cc, loc, reg := d.conn, d.location, d.registered
	d.setRegisteredLocked(false)
	d.mu.Unlock()
	if !reg || cc == nil {
		return nil
	}
	resp, err := cc.Delete(ctx, loc)
	if err != nil {
		return fmt.Errorf("de-register %s: %w", loc, err)
	}
	defer cc.ReleaseMessage(resp)
	if resp.Code() != codes.Deleted {
		return fmt.Errorf("de-register %s: server answered %v", loc, resp.Code())
	}
	d.sim.stats.deregistrations.Add(1)
	d.log.Debug("de-registered", "reg_id", loc)
	return nil
}

// disable de-registers (Execute on /1/0/4) and registers again after the
// Disable Timeout (/1/0/5).
func (d *Device) disable(ctx context.Context) error {
	dctx, cancel := context.WithTimeout(ctx, exchangeTimeout)
	defer cancel()
	err := d.deregister(dctx)
	d.mu.Lock()
	d.dropObservationsLocked()
	wait := 86400 * time.Second
	if v, ok := d.tree.value(node.ResourcePath(objServer, d.srv, 5), time.Time{}); ok && v.Int >= 0 {
		wait = time.Duration(v.Int) * time.Second
	}
	d.mu.Unlock()
	d.sim.sched.after(d.regTimer, wait)
	return err
}

// Send reports the current values at paths to the server with the LwM2M
// 1.1 Send operation (POST /dp, SenML CBOR). The device must be
// registered with version 1.1 or later.
func (d *Device) Send(ctx context.Context, paths ...node.Path) error {
	if d.sim.cfg.Version == "1.0" {
		return fmt.Errorf("send: LwM2M 1.0 has no Send operation")
	}
	if len(paths) == 0 {
		return fmt.Errorf("send: no paths")
	}
	now := time.Now()
	d.mu.Lock()
	var recs []node.Record
	for _, p := range paths {
		if p.Object == objSecurity {
			d.mu.Unlock()
			return fmt.Errorf("send %v: the security object is not reported", p)
		}
		rs, err := d.tree.read(p, now)
		if err != nil {
			d.mu.Unlock()
			return fmt.Errorf("send %v: %w", p, err)
		}
		for i := range rs {
			rs[i].Time = now.Truncate(time.Millisecond)
		}
		recs = append(recs, rs...)
	}
	d.mu.Unlock()
	return d.send(ctx, recs)
}

// send posts records, each with its time, in one Send.
func (d *Device) send(ctx context.Context, recs []node.Record) error {
	d.mu.Lock()
	cc, reg := d.conn, d.registered
	d.mu.Unlock()
	if !reg || cc == nil {
		return fmt.Errorf("send: device is not registered")
	}
	payload, err := codec.Encode(codec.SenMLCBOR, node.Root, recs)
	if err != nil {
		return fmt.Errorf("send: encode: %w", err)
	}
	sctx, cancel := context.WithTimeout(ctx, exchangeTimeout)
	defer cancel()
	resp, err := cc.Post(sctx, "/dp", message.MediaType(codec.SenMLCBOR), bytes.NewReader(payload))
	if err != nil {
		d.sim.stats.errors.Add(1)
		return fmt.Errorf("send: %w", err)
	}
	defer cc.ReleaseMessage(resp)
	if resp.Code() != codes.Changed {
		d.sim.stats.errors.Add(1)
		return fmt.Errorf("send: server answered %v", resp.Code())
	}
	d.sim.stats.sends.Add(1)
	return nil
}
