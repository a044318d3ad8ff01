package ops

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/lwm2m"
	"github.com/lwm2m-agent/lwm2m-agent/agent/mapping"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/shell"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// A firmware update (fwupdate, or an operation with c8y_Firmware) runs the
// pull method of the Firmware Update object (Core TS 1.1, E.6 and its
// state machine): the device must be Idle (/5/0/3 State 0); the runner
// observes State and Update Result (/5/0/5), writes the URL to Package
// URI (/5/0/1), waits for State 2 Downloaded, executes Update (/5/0/2),
// and waits for Update Result 1 after the device restarted into the new
// firmware; when the device has a Firmware Version (/3/0/3) it must then
// be the version asked for. The device's managed object gets c8y_Firmware
// {name, version, url}.
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
	pathFwURI     = node.ResourcePath(5, 0, 1)
	pathFwUpdate  = node.ResourcePath(5, 0, 2)
	pathFwState   = node.ResourcePath(5, 0, 3)
	pathFwResult  = node.ResourcePath(5, 0, 5)
	pathDevFwVers = node.ResourcePath(3, 0, 3)
)

const (
	fwIdle        = 0
	fwDownloading = 1
	fwDownloaded  = 2
	fwUpdating    = 3

	fwResultInitial  = 0
	fwResultSuccess  = 1
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
	URIWritten bool // the Package URI write was answered
	UpdateSent bool // the Update execute was answered
	State      int64
	Result     int64
	Message    string
}

func (p fwProgress) fragment() map[string]any {
	return map[string]any{
		"step": p.Step, "started": p.Started.UTC().Format(time.RFC3339Nano),
		"uriWritten": p.URIWritten, "updateSent": p.UpdateSent,
		"state": p.State, "result": p.Result, "message": p.Message,
	}
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
	done     bool
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
	fwWait     fwAction = iota // the device is at work: wait for its next report
	fwWriteURI                 // write the Package URI (again)
	fwExecute                  // execute Update
	fwSucceed                  // Update Result 1: check the version, done
	fwFail                     // the update failed: reason says why
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
		return fwWriteURI, ""
	case fwStepDownload:
		switch state {
		case fwDownloading, fwUpdating:
			return fwWait, ""
		case fwDownloaded:
			return fwExecute, ""
		case fwIdle:
			switch {
			case !p.URIWritten:
				// the write never came through (or its answer was lost and
				// the device stayed idle): writing the same URI is safe
				return fwWriteURI, ""
			case result == fwResultSuccess:
				// a device that updates by itself once downloaded
				return fwSucceed, ""
			case result == fwResultInitial:
				// back to idle without a word, as after a restart in the
				// middle of a download: start it again
				return fwWriteURI, ""
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
	j.lastStep = now
	if !now.Before(j.deadline) {
		return outDone, r.endFirmware(ctx, reg, j, store.OpFailed, r.fwTimeoutReason(j))
	}
	rctx := ctx
	if timeout > 0 {
		rctx = lwm2m.WithRequestTimeout(ctx, timeout)
	}
	state, result, err := r.fwStatus(rctx, reg)
	if err != nil {
		return r.fwRequestFailed(ctx, reg, j, "read state", err)
	}
	j.prog.State, j.prog.Result = state, result
	act, reason := nextFirmwareStep(j.prog, state, result)
	log := r.log.With("endpoint", reg.Endpoint, "reg_id", reg.ID, "operation", j.op.ID)
	log.Debug("firmware update step", "step", j.prog.Step, "state", state, "result", result, "action", act)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	switch act {
	case fwFail:
		return outDone, r.endFirmware(ctx, reg, j, store.OpFailed, reason)
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
	case fwWriteURI:
		// The step is stored before the write, so that a restart after it
		// reads the device's state instead of assuming nothing was sent.
		j.prog.Step, j.prog.URIWritten, j.prog.Message = fwStepDownload, false, "writing the package URI"
		if err := r.saveProgress(sctx, j); err != nil {
			return outDone, err
		}
		rec := node.Record{Path: pathFwURI, Value: node.String(j.fw.URL)}
		if err := r.cfg.Server.Write(rctx, reg.Endpoint, pathFwURI, []node.Record{rec}, true); err != nil {
			return r.fwRequestFailed(ctx, reg, j, "write package URI", err)
		}
		j.prog.URIWritten, j.prog.Message = true, "package URI written; the device downloads"
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
	return outDone, r.endFirmware(ctx, reg, j, store.OpFailed, fmt.Sprintf("firmware update failed at step %s: %s: %s", j.prog.Step, what, FailureReason(err)))
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
	return outDone, r.endFirmware(ctx, reg, j, store.OpSuccessful, result)
}

// endFirmware records the update's outcome (text: the result when
// SUCCESSFUL, the reason when FAILED), ends the observations it made and
// lets the device's other operations go.
func (r *Runner) endFirmware(ctx context.Context, reg lwm2m.Registration, j *fwJob, status, text string) error {
	j.done = true
	r.dropFwJob(deviceKey{j.tenant, j.op.DeviceID}, j)
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
		case !now.Before(j.deadline):
			if err := r.endFirmware(ctx, lwm2m.Registration{}, j, store.OpFailed, r.fwTimeoutReason(j)); err != nil {
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
