package simulator

import (
	"bytes"
	"context"
	"errors"
	"math"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/lwm2m-agent/lwm2m-agent/agent/codec"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// observation is one Observe the server holds on the device (RFC 7641).
// All fields but timer are guarded by the device's mutex.
type observation struct {
	dev      *Device
	token    string
	path     node.Path   // the root for a composite observation
	paths    []node.Path // the paths of a composite observation
	format   codec.Format
	seq      uint32    // Observe option value of the last message
	lastSent time.Time // of the last notification (or the first answer)
	lastNum  float64   // numeric value last reported, for gt, lt and st
	hasNum   bool
	pending  bool  // a change waits for pmin to pass
	lastMID  int32 // message ID of the last notification, to match a Reset
	cancel   bool  // removed; a queued CON notification is dropped
	conOut   *outgoing
	timer    *timer
}

// outgoing is a notification ready to send.
type outgoing struct {
	o       *observation
	cc      *client.Conn
	token   []byte
	seq     uint32
	code    codes.Code
	format  codec.Format
	payload []byte
	con     bool
}

// maxObserveSeq wraps the 24-bit Observe sequence number.
const maxObserveSeq = 1<<24 - 1

func (o *observation) nextSeq() uint32 {
	o.seq = (o.seq + 1) & maxObserveSeq
	return o.seq
}

// numeric returns the observed resource's value as a number, if it is a
// single numeric resource.
func (d *Device) numericLocked(p node.Path, now time.Time) (float64, bool) {
	if p.Depth < 3 {
		return 0, false
	}
	v, ok := d.tree.value(p, now)
	if !ok {
		return 0, false
	}
	return numberOf(v)
}

// effectiveLocked gathers the attributes that govern an observation of p:
// those attached to p, then inherited from the enclosing instance and
// object, then the server's default periods (/1/0/2, /1/0/3).
func (d *Device) effectiveLocked(p node.Path) attrs {
	var a attrs
	for q := p; q.Depth >= 1; q = q.Parent() {
		qa, ok := d.attrs[q]
		if !ok {
			continue
		}
		for k := attr(0); k < numAttrs; k++ {
			if qa.has(k) && !a.has(k) {
				a.put(k, qa.get(k))
			}
		}
	}
	for _, k := range []attr{attrPmin, attrPmax} {
		if a.has(k) {
			continue
		}
		res := uint16(resServerPmin)
		if k == attrPmax {
			res = resServerPmax
		}
		if v, ok := d.tree.value(node.ResourcePath(objServer, d.srv, res), time.Time{}); ok && v.Int > 0 {
			a.put(k, float64(v.Int))
		}
	}
	return a
}

func seconds(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }

// periods returns pmin and pmax of a, pmax zero when it does not apply
// (unset, or not greater than pmin: Core TS 1.1, 5.1.2).
func periods(a attrs) (pmin, pmax time.Duration) {
	if a.has(attrPmin) {
		pmin = seconds(a.get(attrPmin))
	}
	if a.has(attrPmax) {
		pmax = seconds(a.get(attrPmax))
		if pmax <= pmin {
			pmax = 0
		}
	}
	return pmin, pmax
}

// observeLocked starts (or restarts, for a known token) an observation and
// returns it with the sequence number for the first answer.
func (d *Device) observeLocked(token []byte, p node.Path, f codec.Format, now time.Time) *observation {
	for i, o := range d.obs {
		if o.token == string(token) {
			o.cancel = true
			d.sim.sched.stop(o.timer)
			d.obs = append(d.obs[:i], d.obs[i+1:]...)
			break
		}
	}
	if len(d.obs) >= maxObservations {
		return nil
	}
	o := &observation{dev: d, token: string(token), path: p, format: f, lastSent: now, seq: 1}
	o.timer = newTimer(o.fire)
	o.lastNum, o.hasNum = d.numericLocked(p, now)
	d.obs = append(d.obs, o)
	d.armLocked(o)
	return o
}

// cancelLocked removes observations: the one with the token if token is
// set, else every one on path.
func (d *Device) cancelLocked(token []byte, p node.Path) bool {
	found := false
	kept := d.obs[:0]
	for _, o := range d.obs {
		if (token != nil && o.token == string(token)) || (token == nil && o.path == p) {
			o.cancel = true
			d.sim.sched.stop(o.timer)
			found = true
			continue
		}
		kept = append(kept, o)
	}
	clear(d.obs[len(kept):])
	d.obs = kept
	return found
}

// dropObservationsLocked ends every observation without a word to the
// server, as a device that registers anew or reboots does.
func (d *Device) dropObservationsLocked() {
	for _, o := range d.obs {
		o.cancel = true
		d.sim.sched.stop(o.timer)
	}
	clear(d.obs)
	d.obs = d.obs[:0]
	d.conQueue = nil
}

// armLocked sets an observation's timer to the next moment it may have
// to notify: when pmin lets a pending change out, or when pmax runs out.
func (d *Device) armLocked(o *observation) {
	pmin, pmax := periods(d.effectiveLocked(o.path))
	var next time.Time
	if o.pending {
		next = o.lastSent.Add(pmin)
	}
	if pmax > 0 {
		if at := o.lastSent.Add(pmax); next.IsZero() || at.Before(next) {
			next = at
		}
	}
	if next.IsZero() {
		d.sim.sched.stop(o.timer)
		return
	}
	d.sim.sched.at(o.timer, next)
}

// fire runs on the scheduler when pmin or pmax of an observation is due.
func (o *observation) fire(now time.Time) {
	d := o.dev
	d.mu.Lock()
	if o.cancel || d.stopped {
		d.mu.Unlock()
		return
	}
	pmin, pmax := periods(d.effectiveLocked(o.path))
	var out *outgoing
	if (o.pending && !now.Before(o.lastSent.Add(pmin))) || (pmax > 0 && !now.Before(o.lastSent.Add(pmax))) {
		out = d.notifyLocked(o, now)
	} else {
		d.armLocked(o)
	}
	d.mu.Unlock()
	if out != nil {
		d.emit([]*outgoing{out})
	}
}

// changedLocked is called after values at the resource paths changed; it
// returns the notifications due now and defers the others to pmin.
func (d *Device) changedLocked(changed []node.Path, now time.Time) []*outgoing {
	if len(changed) == 0 || len(d.obs) == 0 {
		return nil
	}
	var out []*outgoing
	for _, o := range append([]*observation(nil), d.obs...) {
		hit := false
		for _, p := range changed {
			if o.paths == nil && (o.path.Contains(p) || p.Contains(o.path)) {
				hit = true
				break
			}
			for _, q := range o.paths {
				if q.Contains(p) || p.Contains(q) {
					hit = true
					break
				}
			}
		}
		if !hit || o.cancel {
			continue
		}
		a := d.effectiveLocked(o.path)
		if !d.crossedLocked(o, a, now) {
			continue
		}
		pmin, _ := periods(a)
		if now.Before(o.lastSent.Add(pmin)) {
			o.pending = true
			d.armLocked(o)
			continue
		}
		if n := d.notifyLocked(o, now); n != nil {
			out = append(out, n)
		}
	}
	return out
}

// crossedLocked applies gt, lt and st to a numeric observation: a change
// counts only if it crosses a threshold or moves by st since the last
// notification. Without those attributes every change counts.
func (d *Device) crossedLocked(o *observation, a attrs, now time.Time) bool {
	if !a.has(attrGt) && !a.has(attrLt) && !a.has(attrSt) {
		return true
	}
	v, ok := d.numericLocked(o.path, now)
	if !ok || !o.hasNum {
		return true
	}
	last := o.lastNum
	if a.has(attrSt) && math.Abs(v-last) >= a.get(attrSt) {
		return true
	}
	if a.has(attrGt) {
		gt := a.get(attrGt)
		if (last <= gt) != (v <= gt) {
			return true
		}
	}
	if a.has(attrLt) {
		lt := a.get(attrLt)
		if (last < lt) != (v < lt) {
			return true
		}
	}
	return false
}

// notifyLocked builds the next notification of o with the current value.
// A path that no longer exists ends the observation with a 4.04.
func (d *Device) notifyLocked(o *observation, now time.Time) *outgoing {
	if d.conn == nil {
		return nil
	}
	out := &outgoing{o: o, cc: d.conn, token: []byte(o.token), format: o.format, con: d.sim.cfg.NotifyCON}
	var recs []node.Record
	var err error
	if o.paths != nil {
		recs, err = d.readPathsLocked(o.paths, now)
	} else {
		recs, err = d.tree.read(o.path, now)
	}
	if err == nil {
		out.payload, err = codec.Encode(o.format, o.path, recs)
	}
	o.lastSent = now
	o.pending = false
	out.seq = o.nextSeq()
	if err != nil {
		out.code = codes.InternalServerError
		var oe *opError
		if errors.As(err, &oe) {
			out.code = oe.code
		}
		out.payload = nil
		d.cancelLocked([]byte(o.token), o.path)
		return out
	}
	out.code = codes.Content
	o.lastNum, o.hasNum = d.numericLocked(o.path, now)
	d.armLocked(o)
	return out
}

// emit sends notifications. Non-confirmable ones go out at once;
// confirmable ones queue for the device's CON sender, newest value per
// observation, so a slow server never makes them pile up.
func (d *Device) emit(out []*outgoing) {
	for _, n := range out {
		if !n.con {
			if err := d.transmit(context.Background(), n); err != nil {
				d.sim.stats.errors.Add(1)
				d.log.Debug("notify", "path", n.o.path.String(), "err", err)
			}
			continue
		}
		d.mu.Lock()
		if d.stopped || n.o.cancel && n.code == codes.Content {
			d.mu.Unlock()
			continue
		}
		if n.o.conOut == nil {
			d.conQueue = append(d.conQueue, n.o)
		}
		n.o.conOut = n
		start := !d.conBusy
		if start {
			d.conBusy = true
			d.sim.wg.Add(1)
		}
		d.mu.Unlock()
		if start {
			go d.conSender()
		}
	}
}

// conNotifyTimeout bounds waiting for the acknowledgement of one CON
// notification.
const conNotifyTimeout = 30 * time.Second

// conSender sends the queued CON notifications one at a time and ends
// when the queue is empty.
func (d *Device) conSender() {
	defer d.sim.wg.Done()
	for {
		d.mu.Lock()
		if len(d.conQueue) == 0 || d.stopped {
			d.conQueue = nil
			d.conBusy = false
			d.mu.Unlock()
			return
		}
		o := d.conQueue[0]
		d.conQueue = d.conQueue[1:]
		n := o.conOut
		o.conOut = nil
		d.mu.Unlock()
		if n == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(d.sim.runCtx, conNotifyTimeout)
		err := d.transmit(ctx, n)
		cancel()
		if err != nil {
			d.sim.stats.errors.Add(1)
			d.log.Debug("notify", "path", n.o.path.String(), "err", err)
		}
	}
}

// CoAP transmission parameters for confirmable notifications (RFC 7252,
// 4.8), the defaults go-coap uses for requests.
const (
	ackTimeout     = 2 * time.Second
	maxRetransmit  = 4
	maxRawBodySize = 1024 // larger notifications go block-wise through go-coap
)

// errNoAck is returned when a CON notification was never acknowledged.
var errNoAck = errors.New("notification not acknowledged")

// transmit puts one notification on the wire. The simulator writes it to
// the socket itself rather than through go-coap's request path, so that it
// knows the message ID a Reset will name (go-coap renumbers messages that
// pass its block-wise layer); for a CON it retransmits until the monitor
// sees the ACK or Reset.
func (d *Device) transmit(ctx context.Context, n *outgoing) error {
	msg := n.cc.AcquireMessage(ctx)
	defer n.cc.ReleaseMessage(msg)
	msg.SetCode(n.code)
	msg.SetToken(n.token)
	if n.code == codes.Content {
		msg.SetObserve(n.seq)
		msg.SetContentFormat(message.MediaType(n.format))
		msg.SetBody(bytes.NewReader(n.payload))
	}
	typ := message.NonConfirmable
	if n.con {
		typ = message.Confirmable
	}
	msg.SetType(typ)
	if len(n.payload) > maxRawBodySize {
		// Block-wise: go-coap numbers and retransmits the blocks.
		if err := n.cc.WriteMessage(msg); err != nil {
			return err
		}
		d.sim.stats.notifications.Add(1)
		return nil
	}
	mid := n.cc.GetMessageID()
	msg.SetMessageID(mid)
	d.mu.Lock()
	n.o.lastMID = mid
	if n.con {
		d.conMID = mid
		select {
		case <-d.conDone:
		default:
		}
	}
	d.mu.Unlock()
	if err := n.cc.Session().WriteMessage(msg); err != nil {
		return err
	}
	d.sim.stats.notifications.Add(1)
	if !n.con {
		return nil
	}
	defer func() {
		d.mu.Lock()
		if d.conMID == mid {
			d.conMID = -1
		}
		d.mu.Unlock()
	}()
	wait := jitter(ackTimeout, 0.25) + ackTimeout/4 // between 1 and 1.5 ACK_TIMEOUT
	t := time.NewTimer(wait)
	defer t.Stop()
	for attempt := 0; ; attempt++ {
		select {
		case <-d.conDone:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		if attempt == maxRetransmit {
			return errNoAck
		}
		if err := n.cc.Session().WriteMessage(msg); err != nil {
			return err
		}
		wait *= 2
		t.Reset(wait)
	}
}

// ackLocked takes an empty ACK or Reset from the server: it ends the wait
// of the CON notification in flight with that message ID, and a Reset ends
// the observation the notification belongs to. It reports whether the
// message was about a notification.
func (d *Device) ackLocked(mid int32, reset bool) bool {
	hit := false
	if d.conMID == mid {
		d.conMID = -1
		select {
		case d.conDone <- struct{}{}:
		default:
		}
		hit = true
	}
	if reset {
		for _, o := range d.obs {
			if o.lastMID == mid {
				d.cancelLocked([]byte(o.token), o.path)
				return true
			}
		}
	}
	return hit
}
