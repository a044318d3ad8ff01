package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// Dumpers of the operations and the post-registration commands. A
// device's queue is its PENDING and EXECUTING operations, read from an
// index: importing the operations is importing the queues.

func exportOperations(ctx context.Context, q *sql.Tx, fn func(store.Record) error) error {
	return eachRow(ctx, q, "operations", "SELECT tenant, "+opColumns+" FROM operations ORDER BY seq", func(rows *sql.Rows) error {
		op, err := readTenantOp(rows)
		if err != nil {
			return fmt.Errorf("export operations: %w", err)
		}
		return fn(store.OperationRecordOf(op.Tenant, op.Operation))
	})
}

func importOperation(im *importer, rec store.Record) error {
	r := rec.(*store.OperationRecord)
	seq, err := im.seq(r.ID)
	if err != nil {
		return err
	}
	if err := validOpStatus(r.Status); err != nil {
		return err
	}
	doc, err := importFragments(r.Fragments, opFixed, marshal)
	if err != nil {
		return err
	}
	op := r.Operation()
	_, err = im.tx.Exec(`INSERT INTO operations (seq, tenant, device, status, creation_time, last_updated,
			has_command, text, result, failure_reason, attempts, fragments)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		seq, r.Tenant, op.DeviceID, op.Status, op.CreationTime.UnixMilli(), op.LastUpdated.UnixMilli(),
		op.HasCommand, op.Text, op.Result, op.FailureReason, op.Attempts, doc)
	if err != nil {
		return fmt.Errorf("import operation: %w", err)
	}
	return nil
}

func exportPostOperations(ctx context.Context, q *sql.Tx, fn func(store.Record) error) error {
	return eachRow(ctx, q, "post-registration operations", "SELECT tenant, commands, updated FROM post_operations ORDER BY tenant", func(rows *sql.Rows) error {
		var (
			r       store.PostOperationsRecord
			doc     string
			updated int64
		)
		if err := rows.Scan(&r.Tenant, &doc, &updated); err != nil {
			return fmt.Errorf("export post-registration operations: %w", err)
		}
		if err := json.Unmarshal([]byte(doc), &r.Commands); err != nil {
			return fmt.Errorf("export post-registration operations of %s: %w", r.Tenant, err)
		}
		r.Updated = store.DumpTime(fromMilli(updated))
		return fn(&r)
	})
}

func importPostOperations(im *importer, rec store.Record) error {
	r := rec.(*store.PostOperationsRecord)
	if len(r.Commands) == 0 {
		return fmt.Errorf("%w: no post-registration commands", store.ErrInvalid)
	}
	if err := store.CheckPostOperations(r.Commands); err != nil {
		return err
	}
	doc, err := marshal("post-registration operations", r.Commands)
	if err != nil {
		return err
	}
	_, err = im.tx.Exec("INSERT INTO post_operations (tenant, commands, updated) VALUES (?, ?, ?)", r.Tenant, doc, r.Updated.Time().UnixMilli())
	if err != nil {
		return fmt.Errorf("import post-registration operations: %w", err)
	}
	return nil
}
