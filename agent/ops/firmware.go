package ops

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/firmware"
	"github.com/lwm2m-agent/lwm2m-agent/agent/lwm2m"
	"github.com/lwm2m-agent/lwm2m-agent/agent/mapping"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/shell"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// A firmware update (fwupdate, or an operation with c8y_Firmware) runs the
// Firmware Update object's state machine (Core TS 1.1, E.6): the device
// must be Idle (/5/0/3 State 0); the runner observes State and Update
// Result (/5/0/5), chooses the delivery method (fwplan.go), delivers the
// package by pull (a URI written to Package URI /5/0/1) or push (the
// package written block-wise to Package /5/0/0), waits for State 2
// Downloaded, executes Update (/5/0/2), and waits for Update Result 1
// after the device restarted into the new firmware; when the device has a
// Firmware Version (/3/0/3) it must then be the version asked for. The
// device's managed object gets c8y_Firmware {name, version, url}. A
// failure, a timeout or a cancel resets the device's object (an empty
// Package URI, or a null byte to Package) and revokes the package's URIs.
//
// This spans minutes and, for a sleeping device, several awake windows
// and registrations: the operation stays EXECUTING meanwhile, with the
// step reached kept in its FirmwareProgressFragment, and the device's other
// operations wait behind it. Each time the device is reachable (a
// Register or Update, a notification of State or Update Result, or a
// poll of an always-online device) the runner reads State and Update
// Result and takes the next step from what they say, so a request whose
// answer was lost, or an agent restart, is resumed from the device's own
// state rather than repeated blindly. Config.FirmwareTimeout bounds the
// whole update.

// FirmwareProgressFragment is the operation fragment that holds a firmware
// update's progress: step, started, state, result, message.
const FirmwareProgressFragment = "lwm2mFirmwareUpdate"

// DefaultFirmwareTimeout is the default of Config.FirmwareTimeout.
const DefaultFirmwareTimeout = 30 * time.Minute

// Steps of a firmware update, as kept in the progress fragment.
const (
	fwStepCheck    = "check"    // the device's state is checked; nothing written yet
	fwStepDownload = "download" // the Package URI is written (or about to be)
	fwStepUpdate   = "update"   // Update is executed (or about to be)
)

// Firmware Update object (5) resources and states.
var (
	pathFwPackage   = node.ResourcePath(5, 0, 0)
	pathFwProtocols = node.ResourcePath(5, 0, 8)
	pathFwDelivery  = node.ResourcePath(5, 0, 9)
	pathFwCancel    = node.ResourcePath(5, 0, 10)
	pathFwURI       = node.ResourcePath(5, 0, 1)
	pathFwUpdate    = node.ResourcePath(5, 0, 2)
	pathFwState     = node.ResourcePath(5, 0, 3)
	pathFwResult    = node.ResourcePath(5, 0, 5)
	pathDevFwVers   = node.ResourcePath(3, 0, 3)
)

const (
	fwIdle        = 0
	fwDownloading = 1
	fwDownloaded  = 2
	fwUpdating    = 3

	fwResultInitial  = 0
	fwResultSuccess  = 1
	fwResultConnLost = 4
	fwResultDeferred = 11
)

// UpdateResultText is the meaning of an Update Result (/5/0/5) code.
func UpdateResultText(code int64) string {
	switch code {
	case 0:
		return "initial value"
	case 1:
		return "firmware updated successfully"
	case 2:
		return "not enough flash memory for the new firmware package"
	case 3:
		return "out of RAM during the download"
	case 4:
		return "connection lost during the download"
	case 5:
		return "integrity check failure of the downloaded package"
	case 6:
		return "unsupported package type"
	case 7:
		return "invalid URI"
	case 8:
		return "firmware update failed"
	case 9:
		return "unsupported protocol"
	case 10:
		return "firmware update cancelled"
	case 11:
		return "firmware update deferred"
	}
	return "unknown result"
}

// fwProgress is what is kept of a firmware update between its steps.
type fwProgress struct {
	Step       string
	Started    time.Time
	URIWritten bool // the Package URI write was answered, or the push began
	UpdateSent bool // the Update execute was answered
	State      int64
	Result     int64
	Message    string

	// the plan (fwplan.go), once made at the first delivery
	Method, Alternative, Scheme, Base, Reset string
	// a push: the bytes the device acknowledged, of Size, and how often
	// the device lost the transfer
	Offset, Size int64
	Block        int64 // the block size the device took
	Restarts     int
	// Fallback says why the first method of BOTH was given up
	Fallback string
}

func (p fwProgress) fragment() map[string]any {
	m := map[string]any{
		"step": p.Step, "started": p.Started.UTC().Format(time.RFC3339Nano),
		"uriWritten": p.URIWritten, "updateSent": p.UpdateSent,
		"state": p.State, "result": p.Result, "message": p.Message,
	}
	for k, v := range map[string]string{"method": p.Method, "alternative": p.Alternative, "scheme": p.Scheme,
		"base": p.Base, "reset": p.Reset, "fallback": p.Fallback} {
		if v != "" {
			m[k] = v
		}
	}
	if p.Method == methodPush {
		m["offset"], m["size"], m["block"] = p.Offset, p.Size, p.Block
	}
	if p.Method == methodPush || p.Restarts > 0 {
		m["restarts"] = p.Restarts
	}
	return m
}

