package bootstrap

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/pion/dtls/v3"
	coapNet "github.com/plgd-dev/go-coap/v3/net"
)

// Defaults of Config.
const (
	DefaultRequestTimeout   = 30 * time.Second
	DefaultMaxSessions      = 1000
	DefaultMaxMessageSize   = 1152 + 256 // RFC 7252's 1152 for a 1024-byte block, plus room for options
	DefaultIdleTimeout      = 2 * time.Minute
	DefaultBlockwiseTimeout = time.Minute
	DefaultHandshakeTimeout = 15 * time.Second
	DefaultPeerRate         = 20.0
	DefaultPeerBurst        = 40
	DefaultMaxPeers         = 100000
	DefaultHookTimeout      = 10 * time.Second
)

// Config configures a Server. The zero value of every field but Addr means
// its default.
type Config struct {
	// Addr is the plain CoAP/UDP listen address, e.g. ":5683" or
	// "127.0.0.1:0". Devices in security mode NO_SEC bootstrap here.
	Addr string
	// SecureAddr is the CoAP/DTLS listen address (":5684"), used when DTLS
	// is set and SecureListener is not.
	SecureAddr string
	// The secure port is configured by one of SecureListener,
	// DTLSOptions and DTLS, tried in this order; with none of them there
	// is no secure port. The PSK callback must return the bootstrap key of
	// the identity a device presents (StoreHooks.BootstrapKey).
	//
	// SecureListener is a listener the caller built (with its handshake
	// limits); the Server closes it when Serve returns.
	SecureListener *coapNet.DTLSListener
	// DTLSOptions configure a listener on SecureAddr through pion's
	// options API.
	DTLSOptions []dtls.ServerOption
	// DTLS configures a listener on SecureAddr through pion's Config,
	// which pion deprecates in favour of DTLSOptions.
	//lint:ignore SA1019 kept for callers that still build a pion Config
	DTLS *dtls.Config
	// HandshakeTimeout bounds one DTLS handshake (DefaultHandshakeTimeout).
	HandshakeTimeout time.Duration

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
	// HookTimeout bounds each Hooks call: the account lookup while the
	// device waits for its answer, and each event (DefaultHookTimeout).
	HookTimeout time.Duration
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
}

// withDefaults returns cfg with every zero field set to its default, or an
// error naming the first invalid field.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Addr == "" {
		return cfg, errors.New("bootstrap config: addr: empty")
	}
	if (cfg.DTLS != nil || cfg.DTLSOptions != nil) && cfg.SecureListener == nil && cfg.SecureAddr == "" {
		return cfg, errors.New("bootstrap config: secureAddr: empty while dtls is set")
	}
	durations := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"requestTimeout", &cfg.RequestTimeout, DefaultRequestTimeout},
		{"idleTimeout", &cfg.IdleTimeout, DefaultIdleTimeout},
		{"blockwiseTimeout", &cfg.BlockwiseTimeout, DefaultBlockwiseTimeout},
		{"handshakeTimeout", &cfg.HandshakeTimeout, DefaultHandshakeTimeout},
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
	if cfg.MaxSessions == 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	if cfg.MaxSessions < 0 {
		return cfg, fmt.Errorf("bootstrap config: maxSessions: %d is negative", cfg.MaxSessions)
	}
	if cfg.MaxMessageSize == 0 {
		cfg.MaxMessageSize = DefaultMaxMessageSize
	}
	if cfg.MaxMessageSize < 64 {
		return cfg, fmt.Errorf("bootstrap config: maxMessageSize: %d is below 64", cfg.MaxMessageSize)
	}
	if cfg.PeerRate == 0 {
		cfg.PeerRate = DefaultPeerRate
	}
	if cfg.PeerBurst == 0 {
		cfg.PeerBurst = DefaultPeerBurst
	}
	if cfg.PeerBurst < 0 {
		return cfg, fmt.Errorf("bootstrap config: peerBurst: %d is negative", cfg.PeerBurst)
	}
	if cfg.MaxPeers == 0 {
		cfg.MaxPeers = DefaultMaxPeers
	}
	if cfg.MaxPeers < 0 {
		return cfg, fmt.Errorf("bootstrap config: maxPeers: %d is negative", cfg.MaxPeers)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg, nil
}
