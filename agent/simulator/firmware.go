package simulator

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	piondtls "github.com/pion/dtls/v3"
	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	"github.com/plgd-dev/go-coap/v3/udp/client"

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

// FirmwareConfig governs a simulated device's firmware update object:
// how it takes a package (Delivery, Protocols), how large a package it
// has room for, and the ways it fails when told to.
type FirmwareConfig struct {
	// MaxSize is the device's flash for a package: a larger one fails
	// with Update Result 2, not enough flash memory (default 16 MiB).
	MaxSize int64
	// Timeout bounds one pull download (default 60s); running out is
	// Update Result 4, connection lost.
	Timeout time.Duration
	// Version, when set, is the version every update installs.
	Version string
	// Client makes the HTTP(S) requests (default: a client without
	// timeout of its own, bounded by Timeout).
	Client *http.Client
	// Protocols are the pull protocols the device supports, reported in
	// /5/0/8: "coap", "coaps", "http", "https" (default all four).
	Protocols []string
	// Delivery is what the device reports in /5/0/9 and takes: "pull"
	// (Package URI only; a write of Package is answered 4.05), "push"
	// (Package only; a Package URI write is answered 4.05) or "both"
	// (default).
	Delivery string
	// RefuseUnsupported answers a Package URI whose scheme the device does
	// not support 4.00 Bad Request; by default the device takes the write
	// and reports Update Result 9, unsupported protocol. Real clients do
	// either.
	RefuseUnsupported bool
	// BlockSize is the largest block the device takes, a power of two from
	// 16 to 1024 (default 1024): a pushed block larger than it is answered
	// 2.31 Continue with this size (RFC 7959 2.3), and a CoAP pull asks
	// for blocks of this size.
	BlockSize int
	// Fail makes every update fail with this Update Result, where a real
	// device finds the failure: 2 not enough flash (at the start of the
	// transfer: a push is answered 4.13), 3 out of RAM and 4 connection
	// lost (half-way through: a push is answered 5.00 or 4.08), 5
	// integrity check failure and 6 unsupported package type (once the
	// package is whole), 7 invalid URI and 9 unsupported protocol (when
	// the Package URI is written), 8 update failed (when Update runs:
	// State back to Downloaded). 0 fails nothing.
	Fail int64
	// StallAfter makes the device go out of reach in the middle of its
	// first push: the first block past this many bytes, and each copy of
	// it, goes unanswered; the device keeps what it had, so the server
	// can resume with that block. 0 never stalls.
	StallAfter int64
	// KeepProgress keeps a transfer under way across a reboot (Reboot, or
	// an Execute of /3/0/4): a push may resume where it was and a pull
	// goes on from the bytes it had. By default a reboot loses it: State
	// 0, Update Result 0, and the next pushed block is answered 4.08.
	KeepProgress bool
	// Cancel gives the object the Cancel resource (/5/0/10) of Firmware
	// Update version 1.2: it ends a transfer or a downloaded package with
	// State 0 and Update Result 10, and is refused 4.05 while updating.
	// Config.Firmware's setting holds for every device.
	Cancel bool
}

// Defaults of FirmwareConfig.
const (
	DefaultFirmwareMaxSize   = 16 << 20
	DefaultFirmwareTimeout   = 60 * time.Second
	DefaultFirmwareBlockSize = 1024
)

// firmwareProtocols are the values of /5/0/8 (Core TS 1.1, E.6) by the
// URI scheme of each.
var firmwareProtocols = map[string]int64{"coap": 0, "coaps": 1, "http": 2, "https": 3}

// firmwareDelivery are the values of /5/0/9.
var firmwareDelivery = map[string]int64{"pull": 0, "push": 1, "both": 2}

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
	if len(c.Protocols) == 0 {
		c.Protocols = []string{"coap", "coaps", "http", "https"}
	}
	if c.Delivery == "" {
		c.Delivery = "both"
	}
	if c.BlockSize == 0 {
		c.BlockSize = DefaultFirmwareBlockSize
	}
	return c
}