func progressOf(op store.Operation) (fwProgress, bool) {
	m, ok := op.Fragments[FirmwareProgressFragment].(map[string]any)
	if !ok {
		return fwProgress{}, false
	}
	p := fwProgress{}
	p.Step, _ = m["step"].(string)
	if s, _ := m["started"].(string); s != "" {
		p.Started, _ = time.Parse(time.RFC3339Nano, s)
	}
	p.URIWritten, _ = m["uriWritten"].(bool)
	p.UpdateSent, _ = m["updateSent"].(bool)
	p.State, _ = asInt(m["state"])
	p.Result, _ = asInt(m["result"])
	p.Message, _ = m["message"].(string)
	p.Method, _ = m["method"].(string)
	p.Alternative, _ = m["alternative"].(string)
	p.Scheme, _ = m["scheme"].(string)
	p.Base, _ = m["base"].(string)
	p.Reset, _ = m["reset"].(string)
	p.Fallback, _ = m["fallback"].(string)
	p.Offset, _ = asInt(m["offset"])
	p.Size, _ = asInt(m["size"])
	p.Block, _ = asInt(m["block"])
	restarts, _ := asInt(m["restarts"])
	p.Restarts = int(restarts)
	switch p.Step {
	case fwStepCheck, fwStepDownload, fwStepUpdate:
	default:
		return fwProgress{}, false
	}
	return p, true
}

func asInt(v any) (int64, bool) {
	switch x := v.(type) {
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case int:
		return int64(x), true
	case float64:
		return int64(x), true
	}
	return 0, false
}

// FirmwareOf returns the firmware an operation installs: fwupdate's, or
// its c8y_Firmware fragment's {name, version, url}. false for any other
// operation.
func FirmwareOf(op store.Operation) (shell.Firmware, bool) {
	if op.HasCommand {
		c, err := shell.Parse(op.Text)
		if err != nil || c.Kind != shell.FirmwareUpdate {
			return shell.Firmware{}, false
		}
		return c.Firmware, true
	}
	m, ok := op.Fragments["c8y_Firmware"].(map[string]any)
	if !ok {
		return shell.Firmware{}, false
	}
	fw := shell.Firmware{}
	fw.Name, _ = m["name"].(string)
	fw.Version, _ = m["version"].(string)
	fw.URL, _ = m["url"].(string)
	return fw, fw.URL != ""
}

// fwJob is a firmware update under way on one device.
type fwJob struct {
	// mu is held while the update takes a step; the watchdog only tries
	// it, so that it never waits for a device.
	mu       sync.Mutex
	tenant   string
	op       store.Operation
	fw       shell.Firmware
	prog     fwProgress
	deadline time.Time
	lastStep time.Time
	timeout  time.Duration // the device's request timeout, at the last step
	done     bool

	// cancelled is set by Cancelled, without mu: abort ends the step
	// under way (a push) so that the cancel takes effect at once.
	cancelled atomic.Bool
	abortMu   sync.Mutex
	abort     context.CancelFunc
}

// setAbort makes cancel end the step under way; nil when none is.
func (j *fwJob) setAbort(cancel context.CancelFunc) {
	j.abortMu.Lock()
	j.abort = cancel
	j.abortMu.Unlock()
}

func (j *fwJob) cancelStep() {
	j.abortMu.Lock()
	if j.abort != nil {
		j.abort()
	}
	j.abortMu.Unlock()
}

func (r *Runner) fwJob(k deviceKey) *fwJob {
	r.fwMu.Lock()
	defer r.fwMu.Unlock()
	return r.fwJobs[k]
}

func (r *Runner) dropFwJob(k deviceKey, j *fwJob) {
	r.fwMu.Lock()
	if r.fwJobs[k] == j {
		delete(r.fwJobs, k)
	}
	r.fwMu.Unlock()
}

// FirmwareUpdates is the number of firmware updates under way.
func (r *Runner) FirmwareUpdates() int {
	r.fwMu.Lock()
	defer r.fwMu.Unlock()
	return len(r.fwJobs)
}

// Notified is told of a notification a device sent for observed: a
// firmware update under way on the device takes its next step when its
// State or Update Result changed.
func (r *Runner) Notified(tenant, deviceID string, observed node.Path) {
	if observed.Object != 5 {
		return
	}
	k := deviceKey{tenant, deviceID}
	if r.fwJob(k) != nil {
		r.kick(k)
	}
}

// adoptFirmware makes op, EXECUTING, the device's firmware update under
// way, resumed from the progress it holds (or from the start).
func (r *Runner) adoptFirmware(tenant string, op store.Operation, fw shell.Firmware) *fwJob {
	prog, ok := progressOf(op)
	if !ok {
		prog = fwProgress{Step: fwStepCheck, Started: time.Now().UTC()}
	}
	if prog.Started.IsZero() {
		prog.Started = op.LastUpdated
	}
	j := &fwJob{tenant: tenant, op: op, fw: fw, prog: prog, deadline: prog.Started.Add(r.cfg.FirmwareTimeout)}
	r.fwMu.Lock()
	r.fwJobs[deviceKey{tenant, op.DeviceID}] = j
	r.fwMu.Unlock()
	return j
}

// startFirmware begins the firmware update op, just moved to EXECUTING:
// its progress is stored before anything reaches the device.
func (r *Runner) startFirmware(ctx context.Context, tenant string, op store.Operation, fw shell.Firmware) error {
	j := r.adoptFirmware(tenant, op, fw)
	j.prog.Message = "checking that the device is idle"
	if err := r.saveProgress(ctx, j); err != nil {
		r.dropFwJob(deviceKey{tenant, op.DeviceID}, j)
		return err
	}
	r.log.Info("firmware update started", "tenant", tenant, "device", op.DeviceID, "operation", op.ID,
		"name", fw.Name, "version", fw.Version, "url", fw.URL)
	return nil
}

func (r *Runner) saveProgress(ctx context.Context, j *fwJob) error {
	if err := r.cfg.Store.SetOperationFragment(ctx, j.tenant, j.op.ID, FirmwareProgressFragment, j.prog.fragment()); err != nil {
		return fmt.Errorf("operation %s: firmware progress: %w", j.op.ID, err)
	}
	return nil
}

// fwAction is what a firmware update does next.
type fwAction int

const (
	fwWait    fwAction = iota // the device is at work: wait for its next report
	fwDeliver                 // write the Package URI (again), or push the package (on from Offset)
	fwExecute                 // execute Update
	fwSucceed                 // Update Result 1: check the version, done
	fwFail                    // the update failed: reason says why
)

