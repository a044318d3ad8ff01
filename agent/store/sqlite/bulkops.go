package sqlite

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// schemaBulkOperations holds the bulk operations (store.BulkOperations)
// and their devices.
//
// A bulk operation's id is its number from the shared counter, the
// rowid. Its devices are rows of bulk_targets by position, so that a
// claim reads one row, not a list of thousands. bulk_operations_due
// holds only the bulk operations with operations left to create, by
// when the next is due: the scheduler's poll reads the few that are,
// never the history. The query names the index's terms as it does, so
// that SQLite proves the partial index usable.
//
// An operation names its bulk operation in its fragments
// (bulkOperationId); operations_bulk, an index on that member over only
// the operations that have it, counts a bulk operation's operations by
// status and lists those in one status, without a column every other
// operation would carry.
const schemaBulkOperations = `CREATE TABLE bulk_operations (
		seq           INTEGER PRIMARY KEY, -- the id, from the shared counter
		tenant        TEXT NOT NULL,
		group_id      TEXT NOT NULL,
		start_date    INTEGER NOT NULL, -- Unix milliseconds
		ramp_ms       INTEGER NOT NULL,
		prototype     TEXT NOT NULL,    -- JSON object
		status        TEXT NOT NULL,
		total         INTEGER NOT NULL,
		position      INTEGER NOT NULL,
		next_at       INTEGER NOT NULL, -- Unix milliseconds
		creation_time INTEGER NOT NULL, -- Unix milliseconds
		last_updated  INTEGER NOT NULL, -- Unix milliseconds
		fragments     TEXT NOT NULL     -- JSON object
	) STRICT;
	CREATE INDEX bulk_operations_tenant ON bulk_operations (tenant);
	CREATE INDEX bulk_operations_due ON bulk_operations (next_at)
		WHERE (status = 'ACTIVE' OR status = 'IN_PROGRESS') AND position < total;
	CREATE TABLE bulk_targets (
		bulk   INTEGER NOT NULL,
		pos    INTEGER NOT NULL,
		device TEXT NOT NULL,
		PRIMARY KEY (bulk, pos)
	) STRICT, WITHOUT ROWID;
	CREATE INDEX operations_bulk ON operations (tenant, json_extract(fragments, '$.bulkOperationId'), status)
		WHERE json_extract(fragments, '$.bulkOperationId') IS NOT NULL`

const (
	bulkColumns = "seq, group_id, start_date, ramp_ms, prototype, status, total, position, next_at, creation_time, last_updated, fragments"
	// sqlBulkOps is the partial index's expression and its condition.
	sqlBulkOps     = "tenant = ? AND json_extract(fragments, '$.bulkOperationId') = ? AND json_extract(fragments, '$.bulkOperationId') IS NOT NULL"
	sqlBulkDue     = "SELECT tenant, " + bulkColumns + " FROM bulk_operations WHERE (status = 'ACTIVE' OR status = 'IN_PROGRESS') AND position < total AND next_at <= ? ORDER BY next_at LIMIT ?"
	sqlBulkCount   = "SELECT status, count(*) FROM operations WHERE " + sqlBulkOps + " GROUP BY status"
	sqlBulkOpIDs   = "SELECT seq FROM operations WHERE " + sqlBulkOps + " AND status = ? ORDER BY seq LIMIT ?"
	sqlBulkClaim   = "UPDATE bulk_operations SET position = position + 1, next_at = ?, status = 'IN_PROGRESS', last_updated = ? WHERE seq = ? AND tenant = ? AND position = ? AND status IN ('ACTIVE', 'IN_PROGRESS') AND position < total"
	sqlBulkTarget  = "SELECT device FROM bulk_targets WHERE bulk = ? AND pos = ?"
	sqlBulkInsert  = "INSERT INTO bulk_operations (seq, tenant, group_id, start_date, ramp_ms, prototype, status, total, position, next_at, creation_time, last_updated, fragments) VALUES (?, ?, ?, ?, ?, ?, 'ACTIVE', ?, 0, ?, ?, ?, ?)"
	sqlBulkTargets = "INSERT INTO bulk_targets (bulk, pos, device) VALUES (?, ?, ?)"
)

func readBulk(row scanner, lead ...any) (store.BulkOperation, error) {
	var (
		b                                    store.BulkOperation
		seq, start, ramp, next, created, upd int64
		proto, doc                           string
	)
	err := row.Scan(append(lead, &seq, &b.GroupID, &start, &ramp, &proto, &b.Status, &b.Total, &b.Position, &next, &created, &upd, &doc)...)
	if err != nil {
		return store.BulkOperation{}, err
	}
	b.ID = strconv.FormatInt(seq, 10)
	b.StartDate, b.NextAt = time.UnixMilli(start).UTC(), time.UnixMilli(next).UTC()
	b.CreationTime, b.LastUpdated = time.UnixMilli(created).UTC(), time.UnixMilli(upd).UTC()
	b.CreationRamp = time.Duration(ramp) * time.Millisecond
	if b.Prototype, err = decodeFragments(proto); err != nil {
		return store.BulkOperation{}, fmt.Errorf("bulk operation %s: prototype: %w", b.ID, err)
	}
	if b.Fragments, err = decodeFragments(doc); err != nil {
		return store.BulkOperation{}, fmt.Errorf("bulk operation %s: %w", b.ID, err)
	}
	return b, nil
}

