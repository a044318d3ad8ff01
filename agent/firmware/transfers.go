package firmware

import (
	"sync"
	"time"
)

// The reasons a request is refused, as the refusals metric counts them.
const (
	refusedUnknown    = "unknown"     // no such grant: unknown, revoked or expired
	refusedIdentity   = "identity"    // over DTLS by another device, or a coaps grant over plain CoAP
	refusedScheme     = "scheme"      // a grant of another scheme (an http grant asked over CoAP)
	refusedBusy       = "busy"        // every transfer slot taken
	refusedDeviceBusy = "device_busy" // the device has another transfer under way
	refusedBlock      = "block"       // a block past the end
	refusedStore      = "store"       // the store failed
)

// transfers bounds the transfers served: at most max at once, one per
// device. A transfer is a grant whose device asked for a block (or has
// an HTTP request open) within the stall timeout; it ends with its last
// block, with its grant's revocation, or when it stalls.
type transfers struct {
	max   int
	stall time.Duration

	mu       sync.Mutex
	byKey    map[string]*transfer
	byDevice map[string]string // tenant/device → grant key
}

type transfer struct {
	device, op string // tenant/device, tenant/operation
	last       time.Time
	open       int // HTTP requests under way
}

func newTransfers(max int, stall time.Duration) *transfers {
	return &transfers{max: max, stall: stall, byKey: map[string]*transfer{}, byDevice: map[string]string{}}
}

// acquire takes or renews the slot of the grant key for a request; a
// refusal names its reason.
func (t *transfers) acquire(key, device, op string, now time.Time) (ok bool, reason string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if tr := t.byKey[key]; tr != nil {
		tr.last = now
		tr.open++
		return true, ""
	}
	if other, busy := t.byDevice[device]; busy {
		if tr := t.byKey[other]; tr != nil && !t.stalled(tr, now) {
			return false, refusedDeviceBusy
		}
		t.drop(other)
	}
	if len(t.byKey) >= t.max {
		t.expireLocked(now)
		if len(t.byKey) >= t.max {
			return false, refusedBusy
		}
	}
	t.byKey[key] = &transfer{device: device, op: op, last: now, open: 1}
	t.byDevice[device] = key
	return true, ""
}

// release ends a request of the grant key; done says the transfer is
// over (its last block sent), which frees its slot at once.
func (t *transfers) release(key string, done bool, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tr := t.byKey[key]
	if tr == nil {
		return
	}
	tr.open--
	tr.last = now
	if done && tr.open <= 0 {
		t.drop(key)
	}
}

// revoke ends the transfers of an operation.
func (t *transfers) revoke(op string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, tr := range t.byKey {
		if tr.op == op {
			t.drop(k)
		}
	}
}

func (t *transfers) stalled(tr *transfer, now time.Time) bool {
	return tr.open <= 0 && now.Sub(tr.last) >= t.stall
}

// expire frees the slots of stalled transfers and says how many are left.
func (t *transfers) expire(now time.Time) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.expireLocked(now)
	return len(t.byKey)
}

func (t *transfers) expireLocked(now time.Time) {
	for k, tr := range t.byKey {
		if t.stalled(tr, now) {
			t.drop(k)
		}
	}
}

func (t *transfers) drop(key string) {
	if tr := t.byKey[key]; tr != nil && t.byDevice[tr.device] == key {
		delete(t.byDevice, tr.device)
	}
	delete(t.byKey, key)
}

// active counts the transfers under way.
func (t *transfers) active() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.byKey)
}
