package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// Dumpers of the devices' registration records.

func exportRegistrations(ctx context.Context, q *sql.Tx, fn func(store.Record) error) error {
	return eachRow(ctx, q, "registrations", "SELECT tenant, device, "+registrationColumns+" FROM registrations ORDER BY tenant, device", func(rows *sql.Rows) error {
		var tenant, device string
		r, err := readRegistration(prefixed{rows, []any{&tenant, &device}}, "")
		if err != nil {
			return fmt.Errorf("export registrations: %w", err)
		}
		return fn(store.RegistrationRecordOf(tenant, device, r))
	})
}

// importRegistration inserts a record as it was, keys and pending
// markers included: a record of a change a crash cut short is repaired
// by the target's next start as it would have been by the source's.
func importRegistration(im *importer, rec store.Record) error {
	r := rec.(*store.RegistrationRecord)
	reg := r.Registration()
	params, release, err := registrationJSON(r.DeviceID, reg)
	if err != nil {
		return err
	}
	var updated any
	if !reg.Updated.IsZero() {
		updated = reg.Updated.UnixMilli()
	}
	var serialization any
	if reg.Serialization != "" {
		serialization = reg.Serialization
	}
	_, err = im.tx.Exec(`INSERT INTO registrations (tenant, device, params, psk_key, bootstrap_psk_key,
			credentials_hash, serialization, updated, pending_create, pending_delete, pending_release)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.Tenant, r.DeviceID, params, blob(reg.PSKKey), blob(reg.BootstrapPSKKey), blob(reg.CredentialsHash),
		serialization, updated, reg.Incomplete && !reg.Deleting, reg.Deleting, release)
	if err != nil {
		return fmt.Errorf("import registration: %w", err)
	}
	return nil
}