// validate reports the first setting that cannot work.
func (c FirmwareConfig) validate() error {
	c = c.withDefaults()
	for _, p := range c.Protocols {
		if _, ok := firmwareProtocols[p]; !ok {
			return fmt.Errorf("firmware protocols: %q is not one of coap, coaps, http, https", p)
		}
	}
	if _, ok := firmwareDelivery[c.Delivery]; !ok {
		return fmt.Errorf("firmware delivery: %q is not pull, push or both", c.Delivery)
	}
	if szx, ok := szxFor(c.BlockSize); !ok || int(szx.Size()) != c.BlockSize {
		return fmt.Errorf("firmware block size: %d is not a power of two from 16 to 1024", c.BlockSize)
	}
	if c.Fail != 0 && (c.Fail < fwResultNoFlash || c.Fail > fwResultUnsupported) {
		return fmt.Errorf("firmware fail: %d is not an Update Result from 2 to 9", c.Fail)
	}
	if c.StallAfter < 0 {
		return fmt.Errorf("firmware stall after: %d is negative", c.StallAfter)
	}
	return nil
}

// supports tells whether the device pulls over scheme.
func (c FirmwareConfig) supports(scheme string) bool {
	return slices.Contains(c.Protocols, scheme)
}

// szxFor is the block size exponent of the largest block size at most
// size, from 16 to 1024 bytes.
func szxFor(size int) (blockwise.SZX, bool) {
	for szx := blockwise.SZX1024; szx >= blockwise.SZX16; szx-- {
		if int(szx.Size()) <= size {
			return szx, true
		}
		if szx == blockwise.SZX16 {
			break
		}
	}
	return 0, false
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
	fwResultNoRAM       = 3
	fwResultConnLost    = 4
	fwResultIntegrity   = 5
	fwResultPackageType = 6
	fwResultInvalidURI  = 7
	fwResultFailed      = 8
	fwResultUnsupported = 9
	fwResultCancelled   = 10
)

// fwStep is how long a simulated update takes before the reboot.
const fwStep = time.Second

