package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// DeviceByEndpoint returns the device an LwM2M endpoint name is bound to,
// in whichever tenant.
func (s *Store) DeviceByEndpoint(ctx context.Context, endpoint string) (tenant, id string, err error) {
	err = s.db.QueryRow(ctx, "SELECT tenant, device FROM endpoints WHERE endpoint = ?", endpoint).Scan(&tenant, &id)
	if err := notFound(err, "endpoint "+endpoint); err != nil {
		return "", "", err
	}
	return tenant, id, nil
}

// DeviceByPSKIdentity returns the device that holds identity.
func (s *Store) DeviceByPSKIdentity(ctx context.Context, kind, identity string) (tenant, id string, err error) {
	err = s.db.QueryRow(ctx, "SELECT tenant, device FROM psk_identities WHERE kind = ? AND identity = ?", kind, identity).Scan(&tenant, &id)
	// The identity is a device's secret's name: it stays out of the error.
	if err := notFound(err, kind+" psk identity"); err != nil {
		return "", "", err
	}
	return tenant, id, nil
}

// BindPSKIdentity makes identity (of kind store.PSKServer or
// store.PSKBootstrap) name the tenant's device during DTLS handshakes.
// The first device to claim it keeps it, across tenants: ErrConflict
// when another device holds it, nil when this one already does.
func (s *Store) BindPSKIdentity(ctx context.Context, kind, identity, tenant, deviceID string) error {
	if identity == "" {
		return fmt.Errorf("%w: empty psk identity", store.ErrInvalid)
	}
	return s.db.Write(ctx, func(tx *Tx) error { return bindPSK(tx, kind, identity, tenant, deviceID) })
}

func bindPSK(tx *Tx, kind, identity, tenant, deviceID string) error {
	// Changes run one at a time on the writer, so nothing binds the
	// identity between the read and the insert.
	var t, id string
	err := tx.QueryRow("SELECT tenant, device FROM psk_identities WHERE kind = ? AND identity = ?", kind, identity).Scan(&t, &id)
	switch {
	case err == nil && t == tenant && id == deviceID:
		return nil
	case err == nil:
		return fmt.Errorf("%s psk identity of %s: %w", kind, deviceID, store.ErrConflict)
	case !errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("bind %s psk identity of %s: %w", kind, deviceID, err)
	}
	_, err = tx.Exec("INSERT INTO psk_identities (kind, identity, tenant, device) VALUES (?, ?, ?, ?)", kind, identity, tenant, deviceID)
	if err != nil {
		return fmt.Errorf("bind %s psk identity of %s: %w", kind, deviceID, err)
	}
	return nil
}

// UnbindPSKIdentity releases identity if the tenant's device holds it.
func (s *Store) UnbindPSKIdentity(ctx context.Context, kind, identity, tenant, deviceID string) error {
	return s.db.Write(ctx, func(tx *Tx) error { return unbindPSK(tx, kind, identity, tenant, deviceID) })
}

func unbindPSK(tx *Tx, kind, identity, tenant, deviceID string) error {
	_, err := tx.Exec("DELETE FROM psk_identities WHERE kind = ? AND identity = ? AND tenant = ? AND device = ?", kind, identity, tenant, deviceID)
	if err != nil {
		return fmt.Errorf("unbind %s psk identity of %s: %w", kind, deviceID, err)
	}
	return nil
}

// ReleasePendingIdentities releases the identities a change of the
// device's record left to release (DeviceRegistration.Release), except
// those the record names again, and marks the record complete, all in
// one change.
func (s *Store) ReleasePendingIdentities(ctx context.Context, tenant, id string) error {
	return s.db.Write(ctx, func(tx *Tx) error {
		r, err := readRegistration(tx.QueryRow(selectRegistration, tenant, id), id)
		if err != nil {
			return err
		}
		if r.Incomplete {
			return fmt.Errorf("release identities of %s: its creation has not finished", id)
		}
		return releasePending(tx, tenant, id, r)
	})
}
