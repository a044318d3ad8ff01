package psk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/pion/dtls/v3"
)

var sampleState = savedState{suite: uint16(dtls.TLS_PSK_WITH_AES_128_CCM_8), master: bytes.Repeat([]byte{7}, 48),
	localRandom: [32]byte{1}, remoteRandom: [32]byte{2}, identity: "dev-1", localCID: []byte("cid-0001"), peerCID: nil}

func TestUnmarshalState(t *testing.T) {
	good := sampleState.marshal()
	trailing := append(bytes.Clone(good), 0)
	noMaster := savedState{suite: 1, identity: "x"}.marshal()
	version := bytes.Clone(good)
	version[0] = stateVersion + 1
	long := bytes.Clone(good)
	binary.BigEndian.PutUint16(long[67:], 0xffff) // the master secret's length past the end
	for _, tc := range []struct {
		name string
		in   []byte
		ok   bool
	}{
		{"round trip", good, true},
		{"empty", nil, false},
		{"header only", good[:67], false},
		{"other version", version, false},
		{"truncated field", good[:len(good)-1], false},
		{"length past the end", long, false},
		{"trailing byte", trailing, false},
		{"no master secret", noMaster, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := unmarshalState(tc.in)
			if (err == nil) != tc.ok {
				t.Fatalf("unmarshalState: %v, want ok %v", err, tc.ok)
			}
			if tc.ok && !bytes.Equal(s.marshal(), tc.in) {
				t.Fatalf("decoded %+v encodes to %x, want %x", s, s.marshal(), tc.in)
			}
		})
	}
}

// FuzzUnmarshalState checks the decoder of stored session states: no
// input panics it or pion's import of what it accepts, and what it
// accepts encodes back to the same bytes.
func FuzzUnmarshalState(f *testing.F) {
	f.Add(sampleState.marshal())
	withPeer := sampleState
	withPeer.peerCID, withPeer.suite = []byte{9, 9}, uint16(dtls.TLS_PSK_WITH_AES_128_CBC_SHA256)
	f.Add(withPeer.marshal())
	f.Add([]byte{stateVersion})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := unmarshalState(b)
		if err != nil {
			if !errors.Is(err, errBadState) {
				t.Fatalf("error %v is not errBadState", err)
			}
			return
		}
		if !bytes.Equal(s.marshal(), b) {
			t.Fatalf("%x decodes to %+v, which encodes to %x", b, s, s.marshal())
		}
		_, _ = s.toPion(1<<20, 5)
	})
}

// FuzzOpenState checks the opening of sealed states read from the store:
// nothing but what this key sealed for this identity and session opens.
func FuzzOpenState(f *testing.F) {
	seal, err := newSealer(testStateKey)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seal.seal(sampleState.marshal(), "dev-1", "s1"), "dev-1", "s1")
	f.Add([]byte{}, "", "")
	f.Fuzz(func(t *testing.T, sealed []byte, identity, id string) {
		plain, err := seal.open(sealed, identity, id)
		if err != nil {
			return
		}
		if _, err := seal.open(sealed, identity+"x", id); err == nil {
			t.Fatal("a state opened for another identity")
		}
		if _, err := seal.open(sealed, identity, id+"x"); err == nil {
			t.Fatal("a state opened for another session")
		}
		_, _ = unmarshalState(plain)
	})
}

func TestRecordCID(t *testing.T) {
	cidRec := func(cid []byte, epoch uint16, body int) []byte {
		b := []byte{byte(25), 0xfe, 0xfd}
		b = binary.BigEndian.AppendUint16(b, epoch)
		b = append(b, 0, 0, 0, 0, 0, 7)
		b = append(b, cid...)
		return binary.BigEndian.AppendUint16(b, uint16(body))
	}
	withBody := func(h []byte, n int) []byte { return append(h, make([]byte, n)...) }
	plain := withBody([]byte{23, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 3, 0, 4}, 4)
	for _, tc := range []struct {
		name string
		pkt  []byte
		size int
		want string
		ok   bool
	}{
		{"cid record", withBody(cidRec([]byte("ABCDEFGH"), 1, 5), 5), 8, "ABCDEFGH", true},
		{"after a plain record", append(bytes.Clone(plain), withBody(cidRec([]byte("ABCDEFGH"), 1, 2), 2)...), 8, "ABCDEFGH", true},
		{"plain record only", plain, 8, "", false},
		{"truncated body", withBody(cidRec([]byte("ABCDEFGH"), 1, 5), 4), 8, "", false},
		{"shorter than its cid", []byte{25, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 7, 'A'}, 8, "", false},
		{"empty", nil, 8, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := recordCID(tc.pkt, tc.size)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("recordCID = %q %v, want %q %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

// FuzzRecordHeaders checks the parsers of record headers that route a
// datagram before any association has it: the Connection ID lookup, and
// the tests for a ClientHello, an encrypted epoch and a server's last
// flight. No datagram panics them, and a Connection ID found has the
// configured size and lies in the datagram.
func FuzzRecordHeaders(f *testing.F) {
	f.Add([]byte{25, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 7, 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 0, 1, 0}, 8)
	f.Add([]byte{22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 0)
	f.Add([]byte{23, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 3, 0, 4, 1, 2, 3, 4}, 4)
	f.Fuzz(func(t *testing.T, pkt []byte, size int) {
		size = max(0, size%256)
		if cid, ok := recordCID(pkt, size); ok && (len(cid) != size || !bytes.Contains(pkt, []byte(cid))) {
			t.Fatalf("recordCID(%x, %d) = %x", pkt, size, cid)
		}
		_ = startsHello(pkt)
		_ = encrypting(pkt)
		_ = encryptedRecord(pkt)
		_ = continueSeq(pkt, 1)
	})
}
