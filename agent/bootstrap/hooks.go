package bootstrap

import (
	"context"
	"errors"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/coalesce"
)

// Errors of Hooks lookups; the Server maps them to CoAP codes.
var (
	// ErrUnknownEndpoint: no device has this endpoint name or identity.
	// On the plain port every refusal is 4.00 Bad Request without a
	// diagnostic, whatever the error: nobody there has proved who they
	// are.
	ErrUnknownEndpoint = errors.New("no bootstrap account")
	// ErrForbidden: the device exists but may not bootstrap this way, e.g.
	// a PSK device on the plain port or an identity that belongs to another
	// endpoint (4.03 Forbidden on the secure port).
	ErrForbidden = errors.New("bootstrap not allowed")
	// ErrIncomplete: the account lacks what a bootstrap needs, e.g. the
	// LwM2M server URI (4.00 Bad Request).
	ErrIncomplete = errors.New("bootstrap account incomplete")
)

// Account is the bootstrap configuration of one device: who owns it, and
// what to write into it.
type Account struct {
	Tenant   string
	DeviceID string
	Endpoint string
	Params   Params
	// PSKKey is the key the device uses with the LwM2M server (written to
	// its Security instance, never logged); BootstrapPSKKey the key it
	// uses with this server.
	PSKKey          []byte
	BootstrapPSKKey []byte
}

// Hooks connect the Server to where accounts live and where lifecycle
// events go. Lookups run while the device waits for the answer to its
// Bootstrap-Request, so they should be quick; Event runs on the session's
// goroutine, in order for one session.
type Hooks interface {
	// AccountByEndpoint returns the account of the device with this
	// endpoint name (plain port), ErrUnknownEndpoint when there is none.
	AccountByEndpoint(ctx context.Context, endpoint string) (Account, error)
	// AccountByIdentity returns the account of the device that holds this
	// bootstrap PSK identity (secure port), ErrUnknownEndpoint when none.
	AccountByIdentity(ctx context.Context, identity string) (Account, error)
	// Event records a step of a bootstrap session of acct.
	Event(ctx context.Context, acct Account, ev Event)
}

// EventKind says what an Event records.
type EventKind uint8

// The kinds of bootstrap events.
const (
	EventStart   EventKind = iota // the device asked and was accepted
	EventDelete                   // a Bootstrap-Delete succeeded
	EventWrite                    // a Bootstrap-Write succeeded
	EventEnd                      // Bootstrap-Finish succeeded
	EventFailure                  // the session ended without Finish
)

// Event types as API.md names them, and the two this package adds for the
// steps in between.
const (
	TypeStart   = "c8y_LWM2MDeviceBootstrapStart"
	TypeEnd     = "c8y_LWM2MDeviceBootstrapEnd"
	TypeFailure = "c8y_LWM2MDeviceBootstrapFailure"
	TypeWrite   = "c8y_LWM2MDeviceBootstrapWrite"
	TypeDelete  = "c8y_LWM2MDeviceBootstrapDelete"
)

// Type returns the event type of k.
func (k EventKind) Type() string {
	switch k {
	case EventStart:
		return TypeStart
	case EventDelete:
		return TypeDelete
	case EventWrite:
		return TypeWrite
	case EventEnd:
		return TypeEnd
	}
	return TypeFailure
}

// Event is one step of a bootstrap session. Nothing in it carries a key.
type Event struct {
	Kind EventKind
	Time time.Time
	// Text is a sentence for people.
	Text string
	// Step names the operation ("request", "discover", "delete",
	// "write", "finish"); Path its target; Code the device's answer
	// ("2.04", empty after a timeout or a refusal).
	Step string
	Path string
	Code string
	// Reason is why a session failed (EventFailure only).
	Reason string
	// Transport is "coap" or "coaps"; Version the client's LwM2M version
	// as far as known; Format the content format of writes.
	Transport string
	Version   string
	Format    string
	// Held says how many events of this kind were held back before this
	// one (Config.EventInterval); its Text ends saying so.
	Held coalesce.Held
}