// CreateBulkOperation stores b, ACTIVE, with its devices.
func (s *Store) CreateBulkOperation(ctx context.Context, tenant string, b store.BulkOperation) (store.BulkOperation, error) {
	if len(b.Targets) == 0 {
		return store.BulkOperation{}, fmt.Errorf("%w: a bulk operation needs devices", store.ErrInvalid)
	}
	if err := checkFragments(b.Prototype); err != nil {
		return store.BulkOperation{}, err
	}
	if err := checkFragments(b.Fragments); err != nil {
		return store.BulkOperation{}, err
	}
	proto, err := marshal("bulk operation prototype", b.Prototype)
	if err != nil {
		return store.BulkOperation{}, err
	}
	if b.Fragments == nil {
		b.Fragments = map[string]any{}
	}
	doc, err := marshal("bulk operation fragments", b.Fragments)
	if err != nil {
		return store.BulkOperation{}, err
	}
	now := nowMilli()
	b.StartDate = b.StartDate.UTC().Truncate(time.Millisecond)
	b.CreationRamp = b.CreationRamp.Truncate(time.Millisecond)
	err = s.db.Write(ctx, func(tx *Tx) error {
		seq, err := nextID(tx)
		if err != nil {
			return err
		}
		_, err = tx.Exec(sqlBulkInsert, seq, tenant, b.GroupID, b.StartDate.UnixMilli(), b.CreationRamp.Milliseconds(), proto,
			len(b.Targets), b.StartDate.UnixMilli(), now.UnixMilli(), now.UnixMilli(), doc)
		if err != nil {
			return err
		}
		for i, d := range b.Targets {
			if _, err := tx.Exec(sqlBulkTargets, seq, i, d); err != nil {
				return err
			}
		}
		b.ID = strconv.FormatInt(seq, 10)
		return nil
	})
	if err != nil {
		return store.BulkOperation{}, fmt.Errorf("create bulk operation: %w", err)
	}
	b.Status, b.Total, b.Position, b.NextAt = store.BulkActive, len(b.Targets), 0, b.StartDate
	b.CreationTime, b.LastUpdated, b.Targets = now, now, nil
	b.Progress = store.BulkProgress{}
	if b.Prototype, err = decodeFragments(proto); err != nil {
		return store.BulkOperation{}, err
	}
	if b.Fragments, err = decodeFragments(doc); err != nil {
		return store.BulkOperation{}, err
	}
	return b, nil
}

// GetBulkOperation returns it with its progress.
func (s *Store) GetBulkOperation(ctx context.Context, tenant, id string) (store.BulkOperation, error) {
	seq, ok := opID(id)
	if !ok {
		return store.BulkOperation{}, fmt.Errorf("bulk operation %s: %w", id, store.ErrNotFound)
	}
	b, err := readBulk(s.db.QueryRow(ctx, "SELECT "+bulkColumns+" FROM bulk_operations WHERE seq = ? AND tenant = ?", seq, tenant))
	if err := notFound(err, "bulk operation "+id); err != nil {
		return store.BulkOperation{}, err
	}
	return b, s.fillProgress(ctx, tenant, &b)
}

func (s *Store) fillProgress(ctx context.Context, tenant string, b *store.BulkOperation) error {
	rows, err := s.db.Query(ctx, sqlBulkCount, tenant, b.ID)
	if err != nil {
		return fmt.Errorf("progress of bulk operation %s: %w", b.ID, err)
	}
	defer rows.Close()
	b.Progress = store.BulkProgress{}
	for rows.Next() {
		var (
			status string
			n      int64
		)
		if err := rows.Scan(&status, &n); err != nil {
			return fmt.Errorf("progress of bulk operation %s: %w", b.ID, err)
		}
		countStatus(&b.Progress, status, n)
	}
	return rows.Err()
}

// countStatus adds n operations in status to p.
func countStatus(p *store.BulkProgress, status string, n int64) {
	switch status {
	case store.OpPending:
		p.Pending += n
	case store.OpExecuting:
		p.Executing += n
	case store.OpSuccessful:
		p.Successful += n
	case store.OpFailed:
		p.Failed += n
	}
}

// ListBulkOperations lists the tenant's bulk operations by id.
func (s *Store) ListBulkOperations(ctx context.Context, tenant string, p store.Page) ([]store.BulkOperation, int64, error) {
	out, total, err := listPage(ctx, s.db, "bulk operations", bulkColumns, "bulk_operations", "tenant = ?", []any{tenant}, "seq", p,
		func(row scanner) (store.BulkOperation, error) { return readBulk(row) })
	if err != nil {
		return nil, 0, err
	}
	for i := range out {
		if err := s.fillProgress(ctx, tenant, &out[i]); err != nil {
			return nil, 0, err
		}
	}
	return out, total, nil
}

