package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// SaveDeviceRegistration stores (or replaces) a device's registration
// parameters and secrets, leaving its serialization as it is. The
// pending markers are only ever set here, never cleared, so that a
// change made while the device's creation or deletion is under way does
// not complete it; r.Release replaces the stored identities to release
// when set.
func (s *Store) SaveDeviceRegistration(ctx context.Context, tenant, deviceID string, r store.DeviceRegistration) error {
	err := s.db.Write(ctx, func(tx *Tx) error { return saveRegistration(tx, tenant, deviceID, r) })
	if err != nil {
		return fmt.Errorf("save registration of %s: %w", deviceID, err)
	}
	return nil
}

// saveRegistration is SaveDeviceRegistration inside a change, which a
// device's creation shares.
func saveRegistration(tx *Tx, tenant, deviceID string, r store.DeviceRegistration) error {
	params, release, err := registrationJSON(deviceID, r)
	if err != nil {
		return err
	}
	// As the MongoDB engine marks them: a deletion is marked alone, and
	// reads back as incomplete as well.
	create, del := r.Incomplete && !r.Deleting, r.Deleting
	_, err = tx.Exec(`INSERT INTO registrations (tenant, device, params, psk_key, bootstrap_psk_key,
			credentials_hash, updated, pending_create, pending_delete, pending_release)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (tenant, device) DO UPDATE SET
			params = excluded.params,
			psk_key = excluded.psk_key,
			bootstrap_psk_key = excluded.bootstrap_psk_key,
			credentials_hash = excluded.credentials_hash,
			updated = excluded.updated,
			pending_create = pending_create OR excluded.pending_create,
			pending_delete = pending_delete OR excluded.pending_delete,
			pending_release = coalesce(excluded.pending_release, pending_release)`,
		tenant, deviceID, params, blob(r.PSKKey), blob(r.BootstrapPSKKey), blob(r.CredentialsHash),
		nowMilli().UnixMilli(), create, del, release)
	return err
}

// registrationJSON encodes the JSON columns of r: params and
// pending_release, NULL (nil) for none.
func registrationJSON(deviceID string, r store.DeviceRegistration) (params, release any, err error) {
	if r.Params != nil {
		b, err := json.Marshal(r.Params)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: registration of %s: params: %w", store.ErrInvalid, deviceID, err)
		}
		params = string(b)
	}
	if len(r.Release) > 0 {
		b, err := json.Marshal(r.Release)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: registration of %s: identities to release: %w", store.ErrInvalid, deviceID, err)
		}
		release = string(b)
	}
	return params, release, nil
}

// SetDeviceSerialization stores the content format name the device's
// requests use from now on; "" removes it. A device without a record (an
// auto-registered one) gets one that holds only this.
func (s *Store) SetDeviceSerialization(ctx context.Context, tenant, deviceID, format string) error {
	err := s.db.Write(ctx, func(tx *Tx) error {
		if format == "" {
			_, err := tx.Exec("UPDATE registrations SET serialization = NULL WHERE tenant = ? AND device = ?", tenant, deviceID)
			return err
		}
		_, err := tx.Exec(`INSERT INTO registrations (tenant, device, serialization) VALUES (?, ?, ?)
			ON CONFLICT (tenant, device) DO UPDATE SET serialization = excluded.serialization`, tenant, deviceID, format)
		return err
	})
	if err != nil {
		return fmt.Errorf("set serialization of %s: %w", deviceID, err)
	}
	return nil
}

// CompleteDevice marks the device's registration record complete. A
// device being deleted, or without a record, is ErrNotFound. The mark of
// a deletion is read in the same change that clears the markers, so a
// deletion that began before is never lost.
func (s *Store) CompleteDevice(ctx context.Context, tenant, deviceID string) error {
	return s.db.Write(ctx, func(tx *Tx) error { return completeDevice(tx, tenant, deviceID) })
}

func completeDevice(tx *Tx, tenant, deviceID string) error {
	var deleting bool
	err := tx.QueryRow("SELECT pending_delete FROM registrations WHERE tenant = ? AND device = ?", tenant, deviceID).Scan(&deleting)
	if err == nil && deleting {
		err = sql.ErrNoRows
	}
	if err := notFound(err, "registration of "+deviceID); err != nil {
		return fmt.Errorf("complete %w", err)
	}
	_, err = tx.Exec(`UPDATE registrations SET pending_create = 0, pending_delete = 0, pending_release = NULL
		WHERE tenant = ? AND device = ?`, tenant, deviceID)
	if err != nil {
		return fmt.Errorf("complete registration of %s: %w", deviceID, err)
	}
	return nil
}

// DeviceRegistrationOf returns a device's registration, secrets included:
// for the protocol layers, never for an API answer. A record without
// registration parameters (only a serialization), or of a device whose
// creation has not finished, is ErrNotFound here.
func (s *Store) DeviceRegistrationOf(ctx context.Context, tenant, deviceID string) (store.DeviceRegistration, error) {
	r, err := s.DeviceSettings(ctx, tenant, deviceID)
	if err == nil && (r.Incomplete || r.Params == nil && len(r.PSKKey) == 0 && len(r.BootstrapPSKKey) == 0 && len(r.CredentialsHash) == 0) {
		return store.DeviceRegistration{}, fmt.Errorf("registration of %s: %w", deviceID, store.ErrNotFound)
	}
	return r, err
}

// DeviceSettings returns whatever is stored for the device's
// registration, the serialization and the pending markers included.
func (s *Store) DeviceSettings(ctx context.Context, tenant, deviceID string) (store.DeviceRegistration, error) {
	return readRegistration(s.db.QueryRow(ctx, selectRegistration, tenant, deviceID), deviceID)
}

// registrationColumns are what readRegistration decodes.
const registrationColumns = `params, psk_key, bootstrap_psk_key, credentials_hash, serialization,
	updated, pending_create, pending_delete, pending_release`

const selectRegistration = "SELECT " + registrationColumns + " FROM registrations WHERE tenant = ? AND device = ?"

// readRegistration decodes a row of registrationColumns.
func readRegistration(row scanner, deviceID string) (store.DeviceRegistration, error) {
	var (
		r                store.DeviceRegistration
		params, release  sql.NullString
		ser              sql.NullString
		updated          sql.NullInt64
		create, deleting bool
	)
	err := row.Scan(&params, &r.PSKKey, &r.BootstrapPSKKey, &r.CredentialsHash, &ser, &updated, &create, &deleting, &release)
	if err := notFound(err, "registration of "+deviceID); err != nil {
		return store.DeviceRegistration{}, err
	}
	if params.Valid {
		if err := json.Unmarshal([]byte(params.String), &r.Params); err != nil {
			return store.DeviceRegistration{}, fmt.Errorf("read registration of %s: params: %w", deviceID, err)
		}
	}
	if release.Valid {
		if err := json.Unmarshal([]byte(release.String), &r.Release); err != nil {
			return store.DeviceRegistration{}, fmt.Errorf("read registration of %s: identities to release: %w", deviceID, err)
		}
	}
	r.Serialization = ser.String
	if updated.Valid {
		r.Updated = time.UnixMilli(updated.Int64).UTC()
	}
	r.Incomplete, r.Deleting = create || deleting, deleting
	return r, nil
}