// nextFirmwareStep decides from the progress and the device's State and
// Update Result what to do next; reason explains a failure.
func nextFirmwareStep(p fwProgress, state, result int64) (act fwAction, reason string) {
	failed := func(step string) (fwAction, string) {
		return fwFail, fmt.Sprintf("firmware update failed at step %s: Update Result %d: %s", step, result, UpdateResultText(result))
	}
	switch p.Step {
	case fwStepCheck:
		if state != fwIdle {
			return fwFail, fmt.Sprintf("firmware update already in progress: state %d (%s)", state, stateText(state))
		}
		return fwDeliver, ""
	case fwStepDownload:
		switch state {
		case fwDownloading:
			if p.Method == methodPush && (p.Size == 0 || p.Offset < p.Size) {
				// only the agent moves a push on: resume it
				return fwDeliver, ""
			}
			return fwWait, ""
		case fwUpdating:
			return fwWait, ""
		case fwDownloaded:
			return fwExecute, ""
		case fwIdle:
			switch {
			case !p.URIWritten:
				// the write never came through (or its answer was lost and
				// the device stayed idle): writing the same URI is safe
				return fwDeliver, ""
			case result == fwResultSuccess:
				// a device that updates by itself once downloaded
				return fwSucceed, ""
			case result == fwResultInitial:
				// back to idle without a word, as after a restart in the
				// middle of a download: start it again (a push resumed
				// where the device lost it is refused, and starts over)
				return fwDeliver, ""
			}
			return failed(fwStepDownload)
		}
	case fwStepUpdate:
		switch state {
		case fwUpdating, fwDownloading:
			return fwWait, ""
		case fwDownloaded:
			switch result {
			case fwResultInitial:
				// Update not received, or not yet acted on: executing it
				// again is safe only while the package is Downloaded
				return fwExecute, ""
			case fwResultDeferred:
				return fwWait, ""
			}
			return failed(fwStepUpdate)
		case fwIdle:
			switch result {
			case fwResultSuccess:
				return fwSucceed, ""
			case fwResultInitial:
				return fwFail, "firmware update failed at step update: the device is back in state 0 (idle) without an Update Result"
			}
			return failed(fwStepUpdate)
		}
	}
	return fwFail, fmt.Sprintf("firmware update failed at step %s: unexpected state %d", p.Step, state)
}

func stateText(s int64) string {
	switch s {
	case fwIdle:
		return "idle"
	case fwDownloading:
		return "downloading"
	case fwDownloaded:
		return "downloaded"
	case fwUpdating:
		return "updating"
	}
	return "unknown"
}

// advanceFirmware takes the next step of the device's firmware update: it
// reads State and Update Result and acts on them. outDone means the
// update ended (SUCCESSFUL or FAILED); outWait that it waits for the
// device; outTimeout that a request went unanswered (the window is over).
func (r *Runner) advanceFirmware(ctx context.Context, reg lwm2m.Registration, w *window, j *fwJob, timeout time.Duration) (outcome, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.done {
		return outDone, nil
	}
	now := time.Now()
	j.lastStep, j.timeout = now, timeout
	reachable := r.room(w, now) > 0
	if reason, ok := r.fwCancelled(ctx, j); ok {
		return outDone, r.cancelFirmware(ctx, reg, reachable, j, reason)
	}
	if !now.Before(j.deadline) {
		return outDone, r.failFirmware(ctx, reg, reachable, j, r.fwTimeoutReason(j))
	}
	// A cancel ends the step under way (a push) at once.
	stepCtx, abort := context.WithCancel(ctx)
	j.setAbort(abort)
	defer func() {
		j.setAbort(nil)
		abort()
	}()
	rctx := stepCtx
	if timeout > 0 {
		rctx = lwm2m.WithRequestTimeout(stepCtx, timeout)
	}
	out, err := r.fwStep(ctx, rctx, reg, w, j)
	if j.cancelled.Load() && !j.done {
		reason, _ := r.fwCancelled(ctx, j)
		return outDone, r.cancelFirmware(ctx, reg, r.room(w, time.Now()) > 0, j, reason)
	}
	return out, err
}

// fwStep reads the device's state and takes the step it calls for.
func (r *Runner) fwStep(ctx, rctx context.Context, reg lwm2m.Registration, w *window, j *fwJob) (outcome, error) {
	state, result, err := r.fwStatus(rctx, reg)
	if err != nil {
		return r.fwRequestFailed(ctx, reg, j, "read state", err)
	}
	j.prog.State, j.prog.Result = state, result
	act, reason := nextFirmwareStep(j.prog, state, result)
	if act == fwFail && j.prog.Step == fwStepDownload {
		switch {
		case j.prog.Alternative != "" && fallbackResult(result):
			r.fallBack(ctx, j, fmt.Sprintf("Update Result %d: %s", result, UpdateResultText(result)))
			act = fwDeliver
		case result == fwResultConnLost && j.prog.Restarts < maxRestarts:
			// a lost connection (the agent restarting, a network
			// outage) is no fault of the package: the download starts
			// again, a bounded number of times
			j.prog.Restarts++
			j.prog.URIWritten, j.prog.Offset = false, 0
			act = fwDeliver
		}
	}
	log := r.log.With("endpoint", reg.Endpoint, "reg_id", reg.ID, "operation", j.op.ID)
	log.Debug("firmware update step", "step", j.prog.Step, "state", state, "result", result, "action", act)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	switch act {
	case fwFail:
		return outDone, r.failFirmware(ctx, reg, true, j, reason)
	case fwSucceed:
		return r.succeedFirmware(ctx, rctx, reg, j)
	case fwWait:
		j.prog.Message = fmt.Sprintf("waiting for the device: state %d (%s)", state, stateText(state))
		return outWait, r.saveProgress(sctx, j)
	}
	if r.room(w, time.Now()) == 0 {
		return outWait, r.saveProgress(sctx, j)
	}
	switch act {
	case fwDeliver:
		if j.prog.Method == "" {
			if out, err, ok := r.planUpdate(ctx, rctx, reg, j); !ok {
				return out, err
			}
		}
		if j.prog.Method == methodPush {
			return r.pushPackage(ctx, rctx, reg, j)
		}
		return r.writePackageURI(ctx, rctx, reg, j)
	case fwExecute:
		j.prog.Step, j.prog.UpdateSent, j.prog.Message = fwStepUpdate, false, "executing Update"
		if err := r.saveProgress(sctx, j); err != nil {
			return outDone, err
		}
		if err := r.cfg.Server.Execute(rctx, reg.Endpoint, pathFwUpdate, ""); err != nil {
			return r.fwRequestFailed(ctx, reg, j, "execute update", err)
		}
		j.prog.UpdateSent, j.prog.Message = true, "Update executed; the device installs the firmware"
	}
	log.Info("firmware update step sent", "step", j.prog.Step)
	return outWait, r.saveProgress(sctx, j)
}

