package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// schemaOperations holds the operations, whose per-device queues are
// their status rather than documents of their own, and each tenant's
// post-registration commands.
//
// An operation's id is its number from the shared counter, so seq is
// the rowid: a read by id is one descent of the table, and every index
// ends in the rowid, which makes each index's entries for one key come
// in creation order without seq being a column of it (lists and queues
// are in creation order, as in the MongoDB engine). The table keeps its
// rowid, not WITHOUT ROWID, because a row carries open JSON (a firmware
// URL, a progress fragment) and is larger than such tables suit.
// Fragments are one JSON object, changed in place by json_set; the
// fixed members the agent filters on or sets (status, times, attempts,
// c8y_Command's text and result, failureReason) are columns.
//
// A device's queue is its PENDING operations in creation order, and
// what the watchdog looks for is the EXECUTING ones, so the hot
// queries read small partial indexes that hold only the operations not
// ended, and never the history, which grows without bound:
//   - operations_active (tenant, device, status) over PENDING and
//     EXECUTING: Pending with its limit, PendingCount (covering),
//     QueueOf, QueuedDevices (covering, distinct devices), and lists of
//     a device's PENDING or EXECUTING operations. Its WHERE is
//     OR-connected, not IN, because SQLite proves a partial index usable
//     only from a term of the query that is one of the index's terms;
//     the queries name the status as a literal for the same reason.
//   - operations_executing (last_updated) over EXECUTING: the
//     watchdog's "executing since before t", oldest first, and the
//     start's recovery of those left EXECUTING.
//
// A status change is one UPDATE of one row: it moves the row between
// the partial indexes and within operations_status; the other indexes
// hold no column it changes and are not written. The full indexes serve
// the API's lists and the history: operations_tenant (a tenant's
// operations), operations_device (a device's, and the removal of a
// device's), operations_status (a tenant's operations in one status).
//
// Post-registration commands are one row per tenant, its list as a
// JSON array: they are read whole by every full registration and
// replaced whole.
const schemaOperations = `CREATE TABLE operations (
		seq            INTEGER PRIMARY KEY, -- the id, from the shared counter
		tenant         TEXT NOT NULL,
		device         TEXT NOT NULL,
		status         TEXT NOT NULL,
		creation_time  INTEGER NOT NULL, -- Unix milliseconds
		last_updated   INTEGER NOT NULL, -- Unix milliseconds
		has_command    INTEGER NOT NULL, -- c8y_Command is there
		text           TEXT NOT NULL,    -- c8y_Command.text
		result         TEXT NOT NULL,    -- c8y_Command.result
		failure_reason TEXT NOT NULL,
		attempts       INTEGER NOT NULL,
		fragments      TEXT NOT NULL     -- JSON object
	) STRICT;
	CREATE INDEX operations_tenant ON operations (tenant);
	CREATE INDEX operations_device ON operations (tenant, device);
	CREATE INDEX operations_status ON operations (tenant, status);
	CREATE INDEX operations_active ON operations (tenant, device, status)
		WHERE status = 'PENDING' OR status = 'EXECUTING';
	CREATE INDEX operations_executing ON operations (last_updated)
		WHERE status = 'EXECUTING';
	CREATE TABLE post_operations (
		tenant   TEXT PRIMARY KEY,
		commands TEXT NOT NULL,    -- JSON array of strings
		updated  INTEGER NOT NULL  -- Unix milliseconds
	) STRICT, WITHOUT ROWID`

// opFixed are the members of an operation that are not fragments, as
// the MongoDB engine keeps them.
var opFixed = map[string]bool{
	"id": true, "deviceId": true, "status": true, "creationTime": true, "lastUpdated": true,
	"c8y_Command": true, "failureReason": true, "attempts": true,
}

const opColumns = "seq, device, status, creation_time, last_updated, has_command, text, result, failure_reason, attempts, fragments"

