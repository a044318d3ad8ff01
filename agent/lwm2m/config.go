package lwm2m

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/coapfront"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/psk"
	"github.com/lwm2m-agent/lwm2m-agent/agent/refusal"
)

// Defaults of Config.
const (
	DefaultRequestTimeout   = 30 * time.Second
	DefaultNStart           = 1
	DefaultMaxMessageSize   = 1152 + 256 // RFC 7252's 1152 for a 1024-byte block, plus room for options
	DefaultMaxRegistrations = 200000
	DefaultExpiryGrace      = 5 * time.Second
	DefaultIdleTimeout      = 2 * time.Minute
	DefaultBlockwiseTimeout = 2 * time.Minute
	DefaultPeerRate         = 100.0
	DefaultPeerBurst        = 200
	// A device registers once per boot or lost registration: a few at
	// once (a reboot loop, a lost answer) and one every 10 s beyond is
	// more than any device needs, and bounds what a flood of Registers
	// naming one endpoint costs.
	DefaultRegisterInterval = 10 * time.Second
	DefaultRegisterBurst    = 5
	// DefaultSessionIdleTimeout keeps a quiet DTLS session for a day: a
	// device in queue mode wakes far less often than every two minutes,
	// and a fresh handshake costs it radio time and battery.
	DefaultSessionIdleTimeout = 24 * time.Hour
)

// Config configures a Server. The zero value of every field means its
// default.
type Config struct {
	Addr           string        // UDP listen address, e.g. ":5783" or "127.0.0.1:0"
	RequestTimeout time.Duration // per request to a device (DefaultRequestTimeout)
	NStart         int           // requests in flight per device (DefaultNStart, RFC 7252 NSTART)
	MaxMessageSize uint32        // largest datagram accepted or sent (DefaultMaxMessageSize)
	Types          node.Resolver // resource types for TLV, text and CBOR; nil decodes everything as opaque
	Logger         *slog.Logger  // nil discards

	// Replica names this agent among the replicas sharing its store; a
	// registration records the replica holding it (Registration.Replica).
	Replica string
	// TakeOver says that other replicas share the store: an Update or
	// De-register of a registration unknown here is looked up there
	// (Adopter) rather than answered 4.04 at once.
	TakeOver bool
	// MaxRegistrations bounds the live registrations; a Register beyond it
	// is answered 5.03 Service Unavailable (DefaultMaxRegistrations).
	MaxRegistrations int
	// ExpiryGrace is added to the lifetime before a registration that was
	// not updated expires, to absorb network delay (DefaultExpiryGrace;
	// negative means none).
	ExpiryGrace time.Duration
	// IdleTimeout closes the CoAP exchange state of a peer that sent
	// nothing for this long; the registration stays, and the next message
	// or request opens new state (DefaultIdleTimeout). It must exceed the
	// time a device may take to answer a request.
	IdleTimeout time.Duration
	// BlockwiseTimeout bounds one block-wise transfer (DefaultBlockwiseTimeout).
	BlockwiseTimeout time.Duration
	// PeerRate and PeerBurst bound the messages one peer address may send:
	// PeerRate per second on average, PeerBurst at once. Excess datagrams
	// are dropped before they are parsed further (DefaultPeerRate,
	// DefaultPeerBurst; a negative PeerRate turns the limit off).
	PeerRate  float64
	PeerBurst int
	// RegisterInterval and RegisterBurst bound the Registers naming one
	// endpoint over one security context (plain CoAP, or one DTLS
	// identity), whichever addresses they come from: RegisterBurst at
	// once, then one per RegisterInterval. Excess is answered 4.29 Too
	// Many Requests with Max-Age, the seconds until the next is taken,
	// before any store lookup (DefaultRegisterInterval,
	// DefaultRegisterBurst; a negative RegisterInterval turns the limit
	// off).
	RegisterInterval time.Duration
	RegisterBurst    int

	// SecureAddr is the DTLS-PSK listen address (e.g. ":5784"); empty
	// means no DTLS port. Keys is then required.
	SecureAddr string
	Keys       psk.KeyFunc
	// DTLS bounds handshakes and sessions (psk's defaults).
	DTLS psk.Limits
	// Sessions parks idle DTLS sessions and keeps their state (psk's
	// SessionConfig); nothing is kept without a Store and a ParkAfter.
	Sessions psk.SessionConfig
	// Refused counts and logs, once per interval and cause, what the
	// server refuses for a limit or for want of credentials (nil: neither).
	Refused *refusal.Log

	// SessionIdleTimeout closes a DTLS session that carried nothing for
	// this long (DefaultSessionIdleTimeout); the device's next message then
	// needs a new handshake. Requests to a device without a session wait
	// for it to connect.
	SessionIdleTimeout time.Duration

	// MaxPendingPeers bounds the plain CoAP peers with state that hold no
	// registration: an address without state gets some only with a
	// Register, an Update or De-register of a live registration or a
	// notification of a live observation, and beyond the bound the least recently active such
	// peer loses its state (coapfront.DefaultMaxPending). Registered
	// devices are outside the bound. PendingIdleTimeout drops the state of
	// such a peer silent this long (coapfront.DefaultPendingIdle).
	MaxPendingPeers    int
	PendingIdleTimeout time.Duration
	// Blockwise bounds the block-wise bodies devices send, over both
	// transports (coapfront's defaults).
	Blockwise coapfront.TransferLimits

	// Packages serves the firmware packages devices pull with a GET of
	// /fw/<token> (packages.go), over both transports; nil answers such
	// a GET 4.04 as any unknown path. PackageWorkers bounds the requests
	// it answers at once (DefaultPackageWorkers).
	Packages       PackageHandler
	PackageWorkers int
	// PushBlockSize is the largest block WritePackage sends, a power of
	// two from 16 to 1024 (DefaultPushBlockSize).
	PushBlockSize int
}

