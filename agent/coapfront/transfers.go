package coapfront

import (
	"container/list"
	"fmt"
	"sync"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/refusal"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"
)

// Refusal causes of Transfers, and the settings that move their limits.
const (
	CauseBodyTooLarge       = "blockwise_body_too_large"
	CauseTransfersFull      = "blockwise_transfers_full"
	SettingMaxBody          = "blockwise-max-body"
	SettingTransfersPerPeer = "blockwise-max-transfers-per-peer"
	SettingTransfers        = "blockwise-max-transfers"
)

// Defaults of TransferLimits.
const (
	DefaultMaxBody          = 256 << 10
	DefaultTransfersPerPeer = 2
	DefaultTransfers        = 512
)

// TransferLimits bound the block-wise request bodies (Block1, RFC 7959)
// that peers send. Zero fields mean their defaults.
type TransferLimits struct {
	// MaxBody is the largest body; a request announcing more in Size1, or
	// a block reaching past it, is answered 4.13 Request Entity Too Large
	// with the limit in Size1 (RFC 7959 section 2.9.3).
	MaxBody int64
	// PerPeer and Total bound the unfinished transfers of one peer and of
	// all; a new one beyond either is answered 5.03 Service Unavailable.
	PerPeer, Total int
	// Timeout ends a transfer whose next block does not come.
	Timeout time.Duration
	// Refused counts what is refused; nil counts nothing.
	Refused *refusal.Log
}

// Transfers keeps one small entry per unfinished block-wise transfer, to
// refuse bodies over the limit and transfers beyond the bounds before
// go-coap's block-wise layer buffers anything. Check runs in go-coap's
// request monitor, so it sees plain and DTLS peers alike.
type Transfers struct {
	lim TransferLimits

	mu    sync.Mutex
	byKey map[string]*transfer
	peers map[string]int
	lru   list.List // of *transfer, the least recently active at the back
}

type transfer struct {
	key, peer string
	last      time.Time
	elem      *list.Element
}

// Resolve returns lim with the defaults of its zero fields, the transfer
// timeout and the refusal log, or an error naming a negative field.
func (lim TransferLimits) Resolve(timeout time.Duration, refused *refusal.Log) (TransferLimits, error) {
	if lim.MaxBody < 0 || lim.PerPeer < 0 || lim.Total < 0 {
		return lim, fmt.Errorf("blockwise limits: maxBody %d, perPeer %d, total %d: negative", lim.MaxBody, lim.PerPeer, lim.Total)
	}
	if lim.MaxBody == 0 {
		lim.MaxBody = DefaultMaxBody
	}
	if lim.PerPeer == 0 {
		lim.PerPeer = DefaultTransfersPerPeer
	}
	if lim.Total == 0 {
		lim.Total = DefaultTransfers
	}
	lim.Timeout, lim.Refused = timeout, refused
	return lim, nil
}

// NewTransfers returns a table within lim, as Resolve returned it.
func NewTransfers(lim TransferLimits) *Transfers {
	if lim.Timeout <= 0 {
		lim.Timeout = time.Minute
	}
	return &Transfers{lim: lim, byKey: map[string]*transfer{}, peers: map[string]int{}}
}

// Len returns the unfinished transfers.
func (t *Transfers) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.byKey)
}

