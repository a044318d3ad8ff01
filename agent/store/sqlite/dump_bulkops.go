package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// Dumpers of the child references and the bulk operations. References
// are exported in the order they were added, across parents, and an
// import numbers them anew in that order, so that both a parent's
// children and a child's parents keep theirs. A bulk operation carries
// its devices and its position: the import keeps both, so that one that
// was running goes on with its next device. This engine claims a step
// and stores its operation in one change and never leaves a claim; a
// claim in a dump of the MongoDB engine is finished by the import.

func exportReferences(ctx context.Context, q *sql.Tx, fn func(store.Record) error) error {
	return eachRow(ctx, q, "child references", "SELECT tenant, kind, parent, child FROM child_refs ORDER BY seq", func(rows *sql.Rows) error {
		var r store.ChildReferenceRecord
		if err := rows.Scan(&r.Tenant, &r.Type, &r.Parent, &r.Child); err != nil {
			return fmt.Errorf("export child references: %w", err)
		}
		return fn(&r)
	})
}

// importReference inserts a reference after those imported before it.
// Its objects are not looked up: a dump is a copy of a store, imported
// as it is.
func importReference(im *importer, rec store.Record) error {
	r := rec.(*store.ChildReferenceRecord)
	if err := r.Check(); err != nil {
		return err
	}
	seq, err := nextID(im.tx)
	if err != nil {
		return fmt.Errorf("import child reference: %w", err)
	}
	_, err = im.tx.Exec("INSERT INTO child_refs (tenant, kind, parent, seq, child) VALUES (?, ?, ?, ?, ?)",
		r.Tenant, r.Type, r.Parent, seq, r.Child)
	if err != nil {
		return fmt.Errorf("import child reference: %w", err)
	}
	return nil
}

func exportBulkOperations(ctx context.Context, q *sql.Tx, fn func(store.Record) error) error {
	return eachRow(ctx, q, "bulk operations", "SELECT tenant, "+bulkColumns+" FROM bulk_operations ORDER BY seq", func(rows *sql.Rows) error {
		var tenant string
		b, err := readBulk(prefixed{rows, []any{&tenant}})
		if err != nil {
			return fmt.Errorf("export bulk operations: %w", err)
		}
		// The devices of one bulk operation at a time, in the export's
		// transaction: at most the 100,000 of a group.
		targets, err := bulkTargets(ctx, q, b)
		if err != nil {
			return fmt.Errorf("export devices of bulk operation %s/%s: %w", tenant, b.ID, err)
		}
		if len(targets) != b.Total {
			return fmt.Errorf("export bulk operation %s/%s: %d devices, it counts %d", tenant, b.ID, len(targets), b.Total)
		}
		return fn(store.BulkOperationRecordOf(tenant, b, targets))
	})
}

func bulkTargets(ctx context.Context, q *sql.Tx, b store.BulkOperation) ([]string, error) {
	rows, err := q.QueryContext(ctx, "SELECT device FROM bulk_targets WHERE bulk = ? ORDER BY pos", b.ID)
	if err != nil {
		return nil, err
	}
	return collect(rows, func(row scanner) (string, error) {
		var d string
		return d, row.Scan(&d)
	})
}

// importBulkOperation inserts a bulk operation with its devices, its
// position and when its next operation is due, and finishes its claim.
func importBulkOperation(im *importer, rec store.Record) error {
	r := rec.(*store.BulkOperationRecord)
	if err := r.Check(); err != nil {
		return err
	}
	seq, err := im.seq(r.ID)
	if err != nil {
		return err
	}
	for _, f := range []store.DumpDoc{r.Prototype, r.Fragments} {
		if err := checkFragments(f); err != nil {
			return err
		}
	}
	proto, err := marshal("bulk operation prototype", nonNil(r.Prototype))
	if err != nil {
		return err
	}
	doc, err := marshal("bulk operation fragments", nonNil(r.Fragments))
	if err != nil {
		return err
	}
	_, err = im.tx.Exec(`INSERT INTO bulk_operations (seq, tenant, group_id, start_date, ramp_ms, prototype, status, total,
			position, next_at, creation_time, last_updated, fragments) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		seq, r.Tenant, r.GroupID, r.StartDate.Time().UnixMilli(), r.CreationRamp, proto, r.Status, len(r.Targets),
		r.Position, r.NextAt.Time().UnixMilli(), r.CreationTime.Time().UnixMilli(), r.LastUpdated.Time().UnixMilli(), doc)
	if err != nil {
		return fmt.Errorf("import bulk operation: %w", err)
	}
	for i, d := range r.Targets {
		if _, err := im.tx.Exec(sqlBulkTargets, seq, i, d); err != nil {
			return fmt.Errorf("import bulk operation: device %d: %w", i, err)
		}
	}
	return importClaim(im, r)
}

// importClaim stores the operation of r's claim unless the dump held it
// (imported before, as operations come first) or its device is gone, as
// the claimer would have.
func importClaim(im *importer, r *store.BulkOperationRecord) error {
	op := r.ClaimedOperation()
	if op == nil {
		return nil
	}
	seq, err := im.seq(op.ID)
	if err != nil {
		return err
	}
	var one int
	err = im.tx.QueryRow("SELECT 1 FROM operations WHERE seq = ?", seq).Scan(&one)
	if err == nil {
		return nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("import bulk operation: claim: %w", err)
	}
	err = im.tx.QueryRow("SELECT 1 FROM managed_objects WHERE tenant = ? AND id = ?", r.Tenant, op.DeviceID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return nil // the device was deleted: the claimer passes it over
	}
	if err != nil {
		return fmt.Errorf("import bulk operation: claim: %w", err)
	}
	if err := importOperation(im, op); err != nil {
		return fmt.Errorf("import bulk operation: claim: operation %s: %w", op.ID, err)
	}
	return nil
}

func nonNil(d store.DumpDoc) map[string]any {
	if d == nil {
		return map[string]any{}
	}
	return d
}
