package psk

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"log/slog"
	"strconv"
	"sync"
)

// keyring answers the DTLS PSK callback. An identity without a key gets a
// stand-in key instead of an error: pion would answer an error with an
// alert at once, while a wrong key fails silently at the client's
// Finished, when the handshake times out. With a stand-in key both fail
// at that same point, with the same records on the wire, so that a
// handshake does not tell which identities exist.
type keyring struct {
	keys    KeyFunc
	lim     Limits
	log     *slog.Logger
	mu      sync.Mutex
	standIn map[string]*standIn // by identity, while its handshakes run
}

// standIn records why an identity was handed a stand-in key, for the
// handshakes of that identity under way.
type standIn struct {
	n   int
	err error
}

// standInSecret keys the stand-in keys. It is made once per process, so
// that one identity always gets the same stand-in key (a client trying
// twice sees nothing change) and nobody outside can compute it.
var standInSecret = sync.OnceValue(func() []byte {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return b
})

// standInKeySize is the length of a stand-in key: that of the 128-bit
// keys devices commonly hold.
const standInKeySize = 16

func newKeyring(keys KeyFunc, lim Limits, log *slog.Logger) *keyring {
	return &keyring{keys: keys, lim: lim, log: log, standIn: map[string]*standIn{}}
}

// key is the PSK callback: the identity's key, or its stand-in key.
func (k *keyring) key(identity []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), k.lim.KeyTimeout)
	defer cancel()
	key, err := k.keys(ctx, string(identity))
	if err == nil && len(key) > 0 {
		return key, nil
	}
	switch {
	case err == nil:
		err = ErrUnknownIdentity
	case !errors.Is(err, ErrUnknownIdentity):
		// The device cannot connect until the store answers again; the
		// handshake fails as for an unknown identity, not differently.
		k.log.Error("dtls key lookup failed", "psk_identity", quoteIdentity(string(identity)), "err", err)
	}
	k.hold(string(identity), err)
	mac := hmac.New(sha256.New, standInSecret())
	mac.Write(identity)
	return mac.Sum(nil)[:standInKeySize], nil
}

// hold notes that a handshake of identity runs on a stand-in key. The
// table holds at most one entry per handshake slot; past that (pion may
// run a handshake outside the slots when a read starts it) the failure is
// counted as a wrong key.
func (k *keyring) hold(identity string, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	e := k.standIn[identity]
	if e == nil {
		if len(k.standIn) >= 2*k.lim.MaxHandshakes {
			return
		}
		e = &standIn{}
		k.standIn[identity] = e
	}
	e.n++
	e.err = err
}

// release ends one handshake of identity and returns why it ran on a
// stand-in key, nil when it had the identity's own key.
func (k *keyring) release(identity string) error {
	if identity == "" {
		return nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	e := k.standIn[identity]
	if e == nil {
		return nil
	}
	if e.n--; e.n <= 0 {
		delete(k.standIn, identity)
	}
	return e.err
}

// maxLoggedIdentity bounds an identity in logs: identities are not
// secrets, but a client chooses them, up to 64 KiB.
const maxLoggedIdentity = 64

// quoteIdentity is identity as logs show it: quoted, at most
// maxLoggedIdentity bytes of it.
func quoteIdentity(identity string) string {
	if len(identity) > maxLoggedIdentity {
		return strconv.Quote(identity[:maxLoggedIdentity]) + "..."
	}
	return strconv.Quote(identity)
}