var (
	pathFwPackage = node.ResourcePath(objFirmware, 0, resFwPackage)
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

func (d *Device) fwStateLocked() int64 {
	v, _ := d.tree.value(pathFwState, time.Time{})
	return v.Int
}

// fwResourcesLocked gives /5/0/8 and /5/0/9 the values of the device's
// own settings, when it has some (DeviceConfig.Firmware).
func (d *Device) fwResourcesLocked() {
	var recs []node.Record
	for i, p := range d.fw.Protocols {
		recs = append(recs, node.Record{Path: node.ResourceInstancePath(objFirmware, 0, resFwProtocols, uint16(i)), Value: node.Int(firmwareProtocols[p])})
	}
	if _, err := d.tree.write(node.ResourcePath(objFirmware, 0, resFwProtocols), recs, writeCreate); err != nil {
		d.log.Warn("firmware protocols", "err", err)
	}
	d.setLocked(node.ResourcePath(objFirmware, 0, resFwDelivery), node.Int(firmwareDelivery[d.fw.Delivery]))
}

// cancelDownloadLocked voids the transfer under way, pulled or pushed.
func (d *Device) cancelDownloadLocked() {
	d.fwGen++
	if d.fwCancel != nil {
		d.fwCancel()
		d.fwCancel = nil
	}
	d.pull = pullState{}
	d.push = pushState{}
	d.sim.sched.stop(d.fwTimer)
}

// checkFirmwareWriteLocked refuses, before anything changes, a write
// the device's delivery methods do not take: a Package URI on a
// push-only device or with a scheme it refuses (RefuseUnsupported), a
// package on a pull-only device. Resetting either is always allowed.
func (d *Device) checkFirmwareWriteLocked(recs []node.Record) error {
	for _, r := range recs {
		if r.Path.Object != objFirmware || r.Path.Depth < 3 {
			continue
		}
		switch r.Path.Resource {
		case resFwURI:
			if r.Value.Str == "" {
				continue
			}
			if d.fw.Delivery == "push" {
				return refuse(codes.MethodNotAllowed, "this device takes packages by push only (/5/0/9 1)")
			}
			if u, err := url.Parse(r.Value.Str); err == nil && d.fw.RefuseUnsupported && !d.fw.supports(u.Scheme) {
				return refuse(codes.BadRequest, "package uri scheme %q not supported", u.Scheme)
			}
		case resFwPackage:
			if d.fw.Delivery == "pull" && !resetPackage(r.Value.Bytes) {
				return refuse(codes.MethodNotAllowed, "this device takes packages by pull only (/5/0/9 0)")
			}
		}
	}
	return nil
}

// resetPackage tells a Package write that resets the state machine: an
// empty one, or a single null byte.
func resetPackage(b []byte) bool {
	return len(b) == 0 || (len(b) == 1 && b[0] == 0)
}

// startDownloadLocked begins a pull download from uri; an empty URI
// resets the state machine to Idle. It returns the paths it changed.
func (d *Device) startDownloadLocked(uri string) []node.Path {
	d.cancelDownloadLocked()
	if uri == "" {
		return d.fwSetLocked(fwIdle, fwResultInitial)
	}
	name, version := packageOf(uri, d.currentFirmwareLocked(), d.fw.Version)
	changed := d.setLocked(pathFwName, node.String(name))
	changed = append(changed, d.setLocked(pathFwVersion, node.String(version))...)
	u, err := url.Parse(uri)
	switch {
	case err != nil || u.Host == "" || d.fw.Fail == fwResultInvalidURI:
		d.log.Info("firmware download refused: invalid URI", "uri", uri)
		return append(changed, d.fwSetLocked(fwIdle, fwResultInvalidURI)...)
	case !d.fw.supports(u.Scheme) || d.fw.Fail == fwResultUnsupported:
		d.log.Info("firmware download refused: unsupported protocol", "uri", uri, "protocols", d.fw.Protocols)
		return append(changed, d.fwSetLocked(fwIdle, fwResultUnsupported)...)
	}
	changed = append(changed, d.fwSetLocked(fwDownloading, fwResultInitial)...)
	d.pullLocked(uri, 0)
	return changed
}

// pullLocked runs the download of uri from byte offset from in a
// goroutine of its own, bounded by FirmwareConfig.Timeout.
func (d *Device) pullLocked(uri string, from int64) {
	gen := d.fwGen
	d.pull = pullState{uri: uri, got: from}
	ctx := d.sim.runCtx
	if ctx == nil { // not running: nothing can be downloaded
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, d.fw.Timeout)
	d.fwCancel = cancel
	creds, _ := d.accountLocked(false)
	d.sim.wg.Add(1)
	go func() {
		defer d.sim.wg.Done()
		defer cancel()
		sink := &pullSink{d: d, gen: gen, n: from, total: -1, cfg: d.fw}
		result, err := d.download(ctx, uri, creds, sink)
		if err != nil {
			d.log.Info("firmware download failed", "uri", uri, "update_result", result, "err", err)
		} else {
			d.log.Debug("firmware downloaded", "uri", uri, "bytes", sink.n)
		}
		d.downloadDone(gen, result)
	}()
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
	d.pull = pullState{}
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

// pullState is the pull download under way.
type pullState struct {
	uri string
	got int64 // bytes downloaded
}

// pullSink counts what a pull download brings and finds its failures:
// too large for the flash, or a failure FirmwareConfig.Fail injects.
type pullSink struct {
	d     *Device
	gen   uint64
	cfg   FirmwareConfig
	n     int64 // bytes so far, from the start of the package
	total int64 // the package's size, when the server said; else -1
}

// add takes the next bytes; a result other than 0 ends the download.
func (s *pullSink) add(b []byte) (int64, error) {
	s.n += int64(len(b))
	s.d.mu.Lock()
	if s.d.fwGen == s.gen {
		s.d.pull.got = s.n
	}
	s.d.mu.Unlock()
	switch {
	case s.n > s.cfg.MaxSize || s.total > s.cfg.MaxSize || s.cfg.Fail == fwResultNoFlash:
		return fwResultNoFlash, fmt.Errorf("%d bytes and more: no room in the %d there are", max(s.n, s.total), s.cfg.MaxSize)
	case (s.cfg.Fail == fwResultNoRAM || s.cfg.Fail == fwResultConnLost) && (s.total <= 0 || s.n >= s.total/2):
		return s.cfg.Fail, fmt.Errorf("failure injected after %d bytes", s.n)
	}
	return fwResultInitial, nil
}

// end judges the whole package.
func (s *pullSink) end() (int64, error) {
	switch {
	case s.n == 0:
		return fwResultIntegrity, errors.New("empty package")
	case s.total >= 0 && s.n != s.total:
		return fwResultIntegrity, fmt.Errorf("%d bytes of %d", s.n, s.total)
	case s.cfg.Fail == fwResultIntegrity || s.cfg.Fail == fwResultPackageType ||
		s.cfg.Fail == fwResultNoRAM || s.cfg.Fail == fwResultConnLost:
		return s.cfg.Fail, errors.New("failure injected at the end of the download")
	}
	return fwResultInitial, nil
}

// download fetches uri into sink and returns the Update Result it comes
// to: 0 when it succeeded, else the code the specification gives the
// failure (Core TS 1.1, E.6, resource 5). A transfer that broke off (no
// answer, the connection ended, the server busy) is taken up again where
// it stopped, as a device does while its server restarts, until
// pullAttempts tries in a row brought nothing; then it is Update Result
// 4, connection lost. A server that never answered fails it at once.
func (d *Device) download(ctx context.Context, uri string, creds account, sink *pullSink) (int64, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return fwResultInvalidURI, fmt.Errorf("package uri %q: %w", uri, err)
	}
	pause, began := pullRetryPause, false
	for attempt := 1; ; attempt++ {
		from := sink.n
		var result int64
		switch u.Scheme {
		case "coap", "coaps":
			result, err = d.coapDownload(ctx, u, creds, sink)
		default:
			result, err = httpDownload(ctx, sink.cfg.Client, uri, sink)
		}
		var broken *brokenTransfer
		if !errors.As(err, &broken) || ctx.Err() != nil {
			return result, err
		}
		// a server that never answered (refused, unreachable) is a
		// failure at once; one that was serving, or asked to wait, is
		// asked again
		began = began || sink.n > 0
		if !began && broken.retryAfter == 0 {
			return result, err
		}
		if sink.n > from {
			attempt, pause = 1, pullRetryPause
		}
		if attempt >= pullAttempts {
			return fwResultConnLost, fmt.Errorf("%w (%d tries in a row)", err, attempt)
		}
		wait := max(pause, broken.retryAfter)
		pause = min(2*pause, pullMaxPause)
		d.log.Debug("firmware download broke off; taken up again", "uri", uri, "at", sink.n, "in", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fwResultConnLost, fmt.Errorf("%w; then: %w", err, ctx.Err())
		case <-t.C:
		}
	}
}

// Retries of a pull whose transfer broke off: a CoAP block unanswered
// for pullBlockTimeout is given up (the CoAP exchange would wait 93 s),
// and a broken transfer is taken up again after a pause that doubles
// from pullRetryPause to pullMaxPause, or after the Max-Age (Retry-After)
// a busy server asked for.
const (
	pullAttempts     = 8
	pullBlockTimeout = 10 * time.Second
	pullRetryPause   = 250 * time.Millisecond
	pullMaxPause     = 4 * time.Second
)

// brokenTransfer is a download that broke off for a cause outside the
// package: taken up again from where it stopped.
type brokenTransfer struct {
	err        error
	retryAfter time.Duration
}

func (b *brokenTransfer) Error() string { return b.err.Error() }
func (b *brokenTransfer) Unwrap() error { return b.err }

func broken(err error) error { return &brokenTransfer{err: err} }

// httpDownload fetches uri over HTTP(S), from byte sink.n on (a Range
// request) when resuming.
func httpDownload(ctx context.Context, client *http.Client, uri string, sink *pullSink) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return fwResultInvalidURI, fmt.Errorf("package uri %q: %w", uri, err)
	}
	if sink.n > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", sink.n))
	}
	resp, err := client.Do(req)
	if err != nil {
		return fwResultConnLost, broken(fmt.Errorf("download %s: %w", uri, err))
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		// the URI names nothing the device can download
		return fwResultInvalidURI, fmt.Errorf("download %s: HTTP %s", uri, resp.Status)
	case resp.StatusCode == http.StatusOK:
		sink.n = 0 // the whole package, whatever was asked
	case resp.StatusCode == http.StatusServiceUnavailable:
		after, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		return fwResultConnLost, &brokenTransfer{err: fmt.Errorf("download %s: HTTP %s", uri, resp.Status), retryAfter: time.Duration(after) * time.Second}
	case resp.StatusCode != http.StatusPartialContent:
		return fwResultConnLost, fmt.Errorf("download %s: HTTP %s", uri, resp.Status)
	}
	if resp.ContentLength >= 0 {
		sink.total = sink.n + resp.ContentLength
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if result, err := sink.add(buf[:n]); result != fwResultInitial {
				return result, fmt.Errorf("download %s: %w", uri, err)
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fwResultConnLost, broken(fmt.Errorf("download %s: after %d bytes: %w", uri, sink.n, err))
		}
	}
	if result, err := sink.end(); result != fwResultInitial {
		return result, fmt.Errorf("download %s: %w", uri, err)
	}
	return fwResultInitial, nil
}