// fwSource is the update's package.
func (j *fwJob) source() (firmware.Source, error) {
	return firmware.ParseSource(j.fw.URL)
}

// planUpdate chooses the delivery method from the device's registration
// parameters, else what it reports in /5/0/8 and /5/0/9, else the
// defaults; ok false ends the step with out and err.
func (r *Runner) planUpdate(ctx, rctx context.Context, reg lwm2m.Registration, j *fwJob) (out outcome, err error, ok bool) {
	var params map[string]any
	settings, err := r.cfg.Store.DeviceSettings(ctx, j.tenant, j.op.DeviceID)
	switch {
	case err == nil:
		params = settings.Params
	case !errors.Is(err, store.ErrNotFound):
		return outDone, fmt.Errorf("operation %s: registration parameters: %w", j.op.ID, err), false
	}
	str := func(k string) string { s, _ := params[k].(string); return s }
	d := fwDevice{Delivery: str("fwUpdateDeliveryMethod"), Protocol: str("fwUpdateSupportedDeviceProtocol"),
		Reset: str("fwUpdateResetMechanism"), URL: str("fwUpdateURL"), ReportedDelivery: -1, Secure: reg.Secure}
	if d.Delivery == "" {
		recs, err := r.cfg.Server.Read(rctx, reg.Endpoint, pathFwDelivery)
		if out, err, ok := r.optionalRead(ctx, reg, j, "read delivery method", err); !ok {
			return out, err, false
		}
		if v, found := intOf(recs, pathFwDelivery); found {
			d.ReportedDelivery = v
		}
	}
	if d.Protocol == "" {
		recs, err := r.cfg.Server.Read(rctx, reg.Endpoint, pathFwProtocols)
		if out, err, ok := r.optionalRead(ctx, reg, j, "read protocol support", err); !ok {
			return out, err, false
		}
		if err == nil {
			d.ReportedProtocols = []int64{}
			for _, rec := range recs {
				if v, found := intOf([]node.Record{{Path: pathFwProtocols, Value: rec.Value}}, pathFwProtocols); found {
					d.ReportedProtocols = append(d.ReportedProtocols, v)
				}
			}
		}
	}
	src, err := j.source()
	if err != nil {
		return outDone, r.failFirmware(ctx, reg, true, j, "firmware update failed at step check: "+err.Error()), false
	}
	var serves func(string) bool
	if r.cfg.Firmware != nil {
		serves = r.cfg.Firmware.Serves
	}
	plan, err := planFirmware(d, src, r.cfg.FirmwareDefaults, serves, r.cfg.Firmware != nil)
	if err != nil {
		return outDone, r.failFirmware(ctx, reg, true, j, "firmware update failed at step check: "+err.Error()), false
	}
	j.prog.Method, j.prog.Alternative, j.prog.Scheme, j.prog.Base, j.prog.Reset = plan.Method, plan.Alternative, plan.Scheme, plan.Base, plan.Reset
	r.log.Info("firmware delivery chosen", "operation", j.op.ID, "endpoint", reg.Endpoint, "method", plan.Method,
		"scheme", plan.Scheme, "alternative", plan.Alternative)
	return outDone, nil, true
}

// optionalRead lets a read of a resource the device may lack go on: an
// error answer is no value; no answer ends the step.
func (r *Runner) optionalRead(ctx context.Context, reg lwm2m.Registration, j *fwJob, what string, err error) (outcome, error, bool) {
	var re *lwm2m.ResponseError
	if err == nil || errors.As(err, &re) {
		return outDone, nil, true
	}
	out, err := r.fwRequestFailed(ctx, reg, j, what, err)
	return out, err, false
}

// methodText names how the update delivers its package.
func (p fwProgress) methodText() string {
	if p.Method == methodPush {
		return "push"
	}
	return "pull over " + p.Scheme
}

// fallBack gives up the first method of BOTH for the other, which starts
// from the beginning.
func (r *Runner) fallBack(ctx context.Context, j *fwJob, why string) {
	j.prog.Fallback = fmt.Sprintf("%s failed: %s", j.prog.methodText(), why)
	r.log.Info("firmware update falls back", "operation", j.op.ID, "from", j.prog.Method, "to", j.prog.Alternative, "why", why)
	r.revokeGrants(ctx, j)
	j.prog.Method, j.prog.Alternative, j.prog.Scheme = j.prog.Alternative, "", ""
	j.prog.Step, j.prog.URIWritten, j.prog.Offset, j.prog.Size, j.prog.Restarts = fwStepDownload, false, 0, 0, 0
}

// deliveryFailed ends a delivery that failed for why: with the other
// method of BOTH when there is one, else the update FAILED.
func (r *Runner) deliveryFailed(ctx, rctx context.Context, reg lwm2m.Registration, j *fwJob, why string) (outcome, error) {
	if j.prog.Alternative != "" {
		r.fallBack(ctx, j, why)
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
		defer cancel()
		if err := r.saveProgress(sctx, j); err != nil {
			return outDone, err
		}
		r.kick(deviceKey{j.tenant, j.op.DeviceID})
		return outWait, nil
	}
	return outDone, r.failFirmware(ctx, reg, true, j, "firmware update failed at step download: "+j.prog.methodText()+": "+why)
}