// withDefaults returns cfg with every zero field set to its default, or an
// error naming the first invalid field.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Addr == "" {
		return cfg, errors.New("lwm2m config: addr: empty")
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.RequestTimeout < 0 {
		return cfg, fmt.Errorf("lwm2m config: requestTimeout: %v is negative", cfg.RequestTimeout)
	}
	if cfg.NStart == 0 {
		cfg.NStart = DefaultNStart
	}
	if cfg.NStart < 0 || cfg.NStart > 1024 {
		return cfg, fmt.Errorf("lwm2m config: nStart: %d is not between 1 and 1024", cfg.NStart)
	}
	if cfg.MaxMessageSize == 0 {
		cfg.MaxMessageSize = DefaultMaxMessageSize
	}
	if cfg.MaxMessageSize < 64 {
		return cfg, fmt.Errorf("lwm2m config: maxMessageSize: %d is below 64", cfg.MaxMessageSize)
	}
	if cfg.PeerRate == 0 {
		cfg.PeerRate = DefaultPeerRate
	}
	if cfg.PeerBurst == 0 {
		cfg.PeerBurst = DefaultPeerBurst
	}
	if cfg.PeerBurst < 0 {
		return cfg, fmt.Errorf("lwm2m config: peerBurst: %d is negative", cfg.PeerBurst)
	}
	if cfg.RegisterInterval == 0 {
		cfg.RegisterInterval = DefaultRegisterInterval
	}
	if cfg.RegisterBurst == 0 {
		cfg.RegisterBurst = DefaultRegisterBurst
	}
	if cfg.RegisterBurst < 0 {
		return cfg, fmt.Errorf("lwm2m config: registerBurst: %d is negative", cfg.RegisterBurst)
	}
	if cfg.MaxRegistrations == 0 {
		cfg.MaxRegistrations = DefaultMaxRegistrations
	}
	if cfg.MaxRegistrations < 0 {
		return cfg, fmt.Errorf("lwm2m config: maxRegistrations: %d is negative", cfg.MaxRegistrations)
	}
	switch {
	case cfg.ExpiryGrace == 0:
		cfg.ExpiryGrace = DefaultExpiryGrace
	case cfg.ExpiryGrace < 0:
		cfg.ExpiryGrace = 0
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.IdleTimeout < 0 {
		return cfg, fmt.Errorf("lwm2m config: idleTimeout: %v is negative", cfg.IdleTimeout)
	}
	if cfg.SecureAddr != "" && cfg.Keys == nil {
		return cfg, errors.New("lwm2m config: secureAddr needs keys")
	}
	if cfg.SessionIdleTimeout == 0 {
		cfg.SessionIdleTimeout = DefaultSessionIdleTimeout
	}
	if cfg.SessionIdleTimeout < 0 {
		return cfg, fmt.Errorf("lwm2m config: sessionIdleTimeout: %v is negative", cfg.SessionIdleTimeout)
	}
	if cfg.PackageWorkers == 0 {
		cfg.PackageWorkers = DefaultPackageWorkers
	}
	if cfg.PackageWorkers < 0 {
		return cfg, fmt.Errorf("lwm2m config: packageWorkers: %d is negative", cfg.PackageWorkers)
	}
	if cfg.BlockwiseTimeout == 0 {
		cfg.BlockwiseTimeout = DefaultBlockwiseTimeout
	}
	if cfg.MaxPendingPeers < 0 || cfg.PendingIdleTimeout < 0 {
		return cfg, fmt.Errorf("lwm2m config: maxPendingPeers %d, pendingIdleTimeout %v: negative", cfg.MaxPendingPeers, cfg.PendingIdleTimeout)
	}
	var err error
	if cfg.Blockwise, err = cfg.Blockwise.Resolve(cfg.BlockwiseTimeout, cfg.Refused); err != nil {
		return cfg, fmt.Errorf("lwm2m config: %w", err)
	}
	if cfg.PushBlockSize == 0 {
		cfg.PushBlockSize = DefaultPushBlockSize
	}
	if szx, ok := szxOf(cfg.PushBlockSize, 0); !ok || int(szx.Size()) != cfg.PushBlockSize {
		return cfg, fmt.Errorf("lwm2m config: pushBlockSize: %d is not a power of two from 16 to 1024", cfg.PushBlockSize)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Types == nil {
		cfg.Types = node.ResolverFunc(func(node.Path) (node.Type, bool) { return node.TypeNone, false })
	}
	return cfg, nil
}
