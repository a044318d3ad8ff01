package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// schemaReplicas holds the leases (store.Replicas) and indexes the
// PENDING operations by creation time. The embedded store has one agent,
// which holds every lease and watches no other agent's operations; the
// engine keeps the contract all the same, so that the conformance suite
// holds both engines to it.
const schemaReplicas = `CREATE TABLE leases (
		name    TEXT PRIMARY KEY,
		holder  TEXT NOT NULL,
		expires INTEGER NOT NULL -- Unix milliseconds
	) STRICT, WITHOUT ROWID;
	CREATE INDEX operations_pending_created ON operations (creation_time, seq)
		WHERE status = 'PENDING'`

// PendingSince lists the PENDING operations created at or after since,
// with the replica named by their device's live registration.
func (s *Store) PendingSince(ctx context.Context, since time.Time, limit int) ([]store.PendingOperation, error) {
	rows, err := s.db.Query(ctx, `SELECT o.tenant, o.device, o.seq, o.creation_time,
			coalesce(iif(m.fragments ->> '$.lwm2m.registrationId' <> '', m.fragments ->> '$.lwm2m.`+store.ReplicaField+`', ''), '')
		FROM operations o INDEXED BY operations_pending_created
		LEFT JOIN managed_objects m ON m.tenant = o.tenant AND m.id = o.device
		WHERE o.status = 'PENDING' AND o.creation_time >= ?
		ORDER BY o.creation_time, o.seq LIMIT ?`, since.UnixMilli(), sqlLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("pending operations since %v: %w", since, err)
	}
	defer rows.Close()
	var out []store.PendingOperation
	for rows.Next() {
		var (
			op      store.PendingOperation
			seq, ct int64
			replica any
		)
		if err := rows.Scan(&op.Tenant, &op.DeviceID, &seq, &ct, &replica); err != nil {
			return nil, fmt.Errorf("pending operations since %v: %w", since, err)
		}
		op.ID, op.CreationTime = fmt.Sprint(seq), time.UnixMilli(ct).UTC()
		op.Replica, _ = replica.(string)
		out = append(out, op)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pending operations since %v: %w", since, err)
	}
	return out, nil
}

// RegistrationByID reads the live registration id among the live ones
// (the index of LiveRegistrations): the embedded store's one agent holds
// every registration, and asks only for one it does not know.
func (s *Store) RegistrationByID(ctx context.Context, id string) (store.LiveRegistration, error) {
	r, err := scanLive(s.db.QueryRow(ctx, selectLive+` AND o.fragments ->> '$.lwm2m.registrationId' = ?`, id))
	if err := notFound(err, "registration "+id); err != nil {
		return store.LiveRegistration{}, err
	}
	if r.l.Fragment, err = decodeFragments(r.frag); err != nil {
		return store.LiveRegistration{}, fmt.Errorf("live registration of %s: %w", r.l.DeviceID, err)
	}
	return r.l, nil
}

// AcquireLease inserts the lease or takes it over where it expired or is
// holder's, in one statement of the one writer.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (bool, error) {
	if name == "" || holder == "" || ttl <= 0 {
		return false, fmt.Errorf("%w: lease %q for %q, %v", store.ErrInvalid, name, holder, ttl)
	}
	var got string
	err := s.db.Write(ctx, func(tx *Tx) error {
		err := tx.QueryRow(`INSERT INTO leases (name, holder, expires) VALUES (?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires = excluded.expires
				WHERE leases.holder = excluded.holder OR leases.expires <= ?
			RETURNING holder`, name, holder, now.Add(ttl).UnixMilli(), now.UnixMilli()).Scan(&got)
		if errors.Is(err, sql.ErrNoRows) {
			return nil // held by another
		}
		return err
	})
	if err != nil {
		return false, fmt.Errorf("lease %s: %w", name, err)
	}
	return got == holder, nil
}

// ReleaseLease deletes holder's lease.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	err := s.db.Write(ctx, func(tx *Tx) error {
		_, err := tx.Exec("DELETE FROM leases WHERE name = ? AND holder = ?", name, holder)
		return err
	})
	if err != nil {
		return fmt.Errorf("release lease %s: %w", name, err)
	}
	return nil
}