// Check looks at a message from cc before go-coap does. It reports true
// when it has answered the message itself, which must then be dropped.
func (t *Transfers) Check(cc *udpClient.Conn, m *pool.Message) bool {
	if t == nil {
		return false
	}
	code, typ := m.Code(), m.Type()
	if code < codes.GET || code >= 32 || (typ != message.Confirmable && typ != message.NonConfirmable) {
		return false
	}
	size1, errSize := m.GetOptionUint32(message.Size1)
	tooLarge := errSize == nil && int64(size1) > t.lim.MaxBody
	v, err := m.GetOptionUint32(message.Block1)
	if err != nil {
		if tooLarge {
			t.refuseTooLarge(cc, m, int64(size1))
			return true
		}
		return false
	}
	szx, num, more, err := blockwise.DecodeBlockOption(v)
	if err != nil {
		return false // go-coap answers it
	}
	blockSize := szx.Size()
	if szx == blockwise.SZXBERT {
		blockSize = blockwise.SZX1024.Size()
	}
	end := num * blockSize
	if m.Body() != nil {
		if n, err := m.BodySize(); err == nil {
			end += n
		}
	}
	peer := cc.RemoteAddr().String()
	path, _ := m.Options().Path()
	key := peer + " " + code.String() + " " + path
	if tooLarge || end > t.lim.MaxBody {
		t.end(key)
		t.refuseTooLarge(cc, m, max(int64(size1), end))
		return true
	}
	if !more {
		t.end(key)
		return false
	}
	now := time.Now()
	t.mu.Lock()
	if tr := t.byKey[key]; tr != nil {
		tr.last = now
		t.lru.MoveToFront(tr.elem)
		t.mu.Unlock()
		return false
	}
	if num != 0 {
		// go-coap has no transfer to continue either and answers 4.08
		t.mu.Unlock()
		return false
	}
	t.expireLocked(now)
	if t.peers[peer] >= t.lim.PerPeer || len(t.byKey) >= t.lim.Total {
		setting := SettingTransfers
		if t.peers[peer] >= t.lim.PerPeer {
			setting = SettingTransfersPerPeer
		}
		t.mu.Unlock()
		t.lim.Refused.Refuse(CauseTransfersFull, setting, "peer", peer)
		respond(cc, m, codes.ServiceUnavailable, -1)
		return true
	}
	tr := &transfer{key: key, peer: peer, last: now}
	tr.elem = t.lru.PushFront(tr)
	t.byKey[key] = tr
	t.peers[peer]++
	t.mu.Unlock()
	return false
}

func (t *Transfers) refuseTooLarge(cc *udpClient.Conn, m *pool.Message, size int64) {
	t.lim.Refused.Refuse(CauseBodyTooLarge, SettingMaxBody, "peer", cc.RemoteAddr().String(), "size", size, "max", t.lim.MaxBody)
	respond(cc, m, codes.RequestEntityTooLarge, t.lim.MaxBody)
}

func (t *Transfers) end(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if tr := t.byKey[key]; tr != nil {
		t.removeLocked(tr)
	}
}

func (t *Transfers) removeLocked(tr *transfer) {
	delete(t.byKey, tr.key)
	t.lru.Remove(tr.elem)
	if t.peers[tr.peer] <= 1 {
		delete(t.peers, tr.peer)
	} else {
		t.peers[tr.peer]--
	}
}

// expireLocked drops the transfers whose next block is overdue, the least
// recently active first, so a full table costs no scan.
func (t *Transfers) expireLocked(now time.Time) {
	for e := t.lru.Back(); e != nil; e = t.lru.Back() {
		tr := e.Value.(*transfer)
		if now.Sub(tr.last) < t.lim.Timeout {
			return
		}
		t.removeLocked(tr)
	}
}

// respond sends the response to m with code: piggybacked on the ACK of a
// CON, else as a NON; size1, unless negative, goes in a Size1 option.
func respond(cc *udpClient.Conn, m *pool.Message, code codes.Code, size1 int64) {
	resp := cc.AcquireMessage(cc.Context())
	defer cc.ReleaseMessage(resp)
	if m.Type() == message.Confirmable {
		resp.SetType(message.Acknowledgement)
		resp.SetMessageID(m.MessageID())
	} else {
		resp.SetType(message.NonConfirmable)
		resp.SetMessageID(cc.GetMessageID())
	}
	resp.SetCode(code)
	resp.SetToken(m.Token())
	if size1 >= 0 {
		resp.SetOptionUint32(message.Size1, uint32(min(size1, int64(^uint32(0)))))
	}
	_ = cc.Session().WriteMessage(resp)
}
