package simulator

import (
	"math"
	"net/url"
	"path"
	"strconv"
	"strings"
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
	if v, ok := d.tree.value(pathTemperature, now); ok {
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
	if v, ok := d.tree.value(pathRSSI, now); ok {
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
// It returns work bits to request.
func (d *Device) afterWriteLocked(changed []node.Path) uint8 {
	var work uint8
	for _, p := range changed {
		switch {
		case p.Object == objServer && (p.Resource == resServerLifetime || p.Resource == resServerBinding):
			d.sendParams = true
			work |= workUpdate
		case p.Object == objFirmware && p.Resource == resFwURI:
			v, _ := d.tree.value(p, time.Time{})
			d.startDownloadLocked(v.Str)
		case p.Object == objFirmware && p.Resource == resFwPackage:
			v, _ := d.tree.value(p, time.Time{})
			d.firmwarePackageLocked(len(v.Bytes) > 0)
		}
	}
	return work
}

// Firmware update states and results (object 5).
const (
	fwIdle        = 0
	fwDownloading = 1
	fwDownloaded  = 2
	fwUpdating    = 3

	fwResultInitial = 0
	fwResultSuccess = 1
)

// fwStep is how long a simulated download or update takes.
const fwStep = time.Second

func (d *Device) fwSetLocked(state, result int64) []node.Path {
	c := d.setLocked(node.ResourcePath(objFirmware, 0, resFwState), node.Int(state))
	return append(c, d.setLocked(node.ResourcePath(objFirmware, 0, resFwResult), node.Int(result))...)
}

// startDownloadLocked begins a simulated pull download from uri; an empty
// URI cancels and returns to idle.
func (d *Device) startDownloadLocked(uri string) {
	if uri == "" {
		d.fwSetLocked(fwIdle, fwResultInitial)
		d.sim.sched.stop(d.fwTimer)
		return
	}
	name := "firmware"
	if u, err := url.Parse(uri); err == nil && u.Path != "" {
		name = strings.TrimSuffix(path.Base(u.Path), path.Ext(u.Path))
	}
	d.setLocked(node.ResourcePath(objFirmware, 0, resFwName), node.String(name))
	d.setLocked(node.ResourcePath(objFirmware, 0, resFwVersion), node.String(d.nextFirmwareLocked()))
	d.fwSetLocked(fwDownloading, fwResultInitial)
	d.sim.sched.after(d.fwTimer, fwStep)
}

// firmwarePackageLocked handles a pushed package: it is downloaded at
// once; an empty one resets the state machine.
func (d *Device) firmwarePackageLocked(nonEmpty bool) {
	if !nonEmpty {
		d.fwSetLocked(fwIdle, fwResultInitial)
		return
	}
	d.setLocked(node.ResourcePath(objFirmware, 0, resFwName), node.String("firmware"))
	d.setLocked(node.ResourcePath(objFirmware, 0, resFwVersion), node.String(d.nextFirmwareLocked()))
	d.fwSetLocked(fwDownloaded, fwResultInitial)
}

// nextFirmwareLocked is the version a new package brings: the current
// one with the last number raised.
func (d *Device) nextFirmwareLocked() string {
	v, _ := d.tree.value(node.ResourcePath(objDevice, 0, resDevFirmwareVers), time.Time{})
	parts := strings.Split(v.Str, ".")
	if n, err := strconv.Atoi(parts[len(parts)-1]); err == nil {
		parts[len(parts)-1] = strconv.Itoa(n + 1)
		return strings.Join(parts, ".")
	}
	return v.Str + ".1"
}

// firmwareStep runs on the scheduler: a download finishes, or an update
// does (the new version becomes /3/0/3).
func (d *Device) firmwareStep(now time.Time) {
	d.mu.Lock()
	if d.stopped {
		d.mu.Unlock()
		return
	}
	st, _ := d.tree.value(node.ResourcePath(objFirmware, 0, resFwState), now)
	var changed []node.Path
	switch st.Int {
	case fwDownloading:
		changed = d.fwSetLocked(fwDownloaded, fwResultInitial)
	case fwUpdating:
		ver, _ := d.tree.value(node.ResourcePath(objFirmware, 0, resFwVersion), now)
		changed = d.setLocked(node.ResourcePath(objDevice, 0, resDevFirmwareVers), ver)
		changed = append(changed, d.fwSetLocked(fwIdle, fwResultSuccess)...)
	}
	out := d.changedLocked(changed, now)
	d.mu.Unlock()
	d.emit(out)
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
		st, _ := d.tree.value(node.ResourcePath(objFirmware, 0, resFwState), now)
		if st.Int != fwDownloaded {
			return nil, 0, refuse(codes.MethodNotAllowed, "no firmware downloaded (state %d)", st.Int)
		}
		changed := d.fwSetLocked(fwUpdating, fwResultInitial)
		d.sim.sched.after(d.fwTimer, fwStep)
		return changed, 0, nil
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
	d.dropObservationsLocked()
	d.attrs = nil
	d.setRegisteredLocked(false)
}
