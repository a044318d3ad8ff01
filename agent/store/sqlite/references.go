package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

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

// allReferences is one statement for AllReferences: per kind, a bounded
// range of the order index for the children and of the child index for
// the parents, so that a group with thousands of children reads no more
// than ?3 of each. Its rows are put in order by seq in Go: an ORDER BY
// over the union would sort them in a temporary b-tree.
var allReferences = func() string {
	var parts []string
	for _, kind := range store.ReferenceKinds {
		parts = append(parts,
			"SELECT * FROM (SELECT 0, r.kind, r.child, o.name, r.seq FROM child_refs r"+
				" JOIN managed_objects o ON o.tenant = r.tenant AND o.id = r.child"+
				" WHERE r.tenant = ?1 AND r.kind = '"+kind+"' AND r.parent = ?2 ORDER BY r.seq LIMIT ?3)",
			"SELECT * FROM (SELECT 1, kind, parent, '', seq FROM child_refs"+
				" WHERE tenant = ?1 AND child = ?2 AND kind = '"+kind+"' ORDER BY seq LIMIT ?3)")
	}
	return strings.Join(parts, " UNION ALL ")
}()

// AllReferences returns id's children and parents of every kind.
func (s *Store) AllReferences(ctx context.Context, tenant, id string, limit int) (store.ObjectReferences, error) {
	rows, err := s.db.Query(ctx, allReferences, tenant, id, sqlLimit(limit))
	if err != nil {
		return store.ObjectReferences{}, fmt.Errorf("references of %s: %w", id, err)
	}
	type ref struct {
		parent         bool
		kind, id, name string
		seq            int64
	}
	refs, err := collect(rows, func(row scanner) (ref, error) {
		var r ref
		return r, row.Scan(&r.parent, &r.kind, &r.id, &r.name, &r.seq)
	})
	if err != nil {
		return store.ObjectReferences{}, fmt.Errorf("references of %s: %w", id, err)
	}
	slices.SortFunc(refs, func(a, b ref) int { return cmp.Compare(a.seq, b.seq) })
	out := store.ObjectReferences{}
	for _, r := range refs {
		if r.parent {
			out.AddParent(r.kind, r.id)
		} else {
			out.AddChild(r.kind, store.ReferencedObject{ID: r.id, Name: r.name})
		}
	}
	return out, nil
}