// writePackageURI gives the device the package's URI: one of its own
// from the firmware service, or the external URL it fetches itself.
func (r *Runner) writePackageURI(ctx, rctx context.Context, reg lwm2m.Registration, j *fwJob) (outcome, error) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	// The step is stored before the write, so that a restart after it
	// reads the device's state instead of assuming nothing was sent.
	j.prog.Step, j.prog.URIWritten, j.prog.Message = fwStepDownload, false, "writing the package URI"
	if err := r.saveProgress(sctx, j); err != nil {
		return outDone, err
	}
	uri := j.fw.URL
	if r.cfg.Firmware != nil {
		src, err := j.source()
		if err != nil {
			return outDone, r.failFirmware(ctx, reg, true, j, "firmware update failed at step download: "+err.Error())
		}
		// the URIs of an earlier write (before a restart of the device)
		// end: only the one written now is valid
		r.revokeGrants(ctx, j)
		uri, err = r.cfg.Firmware.Grant(ctx, firmware.Grant{Tenant: j.tenant, DeviceID: j.op.DeviceID, Endpoint: reg.Endpoint,
			OperationID: j.op.ID, Source: src, Scheme: j.prog.Scheme, Base: j.prog.Base, Expires: j.deadline})
		if err != nil {
			if ctx.Err() != nil {
				return outWait, nil
			}
			return r.deliveryFailed(ctx, rctx, reg, j, err.Error())
		}
	}
	rec := node.Record{Path: pathFwURI, Value: node.String(uri)}
	if err := r.cfg.Server.Write(rctx, reg.Endpoint, pathFwURI, []node.Record{rec}, true); err != nil {
		var re *lwm2m.ResponseError
		if errors.As(err, &re) {
			return r.deliveryFailed(ctx, rctx, reg, j, "the device refused the package URI: "+err.Error())
		}
		return r.fwRequestFailed(ctx, reg, j, "write package URI", err)
	}
	j.prog.URIWritten, j.prog.Message = true, "package URI written; the device downloads ("+j.prog.methodText()+")"
	r.log.Info("firmware update step sent", "operation", j.op.ID, "endpoint", reg.Endpoint, "step", j.prog.Step)
	return outWait, r.saveProgress(sctx, j)
}

// Transfer limits: the progress of a push is stored at most this often
// (and whenever it stops), and a device that loses the transfer more
// often than maxRestarts (a push refused where it stopped, a pull ended
// by Update Result 4) fails it.
const (
	pushSaveEvery = time.Second
	maxRestarts   = 3
)

// pushPackage writes the package block-wise into /5/0/0, from the offset
// the device acknowledged last.
func (r *Runner) pushPackage(ctx, rctx context.Context, reg lwm2m.Registration, j *fwJob) (outcome, error) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	src, err := j.source()
	if err != nil {
		return outDone, r.failFirmware(ctx, reg, true, j, "firmware update failed at step download: "+err.Error())
	}
	pkg, err := r.cfg.Firmware.Open(rctx, j.tenant, src)
	if err != nil {
		if ctx.Err() != nil || j.cancelled.Load() {
			return outWait, nil
		}
		return r.deliveryFailed(ctx, rctx, reg, j, err.Error())
	}
	defer pkg.Close()
	size := pkg.Size()
	if j.prog.Size != size || j.prog.Offset >= size {
		j.prog.Offset = 0
	}
	j.prog.Size = size
	j.prog.Step, j.prog.URIWritten = fwStepDownload, true
	j.prog.Message = fmt.Sprintf("pushing the package: %d of %d bytes", j.prog.Offset, size)
	if err := r.saveProgress(sctx, j); err != nil {
		return outDone, err
	}
	saved := time.Now()
	pctx := rctx
	if j.prog.Block > 0 {
		// resumed at the block size the device asked for: a larger first
		// block would be taken whole by some devices and acknowledged in
		// part by others
		pctx = lwm2m.WithPushBlockSize(rctx, int(j.prog.Block))
	}
	err = r.cfg.Server.WritePackage(pctx, reg.Endpoint, pathFwPackage, pkg, size, j.prog.Offset, func(off int64) {
		if n := off - j.prog.Offset; n > 0 && off < size && (j.prog.Block == 0 || n < j.prog.Block) {
			j.prog.Block = n
		}
		j.prog.Offset = off
		if time.Since(saved) >= pushSaveEvery {
			saved = time.Now()
			j.prog.Message = fmt.Sprintf("pushing the package: %d of %d bytes", off, size)
			if err := r.saveProgress(sctx, j); err != nil {
				r.log.Warn("firmware push progress not saved", "operation", j.op.ID, "err", err)
			}
		}
	})
	k := deviceKey{j.tenant, j.op.DeviceID}
	var re *lwm2m.ResponseError
	switch {
	case err == nil:
		j.prog.Message = fmt.Sprintf("package pushed (%d bytes); the device checks it", size)
		// the device's Downloaded comes as a notification, or is read at
		// once for a device that cannot notify
		r.kick(k)
		return outWait, r.saveProgress(sctx, j)
	case errors.Is(err, lwm2m.ErrTransferRestart):
		j.prog.Offset = 0
		j.prog.Restarts++
		if j.prog.Restarts > maxRestarts {
			return r.deliveryFailed(ctx, rctx, reg, j, fmt.Sprintf("the device lost the transfer %d times", j.prog.Restarts))
		}
		j.prog.Message = fmt.Sprintf("the device lost the transfer; pushed again from the start (%d of %d)", j.prog.Restarts, maxRestarts)
		r.kick(k)
		return outWait, r.saveProgress(sctx, j)
	case errors.Is(err, lwm2m.ErrPushBusy):
		j.prog.Message = "another push to the device is under way; waiting"
		return outWait, r.saveProgress(sctx, j)
	case errors.As(err, &re):
		why := "the device refused the package: " + re.Error()
		// the device says why in its Update Result
		if _, result, rerr := r.fwStatus(rctx, reg); rerr == nil && result > fwResultSuccess {
			why = fmt.Sprintf("Update Result %d: %s (the device answered %s)", result, UpdateResultText(result), re.Error())
		}
		return r.deliveryFailed(ctx, rctx, reg, j, why)
	}
	// no answer, or the agent stops: resumed from the acknowledged offset
	if serr := r.saveProgress(sctx, j); serr != nil {
		r.log.Warn("firmware push progress not saved", "operation", j.op.ID, "err", serr)
	}
	return r.fwRequestFailed(ctx, reg, j, fmt.Sprintf("push package at offset %d", j.prog.Offset), err)
}

