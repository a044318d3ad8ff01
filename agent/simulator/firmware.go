package simulator

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// The firmware update object (5) of a simulated device follows the pull
// method of LwM2M 1.1 (Core TS E.6): a Package URI write starts a real
// HTTP(S) download (State 1 Downloading); when it ends the State is 2
// Downloaded, or 0 Idle with the Update Result saying why it failed.
// Executing Update (only in Downloaded) moves to State 3 Updating; a
// moment later the device "reboots" into the new firmware: /3/0/3 becomes
// the package's version, Update Result 1, State 0, and the device
// registers again. Writing an empty Package URI (or an empty Package)
// resets the state machine. Observers hear of every change.
//
// The package's name and version (/5/0/6 and /5/0/7) come from the file
// name of the URI: what follows its last "_" is the version, what comes
// before the name, and an extension of letters (".bin") is dropped, so
// https://host/fw/sensor_2.1.0.bin brings sensor 2.1.0. A file name
// without "_" is the name, and the version is the current one with its
// last number raised; FirmwareConfig.Version overrides either.

// FirmwareConfig governs the simulated firmware downloads.
type FirmwareConfig struct {
	// MaxSize bounds a downloaded package: a larger one fails with
	// Update Result 2, not enough flash memory (default 16 MiB).
	MaxSize int64
	// Timeout bounds one download (default 60s); running out is Update
	// Result 4, connection lost.
	Timeout time.Duration
	// Version, when set, is the version every update installs.
	Version string
	// Client makes the HTTP(S) requests (default: a client without
	// timeout of its own, bounded by Timeout).
	Client *http.Client
}

// Defaults of FirmwareConfig.
const (
	DefaultFirmwareMaxSize = 16 << 20
	DefaultFirmwareTimeout = 60 * time.Second
)

func (c FirmwareConfig) withDefaults() FirmwareConfig {
	if c.MaxSize <= 0 {
		c.MaxSize = DefaultFirmwareMaxSize
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultFirmwareTimeout
	}
	if c.Client == nil {
		c.Client = &http.Client{}
	}
	return c
}

// Firmware update states and results (object 5).
const (
	fwIdle        = 0
	fwDownloading = 1
	fwDownloaded  = 2
	fwUpdating    = 3

	fwResultInitial     = 0
	fwResultSuccess     = 1
	fwResultNoFlash     = 2
	fwResultConnLost    = 4
	fwResultIntegrity   = 5
	fwResultInvalidURI  = 7
	fwResultUnsupported = 9
)

// fwStep is how long a simulated update takes before the reboot.
const fwStep = time.Second

var (
	pathFwState   = node.ResourcePath(objFirmware, 0, resFwState)
	pathFwResult  = node.ResourcePath(objFirmware, 0, resFwResult)
	pathFwName    = node.ResourcePath(objFirmware, 0, resFwName)
	pathFwVersion = node.ResourcePath(objFirmware, 0, resFwVersion)
	pathDevFwVers = node.ResourcePath(objDevice, 0, resDevFirmwareVers)
)

func (d *Device) fwSetLocked(state, result int64) []node.Path {
	c := d.setLocked(pathFwState, node.Int(state))
	return append(c, d.setLocked(pathFwResult, node.Int(result))...)
}

// cancelDownloadLocked voids the download under way, if any.
func (d *Device) cancelDownloadLocked() {
	d.fwGen++
	if d.fwCancel != nil {
		d.fwCancel()
		d.fwCancel = nil
	}
	d.sim.sched.stop(d.fwTimer)
}

// startDownloadLocked begins a pull download from uri; an empty URI
// resets the state machine to Idle. It returns the paths it changed.
func (d *Device) startDownloadLocked(uri string) []node.Path {
	d.cancelDownloadLocked()
	if uri == "" {
		return d.fwSetLocked(fwIdle, fwResultInitial)
	}
	name, version := packageOf(uri, d.currentFirmwareLocked(), d.sim.cfg.Firmware.Version)
	changed := d.setLocked(pathFwName, node.String(name))
	changed = append(changed, d.setLocked(pathFwVersion, node.String(version))...)
	changed = append(changed, d.fwSetLocked(fwDownloading, fwResultInitial)...)
	gen := d.fwGen
	ctx := d.sim.runCtx
	if ctx == nil { // not running: nothing can be downloaded
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, d.sim.cfg.Firmware.Timeout)
	d.fwCancel = cancel
	d.sim.wg.Add(1)
	go func() {
		defer d.sim.wg.Done()
		defer cancel()
		n, result, err := download(ctx, d.sim.cfg.Firmware, uri)
		if err != nil {
			d.log.Info("firmware download failed", "uri", uri, "update_result", result, "err", err)
		} else {
			d.log.Debug("firmware downloaded", "uri", uri, "bytes", n)
		}
		d.downloadDone(gen, result)
	}()
	return changed
}

// downloadDone moves the state machine on when download gen ended:
// Downloaded, or Idle with the failure's result.
func (d *Device) downloadDone(gen uint64, result int64) {
	now := time.Now()
	d.mu.Lock()
	if d.stopped || gen != d.fwGen {
		d.mu.Unlock()
		return
	}
	d.fwCancel = nil
	var changed []node.Path
	if result == fwResultInitial {
		changed = d.fwSetLocked(fwDownloaded, fwResultInitial)
	} else {
		changed = d.fwSetLocked(fwIdle, result)
	}
	out := d.changedLocked(changed, now)
	d.mu.Unlock()
	d.emit(out)
}

