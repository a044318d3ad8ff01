package simulator

import (
	"math"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// drift runs on the scheduler every NotifyInterval: the temperature takes
// a mean-reverting random step, the signal strength moves by a few dBm,
// and observers of either hear of it.
func (d *Device) drift(now time.Time) {
	d.mu.Lock()
	if d.stopped {
		d.mu.Unlock()
		return
	}
	var changed []node.Path
	if v, ok := d.tree.value(pathTemperature, now); ok && !d.sim.given[pathTemperature] {
		t := v.Float + 0.1*(21.5-v.Float) + d.rng.NormFloat64()*0.3
		t = math.Round(t*100) / 100
		if t == v.Float {
			t += 0.01
		}
		t = math.Max(-40, math.Min(85, t))
		changed = append(changed, d.setLocked(pathTemperature, node.Float(t))...)
		minP := node.ResourcePath(objTemperature, 0, resTempMin)
		maxP := node.ResourcePath(objTemperature, 0, resTempMax)
		if m, ok := d.tree.value(minP, now); ok && t < m.Float {
			changed = append(changed, d.setLocked(minP, node.Float(t))...)
		}
		if m, ok := d.tree.value(maxP, now); ok && t > m.Float {
			changed = append(changed, d.setLocked(maxP, node.Float(t))...)
		}
	}
	if v, ok := d.tree.value(pathRSSI, now); ok && !d.sim.given[pathRSSI] {
		step := d.rng.Int64N(4) - 2 // -2, -1, 0, 1 ...
		if step >= 0 {
			step++ // ... made -2, -1, 1, 2: the value always moves
		}
		r := v.Int + step
		if r > -50 || r < -115 {
			r = v.Int - step
		}
		changed = append(changed, d.setLocked(pathRSSI, node.Int(r))...)
	}
	out := d.changedLocked(changed, now)
	d.mu.Unlock()
	d.sim.sched.after(d.changeTimer, d.sim.cfg.NotifyInterval)
	d.emit(out)
}

// setLocked stores a value the device produced itself (no W check) and
// returns the changed paths.
func (d *Device) setLocked(p node.Path, v node.Value) []node.Path {
	changed, err := d.tree.write(p, []node.Record{{Path: p, Value: v}}, writeCreate)
	if err != nil {
		d.log.Warn("internal write refused", "path", p.String(), "err", err)
		return nil
	}
	return changed
}

// afterWriteLocked gives writes their side effects on the device: new
// registration parameters go out in an Update, firmware downloads start.
// It returns work bits to request and the paths the side effects changed.
func (d *Device) afterWriteLocked(changed []node.Path) (uint8, []node.Path) {
	var work uint8
	var more []node.Path
	for _, p := range changed {
		switch {
		case p.Object == objServer && (p.Resource == resServerLifetime || p.Resource == resServerBinding):
			d.sendParams = true
			work |= workUpdate
		case p.Object == objFirmware && p.Resource == resFwURI:
			v, _ := d.tree.value(p, time.Time{})
			more = append(more, d.startDownloadLocked(v.Str)...)
		case p.Object == objFirmware && p.Resource == resFwPackage:
			v, _ := d.tree.value(p, time.Time{})
			more = append(more, d.firmwarePackageLocked(v.Bytes)...)
		}
	}
	return work, more
}

// executeLocked runs an executable resource and returns the work to
// request afterwards.
func (d *Device) executeLocked(p node.Path, now time.Time) ([]node.Path, uint8, error) {
	switch {
	case p.Object == objServer && p.Resource == resServerUpdate:
		return nil, workUpdate, nil
	case p.Object == objServer && p.Resource == 4: // Disable
		return nil, workDisable, nil
	case p.Object == objServer && p.Resource == resServerBSTrig:
		if _, err := d.accountLocked(true); err != nil {
			return nil, 0, refuse(codes.MethodNotAllowed, "no bootstrap server: %v", err)
		}
		d.needBS = true
		return nil, workBootstrap, nil
	case p.Object == objDevice && p.Resource == resDevReboot:
		// The answer goes out first; the device then comes back with a
		// new registration, as a rebooted device would.
		d.sim.sched.after(d.regTimer, rebootDelay)
		d.rebootingLocked()
		return nil, 0, nil
	case p.Object == objDevice && p.Resource == resDevResetErrors:
		changed, err := d.tree.write(node.ResourcePath(objDevice, 0, resDevErrorCode),
			[]node.Record{{Path: node.ResourceInstancePath(objDevice, 0, resDevErrorCode, 0), Value: node.Int(0)}}, writeCreate)
		return changed, 0, err
	case p.Object == objFirmware && p.Resource == resFwUpdate:
		changed, err := d.executeUpdateLocked(now)
		if err != nil {
			return nil, 0, refuse(codes.MethodNotAllowed, "%v", err)
		}
		return changed, 0, nil
	case p.Object == objFirmware && p.Resource == resFwCancel:
		changed, err := d.executeCancelLocked()
		return changed, 0, err
	case p.Object == objTemperature && p.Resource == resTempReset:
		v, ok := d.tree.value(node.ResourcePath(objTemperature, p.Instance, resTempValue), now)
		if !ok {
			return nil, 0, nil
		}
		changed := d.setLocked(node.ResourcePath(objTemperature, p.Instance, resTempMin), v)
		changed = append(changed, d.setLocked(node.ResourcePath(objTemperature, p.Instance, resTempMax), v)...)
		return changed, 0, nil
	}
	return nil, 0, nil
}

// rebootDelay is how long a simulated reboot takes.
const rebootDelay = time.Second

// rebootingLocked forgets what a reboot loses: observations and the
// registration, which the device makes anew when the reboot is over.
func (d *Device) rebootingLocked() {
	d.epoch++
	d.firmwareRebootLocked()
	d.dropObservationsLocked()
	d.attrs = nil
	d.setRegisteredLocked(false)
}