// fwStatus reads State and Update Result, observing each when it is not
// observed yet (after a new registration, say): the observation's first
// answer is the read.
func (r *Runner) fwStatus(ctx context.Context, reg lwm2m.Registration) (state, result int64, err error) {
	observed := map[node.Path]bool{}
	for _, p := range r.cfg.Server.Observations(reg.Endpoint) {
		observed[p] = true
	}
	var vals [2]int64
	for i, p := range []node.Path{pathFwState, pathFwResult} {
		var recs []node.Record
		var err error
		if observed[p] {
			recs, err = r.cfg.Server.Read(ctx, reg.Endpoint, p)
		} else {
			recs, err = r.cfg.Server.Observe(ctx, reg.Endpoint, p)
			if errors.Is(err, lwm2m.ErrNotObservable) && len(recs) > 0 {
				err = nil // a plain read: the runner polls instead
			}
		}
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %w", p, err)
		}
		v, ok := intOf(recs, p)
		if !ok {
			return 0, 0, fmt.Errorf("%s: the device answered no integer", p)
		}
		vals[i] = v
	}
	return vals[0], vals[1], nil
}

func intOf(recs []node.Record, p node.Path) (int64, bool) {
	for _, rec := range recs {
		if rec.Path != p {
			continue
		}
		switch rec.Value.Type {
		case node.TypeInteger:
			return rec.Value.Int, true
		case node.TypeUnsignedInteger:
			return int64(rec.Value.Uint), true
		case node.TypeString:
			n, err := strconv.ParseInt(rec.Value.Str, 10, 64)
			return n, err == nil
		case node.TypeFloat:
			return int64(rec.Value.Float), true
		}
	}
	return 0, false
}

// fwRequestFailed handles a request of a firmware update that failed: one
// without an answer, or that could not be sent now, waits for the device's
// next window (the timeout bounds that); an error answer ends the update.
func (r *Runner) fwRequestFailed(ctx context.Context, reg lwm2m.Registration, j *fwJob, what string, err error) (outcome, error) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	switch {
	case ctx.Err() != nil:
		// The agent stops: the update stays EXECUTING and resumes from the
		// device's state at the next start.
		return outWait, nil
	case errors.Is(err, lwm2m.ErrNoSession):
		return outWait, nil
	case errors.Is(err, lwm2m.ErrTimeout), errors.Is(err, lwm2m.ErrNotRegistered):
		r.timedOut.Add(1)
		j.prog.Message = fmt.Sprintf("%s: no answer; retried when the device is next reachable", what)
		return outTimeout, r.saveProgress(sctx, j)
	}
	return outDone, r.failFirmware(ctx, reg, true, j, fmt.Sprintf("firmware update failed at step %s: %s: %s", j.prog.Step, what, FailureReason(err)))
}

