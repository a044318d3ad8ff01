package store

import (
	"fmt"
	"time"
)

// DTLSSession is an established DTLS session as the agent keeps it, so
// that it can park the session while the device is silent and resume it
// later, after a restart or on another replica, without a handshake.
//
// State holds the session's keys. The agent seals it before it reaches
// the store (the store sees opaque bytes) and it never leaves the agent:
// no API answer, log or dump carries it. SeqBound is the nonce
// reservation: every record sent with the session's keys has a sequence
// number below it, so a session resumed from the store starts at
// SeqBound and never reuses a nonce, whatever happened to the process
// that sent before.
type DTLSSession struct {
	// Identity is the PSK identity the device authenticated with; it
	// holds at most one session (a new handshake replaces the old one).
	Identity string
	// Tenant is the tenant of the device that holds the identity.
	Tenant string
	// ID names this session of the identity: new with every handshake,
	// so that a change meant for a session replaced since does nothing.
	ID string
	// LocalCID is the Connection ID the agent gave the device (RFC 9146),
	// which the device's records carry; PeerCID the one the device asked
	// the agent's records to carry. Both are empty without Connection IDs.
	LocalCID, PeerCID []byte
	// Addr is the device's last address, "host:port".
	Addr string
	// State is the sealed session state; secret.
	State []byte
	// SeqBound is the first sequence number not reserved yet.
	SeqBound uint64
	// PeerSeq is the highest sequence number received from the device
	// when the reservation last moved: records at or below it are
	// replays.
	PeerSeq uint64
	// LastActive is when the session last carried a record.
	LastActive time.Time
}

// DTLSSeqMax is the largest DTLS 1.2 record sequence number (48 bits).
const DTLSSeqMax = 1<<48 - 1

// Validate says why the engines refuse d: ErrInvalid without an
// identity, a tenant, an id or a state, or with a sequence number
// beyond 48 bits.
func (d DTLSSession) Validate() error {
	if d.Identity == "" || d.Tenant == "" || d.ID == "" || len(d.State) == 0 {
		return fmt.Errorf("%w: a dtls session needs an identity, a tenant, an id and a state", ErrInvalid)
	}
	if d.SeqBound > DTLSSeqMax || d.PeerSeq > DTLSSeqMax {
		return fmt.Errorf("%w: dtls sequence number beyond 48 bits", ErrInvalid)
	}
	return nil
}
