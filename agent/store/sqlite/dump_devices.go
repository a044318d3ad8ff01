package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// Dumpers of the managed objects and their external IDs.

// moFixed are an object's members that are columns beside its fragments.
var moFixed = map[string]bool{"name": true, "type": true}

func exportManagedObjects(ctx context.Context, q *sql.Tx, fn func(store.Record) error) error {
	return eachRow(ctx, q, "managed objects", "SELECT tenant, "+moColumns+" FROM managed_objects ORDER BY tenant, id", func(rows *sql.Rows) error {
		var tenant string
		mo, err := readMO(prefixed{rows, []any{&tenant}}, "")
		if err != nil {
			return fmt.Errorf("export managed objects: %w", err)
		}
		return fn(&store.ManagedObjectRecord{Tenant: tenant, ID: mo.ID, Name: mo.Name, Type: mo.Type,
			CreationTime: store.DumpTime(mo.CreationTime), LastUpdated: store.DumpTime(mo.LastUpdated), Fragments: mo.Fragments})
	})
}

// importManagedObject inserts an object with its id, times and
// fragments. A fragment this engine would not store as named (a
// reserved member, name or type, a name it refuses) fails the record
// rather than being dropped.
func importManagedObject(im *importer, rec store.Record) error {
	r := rec.(*store.ManagedObjectRecord)
	seq, err := im.seq(r.ID)
	if err != nil {
		return err
	}
	doc, err := importFragments(r.Fragments, moFixed, marshal)
	if err != nil {
		return err
	}
	_, err = im.tx.Exec(`INSERT INTO managed_objects (tenant, id, seq, name, type, creation_time, last_updated, fragments)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, r.Tenant, r.ID, seq, r.Name, r.Type,
		r.CreationTime.Time().UnixMilli(), r.LastUpdated.Time().UnixMilli(), doc)
	if err != nil {
		return fmt.Errorf("import managed object: %w", err)
	}
	return nil
}

func exportExternalIDs(ctx context.Context, q *sql.Tx, fn func(store.Record) error) error {
	return eachRow(ctx, q, "external ids", "SELECT tenant, type, external_id, device FROM external_ids ORDER BY tenant, type, external_id", func(rows *sql.Rows) error {
		var r store.ExternalIDRecord
		if err := rows.Scan(&r.Tenant, &r.Type, &r.ExternalID, &r.ManagedObjectID); err != nil {
			return fmt.Errorf("export external ids: %w", err)
		}
		return fn(&r)
	})
}

// importExternalID inserts an external ID. Its object is not looked up:
// a dump is a copy of a store, imported as it is.
func importExternalID(im *importer, rec store.Record) error {
	r := rec.(*store.ExternalIDRecord)
	if r.Type == "" || r.ExternalID == "" {
		return fmt.Errorf("%w: external ID needs type and externalId", store.ErrInvalid)
	}
	_, err := im.tx.Exec("INSERT INTO external_ids (tenant, type, external_id, device) VALUES (?, ?, ?, ?)",
		r.Tenant, r.Type, r.ExternalID, r.ManagedObjectID)
	if err != nil {
		return fmt.Errorf("import external id: %w", err)
	}
	return nil
}
