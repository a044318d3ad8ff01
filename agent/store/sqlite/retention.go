package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// schemaRetention adds the one index that expiring needs and the
// telemetry schema has not: finished operations by their last update.
// It is partial, over SUCCESSFUL and FAILED only, so that the operations
// still to do (the hot rows, changed by every status step) are not in
// it and a step into a final status is its only insert. Measurements
// and events expire by (tenant, time), alarms by (tenant, status, time):
// the indexes their lists use already.
const schemaRetention = `CREATE INDEX operations_finished ON operations (tenant, last_updated)
	WHERE status IN ('SUCCESSFUL', 'FAILED')`

// expireSQL deletes the oldest records of a kind in one tenant (?1)
// older than a time (?2, Unix milliseconds), at most ?3 of them, each
// through the index named: the oldest first, so that a call cut short
// by its limit leaves the next one the same range to go on with.
var expireSQL = map[store.DataKind]string{
	store.DataMeasurement: `DELETE FROM measurements WHERE id IN (SELECT id FROM measurements INDEXED BY measurements_time
		WHERE tenant = ?1 AND time < ?2 ORDER BY time LIMIT ?3)`,
	store.DataEvent: `DELETE FROM events WHERE id IN (SELECT id FROM events INDEXED BY events_time
		WHERE tenant = ?1 AND time < ?2 ORDER BY time LIMIT ?3)`,
	store.DataAlarm: `DELETE FROM alarms WHERE id IN (SELECT id FROM alarms INDEXED BY alarms_status
		WHERE tenant = ?1 AND status = 'CLEARED' AND time < ?2 ORDER BY time LIMIT ?3)`,
	store.DataOperation: `DELETE FROM operations WHERE seq IN (SELECT seq FROM operations INDEXED BY operations_finished
		WHERE tenant = ?1 AND status IN ('SUCCESSFUL', 'FAILED') AND last_updated < ?2 ORDER BY last_updated LIMIT ?3)`,
}

// expireTenants reads, per kind, the tenant after ?1 that has records
// of the kind, from the index Expire reads: one seek each, so that the
// tenants are walked without a scan and without trusting the tenants
// table to name every tenant that has data.
var expireTenants = map[store.DataKind]string{
	store.DataMeasurement: `SELECT tenant FROM measurements INDEXED BY measurements_time WHERE tenant > ? ORDER BY tenant LIMIT 1`,
	store.DataEvent:       `SELECT tenant FROM events INDEXED BY events_time WHERE tenant > ? ORDER BY tenant LIMIT 1`,
	store.DataAlarm:       `SELECT tenant FROM alarms INDEXED BY alarms_status WHERE tenant > ? ORDER BY tenant LIMIT 1`,
	store.DataOperation:   `SELECT tenant FROM operations INDEXED BY operations_finished WHERE tenant > ? AND status IN ('SUCCESSFUL', 'FAILED') ORDER BY tenant LIMIT 1`,
}

// Expire deletes records of kind older than before, tenant by tenant,
// each tenant's in one change, at most limit in all.
func (s *Store) Expire(ctx context.Context, kind store.DataKind, before time.Time, limit int) (int, error) {
	q, ok := expireSQL[kind]
	if !ok {
		return 0, fmt.Errorf("%w: expire: unknown kind of data %q", store.ErrInvalid, kind)
	}
	if limit <= 0 {
		return 0, fmt.Errorf("%w: expire %s: limit %d", store.ErrInvalid, kind, limit)
	}
	deleted, tenant := 0, ""
	for deleted < limit {
		err := s.db.QueryRow(ctx, expireTenants[kind], tenant).Scan(&tenant)
		if errors.Is(err, sql.ErrNoRows) {
			break
		}
		if err != nil {
			return deleted, fmt.Errorf("expire %s: next tenant after %q: %w", kind, tenant, err)
		}
		var n int64
		err = s.db.Write(ctx, func(tx *Tx) error {
			r, err := tx.Exec(q, tenant, before.UnixMilli(), limit-deleted)
			if err != nil {
				return err
			}
			n, err = r.RowsAffected()
			return err
		})
		if err != nil {
			return deleted, fmt.Errorf("expire %s of %s before %s: %w", kind, tenant, before.UTC().Format(time.RFC3339), err)
		}
		deleted += int(n)
	}
	return deleted, nil
}
