package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/coapfront"
	"github.com/lwm2m-agent/lwm2m-agent/agent/psk"
	"github.com/lwm2m-agent/lwm2m-agent/agent/refusal"
)

// Defaults of Config.
const (
	DefaultRequestTimeout   = 30 * time.Second
	DefaultMaxSessions      = 1000
	DefaultMaxMessageSize   = 1152 + 256 // RFC 7252's 1152 for a 1024-byte block, plus room for options
	DefaultIdleTimeout      = 2 * time.Minute
	DefaultBlockwiseTimeout = time.Minute
	DefaultPeerRate         = 20.0
	DefaultPeerBurst        = 40
	DefaultMaxPeers         = 100000
	DefaultHookTimeout      = 10 * time.Second
	// A client retries a failed bootstrap after its Communication Retry
	// Timer, 60 s by default and doubling (Core TS 1.1, section
	// 6.2.1.1): three at once (a reboot, a lost answer, a session that
	// broke off) and one every 30 s beyond is more than it needs, and
	// bounds the sessions a flood of Bootstrap-Requests from forged
	// addresses starts.
	DefaultRequestInterval = 30 * time.Second
	DefaultRequestBurst    = 3
	DefaultEventInterval   = time.Minute
)

// Listener is a DTLS listener as go-coap's DTLS server takes it.
type Listener interface {
	AcceptWithContext(ctx context.Context) (net.Conn, error)
	Close() error
	Addr() net.Addr
}

// Config configures a Server. The zero value of every field but Addr means
// its default.
type Config struct {
	// Addr is the plain CoAP/UDP listen address, e.g. ":5683" or
	// "127.0.0.1:0". Devices in security mode NO_SEC bootstrap here.
	Addr string
	// SecureAddr is the DTLS-PSK listen address (":5684"); empty means no
	// secure port (unless SecureListener is set). Keys is then required.
	SecureAddr string
	// Keys returns the bootstrap key of the PSK identity a device presents
	// (session.Keys(store, store.PSKBootstrap)); an error fails the
	// handshake.
	Keys psk.KeyFunc
	// DTLS bounds handshakes and sessions of the secure port (psk's
	// defaults).
	DTLS psk.Limits
	// SecureListener, when set, is the secure port instead of one bound
	// from SecureAddr, Keys and DTLS: a listener the caller built, such as
	// a *psk.Listener. Identities are read with psk.Identity, so its
	// connections must be psk's or pion's. The Server closes it when
	// Serve returns.
	SecureListener Listener

	// BootstrapURI and SecureBootstrapURI are this server's own URIs as
	// devices reach it (coap://host:5683, coaps://host:5684); they are
	// written into the bootstrap Security instance of devices whose
	// generateBootstrapServerConfig is true, the plain one for NO_SEC
	// devices and the secure one for PSK devices.
	BootstrapURI       string
	SecureBootstrapURI string

	// RequestTimeout bounds each request to a device: Discover, each
	// Delete and Write, and Finish (DefaultRequestTimeout).
	RequestTimeout time.Duration
	// MaxSessions bounds the bootstrap sessions running at once; a
	// Bootstrap-Request beyond it is answered 5.03 Service Unavailable
	// (DefaultMaxSessions).
	MaxSessions int
	// MaxMessageSize is the largest datagram accepted or sent, and bounds
	// a reassembled block-wise answer (DefaultMaxMessageSize).
	MaxMessageSize uint32
	// IdleTimeout closes the CoAP exchange state of a peer that sent
	// nothing for this long (DefaultIdleTimeout). It must exceed
	// RequestTimeout, or a slow device loses its connection mid-session.
	IdleTimeout time.Duration
	// BlockwiseTimeout bounds one block-wise transfer (DefaultBlockwiseTimeout).
	BlockwiseTimeout time.Duration
	// PeerRate and PeerBurst bound the messages one peer address may send:
	// PeerRate per second on average, PeerBurst at once; excess datagrams
	// are dropped before they are parsed further (DefaultPeerRate,
	// DefaultPeerBurst; a negative PeerRate turns the limit off). MaxPeers
	// bounds the table of peers being tracked (DefaultMaxPeers).
	PeerRate  float64
	PeerBurst int
	MaxPeers  int
	// RequestInterval and RequestBurst bound the Bootstrap-Requests for
	// one endpoint over one security context (plain CoAP, or one DTLS
	// identity), whichever addresses they come from: RequestBurst at
	// once, then one per RequestInterval. Excess is answered 4.29 Too
	// Many Requests with Max-Age, the seconds until the next is taken,
	// before any store lookup (DefaultRequestInterval,
	// DefaultRequestBurst; a negative RequestInterval turns the limit
	// off). MaxPeers bounds its table of endpoints too.
	RequestInterval time.Duration
	RequestBurst    int
	// EventInterval coalesces the start and failure events of sessions
	// whose device never answered: of each kind, one per device and
	// interval is stored, the next one counting those held back
	// (DefaultEventInterval; negative: every one). A session the device
	// answered records all its events.
	EventInterval time.Duration
	// HookTimeout bounds each Hooks call: the account lookup while the
	// device waits for its answer, and each event (DefaultHookTimeout).
	HookTimeout time.Duration
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger

	// MaxPendingPeers bounds the plain CoAP peers with state that run no
	// bootstrap session: an address without state gets some only with a
	// Bootstrap-Request, and beyond the bound the least recently active
	// such peer loses its state (coapfront.DefaultMaxPending).
	// PendingIdleTimeout drops the state of such a peer silent this long
	// (coapfront.DefaultPendingIdle).
	MaxPendingPeers    int
	PendingIdleTimeout time.Duration
	// Blockwise bounds the block-wise bodies devices send, over both
	// transports (coapfront's defaults).
	Blockwise coapfront.TransferLimits
	// Refused counts and logs, once per interval and cause, the requests
	// and handshakes refused (nil: neither); the answers on the plain
	// port do not say why.
	Refused *refusal.Log
}