// opID is the rowid of operation id; false for an id that no operation
// can have, which the MongoDB engine answers as one it does not find.
// Only the canonical decimal form is an id: "007" is not "7".
func opID(id string) (int64, bool) {
	n, err := strconv.ParseInt(id, 10, 64)
	return n, err == nil && strconv.FormatInt(n, 10) == id
}

func opNotFound(id string) error { return fmt.Errorf("operation %s: %w", id, store.ErrNotFound) }

// readOp decodes a row of opColumns.
func readOp(row scanner) (store.Operation, error) { return scanOp(row) }

// readTenantOp decodes a row of "tenant, " + opColumns.
func readTenantOp(row scanner) (store.TenantOperation, error) {
	var top store.TenantOperation
	op, err := scanOp(row, &top.Tenant)
	top.Operation = op
	return top, err
}

// scanOp decodes a row of opColumns after the columns scanned into lead.
func scanOp(row scanner, lead ...any) (store.Operation, error) {
	var (
		op              store.Operation
		seq, created, u int64
		doc             string
	)
	err := row.Scan(append(lead, &seq, &op.DeviceID, &op.Status, &created, &u, &op.HasCommand, &op.Text, &op.Result,
		&op.FailureReason, &op.Attempts, &doc)...)
	if err != nil {
		return store.Operation{}, err
	}
	op.ID = strconv.FormatInt(seq, 10)
	op.CreationTime, op.LastUpdated = time.UnixMilli(created).UTC(), time.UnixMilli(u).UTC()
	if op.Fragments, err = opFragments(doc); err != nil {
		return store.Operation{}, fmt.Errorf("operation %s: %w", op.ID, err)
	}
	return op, nil
}

// opFragments decodes an operation's fragments. Most operations are
// commands, which have none: those skip the JSON decoder, which costs
// a read of a queue's head more than the rest of a row.
func opFragments(doc string) (map[string]any, error) {
	if doc == "{}" {
		return map[string]any{}, nil
	}
	return decodeFragments(doc)
}

