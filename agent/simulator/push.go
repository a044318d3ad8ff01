package simulator

import (
	"crypto/sha256"
	"hash"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// A package pushed to /5/0/0 with Block1 (RFC 7959) is taken block by
// block as a constrained device takes it: each block is answered by
// itself (2.31 Continue, at the device's block size when the server's is
// larger), counted against the flash and not kept; a block that is not
// the next one the device expects, as after a reboot lost the transfer,
// is answered 4.08 Request Entity Incomplete. go-coap's own block-wise
// layer would gather the whole package in memory first, so the blocks
// are taken in the device's request monitor, before it.

// pushState is the push under way.
type pushState struct {
	active bool
	got    int64     // bytes received, in order
	sum    hash.Hash // of the bytes received, in order
	size   int64     // the size the server announced (Size1), else -1
	// stallTok is the token of the block the device does not answer
	// (FirmwareConfig.StallAfter).
	stallTok string
	// the last block answered, for its retransmissions
	lastMID   int32
	lastCode  codes.Code
	lastBlock uint32
	hasLast   bool
}

// pushAnswer is the device's answer to one block.
type pushAnswer struct {
	code   codes.Code
	block1 uint32
	hasOpt bool
	size1  int64 // -1 for none
	drop   bool  // no answer at all
}

// receiveBlock handles m if it is a block of a package pushed to /5/0/0,
// answers it on cc and reports true; anything else is left to go-coap.
func (d *Device) receiveBlock(cc *client.Conn, m *pool.Message) bool {
	if c := m.Code(); c != codes.PUT && c != codes.POST {
		return false
	}
	opt, err := m.GetOptionUint32(message.Block1)
	if err != nil {
		return false
	}
	path, _ := m.Path()
	if p, err := node.ParsePath(path); err != nil || p != pathFwPackage {
		return false
	}
	now := time.Now()
	d.mu.Lock()
	if d.stopped {
		d.mu.Unlock()
		return true
	}
	var a pushAnswer
	var out []*outgoing
	if m.Type() == message.Confirmable && d.push.hasLast && d.push.lastMID == m.MessageID() {
		// a retransmission of the block just answered
		a = pushAnswer{code: d.push.lastCode, block1: d.push.lastBlock, hasOpt: true, size1: -1}
	} else {
		var changed []node.Path
		a, changed = d.pushBlockLocked(m, opt)
		out = d.changedLocked(changed, now)
		if !a.drop {
			d.push.lastMID, d.push.lastCode, d.push.lastBlock, d.push.hasLast = m.MessageID(), a.code, a.block1, a.hasOpt
		}
	}
	d.mu.Unlock()
	if a.drop {
		return true
	}
	d.answered(m, now)
	d.sim.stats.requests.Add(1)
	if a.code >= codes.BadRequest {
		d.sim.stats.errors.Add(1)
	}
	respondBlock(cc, m, a)
	d.emit(out)
	return true
}

// pushBlockLocked takes one block and decides its answer; it returns the
// paths it changed.
func (d *Device) pushBlockLocked(m *pool.Message, opt uint32) (pushAnswer, []node.Path) {
	refused := func(c codes.Code) pushAnswer { return pushAnswer{code: c, size1: -1} }
	szx, num, more, err := blockwise.DecodeBlockOption(opt)
	if err != nil || szx > blockwise.SZX1024 {
		return refused(codes.BadRequest), nil
	}
	body, _ := m.ReadBody()
	off := num * szx.Size()
	end := off + int64(len(body))
	if num == 0 && !more && resetPackage(body) {
		d.cancelDownloadLocked()
		return pushAnswer{code: codes.Changed, block1: opt, hasOpt: true, size1: -1}, d.fwSetLocked(fwIdle, fwResultInitial)
	}
	if d.fw.Delivery == "pull" {
		return refused(codes.MethodNotAllowed), nil
	}
	var changed []node.Path
	if num == 0 {
		if d.fwStateLocked() == fwUpdating {
			return refused(codes.MethodNotAllowed), nil
		}
		d.cancelDownloadLocked()
		d.push = pushState{active: true, size: -1, lastMID: -1, sum: sha256.New()}
		if v, err := m.GetOptionUint32(message.Size1); err == nil {
			d.push.size = int64(v)
		}
		changed = d.pushStartLocked()
		d.pushTaken.Starts++
		if d.push.size > d.fw.MaxSize || d.fw.Fail == fwResultNoFlash {
			d.push.active = false
			a := refused(codes.RequestEntityTooLarge)
			a.size1 = d.fw.MaxSize
			return a, append(changed, d.fwSetLocked(fwIdle, fwResultNoFlash)...)
		}
	} else if d.push.active && off < d.push.got && end > off {
		// a block the device took already, sent again by a server that
		// did not get the answer (lost, or the device fell asleep first)
		// and resumes from the last offset it knows: acknowledged again,
		// and only what is new in it written
		if end <= d.push.got {
			d.pushTaken.Repeats++
			return d.pushContinueLocked(szx, off), changed
		}
		body = body[d.push.got-off:]
	} else if !d.push.active || off != d.push.got {
		// not the block that comes next: the device lost the transfer, or
		// never had it
		if d.push.active {
			d.push.active = false
			changed = d.fwSetLocked(fwIdle, fwResultInitial)
		}
		return refused(codes.RequestEntityIncomplete), changed
	}
	tok := string(m.Token())
	if d.push.stallTok == tok || (d.fw.StallAfter > 0 && !d.pushStalled && end > d.fw.StallAfter) {
		d.push.stallTok, d.pushStalled = tok, true
		d.recordLocked(Request{Time: time.Now(), Method: m.Code().String(), Path: pathFwPackage.String(), Wakeup: d.wakeups})
		return pushAnswer{drop: true}, changed
	}
	if end > d.fw.MaxSize {
		d.push.active = false
		a := refused(codes.RequestEntityTooLarge)
		a.size1 = d.fw.MaxSize
		return a, append(changed, d.fwSetLocked(fwIdle, fwResultNoFlash)...)
	}
	if f := d.fw.Fail; (f == fwResultNoRAM || f == fwResultConnLost) && num > 0 && (d.push.size <= 0 || end >= d.push.size/2 || !more) {
		d.push.active = false
		c := codes.RequestEntityIncomplete
		if f == fwResultNoRAM {
			c = codes.InternalServerError
		}
		return refused(c), append(changed, d.fwSetLocked(fwIdle, f)...)
	}
	d.push.got = end
	d.push.sum.Write(body)
	d.pushTaken.Blocks++
	d.pushTaken.Bytes += int64(len(body))
	if more {
		return d.pushContinueLocked(szx, off), changed
	}
	d.push.active = false
	d.pkgSize = end
	d.push.sum.Sum(d.pkgSum[:0])
	result, state := int64(fwResultInitial), int64(fwDownloaded)
	switch f := d.fw.Fail; f {
	case fwResultNoRAM, fwResultConnLost, fwResultIntegrity, fwResultPackageType:
		result, state = f, fwIdle
	}
	return pushAnswer{code: codes.Changed, block1: opt, hasOpt: true, size1: -1}, append(changed, d.fwSetLocked(state, result)...)
}

// pushContinueLocked is the 2.31 Continue to a block of size szx at
// off, at the device's block size when it is smaller (RFC 7959 2.3).
func (d *Device) pushContinueLocked(szx blockwise.SZX, off int64) pushAnswer {
	dev, _ := szxFor(d.fw.BlockSize)
	ack := min(szx, dev)
	block, _ := blockwise.EncodeBlockOption(ack, off/ack.Size(), true)
	return pushAnswer{code: codes.Continue, block1: block, hasOpt: true, size1: -1}
}

// respondBlock sends a, piggybacked on the ACK of a confirmable m.
func respondBlock(cc *client.Conn, m *pool.Message, a pushAnswer) {
	resp := cc.AcquireMessage(cc.Context())
	defer cc.ReleaseMessage(resp)
	if m.Type() == message.Confirmable {
		resp.SetType(message.Acknowledgement)
		resp.SetMessageID(m.MessageID())
	} else {
		resp.SetType(message.NonConfirmable)
		resp.SetMessageID(cc.GetMessageID())
	}
	resp.SetCode(a.code)
	resp.SetToken(m.Token())
	if a.hasOpt {
		resp.SetOptionUint32(message.Block1, a.block1)
	}
	if a.size1 >= 0 {
		resp.SetOptionUint32(message.Size1, uint32(min(a.size1, int64(^uint32(0)))))
	}
	_ = cc.Session().WriteMessage(resp)
}