// coapDownload fetches u with CoAP GETs of one block each (Block2, RFC
// 7959), starting at the block of byte sink.n. Over coaps the device
// opens a DTLS session of its own to the URI's host and port with its
// LwM2M server account's PSK identity and key, as a device does, even
// when they are the LwM2M server's.
func (d *Device) coapDownload(ctx context.Context, u *url.URL, creds account, sink *pullSink) (int64, error) {
	cc, err := d.dialPull(ctx, u, creds)
	if err != nil {
		return fwResultConnLost, broken(fmt.Errorf("download %s: %w", u, err))
	}
	defer func() { _ = cc.Close() }()
	szx, _ := szxFor(sink.cfg.BlockSize)
	for szx > blockwise.SZX16 && sink.n%szx.Size() != 0 {
		szx--
	}
	for {
		num := sink.n / szx.Size()
		// a block is given up when unanswered for pullBlockTimeout or
		// when the connection ends (the server's port closed)
		bctx, cancel := context.WithTimeout(ctx, pullBlockTimeout)
		stop := context.AfterFunc(cc.Context(), cancel)
		req, err := cc.NewGetRequest(bctx, u.EscapedPath())
		if err != nil {
			stop()
			cancel()
			return fwResultInvalidURI, fmt.Errorf("download %s: %w", u, err)
		}
		for _, q := range strings.Split(u.RawQuery, "&") {
			if q != "" {
				req.AddQuery(q)
			}
		}
		opt, _ := blockwise.EncodeBlockOption(szx, num, false)
		req.SetOptionUint32(message.Block2, opt)
		resp, err := cc.Do(req)
		cc.ReleaseMessage(req)
		stop()
		cancel()
		if err != nil {
			return fwResultConnLost, broken(fmt.Errorf("download %s: block %d: %w", u, num, err))
		}
		code := resp.Code()
		maxAge, _ := resp.GetOptionUint32(message.MaxAge)
		body, _ := resp.ReadBody()
		bopt, berr := resp.GetOptionUint32(message.Block2)
		size2, serr := resp.GetOptionUint32(message.Size2)
		cc.ReleaseMessage(resp)
		switch {
		case code == codes.NotFound || code == codes.Forbidden || code == codes.Unauthorized || code == codes.BadRequest:
			return fwResultInvalidURI, fmt.Errorf("download %s: block %d: %v", u, num, code)
		case code == codes.ServiceUnavailable:
			return fwResultConnLost, &brokenTransfer{err: fmt.Errorf("download %s: block %d: %v", u, num, code), retryAfter: time.Duration(maxAge) * time.Second}
		case code != codes.Content:
			return fwResultConnLost, fmt.Errorf("download %s: block %d: %v", u, num, code)
		}
		if serr == nil {
			sink.total = int64(size2)
		}
		more := false
		if berr == nil {
			rszx, rnum, m, err := blockwise.DecodeBlockOption(bopt)
			if err != nil || rnum*rszx.Size() != sink.n {
				return fwResultConnLost, fmt.Errorf("download %s: asked for byte %d, got block %d of %d bytes", u, sink.n, rnum, rszx.Size())
			}
			szx, more = min(szx, rszx), m
		} else if sink.n > 0 {
			return fwResultConnLost, fmt.Errorf("download %s: the server does not answer block-wise", u)
		}
		if result, err := sink.add(body); result != fwResultInitial {
			return result, fmt.Errorf("download %s: %w", u, err)
		}
		if !more {
			break
		}
	}
	if result, err := sink.end(); result != fwResultInitial {
		return result, fmt.Errorf("download %s: %w", u, err)
	}
	return fwResultInitial, nil
}