// CreateOperations stores operations for devices of the tenant, PENDING,
// with consecutive ids in the order given, in one change: a device that
// is not the tenant's is ErrNotFound and nothing is stored. The answer
// is what the MongoDB engine answers, the operations as given with what
// the store set, their fragments as a read returns them.
func (s *Store) CreateOperations(ctx context.Context, tenant string, ops []store.Operation) ([]store.Operation, error) {
	if len(ops) == 0 {
		return nil, nil
	}
	out := make([]store.Operation, len(ops))
	docs := make([]string, len(ops))
	for i, op := range ops {
		doc, err := encodeOp(&op)
		if err != nil {
			return nil, err
		}
		docs[i], out[i] = doc, op
	}
	now := nowMilli()
	err := s.db.Write(ctx, func(tx *Tx) error {
		checked := map[string]bool{}
		for i := range out {
			op := &out[i]
			if !checked[op.DeviceID] {
				var one int
				err := tx.QueryRow("SELECT 1 FROM managed_objects WHERE tenant = ? AND id = ?", tenant, op.DeviceID).Scan(&one)
				if errors.Is(err, sql.ErrNoRows) {
					return fmt.Errorf("device %q: %w", op.DeviceID, store.ErrNotFound)
				}
				if err != nil {
					return fmt.Errorf("read device %s: %w", op.DeviceID, err)
				}
				checked[op.DeviceID] = true
			}
			if err := insertOp(tx, tenant, op, docs[i], now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("create operations: %w", err)
	}
	return out, nil
}

// encodeOp checks and encodes the fragments of a new operation, and
// sets op's to what a read will return.
func encodeOp(op *store.Operation) (string, error) {
	if err := checkFragments(op.Fragments); err != nil {
		return "", err
	}
	frags := make(map[string]any, len(op.Fragments))
	for k, v := range op.Fragments {
		if !opFixed[k] && !reserved[k] {
			frags[k] = v
		}
	}
	doc, err := marshal("operation fragments", frags)
	if err != nil {
		return "", err
	}
	if op.Fragments, err = opFragments(doc); err != nil {
		return "", fmt.Errorf("create operations: %w", err)
	}
	return doc, nil
}

// insertOp stores op PENDING with the next id and the fragments doc
// (encodeOp), and sets what the store set of it.
func insertOp(tx *Tx, tenant string, op *store.Operation, doc string, now time.Time) error {
	seq, err := nextID(tx)
	if err != nil {
		return err
	}
	text := ""
	if op.HasCommand {
		text = op.Text
	}
	_, err = tx.Exec(`INSERT INTO operations (seq, tenant, device, status, creation_time, last_updated,
			has_command, text, result, failure_reason, attempts, fragments)
		VALUES (?, ?, ?, 'PENDING', ?, ?, ?, ?, '', '', 0, ?)`,
		seq, tenant, op.DeviceID, now.UnixMilli(), now.UnixMilli(), op.HasCommand, text, doc)
	if err != nil {
		return err
	}
	op.ID = strconv.FormatInt(seq, 10)
	op.Status, op.CreationTime, op.LastUpdated = store.OpPending, now, now
	op.Result, op.FailureReason, op.Attempts = "", "", 0
	return nil
}

// CreateOperation stores one PENDING operation.
func (s *Store) CreateOperation(ctx context.Context, tenant string, op store.Operation) (store.Operation, error) {
	out, err := s.CreateOperations(ctx, tenant, []store.Operation{op})
	if err != nil {
		return store.Operation{}, err
	}
	return out[0], nil
}

// GetOperation returns the tenant's operation id.
func (s *Store) GetOperation(ctx context.Context, tenant, id string) (store.Operation, error) {
	seq, ok := opID(id)
	if !ok {
		return store.Operation{}, opNotFound(id)
	}
	op, err := readOp(s.db.QueryRow(ctx, "SELECT "+opColumns+" FROM operations WHERE seq = ? AND tenant = ?", seq, tenant))
	if err := notFound(err, "operation "+id); err != nil {
		return store.Operation{}, err
	}
	return op, nil
}

// ListOperations lists the tenant's operations of f.DeviceID and in
// f.Status, in creation order, a page at a time; total is -1 unless
// f.Page.WithTotal.
func (s *Store) ListOperations(ctx context.Context, tenant string, f store.OperationFilter) ([]store.Operation, int64, error) {
	where, args := opFilter(tenant, f)
	return listPage(ctx, s.db, "operations of "+tenant, opColumns, "operations", where, args, "seq", f.Page, readOp)
}

// opFilter is the WHERE clause of ListOperations, and its arguments.
func opFilter(tenant string, f store.OperationFilter) (string, []any) {
	where, args := "tenant = ?", []any{tenant}
	switch {
	case f.DeviceID != "" && (f.Status == store.OpPending || f.Status == store.OpExecuting):
		// A literal, so that the partial index of the device's queue
		// serves it.
		where += " AND device = ? AND status = '" + f.Status + "'"
		args = append(args, f.DeviceID)
	case f.DeviceID != "" && f.Status != "":
		// The device's history, filtered: not the tenant's operations
		// in that status, filtered by device, which are far more.
		where += " AND device = ? AND +status = ?"
		args = append(args, f.DeviceID, f.Status)
	case f.DeviceID != "":
		where += " AND device = ?"
		args = append(args, f.DeviceID)
	case f.Status != "":
		where += " AND status = ?"
		args = append(args, f.Status)
	}
	return where, args
}

func validOpStatus(s string) error {
	switch s {
	case store.OpPending, store.OpExecuting, store.OpSuccessful, store.OpFailed:
		return nil
	}
	return fmt.Errorf("%w: operation status %q", store.ErrInvalid, s)
}

func final(status string) bool { return status == store.OpSuccessful || status == store.OpFailed }

// move is a status change of one operation.
type move struct {
	status, result, reason string
	// from, when checked, is the status the operation must be in for
	// the change; unchecked, any that is not final allows it.
	from    string
	checked bool
	// attempts is added to the operation's attempts.
	attempts int
}

// move applies m to the tenant's operation id in one change of one
// conditional UPDATE, so that of concurrent changes of one operation
// from one status exactly one applies. A result or failure reason is
// set only when not empty; a result makes c8y_Command appear, as the
// MongoDB engine's $set of c8y_Command.result does. When the stored
// status forbids the change, it is ErrNotFound for an operation that is
// not there, ErrConflict for one in another status than m.from, and
// ErrInvalid for one that has ended.
func (s *Store) move(ctx context.Context, tenant, id string, m move) error {
	seq, ok := opID(id)
	if !ok {
		return opNotFound(id)
	}
	query := `UPDATE operations SET status = ?1, last_updated = ?2, attempts = attempts + ?3,
			has_command = has_command OR ?4 <> '', result = iif(?4 = '', result, ?4),
			failure_reason = iif(?5 = '', failure_reason, ?5)
		WHERE seq = ?6 AND tenant = ?7 AND status NOT IN ('SUCCESSFUL', 'FAILED')`
	args := []any{m.status, nowMilli().UnixMilli(), m.attempts, m.result, m.reason, seq, tenant}
	if m.checked {
		query += " AND status = ?8"
		args = append(args, m.from)
	}
	err := s.db.Write(ctx, func(tx *Tx) error {
		res, err := tx.Exec(query, args...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			return err
		}
		// Read in the same change: what refused it is what is stored.
		var stored string
		err = tx.QueryRow("SELECT status FROM operations WHERE seq = ? AND tenant = ?", seq, tenant).Scan(&stored)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return store.ErrNotFound
		case err != nil:
			return err
		case m.checked && stored != m.from:
			return fmt.Errorf("%w: it is %s, not %s", store.ErrConflict, stored, m.from)
		default:
			return fmt.Errorf("%w: it is %s already", store.ErrInvalid, stored)
		}
	})
	if err != nil {
		return fmt.Errorf("set operation %s %s: %w", id, m.status, err)
	}
	return nil
}

// attempt is what a move to status adds to the attempts: EXECUTING
// counts one.
func attempt(status string) int {
	if status == store.OpExecuting {
		return 1
	}
	return 0
}

// SetStatus moves an operation to status. result (c8y_Command.result)
// and failureReason are set when not empty; EXECUTING counts an
// attempt. SUCCESSFUL and FAILED are final: changing them is
// ErrInvalid. Back to PENDING queues the operation again, in its place.
func (s *Store) SetStatus(ctx context.Context, tenant, id, status, result, failureReason string) error {
	if err := validOpStatus(status); err != nil {
		return err
	}
	return s.move(ctx, tenant, id, move{status: status, result: result, reason: failureReason, attempts: attempt(status)})
}

// SetStatusFrom is SetStatus of an operation that is in status from:
// ErrConflict if it is in another, and nothing changes. Of concurrent
// calls from one status, one wins and the others are ErrConflict.
func (s *Store) SetStatusFrom(ctx context.Context, tenant, id, from, status, result, failureReason string) error {
	if err := validOpStatus(status); err != nil {
		return err
	}
	return s.move(ctx, tenant, id, move{status: status, result: result, reason: failureReason,
		from: from, checked: true, attempts: attempt(status)})
}

// Transition is SetStatus of the operation as the caller last read it,
// cur, without reading it again. Unlike the MongoDB engine, which
// writes whatever the operation became meanwhile, it changes the
// operation only while it is still in cur.Status: ErrConflict
// otherwise, which the runner takes as "it moved on meanwhile" (the
// watchdog failed it), and the outcome recorded first stays.
func (s *Store) Transition(ctx context.Context, tenant string, cur store.Operation, status, result, failureReason string) error {
	if err := validOpStatus(status); err != nil {
		return err
	}
	if final(cur.Status) {
		return fmt.Errorf("%w: operation %s is %s already", store.ErrInvalid, cur.ID, cur.Status)
	}
	// A caller that did not say what it read gets SetStatus, as from
	// the MongoDB engine.
	return s.move(ctx, tenant, cur.ID, move{status: status, result: result, reason: failureReason,
		from: cur.Status, checked: cur.Status != "", attempts: attempt(status)})
}

// Unsend returns an operation the caller moved to EXECUTING, cur, to
// PENDING when it did not send it after all, and takes back the attempt
// that counted. cur not EXECUTING is ErrInvalid; the stored operation
// not EXECUTING any more is ErrConflict, and it is left as it is.
func (s *Store) Unsend(ctx context.Context, tenant string, cur store.Operation) error {
	if cur.Status != store.OpExecuting {
		return fmt.Errorf("%w: operation %s is %s, not %s", store.ErrInvalid, cur.ID, cur.Status, store.OpExecuting)
	}
	return s.move(ctx, tenant, cur.ID, move{status: store.OpPending, from: store.OpExecuting, checked: true, attempts: -1})
}

// Executed moves cur, PENDING, to its outcome in one conditional
// UPDATE that counts the attempt EXECUTING would have counted.
func (s *Store) Executed(ctx context.Context, tenant string, cur store.Operation, status, result, failureReason string) error {
	if !final(status) {
		return fmt.Errorf("%w: %q is not an outcome", store.ErrInvalid, status)
	}
	if cur.Status != store.OpPending {
		return fmt.Errorf("%w: operation %s is %s, not %s", store.ErrInvalid, cur.ID, cur.Status, store.OpPending)
	}
	return s.move(ctx, tenant, cur.ID, move{status: status, result: result, reason: failureReason,
		from: store.OpPending, checked: true, attempts: 1})
}

// SetOperationFragment sets one fragment of an operation, such as the
// progress of a firmware update, so that a restart resumes it from the
// step it reached. The fixed and reserved members are not fragments:
// ErrInvalid; a missing operation is ErrNotFound.
func (s *Store) SetOperationFragment(ctx context.Context, tenant, id, name string, value any) error {
	if opFixed[name] || reserved[name] {
		return fmt.Errorf("%w: %q is not a fragment of an operation", store.ErrInvalid, name)
	}
	if err := checkFragments(map[string]any{name: nil}); err != nil {
		return err
	}
	seq, ok := opID(id)
	if !ok {
		return opNotFound(id)
	}
	doc, err := marshal("fragment "+name, value)
	if err != nil {
		return err
	}
	err = s.db.Write(ctx, func(tx *Tx) error {
		return tx.execOne("UPDATE operations SET fragments = json_set(fragments, ?, json(?)), last_updated = ? WHERE seq = ? AND tenant = ?",
			path(name), doc, nowMilli().UnixMilli(), seq, tenant)
	})
	if err != nil {
		return fmt.Errorf("set fragment %s of operation %s: %w", name, id, err)
	}
	return nil
}

// failOperationsOf fails the device's PENDING and EXECUTING operations,
// in the change that deletes the device.
func failOperationsOf(tx *Tx, tenant, deviceID string) error {
	_, err := tx.Exec(`UPDATE operations SET status = ?, failure_reason = ?, last_updated = ?
		WHERE tenant = ? AND device = ? AND status IN (?, ?)`,
		store.OpFailed, store.FailureDeviceDeleted, nowMilli().UnixMilli(), tenant, deviceID, store.OpPending, store.OpExecuting)
	if err != nil {
		return fmt.Errorf("fail operations of %s: %w", deviceID, err)
	}
	return nil
}
