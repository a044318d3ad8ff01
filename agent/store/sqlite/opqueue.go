package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// A device's queue is its operations PENDING and EXECUTING, read from
// the partial index operations_active: the statuses are literals in the
// SQL so that the index is seen to apply (see schemaOperations). The
// queries are named so that a test checks the index each one uses.
const (
	sqlPending = "SELECT " + opColumns + ` FROM operations
		WHERE tenant = ? AND device = ? AND status = 'PENDING' ORDER BY seq LIMIT ?`
	sqlPendingCount = "SELECT count(*) FROM operations WHERE tenant = ? AND device = ? AND status = 'PENDING'"
	// Every row carries the count; with no row there is no PENDING
	// operation, as a limit of at least one lists one. The outer ORDER
	// BY is what keeps each list in creation order: SQLite may drop the
	// order of a subquery in FROM.
	sqlQueueOf = `SELECT (SELECT count(*) FROM operations WHERE tenant = ?1 AND device = ?2 AND status = 'PENDING'), *
		FROM (SELECT * FROM (SELECT ` + opColumns + ` FROM operations
				WHERE tenant = ?1 AND device = ?2 AND status = 'PENDING' ORDER BY seq LIMIT ?3)
			UNION ALL
			SELECT * FROM (SELECT ` + opColumns + ` FROM operations
				WHERE tenant = ?1 AND device = ?2 AND status = 'EXECUTING'))
		ORDER BY status = 'EXECUTING', seq`
	sqlQueuedFirst = `SELECT DISTINCT tenant, device FROM operations WHERE status = 'PENDING'
		ORDER BY tenant, device LIMIT ?`
	sqlQueuedAfter = `SELECT DISTINCT tenant, device FROM operations WHERE status = 'PENDING' AND (tenant, device) > (?, ?)
		ORDER BY tenant, device LIMIT ?`
	// The index is named: without statistics SQLite would rather scan
	// the table in seq order than sort the few EXECUTING.
	sqlExecuting = "SELECT tenant, " + opColumns + ` FROM operations INDEXED BY operations_executing
		WHERE status = 'EXECUTING' ORDER BY seq LIMIT ?`
	sqlExecutingBefore = "SELECT tenant, " + opColumns + ` FROM operations
		WHERE status = 'EXECUTING' AND last_updated < ? ORDER BY last_updated, seq LIMIT ?`
	// The status is no index term (+status), so that SQLite walks the
	// device's index rather than the tenant's operations in each final
	// status.
	sqlRecent = "SELECT " + opColumns + ` FROM operations
		WHERE tenant = ? AND device = ? AND +status IN ('SUCCESSFUL', 'FAILED') ORDER BY seq DESC LIMIT ?`
)

// sqlLimit is a limit of the contract (all when <= 0) as SQLite's LIMIT.
func sqlLimit(limit int) int {
	if limit <= 0 {
		return -1
	}
	return limit
}

// Pending returns up to limit (all if limit <= 0) PENDING operations of
// a device, oldest first; nil if it has none.
func (s *Store) Pending(ctx context.Context, tenant, deviceID string, limit int) ([]store.Operation, error) {
	rows, err := s.db.Query(ctx, sqlPending, tenant, deviceID, sqlLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("pending operations of %s: %w", deviceID, err)
	}
	ops, err := collect(rows, readOp)
	if err != nil {
		return nil, fmt.Errorf("pending operations of %s: %w", deviceID, err)
	}
	return ops, nil
}

// PendingCount returns how many operations of a device are PENDING.
func (s *Store) PendingCount(ctx context.Context, tenant, deviceID string) (int, error) {
	var n int
	err := s.db.QueryRow(ctx, sqlPendingCount, tenant, deviceID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count pending operations of %s: %w", deviceID, err)
	}
	return n, nil
}