// withDefaults returns cfg with every zero field set to its default, or an
// error naming the first invalid field.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Addr == "" {
		return cfg, errors.New("bootstrap config: addr: empty")
	}
	if cfg.SecureAddr != "" && cfg.SecureListener == nil && cfg.Keys == nil {
		return cfg, errors.New("bootstrap config: keys: nil while secureAddr is set")
	}
	durations := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"requestTimeout", &cfg.RequestTimeout, DefaultRequestTimeout},
		{"idleTimeout", &cfg.IdleTimeout, DefaultIdleTimeout},
		{"blockwiseTimeout", &cfg.BlockwiseTimeout, DefaultBlockwiseTimeout},
		{"hookTimeout", &cfg.HookTimeout, DefaultHookTimeout},
	}
	for _, d := range durations {
		if *d.v == 0 {
			*d.v = d.def
		}
		if *d.v < 0 {
			return cfg, fmt.Errorf("bootstrap config: %s: %v is negative", d.name, *d.v)
		}
	}
	counts := []struct {
		name string
		v    *int
		def  int
	}{
		{"maxSessions", &cfg.MaxSessions, DefaultMaxSessions},
		{"peerBurst", &cfg.PeerBurst, DefaultPeerBurst},
		{"requestBurst", &cfg.RequestBurst, DefaultRequestBurst},
		{"maxPeers", &cfg.MaxPeers, DefaultMaxPeers},
	}
	for _, c := range counts {
		if *c.v == 0 {
			*c.v = c.def
		}
		if *c.v < 0 {
			return cfg, fmt.Errorf("bootstrap config: %s: %d is negative", c.name, *c.v)
		}
	}
	// a negative value turns these off
	if cfg.PeerRate == 0 {
		cfg.PeerRate = DefaultPeerRate
	}
	if cfg.RequestInterval == 0 {
		cfg.RequestInterval = DefaultRequestInterval
	}
	if cfg.EventInterval == 0 {
		cfg.EventInterval = DefaultEventInterval
	}
	if cfg.MaxMessageSize == 0 {
		cfg.MaxMessageSize = DefaultMaxMessageSize
	}
	if cfg.MaxMessageSize < 64 {
		return cfg, fmt.Errorf("bootstrap config: maxMessageSize: %d is below 64", cfg.MaxMessageSize)
	}
	if cfg.MaxPendingPeers < 0 || cfg.PendingIdleTimeout < 0 {
		return cfg, fmt.Errorf("bootstrap config: maxPendingPeers %d, pendingIdleTimeout %v: negative", cfg.MaxPendingPeers, cfg.PendingIdleTimeout)
	}
	var err error
	if cfg.Blockwise, err = cfg.Blockwise.Resolve(cfg.BlockwiseTimeout, cfg.Refused); err != nil {
		return cfg, fmt.Errorf("bootstrap config: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg, nil
}
