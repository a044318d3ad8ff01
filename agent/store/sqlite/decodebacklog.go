package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// schemaDecodeBacklog holds the raw values waiting for their decoders
// (store.DecodeBacklog): the values, their groups (one per device and
// decoder, whose values are taken in order) and each tenant's count.
//
// A value's seq is its rowid, so that a group's values come in the order
// they were appended from decode_values_group, whose entries end in the
// rowid: taking a group's head is one descent and a short scan. The
// table keeps its rowid because a value carries its bytes, often larger
// than WITHOUT ROWID suits.
//
// A group's row says when the group is due (next_try, which is also the
// order in which due groups are taken: a group served goes behind the
// others) and until when a taker leases it (lease_until; 0 when free).
// decode_groups_due (decoder, next_try) serves the takers' query, the
// groups of one decoder due first; leased groups are due as well and
// are passed over in the row, a handful per taker. Leases live only in
// this file's rows: the one process that opens the file is the only
// taker, so that OpenEngine ends the leases a killed run left.
//
// decode_values_decoder (decoder, queued) serves the expiry, a
// decoder's oldest values first, and the statistics per decoder as a
// covering scan. decode_counts keeps each tenant's number of values,
// changed by the statements that append and remove them, so that the
// tenant's bound costs one read per append rather than a count.
const schemaDecodeBacklog = `CREATE TABLE decode_values (
		seq      INTEGER PRIMARY KEY,
		tenant   TEXT NOT NULL,
		device   TEXT NOT NULL,
		decoder  TEXT NOT NULL,
		endpoint TEXT NOT NULL,
		path     TEXT NOT NULL,
		argument TEXT NOT NULL,
		action   INTEGER NOT NULL, -- a custom action plugin's value
		type     TEXT NOT NULL,
		value    BLOB NOT NULL,
		time     INTEGER NOT NULL, -- Unix milliseconds
		queued   INTEGER NOT NULL, -- Unix milliseconds
		attempts INTEGER NOT NULL
	) STRICT;
	CREATE INDEX decode_values_group ON decode_values (tenant, device, decoder);
	CREATE INDEX decode_values_decoder ON decode_values (decoder, queued);
	CREATE TABLE decode_groups (
		tenant      TEXT NOT NULL,
		device      TEXT NOT NULL,
		decoder     TEXT NOT NULL,
		next_try    INTEGER NOT NULL, -- Unix milliseconds
		lease_until INTEGER NOT NULL, -- Unix milliseconds; 0: not leased
		PRIMARY KEY (tenant, device, decoder)
	) STRICT, WITHOUT ROWID;
	CREATE INDEX decode_groups_due ON decode_groups (decoder, next_try);
	CREATE TABLE decode_counts (
		tenant TEXT PRIMARY KEY,
		n      INTEGER NOT NULL
	) STRICT, WITHOUT ROWID`

var _ store.DecodeBacklog = (*Store)(nil)

const decodeColumns = "seq, tenant, device, endpoint, path, decoder, argument, action, type, value, time, queued, attempts"

