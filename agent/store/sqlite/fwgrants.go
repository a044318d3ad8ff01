package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// schemaFirmwareGrants holds the firmware grants (store.FirmwareGrant).
// The key is every device's lookup, hence WITHOUT ROWID; revocation
// goes by (tenant, operation) and the sweep by expiry, each through an
// index of its own. Times are Unix milliseconds.
const schemaFirmwareGrants = `CREATE TABLE firmware_grants (
		key       TEXT PRIMARY KEY,
		tenant    TEXT NOT NULL,
		device    TEXT NOT NULL,
		endpoint  TEXT NOT NULL,
		operation TEXT NOT NULL,
		scheme    TEXT NOT NULL,
		binary    TEXT NOT NULL,
		url       TEXT NOT NULL,
		expires   INTEGER NOT NULL
	) STRICT, WITHOUT ROWID;
	CREATE INDEX firmware_grants_operation ON firmware_grants (tenant, operation);
	CREATE INDEX firmware_grants_expires ON firmware_grants (expires)`

const grantColumns = "key, tenant, device, endpoint, operation, scheme, binary, url, expires"

func readGrant(row scanner, what string) (store.FirmwareGrant, error) {
	var g store.FirmwareGrant
	var exp int64
	err := row.Scan(&g.Key, &g.Tenant, &g.DeviceID, &g.Endpoint, &g.OperationID, &g.Scheme, &g.BinaryID, &g.URL, &exp)
	if err := notFound(err, what); err != nil {
		return store.FirmwareGrant{}, err
	}
	g.Expires = time.UnixMilli(exp).UTC()
	return g, nil
}

// PutFirmwareGrant creates the grant of g.Key, or replaces it.
func (s *Store) PutFirmwareGrant(ctx context.Context, g store.FirmwareGrant) error {
	if g.Key == "" || g.Tenant == "" {
		return fmt.Errorf("%w: a firmware grant needs a key and a tenant", store.ErrInvalid)
	}
	err := s.db.Write(ctx, func(tx *Tx) error {
		_, err := tx.Exec(`INSERT OR REPLACE INTO firmware_grants (`+grantColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			g.Key, g.Tenant, g.DeviceID, g.Endpoint, g.OperationID, g.Scheme, g.BinaryID, g.URL, g.Expires.UnixMilli())
		return err
	})
	if err != nil {
		return fmt.Errorf("put firmware grant of operation %s: %w", g.OperationID, err)
	}
	return nil
}

// FirmwareGrant returns the grant of key unless it expired at now.
func (s *Store) FirmwareGrant(ctx context.Context, key string, now time.Time) (store.FirmwareGrant, error) {
	return readGrant(s.db.QueryRow(ctx, "SELECT "+grantColumns+" FROM firmware_grants WHERE key = ? AND expires > ?",
		key, now.UnixMilli()), "firmware grant")
}

// RevokeFirmwareGrants removes the tenant's grants of operationID.
func (s *Store) RevokeFirmwareGrants(ctx context.Context, tenant, operationID string) (int, error) {
	if operationID == "" {
		return 0, fmt.Errorf("%w: revoke firmware grants: no operation", store.ErrInvalid)
	}
	var n int64
	err := s.db.Write(ctx, func(tx *Tx) error {
		res, err := tx.Exec("DELETE FROM firmware_grants WHERE tenant = ? AND operation = ?", tenant, operationID)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("revoke firmware grants of operation %s: %w", operationID, err)
	}
	return int(n), nil
}

// ExpiredFirmwareGrants lists at most limit grants expired before before.
func (s *Store) ExpiredFirmwareGrants(ctx context.Context, before time.Time, limit int) ([]store.FirmwareGrant, error) {
	rows, err := s.db.Query(ctx, "SELECT "+grantColumns+" FROM firmware_grants WHERE expires <= ? ORDER BY expires LIMIT ?",
		before.UnixMilli(), limit)
	if err != nil {
		return nil, fmt.Errorf("list expired firmware grants: %w", err)
	}
	defer rows.Close()
	var out []store.FirmwareGrant
	for rows.Next() {
		g, err := readGrant(rows, "expired firmware grant")
		if err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list expired firmware grants: %w", err)
	}
	return out, nil
}

// DeleteFirmwareGrant removes the grant of key if it still expires at
// expires.
func (s *Store) DeleteFirmwareGrant(ctx context.Context, key string, expires time.Time) (bool, error) {
	var n int64
	err := s.db.Write(ctx, func(tx *Tx) error {
		res, err := tx.Exec("DELETE FROM firmware_grants WHERE key = ? AND expires = ?", key, expires.UnixMilli())
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return false, fmt.Errorf("delete firmware grant: %w", err)
	}
	return n > 0, nil
}
