package psk

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/pion/dtls/v3"
)

// savedState is what resuming a session needs of it, nothing more: the
// cipher suite, the master secret and both randoms (the keys derive from
// them), the PSK identity and the Connection IDs. Sequence numbers are
// kept beside it (the reservation), not in it. Its encoding is a few
// hundred bytes, against pion's gob snapshot of about a kilobyte.
type savedState struct {
	suite                     uint16
	master                    []byte
	localRandom, remoteRandom [32]byte
	identity                  string
	localCID, peerCID         []byte
}

// fromPion takes what savedState keeps of an established server
// session's state, and the highest sequence number received. It reads
// the fields pion's MarshalBinary would encode (Export, a change to the
// vendored pion, third_party/README.md) rather than the gob encoding
// itself: decoding that compiled gob's types for every session, half of
// the CPU a full handshake cost once its state was kept.
func fromPion(st *dtls.State) (savedState, uint64, error) {
	p, err := st.Export()
	if err != nil {
		return savedState{}, 0, fmt.Errorf("export dtls state: %w", err)
	}
	if p.IsClient || p.LocalEpoch != 1 || p.RemoteEpoch != 1 {
		return savedState{}, 0, fmt.Errorf("export dtls state: not an established server session (epochs %d/%d)", p.LocalEpoch, p.RemoteEpoch)
	}
	// cloned: Export's slices are the live session's own
	return savedState{suite: p.CipherSuiteID, master: bytes.Clone(p.MasterSecret), localRandom: p.LocalRandom, remoteRandom: p.RemoteRandom,
		identity: string(p.IdentityHint), localCID: bytes.Clone(p.LocalConnectionID), peerCID: bytes.Clone(p.RemoteConnectionID)}, p.RemoteSequenceNumber, nil
}

// toPion is the pion state of s that sends its next record with sequence
// number seq and takes records from the peer above peerSeq only.
func (s savedState) toPion(seq, peerSeq uint64) (*dtls.State, error) {
	p := dtls.SerializedState{RemoteSequenceNumber: peerSeq, HandshakeComplete: true, LocalEpoch: 1, RemoteEpoch: 1,
		LocalRandom: s.localRandom, RemoteRandom: s.remoteRandom, CipherSuiteID: s.suite, MasterSecret: bytes.Clone(s.master),
		SequenceNumber: seq, IdentityHint: []byte(s.identity), LocalConnectionID: bytes.Clone(s.localCID), RemoteConnectionID: bytes.Clone(s.peerCID)}
	st := &dtls.State{}
	if err := st.Import(p); err != nil {
		return nil, fmt.Errorf("import dtls state: %w", err)
	}
	return st, nil
}

const stateVersion = 1

// marshal encodes s: a version byte, the suite, the randoms, then the
// master secret, identity and Connection IDs, each behind its length.
func (s savedState) marshal() []byte {
	b := make([]byte, 0, 1+2+64+4*2+len(s.master)+len(s.identity)+len(s.localCID)+len(s.peerCID))
	b = append(b, stateVersion)
	b = binary.BigEndian.AppendUint16(b, s.suite)
	b = append(b, s.localRandom[:]...)
	b = append(b, s.remoteRandom[:]...)
	for _, f := range [][]byte{s.master, []byte(s.identity), s.localCID, s.peerCID} {
		b = binary.BigEndian.AppendUint16(b, uint16(len(f)))
		b = append(b, f...)
	}
	return b
}

var errBadState = errors.New("malformed dtls state")

// unmarshalState decodes what marshal encoded. Its input comes from the
// store, opened by the key that sealed it; it is bounded all the same.
func unmarshalState(b []byte) (savedState, error) {
	var s savedState
	if len(b) < 1+2+64 || b[0] != stateVersion {
		return s, errBadState
	}
	s.suite = binary.BigEndian.Uint16(b[1:])
	copy(s.localRandom[:], b[3:35])
	copy(s.remoteRandom[:], b[35:67])
	b = b[67:]
	var fields [4][]byte
	for i := range fields {
		if len(b) < 2 {
			return s, errBadState
		}
		n := int(binary.BigEndian.Uint16(b))
		if len(b) < 2+n {
			return s, errBadState
		}
		fields[i] = bytes.Clone(b[2 : 2+n])
		b = b[2+n:]
	}
	if len(b) != 0 || len(fields[0]) == 0 {
		return s, errBadState
	}
	s.master, s.identity, s.localCID, s.peerCID = fields[0], string(fields[1]), fields[2], fields[3]
	if len(s.localCID) == 0 {
		s.localCID = nil
	}
	if len(s.peerCID) == 0 {
		s.peerCID = nil
	}
	return s, nil
}

// StateKeySize is the size of the key that seals session states.
const StateKeySize = 32

// sealer encrypts session states before they reach the store (AES-256-GCM,
// a random nonce each time), bound to their identity and session id, so
// that a state moved to another record does not open.
type sealer struct{ aead cipher.AEAD }

func newSealer(key []byte) (*sealer, error) {
	if len(key) != StateKeySize {
		return nil, fmt.Errorf("dtls state key: %d bytes, want %d", len(key), StateKeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("dtls state key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("dtls state key: %w", err)
	}
	return &sealer{aead: aead}, nil
}

func sealAD(identity, id string) []byte {
	return fmt.Appendf(nil, "lwm2m-agent dtls state %d\x00%s\x00%s", stateVersion, id, identity)
}

func (s *sealer) seal(plain []byte, identity, id string) []byte {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	_, _ = rand.Read(nonce)
	return s.aead.Seal(nonce, nonce, plain, sealAD(identity, id))
}

var errUnseal = errors.New("dtls state does not open with this key")

func (s *sealer) open(sealed []byte, identity, id string) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n+s.aead.Overhead() {
		return nil, errUnseal
	}
	plain, err := s.aead.Open(nil, sealed[:n], sealed[n:], sealAD(identity, id))
	if err != nil {
		return nil, errUnseal
	}
	return plain, nil
}
