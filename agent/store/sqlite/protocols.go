package sqlite

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// schemaProtocols holds the tenants' device protocols (store.Protocols
// keeps them through the contract's ProtocolRecords), one row per tenant
// and object ID, what the protocol holds in three JSON columns: the
// store only keeps and returns them, and store.Protocols caches what it
// decodes, so nothing queries into them.
//
// An ordinary rowid table with a unique index on its key, not WITHOUT
// ROWID: a definition with the descriptions of its resources is several
// KiB, well past the size up to which SQLite advises WITHOUT ROWID (a
// twentieth of a page), since such a table keeps whole rows in its
// interior pages. protocols_key serves the point reads and writes by
// (tenant, object_id), a tenant's list in object ID order with its count
// and its object IDs (both from the index alone); protocols_object finds
// an object's record of the first tenant by tenant ID.
const schemaProtocols = `CREATE TABLE protocols (
		tenant          TEXT NOT NULL,
		object_id       INTEGER NOT NULL,
		source          TEXT NOT NULL,
		updated         INTEGER NOT NULL, -- Unix milliseconds
		definition      TEXT NOT NULL,    -- JSON object
		functionalities TEXT NOT NULL,    -- JSON object, by resource ID
		validation      TEXT NOT NULL     -- JSON object, by resource ID
	) STRICT;
	CREATE UNIQUE INDEX protocols_key ON protocols (tenant, object_id);
	CREATE INDEX protocols_object ON protocols (object_id, tenant)`

const protocolColumns = "tenant, object_id, source, updated, definition, functionalities, validation"

func readProtocol(row scanner, what string) (store.ProtocolRecord, error) {
	var (
		r                 store.ProtocolRecord
		updated           int64
		def, funcs, rules string
	)
	err := row.Scan(&r.Tenant, &r.ObjectID, &r.Source, &updated, &def, &funcs, &rules)
	if err := notFound(err, what); err != nil {
		return store.ProtocolRecord{}, err
	}
	r.Updated = time.UnixMilli(updated).UTC()
	r.Definition, r.Functionalities, r.Validation = []byte(def), []byte(funcs), []byte(rules)
	return r, nil
}

func protocolName(tenant string, objectID uint16) string {
	return "protocol " + strconv.Itoa(int(objectID)) + " of " + tenant
}

// PutProtocolRecord creates or replaces the record of r.Tenant and
// r.ObjectID.
func (s *Store) PutProtocolRecord(ctx context.Context, r store.ProtocolRecord) error {
	r, err := r.Check()
	if err != nil {
		return err
	}
	err = s.db.Write(ctx, func(tx *Tx) error {
		_, err := tx.Exec(`INSERT INTO protocols (`+protocolColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (tenant, object_id) DO UPDATE SET
				source = excluded.source,
				updated = excluded.updated,
				definition = excluded.definition,
				functionalities = excluded.functionalities,
				validation = excluded.validation`,
			r.Tenant, r.ObjectID, r.Source, r.Updated.UnixMilli(),
			string(r.Definition), string(r.Functionalities), string(r.Validation))
		return err
	})
	if err != nil {
		return fmt.Errorf("save %s: %w", protocolName(r.Tenant, r.ObjectID), err)
	}
	return nil
}

// GetProtocolRecord returns the tenant's record of objectID.
func (s *Store) GetProtocolRecord(ctx context.Context, tenant string, objectID uint16) (store.ProtocolRecord, error) {
	return readProtocol(s.db.QueryRow(ctx, "SELECT "+protocolColumns+" FROM protocols WHERE tenant = ? AND object_id = ?",
		tenant, objectID), protocolName(tenant, objectID))
}

// DeleteProtocolRecord deletes the tenant's record of objectID.
func (s *Store) DeleteProtocolRecord(ctx context.Context, tenant string, objectID uint16) error {
	err := s.db.Write(ctx, func(tx *Tx) error {
		return tx.execOne("DELETE FROM protocols WHERE tenant = ? AND object_id = ?", tenant, objectID)
	})
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%s: %w", protocolName(tenant, objectID), err)
	}
	if err != nil {
		return fmt.Errorf("delete %s: %w", protocolName(tenant, objectID), err)
	}
	return nil
}

// FirstProtocolRecord returns the record of objectID of the first tenant,
// by tenant ID, that has one.
func (s *Store) FirstProtocolRecord(ctx context.Context, objectID uint16) (store.ProtocolRecord, error) {
	return readProtocol(s.db.QueryRow(ctx, "SELECT "+protocolColumns+" FROM protocols WHERE object_id = ? ORDER BY tenant LIMIT 1",
		objectID), "protocol "+strconv.Itoa(int(objectID)))
}

// ListProtocolRecords lists the tenant's records by object ID; total is
// -1 unless p.WithTotal.
func (s *Store) ListProtocolRecords(ctx context.Context, tenant string, p store.Page) ([]store.ProtocolRecord, int64, error) {
	return listPage(ctx, s.db, "protocols of "+tenant, protocolColumns, "protocols", "tenant = ?", []any{tenant}, "object_id", p,
		func(row scanner) (store.ProtocolRecord, error) { return readProtocol(row, "protocol") })
}

// ProtocolObjectIDs lists the object IDs the tenant has records of, in
// order.
func (s *Store) ProtocolObjectIDs(ctx context.Context, tenant string) ([]uint16, error) {
	rows, err := s.db.Query(ctx, "SELECT object_id FROM protocols WHERE tenant = ? ORDER BY object_id", tenant)
	if err != nil {
		return nil, fmt.Errorf("list protocols of %s: %w", tenant, err)
	}
	defer rows.Close()
	ids := []uint16{}
	for rows.Next() {
		var id uint16
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("list protocols of %s: %w", tenant, err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list protocols of %s: %w", tenant, err)
	}
	return ids, nil
}