// SetBulkStatus cancels or deletes a bulk operation.
func (s *Store) SetBulkStatus(ctx context.Context, tenant, id, status string) (store.BulkOperation, error) {
	if err := store.CheckBulkStop(status); err != nil {
		return store.BulkOperation{}, err
	}
	seq, ok := opID(id)
	if !ok {
		return store.BulkOperation{}, fmt.Errorf("bulk operation %s: %w", id, store.ErrNotFound)
	}
	var b store.BulkOperation
	err := s.db.Write(ctx, func(tx *Tx) error {
		var err error
		b, err = readBulk(tx.QueryRow("UPDATE bulk_operations SET status = ?1, last_updated = ?2 WHERE seq = ?3 AND tenant = ?4 AND status <> 'DELETED' AND (?1 = 'DELETED' OR status <> 'CANCELED') RETURNING "+bulkColumns,
			status, nowMilli().UnixMilli(), seq, tenant))
		if err == nil || !errors.Is(notFound(err, ""), store.ErrNotFound) {
			return err
		}
		var stored string
		if err := notFound(tx.QueryRow("SELECT status FROM bulk_operations WHERE seq = ? AND tenant = ?", seq, tenant).Scan(&stored), "bulk operation "+id); err != nil {
			return err
		}
		return fmt.Errorf("%w: it is %s already", store.ErrInvalid, stored)
	})
	if err != nil {
		return store.BulkOperation{}, fmt.Errorf("set bulk operation %s %s: %w", id, status, err)
	}
	return b, s.fillProgress(ctx, tenant, &b)
}

// DueBulkOperations lists the bulk operations whose next operation is
// due, across tenants.
func (s *Store) DueBulkOperations(ctx context.Context, now time.Time, limit int) ([]store.TenantBulkOperation, error) {
	rows, err := s.db.Query(ctx, sqlBulkDue, now.UnixMilli(), sqlLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("due bulk operations: %w", err)
	}
	out, err := collect(rows, func(row scanner) (store.TenantBulkOperation, error) {
		var t store.TenantBulkOperation
		b, err := readBulk(row, &t.Tenant)
		t.BulkOperation = b
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("due bulk operations: %w", err)
	}
	return out, nil
}

// CreateBulkStep claims the device at b.Position and creates its
// operation, in one change: a claim and its operation are stored
// together or not at all, so that no claim is left without its
// operation. A device deleted since the bulk operation was created is
// passed over: the position moves on, and the zero Operation says so.
func (s *Store) CreateBulkStep(ctx context.Context, tenant string, b store.BulkOperation, next time.Time) (store.Operation, error) {
	seq, ok := opID(b.ID)
	if !ok {
		return store.Operation{}, fmt.Errorf("bulk operation %s: %w", b.ID, store.ErrNotFound)
	}
	op := b.StepOperation("")
	doc, err := encodeOp(&op)
	if err != nil {
		return store.Operation{}, fmt.Errorf("bulk operation %s: %w", b.ID, err)
	}
	now := nowMilli()
	var created bool
	err = s.db.Write(ctx, func(tx *Tx) error {
		created = false
		res, err := tx.Exec(sqlBulkClaim, next.UnixMilli(), now.UnixMilli(), seq, tenant, b.Position)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			if err == nil {
				err = fmt.Errorf("%w: position %d is not the next, or the bulk operation stopped", store.ErrConflict, b.Position)
			}
			return err
		}
		if err := tx.QueryRow(sqlBulkTarget, seq, b.Position).Scan(&op.DeviceID); err != nil {
			return fmt.Errorf("device at %d: %w", b.Position, err)
		}
		var one int
		err = tx.QueryRow("SELECT 1 FROM managed_objects WHERE tenant = ? AND id = ?", tenant, op.DeviceID).Scan(&one)
		if err := notFound(err, "device "+op.DeviceID); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return nil
			}
			return err
		}
		created = true
		return insertOp(tx, tenant, &op, doc, now)
	})
	if err != nil {
		return store.Operation{}, fmt.Errorf("bulk operation %s: create operation %d: %w", b.ID, b.Position, err)
	}
	if !created {
		return store.Operation{}, nil
	}
	return op, nil
}

// BulkOperationIDs lists the ids of the bulk operation's operations in
// status.
func (s *Store) BulkOperationIDs(ctx context.Context, tenant, id, status string, limit int) ([]string, error) {
	rows, err := s.db.Query(ctx, sqlBulkOpIDs, tenant, id, status, sqlLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("operations of bulk operation %s: %w", id, err)
	}
	out, err := collect(rows, func(row scanner) (string, error) {
		var seq int64
		err := row.Scan(&seq)
		return strconv.FormatInt(seq, 10), err
	})
	if err != nil {
		return nil, fmt.Errorf("operations of bulk operation %s: %w", id, err)
	}
	if out == nil {
		out = []string{}
	}
	return out, nil
}
