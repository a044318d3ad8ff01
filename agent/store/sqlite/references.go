package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// schemaReferences holds the child references between managed objects
// (store.References). A reference is one row keyed by its parent, so
// that a parent's children are one range of the key, in the order they
// were added by seq, a number from the shared counter; the (tenant,
// child) index serves a child's parents and the removal of an object's
// references when it is deleted.
const schemaReferences = `CREATE TABLE child_refs (
		tenant TEXT NOT NULL,
		kind   TEXT NOT NULL,
		parent TEXT NOT NULL,
		seq    INTEGER NOT NULL,
		child  TEXT NOT NULL,
		PRIMARY KEY (tenant, kind, parent, child)
	) STRICT, WITHOUT ROWID;
	CREATE UNIQUE INDEX child_refs_order ON child_refs (tenant, kind, parent, seq);
	CREATE INDEX child_refs_child ON child_refs (tenant, child, kind, seq)`

func checkReference(kind, parent, child string) error {
	if !slices.Contains(store.ReferenceKinds, kind) {
		return fmt.Errorf("%w: reference kind %q", store.ErrInvalid, kind)
	}
	if parent == child {
		return fmt.Errorf("%w: managed object %s cannot be its own child", store.ErrInvalid, parent)
	}
	return nil
}

// AddChildReference makes child a child of parent by kind, once.
func (s *Store) AddChildReference(ctx context.Context, tenant, kind, parent, child string) error {
	if err := checkReference(kind, parent, child); err != nil {
		return err
	}
	err := s.db.Write(ctx, func(tx *Tx) error {
		for _, id := range []string{parent, child} {
			var one int
			err := tx.QueryRow("SELECT 1 FROM managed_objects WHERE tenant = ? AND id = ?", tenant, id).Scan(&one)
			if err := notFound(err, "managed object "+id); err != nil {
				return err
			}
		}
		var one int
		err := tx.QueryRow("SELECT 1 FROM child_refs WHERE tenant = ? AND kind = ? AND parent = ? AND child = ?",
			tenant, kind, parent, child).Scan(&one)
		if err == nil {
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		seq, err := nextID(tx)
		if err != nil {
			return err
		}
		_, err = tx.Exec("INSERT INTO child_refs (tenant, kind, parent, seq, child) VALUES (?, ?, ?, ?, ?)",
			tenant, kind, parent, seq, child)
		return err
	})
	if err != nil {
		return fmt.Errorf("add %s %s to %s: %w", kind, child, parent, err)
	}
	return nil
}

// RemoveChildReference removes the reference; ErrNotFound if none.
func (s *Store) RemoveChildReference(ctx context.Context, tenant, kind, parent, child string) error {
	err := s.db.Write(ctx, func(tx *Tx) error {
		return tx.execOne("DELETE FROM child_refs WHERE tenant = ? AND kind = ? AND parent = ? AND child = ?",
			tenant, kind, parent, child)
	})
	if err != nil {
		return fmt.Errorf("remove %s %s of %s: %w", kind, child, parent, err)
	}
	return nil
}

// ListChildren lists parent's children by kind, as objects, in the
// order they were added.
func (s *Store) ListChildren(ctx context.Context, tenant, kind, parent string, p store.Page) ([]store.ManagedObject, int64, error) {
	return listPage(ctx, s.db, kind+" of "+parent, moColumnsOf("o"),
		"child_refs r JOIN managed_objects o ON o.tenant = r.tenant AND o.id = r.child",
		"r.tenant = ? AND r.kind = ? AND r.parent = ?", []any{tenant, kind, parent}, "r.seq", p,
		func(row scanner) (store.ManagedObject, error) { return readMO(row, "") })
}

// ParentsOf lists the objects child is a child of by kind.
func (s *Store) ParentsOf(ctx context.Context, tenant, kind, child string, limit int) ([]string, error) {
	rows, err := s.db.Query(ctx, "SELECT parent FROM child_refs WHERE tenant = ? AND child = ? AND kind = ? ORDER BY seq LIMIT ?",
		tenant, child, kind, sqlLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("parents of %s: %w", child, err)
	}
	out, err := collect(rows, func(row scanner) (string, error) {
		var id string
		return id, row.Scan(&id)
	})
	if err != nil {
		return nil, fmt.Errorf("parents of %s: %w", child, err)
	}
	if out == nil {
		out = []string{}
	}
	return out, nil
}

// deleteReferencesOf removes the references from and to an object, in
// the change that deletes it.
func deleteReferencesOf(tx *Tx, tenant, id string) error {
	for _, q := range []string{
		"DELETE FROM child_refs WHERE tenant = ? AND child = ?",
		"DELETE FROM child_refs WHERE tenant = ?1 AND kind IN ('childAssets', 'childAdditions', 'childDevices') AND parent = ?2",
	} {
		if _, err := tx.Exec(q, tenant, id); err != nil {
			return fmt.Errorf("delete references of %s: %w", id, err)
		}
	}
	return nil
}