// succeedFirmware checks the version the device runs now, records it and
// ends the update.
func (r *Runner) succeedFirmware(ctx, rctx context.Context, reg lwm2m.Registration, j *fwJob) (outcome, error) {
	recs, err := r.cfg.Server.Read(rctx, reg.Endpoint, pathDevFwVers)
	var re *lwm2m.ResponseError
	reported := ""
	switch {
	case err == nil:
		r.record(ctx, reg, recs)
		for _, rec := range recs {
			if rec.Path == pathDevFwVers {
				reported = rec.Value.Text()
			}
		}
	case errors.As(err, &re):
		// no Firmware Version resource: Update Result 1 is all there is
	default:
		return r.fwRequestFailed(ctx, reg, j, "read firmware version", err)
	}
	if reported != "" && reported != j.fw.Version {
		return outDone, r.endFirmware(ctx, reg, j, store.OpFailed, fmt.Sprintf(
			"firmware update failed at step update: Update Result 1 (%s), but the device reports firmware version %q, not %q",
			UpdateResultText(fwResultSuccess), reported, j.fw.Version))
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	if err := r.setFirmwareFragment(sctx, reg, j); err != nil {
		return outDone, fmt.Errorf("operation %s: c8y_Firmware of device %s: %w", j.op.ID, j.op.DeviceID, err)
	}
	result := fmt.Sprintf("Firmware %s %s installed from %s: Update Result 1 (%s)", j.fw.Name, j.fw.Version, j.fw.URL, UpdateResultText(fwResultSuccess))
	if reported != "" {
		result += "; the device reports firmware version " + reported
	}
	if j.prog.Method != "" {
		result += "; delivered by " + j.prog.methodText()
	}
	if j.prog.Fallback != "" {
		result += ", after " + j.prog.Fallback
	}
	return outDone, r.endFirmware(ctx, reg, j, store.OpSuccessful, result)
}

// endFirmware records the update's outcome (text: the result when
// SUCCESSFUL, the reason when FAILED), ends the observations it made and
// lets the device's other operations go.
func (r *Runner) endFirmware(ctx context.Context, reg lwm2m.Registration, j *fwJob, status, text string) error {
	j.done = true
	r.dropFwJob(deviceKey{j.tenant, j.op.DeviceID}, j)
	r.revokeGrants(ctx, j)
	if reg.Endpoint != "" {
		// best effort: the device may sleep already, and the server
		// forgets the observations either way
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		for _, p := range []node.Path{pathFwState, pathFwResult} {
			if err := r.cfg.Server.CancelObserve(cctx, reg.Endpoint, p); err != nil {
				r.log.Debug("cancel firmware observation", "endpoint", reg.Endpoint, "path", p.String(), "err", err)
			}
		}
		cancel()
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	j.prog.Message = text
	if err := r.saveProgress(sctx, j); err != nil {
		r.log.Warn("firmware progress not saved", "operation", j.op.ID, "err", err)
	}
	result, reason := "", ""
	if status == store.OpSuccessful {
		r.successful.Add(1)
		if j.op.HasCommand {
			result = text
		}
	} else {
		r.failed.Add(1)
		reason = text
	}
	r.log.Info("firmware update ended", "tenant", j.tenant, "device", j.op.DeviceID, "operation", j.op.ID, "status", status, "text", text)
	return r.setStatus(sctx, j.tenant, j.op, status, result, reason)
}

// failFirmware ends the update FAILED for reason, after the device's
// firmware object is reset (or the reset queued for its next window).
func (r *Runner) failFirmware(ctx context.Context, reg lwm2m.Registration, reachable bool, j *fwJob, reason string) error {
	if j.prog.Fallback != "" {
		reason += " (after " + j.prog.Fallback + ")"
	}
	rerr := r.resetFirmware(ctx, reg, reachable, j)
	return errors.Join(rerr, r.endFirmware(ctx, reg, j, store.OpFailed, reason))
}

// cancelFirmware ends an update that an operator (or another replica's
// API) set FAILED: the device's transfer is cancelled and its object
// reset; the operation keeps the status and reason it was given.
func (r *Runner) cancelFirmware(ctx context.Context, reg lwm2m.Registration, reachable bool, j *fwJob, reason string) error {
	j.done = true
	r.dropFwJob(deviceKey{j.tenant, j.op.DeviceID}, j)
	rerr := r.resetFirmware(ctx, reg, reachable, j)
	r.revokeGrants(ctx, j)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	j.prog.Message = "cancelled: " + reason
	r.failed.Add(1)
	r.log.Info("firmware update cancelled", "tenant", j.tenant, "device", j.op.DeviceID, "operation", j.op.ID, "reason", reason)
	return errors.Join(rerr, r.saveProgress(sctx, j))
}

// fwCancelled says whether the update was cancelled: by Cancelled, or
// by a status other than EXECUTING in the store (set through another
// replica); reason is the operation's failure reason.
func (r *Runner) fwCancelled(ctx context.Context, j *fwJob) (reason string, cancelled bool) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	op, err := r.cfg.Store.GetOperation(sctx, j.tenant, j.op.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return "the operation was removed", true
	case err != nil:
		r.log.Warn("firmware update: operation not read", "operation", j.op.ID, "err", err)
		if !j.cancelled.Load() {
			return "", false
		}
		return "cancelled", true
	case op.Status == store.OpExecuting && !j.cancelled.Load():
		return "", false
	}
	if op.FailureReason != "" {
		return op.FailureReason, true
	}
	return "operation set " + op.Status, true
}

// Cancelled is told that op, a firmware update, was set FAILED by an
// operator: the update under way stops at once and resets the device.
func (r *Runner) Cancelled(_ context.Context, tenant string, op store.Operation) {
	k := deviceKey{tenant, op.DeviceID}
	j := r.fwJob(k)
	if j == nil || j.op.ID != op.ID {
		return
	}
	j.cancelled.Store(true)
	j.cancelStep()
	r.kick(k)
}

// settleCancelled ends the cancelled firmware update of a device that is
// not reachable now: its reset waits in the store for the next window.
func (r *Runner) settleCancelled(ctx context.Context, k deviceKey) {
	j := r.fwJob(k)
	if j == nil || !j.cancelled.Load() {
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.done {
		return
	}
	reason, _ := r.fwCancelled(ctx, j)
	if err := r.cancelFirmware(ctx, lwm2m.Registration{}, false, j, reason); err != nil {
		r.log.Error("firmware update cancel", "operation", j.op.ID, "err", err)
	}
}

// revokeGrants ends the package URIs given for the update.
func (r *Runner) revokeGrants(ctx context.Context, j *fwJob) {
	if r.cfg.Firmware == nil {
		return
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	if err := r.cfg.Firmware.Revoke(sctx, j.tenant, j.op.ID); err != nil {
		r.log.Warn("firmware URIs not revoked", "operation", j.op.ID, "err", err)
	}
}

// resetFirmware leaves the device's firmware object Idle, as its reset
// mechanism says (an empty Package URI, or a null byte to Package),
// after a Cancel (/5/0/10) where the device has one. A device that is
// not reachable now gets the reset as an operation of its own, queued
// in the store for its next window.
func (r *Runner) resetFirmware(ctx context.Context, reg lwm2m.Registration, reachable bool, j *fwJob) error {
	mech := resetMechanism(j.prog.Reset, j.prog.Method)
	if j.prog.Step == fwStepCheck || j.prog.Method == "" {
		return nil // nothing was delivered: the device's object is as it was
	}
	log := r.log.With("operation", j.op.ID, "device", j.op.DeviceID, "reset", mech)
	if reachable && reg.Endpoint != "" {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
		defer cancel()
		if j.timeout > 0 {
			rctx = lwm2m.WithRequestTimeout(rctx, j.timeout)
		}
		if r.hasCancel(reg) {
			// 4.05 while Updating, 4.04 where the object has none: the
			// reset below is all there is
			if err := r.cfg.Server.Execute(rctx, reg.Endpoint, pathFwCancel, ""); err != nil {
				log.Debug("firmware cancel not executed", "err", err)
			}
		}
		err := r.writeReset(rctx, reg, mech)
		var re *lwm2m.ResponseError
		switch {
		case err == nil:
			log.Info("firmware object reset")
			return nil
		case errors.As(err, &re):
			log.Warn("firmware object reset refused by the device", "err", err)
			return nil
		}
		log.Info("firmware object not reset now; queued for the device's next window", "err", err)
	}
	// The shell has no empty string to write: the operation carries the
	// reset as a fragment the runner performs.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	_, err := r.cfg.Store.CreateOperations(sctx, j.tenant, []store.Operation{{DeviceID: j.op.DeviceID, Fragments: map[string]any{
		FirmwareResetFragment: map[string]any{"mechanism": mech, "operationId": j.op.ID},
		"description":         fmt.Sprintf("Reset of the firmware update object (%s) after firmware operation %s", mech, j.op.ID)}}})
	if err != nil {
		return fmt.Errorf("operation %s: queue the firmware reset of device %s: %w", j.op.ID, j.op.DeviceID, err)
	}
	r.kick(deviceKey{j.tenant, j.op.DeviceID})
	return nil
}

