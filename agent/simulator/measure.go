package simulator

import (
	"context"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// maxSendQueue bounds the measurements a device keeps for its next Send:
// a server slower than the rate loses the oldest, counted as errors,
// rather than the device's memory growing.
const maxSendQueue = 1024

// maxSendRecords bounds one Send's records, so that a queue that grew
// while the server was slow goes out in several.
const maxSendRecords = 64

// measure runs on the scheduler every period of g: each resource of the
// group takes its next value, and the measurements go to the observers
// (ReportNotify) or into the next Send (ReportSend).
func (d *Device) measure(g *valueGroup, t *timer, now time.Time) {
	d.mu.Lock()
	if d.stopped {
		d.mu.Unlock()
		return
	}
	var measured, changed []node.Path
	var recs []node.Record
	for _, i := range g.specs {
		r := &d.sim.specs[i]
		rd, _ := d.sim.objs.resDef(r.Path)
		prev, _ := d.tree.value(r.Path, now)
		// measurement 0 is what the resource held from the start
		d.measured[i]++
		v := r.measure(d.measured[i], prev, rd.typ, d.rng)
		changed = append(changed, d.setLocked(r.Path, v)...)
		measured = append(measured, r.Path)
		recs = append(recs, node.Record{Path: r.Path, Value: v, Time: now.Truncate(time.Millisecond)})
	}
	d.sim.stats.measurements.Add(uint64(len(recs)))
	var out []*outgoing
	send := false
	switch g.report {
	case ReportNotify:
		out = d.changedLocked(measured, now)
	case ReportSend:
		// observers still hear of what changed
		out = d.changedLocked(changed, now)
		if d.registered {
			d.sendQ = append(d.sendQ, recs...)
			if over := len(d.sendQ) - maxSendQueue; over > 0 {
				d.sendQ = append(d.sendQ[:0], d.sendQ[over:]...)
				d.sim.stats.errors.Add(uint64(over))
			}
			send = true
		}
	}
	d.mu.Unlock()
	d.sim.sched.after(t, g.every)
	d.emit(out)
	if send {
		d.requestWork(workSend)
	}
}

// sendQueued sends the measurements waiting in sendQ, in Sends of at
// most maxSendRecords; what a failed Send carried is dropped (and
// counted among the errors), as a device with no room to keep it would.
func (d *Device) sendQueued(ctx context.Context) error {
	for {
		d.mu.Lock()
		if !d.registered || d.stopped {
			d.sendQ = nil
			d.mu.Unlock()
			return nil
		}
		n := min(len(d.sendQ), maxSendRecords)
		if n == 0 {
			d.mu.Unlock()
			return nil
		}
		recs := d.sendQ[:n:n]
		d.sendQ = d.sendQ[n:]
		if len(d.sendQ) == 0 {
			d.sendQ = nil
		}
		d.mu.Unlock()
		if err := d.send(ctx, recs); err != nil {
			return err
		}
	}
}