// QueueOf reads a device's queue: how many operations are PENDING, up
// to limit of them (all if limit <= 0) and those EXECUTING, each list
// oldest first. It is one statement, so that the count and the lists
// are of one moment.
func (s *Store) QueueOf(ctx context.Context, tenant, deviceID string, limit int) (store.DeviceQueue, error) {
	rows, err := s.db.Query(ctx, sqlQueueOf, tenant, deviceID, sqlLimit(limit))
	if err != nil {
		return store.DeviceQueue{}, fmt.Errorf("read operation queue of %s: %w", deviceID, err)
	}
	var q store.DeviceQueue
	ops, err := collect(rows, func(row scanner) (store.Operation, error) { return scanOp(row, &q.PendingCount) })
	if err != nil {
		return store.DeviceQueue{}, fmt.Errorf("read operation queue of %s: %w", deviceID, err)
	}
	for _, op := range ops {
		if op.Status == store.OpPending {
			q.Pending = append(q.Pending, op)
		} else {
			q.Executing = append(q.Executing, op)
		}
	}
	return q, nil
}

// queuedPage bounds the devices QueuedDevices reads at a time: it reads
// a page, closes it, then calls fn for each, so that fn may read the
// store (and the pool has its connection back) while it runs.
const queuedPage = 1000

// QueuedDevices calls fn for every device that has PENDING operations,
// once each, by tenant and device; an error of fn stops it and is
// returned.
func (s *Store) QueuedDevices(ctx context.Context, fn func(tenant, deviceID string) error) error {
	type dev struct{ tenant, id string }
	var after *dev
	for {
		query, args := sqlQueuedFirst, []any{queuedPage}
		if after != nil {
			query, args = sqlQueuedAfter, []any{after.tenant, after.id, queuedPage}
		}
		rows, err := s.db.Query(ctx, query, args...)
		if err != nil {
			return fmt.Errorf("queued devices: %w", err)
		}
		page, err := collect(rows, func(row scanner) (dev, error) {
			var d dev
			return d, row.Scan(&d.tenant, &d.id)
		})
		if err != nil {
			return fmt.Errorf("queued devices: %w", err)
		}
		for _, d := range page {
			if err := fn(d.tenant, d.id); err != nil {
				return err
			}
		}
		if len(page) < queuedPage {
			return nil
		}
		after = &page[len(page)-1]
	}
}

// Executing returns up to limit (all if limit <= 0) operations of every
// tenant that are EXECUTING, in creation order: for the start, which
// settles those the previous run left. The sort is over the index of
// those EXECUTING, a few per device at the most.
func (s *Store) Executing(ctx context.Context, limit int) ([]store.TenantOperation, error) {
	rows, err := s.db.Query(ctx, sqlExecuting, sqlLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("executing operations: %w", err)
	}
	ops, err := collect(rows, readTenantOp)
	if err != nil {
		return nil, fmt.Errorf("executing operations: %w", err)
	}
	if ops == nil {
		ops = []store.TenantOperation{}
	}
	return ops, nil
}

// ExecutingBefore returns up to limit (all if limit <= 0) operations that
// have been EXECUTING since before t (by their lastUpdated), those
// waiting longest first, so that a watchdog with a limit fails the most
// overdue first.
func (s *Store) ExecutingBefore(ctx context.Context, t time.Time, limit int) ([]store.TenantOperation, error) {
	rows, err := s.db.Query(ctx, sqlExecutingBefore, ceilMilli(t), sqlLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("executing operations: %w", err)
	}
	ops, err := collect(rows, readTenantOp)
	if err != nil {
		return nil, fmt.Errorf("executing operations: %w", err)
	}
	return ops, nil
}

// RecentOperations returns up to limit (at most store.MaxPageSize)
// operations of a device that have ended, the most recently created
// first. It reads the device's operations newest first until limit have
// ended: those not ended are the few of its queue.
func (s *Store) RecentOperations(ctx context.Context, tenant, deviceID string, limit int) ([]store.Operation, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.db.Query(ctx, sqlRecent, tenant, deviceID, min(limit, store.MaxPageSize))
	if err != nil {
		return nil, fmt.Errorf("recent operations of %s: %w", deviceID, err)
	}
	ops, err := collect(rows, readOp)
	if err != nil {
		return nil, fmt.Errorf("recent operations of %s: %w", deviceID, err)
	}
	if ops == nil {
		ops = []store.Operation{}
	}
	return ops, nil
}