// FirmwareResetFragment is the fragment of an operation that resets a
// device's firmware object {mechanism, operationId}: queued by a firmware
// update that ended while its device was not reachable.
const FirmwareResetFragment = "lwm2mFirmwareReset"

// resetOf returns the reset mechanism of such an operation.
func resetOf(op store.Operation) (string, bool) {
	m, _ := op.Fragments[FirmwareResetFragment].(map[string]any)
	mech, _ := m["mechanism"].(string)
	return mech, !op.HasCommand && (mech == ResetPackage || mech == ResetPackageURI)
}

// writeReset resets the device's firmware object by mech: an empty
// Package URI, or a single null byte to Package.
func (r *Runner) writeReset(ctx context.Context, reg lwm2m.Registration, mech string) error {
	rec := node.Record{Path: pathFwURI, Value: node.String("")}
	if mech == ResetPackage {
		rec = node.Record{Path: pathFwPackage, Value: node.Opaque([]byte{0})}
	}
	return r.cfg.Server.Write(ctx, reg.Endpoint, rec.Path, []node.Record{rec}, true)
}

// hasCancel tells a device whose Firmware Update object has Cancel
// (/5/0/10): version 1.1 or later in its registration, or, without a
// version there, in the tenant's definition of object 5.
func (r *Runner) hasCancel(reg lwm2m.Registration) bool {
	for _, l := range reg.Objects {
		if l.Path.Object == 5 && l.Version != "" {
			return l.Version >= "1.1"
		}
	}
	if r.cfg.Models == nil {
		return false
	}
	def, ok := r.cfg.Models.ObjectFor(reg.Tenant, 5)
	if !ok {
		return false
	}
	for _, res := range def.Resources {
		if res.ID == 10 {
			return true
		}
	}
	return false
}

func (r *Runner) fwTimeoutReason(j *fwJob) string {
	return fmt.Sprintf("firmware update timed out after %v at step %s (last state %d, update result %d)",
		r.cfg.FirmwareTimeout, j.prog.Step, j.prog.State, j.prog.Result)
}

// fwPollEvery is how often an always-online device with a firmware update
// under way is asked for its state when it reports nothing.
const fwPollEvery = 30 * time.Second

// firmwareTick fails the firmware updates past their deadline (a sleeping
// device may never be reachable again) and wakes those whose device said
// nothing for a while.
func (r *Runner) firmwareTick(ctx context.Context, now time.Time) {
	r.fwMu.Lock()
	jobs := make(map[deviceKey]*fwJob, len(r.fwJobs))
	for k, j := range r.fwJobs {
		jobs[k] = j
	}
	r.fwMu.Unlock()
	for k, j := range jobs {
		if !j.mu.TryLock() {
			continue // taking a step now
		}
		switch {
		case j.done:
		case j.cancelled.Load():
			// a device that is not served now (asleep, or gone): the
			// reset waits for it in the store
			j.mu.Unlock()
			r.kick(k)
			continue
		case !now.Before(j.deadline):
			if err := r.failFirmware(ctx, lwm2m.Registration{}, false, j, r.fwTimeoutReason(j)); err != nil {
				r.log.Error("firmware update not failed", "operation", j.op.ID, "err", err)
			}
		case now.Sub(j.lastStep) >= fwPollEvery:
			j.mu.Unlock()
			r.kick(k)
			continue
		}
		j.mu.Unlock()
	}
}

// firmwareOwned says whether an operation EXECUTING is a firmware update
// the EXECUTING watchdog must leave alone: one under way (its own deadline
// bounds it), or one whose progress is more recent than the firmware
// timeout.
func (r *Runner) firmwareOwned(op store.TenantOperation, now time.Time) bool {
	if _, ok := FirmwareOf(op.Operation); !ok {
		return false
	}
	if j := r.fwJob(deviceKey{op.Tenant, op.DeviceID}); j != nil && j.op.ID == op.ID {
		return true
	}
	return now.Sub(op.LastUpdated) < r.cfg.FirmwareTimeout
}

// setFirmwareFragment gives the device's managed object c8y_Firmware
// {name, version, url}. With mapping on, it goes through the mapping
// writer like the default mappings' c8y_Firmware.name and .version: that
// writer rewrites a fragment whole from the object as it read it, so a
// write beside it could be undone by one of its batches.
func (r *Runner) setFirmwareFragment(ctx context.Context, reg lwm2m.Registration, j *fwJob) error {
	fields := map[string]any{"name": j.fw.Name, "version": j.fw.Version, "url": j.fw.URL}
	if r.cfg.Pipeline != nil {
		return r.cfg.Pipeline.Write(ctx, mapping.Output{
			Device:    mapping.Device{Tenant: j.tenant, ID: j.op.DeviceID, Endpoint: reg.Endpoint},
			Inventory: &mapping.InventoryUpdate{Fields: map[string]map[string]any{mapping.FragmentFirmware: fields}},
		})
	}
	_, err := r.cfg.Store.UpdateManagedObject(ctx, j.tenant, j.op.DeviceID, map[string]any{mapping.FragmentFirmware: fields})
	return err
}