func readDecodeValue(row scanner) (store.DecodeValue, error) {
	var (
		v                store.DecodeValue
		at, queued, acts int64
	)
	err := row.Scan(&v.Seq, &v.Tenant, &v.Device, &v.Endpoint, &v.Path, &v.Decoder, &v.Argument, &acts, &v.Type, &v.Value, &at, &queued, &v.Attempts)
	v.Action = acts != 0
	v.Time, v.Queued = time.UnixMilli(at).UTC(), time.UnixMilli(queued).UTC()
	return v, err
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// AppendDecodes appends what the tenant's room allows, in one change.
func (s *Store) AppendDecodes(ctx context.Context, tenant string, vals []store.DecodeValue, bound int) (int, error) {
	now := nowMilli()
	vals, err := store.PrepareDecodeValues(tenant, vals, now)
	if err != nil || len(vals) == 0 {
		return 0, err
	}
	var refused int
	err = s.db.Write(ctx, func(tx *Tx) error {
		var n int64
		if err := tx.QueryRow("SELECT n FROM decode_counts WHERE tenant = ?", tenant).Scan(&n); err != nil && !isNoRows(err) {
			return err
		}
		take := min(len(vals), int(max(int64(bound)-n, 0)))
		refused = len(vals) - take
		if take == 0 {
			return nil
		}
		for _, v := range vals[:take] {
			if _, err := tx.Exec("INSERT INTO decode_values (tenant, device, decoder, endpoint, path, argument, action, type, value, time, queued, attempts) "+
				"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
				tenant, v.Device, v.Decoder, v.Endpoint, v.Path, v.Argument, boolInt(v.Action), v.Type, v.Value,
				v.Time.UnixMilli(), v.Queued.UnixMilli(), v.Attempts); err != nil {
				return err
			}
		}
		for _, g := range store.DecodeGroups(vals[:take]) {
			if _, err := tx.Exec("INSERT INTO decode_groups (tenant, device, decoder, next_try, lease_until) VALUES (?, ?, ?, ?, 0) "+
				"ON CONFLICT DO NOTHING", g.Tenant, g.Device, g.Decoder, now.UnixMilli()); err != nil {
				return err
			}
		}
		_, err := tx.Exec("INSERT INTO decode_counts (tenant, n) VALUES (?, ?) ON CONFLICT (tenant) DO UPDATE SET n = n + excluded.n", tenant, take)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("append %d values to the decode backlog of %s: %w", len(vals), tenant, err)
	}
	return refused, nil
}

func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }

const (
	sqlDueGroups = "SELECT tenant, device FROM decode_groups WHERE decoder = ? AND next_try <= ? AND lease_until <= ? " +
		"ORDER BY next_try LIMIT ?"
	sqlGroupHead = "SELECT " + decodeColumns + " FROM decode_values WHERE tenant = ? AND device = ? AND decoder = ? " +
		"ORDER BY seq LIMIT ?"
	sqlExpired = "SELECT v.seq, v.tenant, v.device, v.endpoint, v.path, v.decoder, v.argument, v.action, v.type, v.value, v.time, v.queued, v.attempts " +
		"FROM decode_values v JOIN decode_groups g ON g.tenant = v.tenant AND g.device = v.device AND g.decoder = v.decoder " +
		"WHERE v.decoder = ? AND v.queued < ? AND g.lease_until <= ? ORDER BY v.queued LIMIT ?"
	sqlLease = "UPDATE decode_groups SET lease_until = ? WHERE tenant = ? AND device = ? AND decoder = ?"
)

// TakeDecodes leases the due groups one by one, in the writer, so that
// no other taker sees them between the read and the lease.
func (s *Store) TakeDecodes(ctx context.Context, decoder string, now time.Time, lease time.Duration, limit int) ([]store.DecodeValue, error) {
	if limit <= 0 {
		return nil, nil
	}
	var out []store.DecodeValue
	err := s.db.Write(ctx, func(tx *Tx) error {
		out = nil
		rows, err := tx.Query(sqlDueGroups, decoder, now.UnixMilli(), now.UnixMilli(), limit)
		if err != nil {
			return err
		}
		groups, err := collect(rows, func(row scanner) (store.DecodeGroup, error) {
			g := store.DecodeGroup{Decoder: decoder}
			return g, row.Scan(&g.Tenant, &g.Device)
		})
		if err != nil {
			return err
		}
		for _, g := range groups {
			if len(out) >= limit {
				break
			}
			rows, err := tx.Query(sqlGroupHead, g.Tenant, g.Device, g.Decoder, limit-len(out))
			if err != nil {
				return err
			}
			vals, err := collect(rows, readDecodeValue)
			if err != nil {
				return err
			}
			if len(vals) == 0 {
				// cannot happen: a group's row goes with its last value
				if _, err := tx.Exec("DELETE FROM decode_groups WHERE tenant = ? AND device = ? AND decoder = ?", g.Tenant, g.Device, g.Decoder); err != nil {
					return err
				}
				continue
			}
			if _, err := tx.Exec(sqlLease, now.Add(lease).UnixMilli(), g.Tenant, g.Device, g.Decoder); err != nil {
				return err
			}
			out = append(out, vals...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("take values of decoder %s: %w", decoder, err)
	}
	return out, nil
}

// TakeExpiredDecodes reads the decoder's oldest values first and leases
// the groups they are of.
func (s *Store) TakeExpiredDecodes(ctx context.Context, decoder string, before, now time.Time, lease time.Duration, limit int) ([]store.DecodeValue, error) {
	if limit <= 0 {
		return nil, nil
	}
	var out []store.DecodeValue
	err := s.db.Write(ctx, func(tx *Tx) error {
		rows, err := tx.Query(sqlExpired, decoder, before.UnixMilli(), now.UnixMilli(), limit)
		if err != nil {
			return err
		}
		if out, err = collect(rows, readDecodeValue); err != nil {
			return err
		}
		for _, g := range store.DecodeGroups(out) {
			if _, err := tx.Exec(sqlLease, now.Add(lease).UnixMilli(), g.Tenant, g.Device, g.Decoder); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("take expired values of decoder %s: %w", decoder, err)
	}
	return out, nil
}

// SettleDecodes removes, counts and reschedules in one change.
func (s *Store) SettleDecodes(ctx context.Context, done, retry []store.DecodeValue, now, next time.Time) error {
	if len(done)+len(retry) == 0 {
		return nil
	}
	err := s.db.Write(ctx, func(tx *Tx) error {
		removed := map[string]int64{}
		for _, v := range done {
			res, err := tx.Exec("DELETE FROM decode_values WHERE seq = ? AND tenant = ?", v.Seq, v.Tenant)
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			removed[v.Tenant] += n
		}
		for tenant, n := range removed {
			if n == 0 {
				continue
			}
			if _, err := tx.Exec("UPDATE decode_counts SET n = n - ? WHERE tenant = ?", n, tenant); err != nil {
				return err
			}
		}
		for _, v := range retry {
			if _, err := tx.Exec("UPDATE decode_values SET attempts = attempts + 1 WHERE seq = ? AND tenant = ?", v.Seq, v.Tenant); err != nil {
				return err
			}
		}
		retried := store.DecodeGroups(retry)
		for _, g := range retried {
			if _, err := tx.Exec("UPDATE decode_groups SET lease_until = 0, next_try = ? WHERE tenant = ? AND device = ? AND decoder = ?",
				next.UnixMilli(), g.Tenant, g.Device, g.Decoder); err != nil {
				return err
			}
		}
		for _, g := range store.DecodeGroups(done) {
			if slices.Contains(retried, g) {
				continue
			}
			var one int
			err := tx.QueryRow("SELECT 1 FROM decode_values WHERE tenant = ? AND device = ? AND decoder = ? LIMIT 1", g.Tenant, g.Device, g.Decoder).Scan(&one)
			switch {
			case isNoRows(err):
				_, err = tx.Exec("DELETE FROM decode_groups WHERE tenant = ? AND device = ? AND decoder = ?", g.Tenant, g.Device, g.Decoder)
			case err == nil:
				_, err = tx.Exec("UPDATE decode_groups SET lease_until = 0, next_try = max(next_try, ?) WHERE tenant = ? AND device = ? AND decoder = ?",
					now.UnixMilli(), g.Tenant, g.Device, g.Decoder)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("settle %d values of the decode backlog: %w", len(done)+len(retry), err)
	}
	return nil
}

// ResumeDecodes brings the waiting groups' next try forward to now.
func (s *Store) ResumeDecodes(ctx context.Context, decoder string, now time.Time) error {
	ms := now.UnixMilli()
	err := s.db.Write(ctx, func(tx *Tx) error {
		var err error
		if decoder == "" {
			_, err = tx.Exec("UPDATE decode_groups SET next_try = ? WHERE next_try > ? AND lease_until <= ?", ms, ms, ms)
		} else {
			_, err = tx.Exec("UPDATE decode_groups SET next_try = ? WHERE decoder = ? AND next_try > ? AND lease_until <= ?", ms, decoder, ms, ms)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("resume the decode backlog of %q: %w", decoder, err)
	}
	return nil
}

// DecodeBacklogStats is one covering scan of decode_values_decoder.
func (s *Store) DecodeBacklogStats(ctx context.Context) ([]store.DecodeBacklogStat, error) {
	rows, err := s.db.Query(ctx, "SELECT decoder, count(*), min(queued) FROM decode_values GROUP BY decoder ORDER BY decoder")
	if err != nil {
		return nil, fmt.Errorf("decode backlog statistics: %w", err)
	}
	out, err := collect(rows, func(row scanner) (store.DecodeBacklogStat, error) {
		var st store.DecodeBacklogStat
		var oldest int64
		err := row.Scan(&st.Decoder, &st.Waiting, &oldest)
		st.Oldest = time.UnixMilli(oldest).UTC()
		return st, err
	})
	if err != nil {
		return nil, fmt.Errorf("decode backlog statistics: %w", err)
	}
	return out, nil
}

// releaseDecodeLeases ends every lease: at open, the leases in the file
// are those of a run that has ended.
func (s *Store) releaseDecodeLeases(ctx context.Context) error {
	return s.db.Write(ctx, func(tx *Tx) error {
		_, err := tx.Exec("UPDATE decode_groups SET lease_until = 0 WHERE lease_until > 0")
		return err
	})
}
