package sqlite

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// schemaDTLSSessions holds the DTLS sessions (store.DTLSSession), one
// per PSK identity, the key. A datagram finds its session by the
// Connection ID it carries or by its address, each through an index; by
// address the one last active wins. Times are Unix milliseconds;
// sequence numbers are 48 bits and fit an INTEGER.
const schemaDTLSSessions = `CREATE TABLE dtls_sessions (
		identity    TEXT PRIMARY KEY,
		tenant      TEXT NOT NULL,
		id          TEXT NOT NULL,
		local_cid   BLOB,
		peer_cid    BLOB,
		addr        TEXT NOT NULL,
		state       BLOB NOT NULL,
		seq_bound   INTEGER NOT NULL,
		peer_seq    INTEGER NOT NULL,
		last_active INTEGER NOT NULL
	) STRICT, WITHOUT ROWID;
	CREATE INDEX dtls_sessions_cid ON dtls_sessions (local_cid) WHERE local_cid IS NOT NULL;
	CREATE INDEX dtls_sessions_addr ON dtls_sessions (addr, last_active)`

const sessionColumns = "identity, tenant, id, local_cid, peer_cid, addr, state, seq_bound, peer_seq, last_active"

func readSession(row scanner) (store.DTLSSession, error) {
	var d store.DTLSSession
	var bound, peer, at int64
	err := row.Scan(&d.Identity, &d.Tenant, &d.ID, &d.LocalCID, &d.PeerCID, &d.Addr, &d.State, &bound, &peer, &at)
	if err := notFound(err, "dtls session"); err != nil {
		return store.DTLSSession{}, err
	}
	d.SeqBound, d.PeerSeq, d.LastActive = uint64(bound), uint64(peer), time.UnixMilli(at).UTC()
	return d, nil
}

// PutDTLSSession stores s as the session of s.Identity.
func (s *Store) PutDTLSSession(ctx context.Context, d store.DTLSSession) error {
	if err := d.Validate(); err != nil {
		return err
	}
	err := s.db.Write(ctx, func(tx *Tx) error {
		_, err := tx.Exec(`INSERT OR REPLACE INTO dtls_sessions (`+sessionColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			d.Identity, d.Tenant, d.ID, blob(d.LocalCID), blob(d.PeerCID), d.Addr, d.State,
			int64(d.SeqBound), int64(d.PeerSeq), d.LastActive.UnixMilli())
		return err
	})
	if err != nil {
		return fmt.Errorf("put dtls session %s: %w", d.ID, err)
	}
	return nil
}

// DTLSSessionByIdentity returns the session of identity.
func (s *Store) DTLSSessionByIdentity(ctx context.Context, identity string) (store.DTLSSession, error) {
	return readSession(s.db.QueryRow(ctx, "SELECT "+sessionColumns+" FROM dtls_sessions WHERE identity = ?", identity))
}

// DTLSSessionByCID returns the session of the Connection ID cid.
func (s *Store) DTLSSessionByCID(ctx context.Context, cid []byte) (store.DTLSSession, error) {
	if len(cid) == 0 {
		return store.DTLSSession{}, fmt.Errorf("dtls session: %w", store.ErrNotFound)
	}
	return readSession(s.db.QueryRow(ctx, "SELECT "+sessionColumns+" FROM dtls_sessions WHERE local_cid = ? ORDER BY last_active DESC LIMIT 1", cid))
}

// DTLSSessionByAddr returns the session last active at addr.
func (s *Store) DTLSSessionByAddr(ctx context.Context, addr string) (store.DTLSSession, error) {
	return readSession(s.db.QueryRow(ctx, "SELECT "+sessionColumns+" FROM dtls_sessions WHERE addr = ? ORDER BY last_active DESC LIMIT 1", addr))
}

// ReserveDTLSSequence moves the bound of session id from from to to.
func (s *Store) ReserveDTLSSequence(ctx context.Context, identity, id string, from, to, peerSeq uint64) error {
	if to <= from || to > store.DTLSSeqMax || peerSeq > store.DTLSSeqMax {
		return fmt.Errorf("%w: reserve dtls sequence %d to %d", store.ErrInvalid, from, to)
	}
	err := s.db.Write(ctx, func(tx *Tx) error {
		var bound int64
		err := tx.QueryRow("SELECT seq_bound FROM dtls_sessions WHERE identity = ? AND id = ?", identity, id).Scan(&bound)
		if err := notFound(err, "dtls session"); err != nil {
			return err
		}
		if uint64(bound) != from {
			return fmt.Errorf("%w: the bound moved to %d", store.ErrConflict, bound)
		}
		_, err = tx.Exec("UPDATE dtls_sessions SET seq_bound = ?, peer_seq = max(peer_seq, ?) WHERE identity = ? AND id = ?",
			int64(to), int64(peerSeq), identity, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("reserve dtls sequence of session %s: %w", id, err)
	}
	return nil
}

// TouchDTLSSession records the address and last activity of session id.
func (s *Store) TouchDTLSSession(ctx context.Context, identity, id, addr string, at time.Time) error {
	err := s.db.Write(ctx, func(tx *Tx) error {
		res, err := tx.Exec("UPDATE dtls_sessions SET addr = ?, last_active = ? WHERE identity = ? AND id = ?", addr, at.UnixMilli(), identity, id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return errors.Join(err, store.ErrNotFound)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("touch dtls session %s: %w", id, err)
	}
	return nil
}

// DeleteDTLSSession removes the tenant's session of identity.
func (s *Store) DeleteDTLSSession(ctx context.Context, tenant, identity string) (bool, error) {
	var n int64
	err := s.db.Write(ctx, func(tx *Tx) error {
		res, err := tx.Exec("DELETE FROM dtls_sessions WHERE tenant = ? AND identity = ?", tenant, identity)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return false, fmt.Errorf("delete dtls session: %w", err)
	}
	return n > 0, nil
}