// dialPull opens the connection of a CoAP pull: plain, or DTLS with the
// device's credentials. go-coap's block-wise layer is off: the device
// asks for each block itself and keeps none of them.
func (d *Device) dialPull(ctx context.Context, u *url.URL, creds account) (*client.Conn, error) {
	host := u.Host
	if u.Port() == "" {
		port := "5683"
		if u.Scheme == "coaps" {
			port = "5684"
		}
		host = net.JoinHostPort(u.Hostname(), port)
	}
	opts := []udp.Option{
		options.WithContext(ctx),
		options.WithBlockwise(false, blockwise.SZX1024, time.Minute),
		options.WithErrors(func(err error) { d.log.Debug("coap pull", "err", err) }),
	}
	if u.Scheme == "coap" {
		dialer := &net.Dialer{}
		if d.sim.cfg.Bind != "" {
			dialer.LocalAddr = &net.UDPAddr{IP: net.ParseIP(d.sim.cfg.Bind)}
		}
		return udp.Dial(host, append(opts, options.WithDialer(dialer))...)
	}
	if !creds.psk {
		return nil, errors.New("coaps needs the device's PSK credentials: it has none")
	}
	raddr, err := net.ResolveUDPAddr("udp", host)
	if err != nil {
		return nil, err
	}
	sock, err := listenUDP(d.sim.cfg.Bind)
	if err != nil {
		return nil, err
	}
	key := creds.key
	dc, err := piondtls.ClientWithOptions(sock, raddr,
		piondtls.WithPSK(func([]byte) ([]byte, error) { return key, nil }),
		piondtls.WithPSKIdentityHint([]byte(creds.identity)),
		piondtls.WithCipherSuites(d.sim.cfg.CipherSuites...),
		piondtls.WithLoggerFactory(quietDTLS),
	)
	if err != nil {
		_ = sock.Close()
		return nil, err
	}
	hctx, cancel := context.WithTimeout(ctx, d.sim.cfg.HandshakeTimeout)
	defer cancel()
	if err := dc.HandshakeContext(hctx); err != nil {
		_ = dc.Close()
		return nil, fmt.Errorf("%w with %s as PSK identity %q: %w", ErrHandshake, host, creds.identity, err)
	}
	return coapdtls.Client(dc, append(opts, options.WithCloseSocket())...), nil
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
	// a version has a dot (2.0, 1.0.1): the per-operation URIs the agent
	// serves end in a base64url token, which has none but may hold '_'
	if i := strings.LastIndexByte(base, '_'); i >= 0 && versionLike(base[i+1:]) {
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

// versionLike tells a version in a file name: a digit first, and a dot.
func versionLike(v string) bool {
	return v != "" && v[0] >= '0' && v[0] <= '9' && strings.Contains(v, ".")
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

// firmwarePackageLocked handles a package written whole, without
// Block1: an empty one or a null byte resets the state machine; another
// is Downloaded at once, unless it is too large or a failure is
// injected. The bytes are not kept. It returns the paths it changed.
func (d *Device) firmwarePackageLocked(pkg []byte) []node.Path {
	d.cancelDownloadLocked()
	d.setLocked(pathFwPackage, node.Opaque(nil))
	if resetPackage(pkg) {
		return d.fwSetLocked(fwIdle, fwResultInitial)
	}
	d.pkgSize, d.pkgSum = int64(len(pkg)), sha256.Sum256(pkg)
	changed := d.pushStartLocked()
	switch {
	case int64(len(pkg)) > d.fw.MaxSize || d.fw.Fail == fwResultNoFlash:
		return append(changed, d.fwSetLocked(fwIdle, fwResultNoFlash)...)
	case d.fw.Fail >= fwResultNoRAM && d.fw.Fail <= fwResultPackageType:
		return append(changed, d.fwSetLocked(fwIdle, d.fw.Fail)...)
	}
	return append(changed, d.fwSetLocked(fwDownloaded, fwResultInitial)...)
}

// pushStartLocked names the package a push brings.
func (d *Device) pushStartLocked() []node.Path {
	changed := d.setLocked(pathFwName, node.String("firmware"))
	version := d.fw.Version
	if version == "" {
		version = nextVersion(d.currentFirmwareLocked())
	}
	changed = append(changed, d.setLocked(pathFwVersion, node.String(version))...)
	return append(changed, d.fwSetLocked(fwDownloading, fwResultInitial)...)
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

// executeCancelLocked is Cancel (/5/0/10, object version 1.2): it ends
// a transfer or forgets a downloaded package, but cannot stop an update.
func (d *Device) executeCancelLocked() ([]node.Path, error) {
	if st := d.fwStateLocked(); st == fwUpdating {
		return nil, refuse(codes.MethodNotAllowed, "the update is under way (state %d)", st)
	}
	d.cancelDownloadLocked()
	return d.fwSetLocked(fwIdle, fwResultCancelled), nil
}

type errUpdateState struct{ state int64 }

func (e errUpdateState) Error() string {
	return fmt.Sprintf("no firmware downloaded (state %d)", e.state)
}

// firmwareStep runs on the scheduler when an update is over: the device
// runs the new firmware (/3/0/3 is the package's version), reports Update
// Result 1 in State Idle, and reboots, which ends its observations and
// registration; it registers again after rebootDelay. An update that
// fails (FirmwareConfig.Fail 8) leaves the package Downloaded with
// Update Result 8, and the device running as it was.
func (d *Device) firmwareStep(now time.Time) {
	d.mu.Lock()
	if d.stopped {
		d.mu.Unlock()
		return
	}
	if st, _ := d.tree.value(pathFwState, now); st.Int != fwUpdating {
		d.mu.Unlock()
		return // reset meanwhile
	}
	if d.fw.Fail == fwResultFailed {
		out := d.changedLocked(d.fwSetLocked(fwDownloaded, fwResultFailed), now)
		d.mu.Unlock()
		d.log.Info("firmware update failed (injected)")
		d.emit(out)
		return
	}
	defer d.mu.Unlock()
	ver, _ := d.tree.value(pathFwVersion, now)
	d.setLocked(pathDevFwVers, ver)
	d.fwSetLocked(fwIdle, fwResultSuccess)
	d.log.Info("firmware updated; rebooting", "version", ver.Str)
	d.sim.sched.after(d.regTimer, rebootDelay)
	d.rebootingLocked()
}

// Reboot restarts the device as an Execute of /3/0/4 does: it forgets
// its observations and registration and registers again after a moment.
// A firmware transfer under way is lost, or kept with
// FirmwareConfig.KeepProgress.
func (d *Device) Reboot() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return
	}
	d.sim.sched.after(d.regTimer, rebootDelay)
	d.rebootingLocked()
}

// firmwareRebootLocked is what a reboot does to a transfer under way:
// lost (Idle, Update Result 0), or kept: a pull goes on from the bytes
// it had, a push may resume at the next block.
func (d *Device) firmwareRebootLocked() {
	if d.fwStateLocked() != fwDownloading {
		return // a downloaded package is in flash; an update runs on
	}
	if !d.fw.KeepProgress {
		d.cancelDownloadLocked()
		d.fwSetLocked(fwIdle, fwResultInitial)
		return
	}
	if p := d.pull; p.uri != "" {
		push := d.push
		d.cancelDownloadLocked()
		d.push = push
		d.pullLocked(p.uri, p.got)
	}
}