// download fetches uri, at most cfg.MaxSize bytes, and returns its size
// and the Update Result it comes to: 0 when it succeeded, else the code
// the specification gives the failure (Core TS 1.1, E.6, resource 5).
func download(ctx context.Context, cfg FirmwareConfig, uri string) (int64, int64, error) {
	u, err := url.Parse(uri)
	if err != nil || u.Host == "" {
		return 0, fwResultInvalidURI, fmt.Errorf("package uri %q: not a valid URI", uri)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return 0, fwResultUnsupported, fmt.Errorf("package uri %q: scheme %q not supported (http, https)", uri, u.Scheme)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return 0, fwResultInvalidURI, fmt.Errorf("package uri %q: %w", uri, err)
	}
	resp, err := cfg.Client.Do(req)
	if err != nil {
		return 0, fwResultConnLost, fmt.Errorf("download %s: %w", uri, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		// the URI names nothing the device can download
		return 0, fwResultInvalidURI, fmt.Errorf("download %s: HTTP %s", uri, resp.Status)
	case resp.StatusCode != http.StatusOK:
		return 0, fwResultConnLost, fmt.Errorf("download %s: HTTP %s", uri, resp.Status)
	case resp.ContentLength > cfg.MaxSize:
		return 0, fwResultNoFlash, fmt.Errorf("download %s: %d bytes, more than the %d there is room for", uri, resp.ContentLength, cfg.MaxSize)
	}
	n, err := io.Copy(io.Discard, io.LimitReader(resp.Body, cfg.MaxSize+1))
	switch {
	case err != nil:
		return n, fwResultConnLost, fmt.Errorf("download %s: after %d bytes: %w", uri, n, err)
	case n > cfg.MaxSize:
		return n, fwResultNoFlash, fmt.Errorf("download %s: more than the %d bytes there is room for", uri, cfg.MaxSize)
	case n == 0:
		return 0, fwResultIntegrity, fmt.Errorf("download %s: empty package", uri)
	case resp.ContentLength >= 0 && n != resp.ContentLength:
		return n, fwResultIntegrity, fmt.Errorf("download %s: %d bytes of %d", uri, n, resp.ContentLength)
	}
	return n, fwResultInitial, nil
}

// packageOf is the name and version of the package at uri (see the
// comment at the top of this file).
func packageOf(uri, current, fixed string) (name, version string) {
	base := ""
	if u, err := url.Parse(uri); err == nil && u.Path != "" && u.Path != "/" {
		base = path.Base(u.Path)
	}
	if ext := path.Ext(base); ext != "" && strings.ContainsFunc(ext, unicode.IsLetter) {
		base = strings.TrimSuffix(base, ext)
	}
	name = base
	if i := strings.LastIndexByte(base, '_'); i >= 0 {
		name, version = base[:i], base[i+1:]
	}
	if name == "" {
		name = "firmware"
	}
	if fixed != "" {
		version = fixed
	}
	if version == "" {
		version = nextVersion(current)
	}
	return name, version
}

// nextVersion is current with its last number raised.
func nextVersion(current string) string {
	parts := strings.Split(current, ".")
	if n, err := strconv.Atoi(parts[len(parts)-1]); err == nil {
		parts[len(parts)-1] = strconv.Itoa(n + 1)
		return strings.Join(parts, ".")
	}
	return current + ".1"
}

func (d *Device) currentFirmwareLocked() string {
	v, _ := d.tree.value(pathDevFwVers, time.Time{})
	return v.Str
}

// firmwarePackageLocked handles a pushed package: it is downloaded at
// once; an empty one resets the state machine. It returns the paths it
// changed.
func (d *Device) firmwarePackageLocked(nonEmpty bool) []node.Path {
	d.cancelDownloadLocked()
	if !nonEmpty {
		return d.fwSetLocked(fwIdle, fwResultInitial)
	}
	changed := d.setLocked(pathFwName, node.String("firmware"))
	version := d.sim.cfg.Firmware.Version
	if version == "" {
		version = nextVersion(d.currentFirmwareLocked())
	}
	changed = append(changed, d.setLocked(pathFwVersion, node.String(version))...)
	return append(changed, d.fwSetLocked(fwDownloaded, fwResultInitial)...)
}

// executeUpdateLocked is Update (/5/0/2): allowed only with a package
// downloaded.
func (d *Device) executeUpdateLocked(now time.Time) ([]node.Path, error) {
	st, _ := d.tree.value(pathFwState, now)
	if st.Int != fwDownloaded {
		return nil, errUpdateState{state: st.Int}
	}
	changed := d.fwSetLocked(fwUpdating, fwResultInitial)
	d.sim.sched.after(d.fwTimer, fwStep)
	return changed, nil
}

type errUpdateState struct{ state int64 }

func (e errUpdateState) Error() string {
	return fmt.Sprintf("no firmware downloaded (state %d)", e.state)
}

// firmwareStep runs on the scheduler when an update is over: the device
// runs the new firmware (/3/0/3 is the package's version), reports Update
// Result 1 in State Idle, and reboots, which ends its observations and
// registration; it registers again after rebootDelay.
func (d *Device) firmwareStep(now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return
	}
	if st, _ := d.tree.value(pathFwState, now); st.Int != fwUpdating {
		return // reset meanwhile
	}
	ver, _ := d.tree.value(pathFwVersion, now)
	d.setLocked(pathDevFwVers, ver)
	d.fwSetLocked(fwIdle, fwResultSuccess)
	d.log.Info("firmware updated; rebooting", "version", ver.Str)
	d.sim.sched.after(d.regTimer, rebootDelay)
	d.rebootingLocked()
}
