package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// Dumpers of the endpoint and PSK identity bindings.

func exportEndpoints(ctx context.Context, q *sql.Tx, fn func(store.Record) error) error {
	return eachRow(ctx, q, "endpoints", "SELECT endpoint, tenant, device FROM endpoints ORDER BY endpoint", func(rows *sql.Rows) error {
		var r store.EndpointRecord
		if err := rows.Scan(&r.Endpoint, &r.Tenant, &r.DeviceID); err != nil {
			return fmt.Errorf("export endpoints: %w", err)
		}
		return fn(&r)
	})
}

func importEndpoint(im *importer, rec store.Record) error {
	r := rec.(*store.EndpointRecord)
	if r.Endpoint == "" {
		return fmt.Errorf("%w: empty endpoint", store.ErrInvalid)
	}
	if _, err := im.tx.Exec("INSERT INTO endpoints (endpoint, tenant, device) VALUES (?, ?, ?)", r.Endpoint, r.Tenant, r.DeviceID); err != nil {
		return fmt.Errorf("import endpoint: %w", err)
	}
	return nil
}

func exportPSKIdentities(ctx context.Context, q *sql.Tx, fn func(store.Record) error) error {
	return eachRow(ctx, q, "psk identities", "SELECT kind, identity, tenant, device FROM psk_identities ORDER BY kind, identity", func(rows *sql.Rows) error {
		var r store.PSKIdentityRecord
		if err := rows.Scan(&r.Type, &r.Identity, &r.Tenant, &r.DeviceID); err != nil {
			return fmt.Errorf("export psk identities: %w", err)
		}
		return fn(&r)
	})
}

// importPSKIdentity binds an identity; the error of one taken says
// nothing of the identity, which names a device's secret.
func importPSKIdentity(im *importer, rec store.Record) error {
	r := rec.(*store.PSKIdentityRecord)
	if r.Identity == "" || (r.Type != store.PSKServer && r.Type != store.PSKBootstrap) {
		return fmt.Errorf("%w: psk identity of type %q", store.ErrInvalid, r.Type)
	}
	_, err := im.tx.Exec("INSERT INTO psk_identities (kind, identity, tenant, device) VALUES (?, ?, ?, ?)", r.Type, r.Identity, r.Tenant, r.DeviceID)
	if err != nil {
		return fmt.Errorf("import psk identity: %w", err)
	}
	return nil
}
