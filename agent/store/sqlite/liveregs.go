package sqlite

import (
	"context"
	"fmt"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// schemaLiveRegistrations indexes the managed objects that hold a live
// registration: those whose lwm2m fragment has a registrationId that is
// a non-empty string, as the MongoDB engine selects them
// ({"lwm2m.registrationId": {$gt: ""}}, which compares strings with
// strings only). The session layer writes that fragment on every
// Register, Update, De-register and expiry (an ended registration has an
// empty id), and the start restores every live one (LiveRegistrations).
//
// The index is partial: it holds only the live objects, so that a start
// with few registrations among many objects reads those few, and its
// rows are the objects' keys, through which the read finds each object's
// fragments. Its condition must be spelled as liveCondition spells it,
// for SQLite to see that a query's WHERE implies it.
const schemaLiveRegistrations = `CREATE INDEX managed_objects_live ON managed_objects (tenant, id)
	WHERE ` + liveCondition

const liveCondition = `json_type(fragments, '$.lwm2m.registrationId') = 'text'
		AND fragments ->> '$.lwm2m.registrationId' <> ''`

// selectLive reads each live registration with what its device's record
// says of how it may connect, the record found by its primary key in the
// same query. A parameter that is not a string reads as none, as
// DeviceRegistration's readers take it.
const selectLive = `SELECT o.tenant, o.id, o.fragments -> '$.lwm2m', r.device IS NOT NULL,
		coalesce(r.serialization, ''),
		iif(json_type(r.params, '$.` + store.ParamSecurityMode + `') = 'text', r.params ->> '$.` + store.ParamSecurityMode + `', ''),
		iif(json_type(r.params, '$.lwm2mPskId') = 'text', r.params ->> '$.lwm2mPskId', ''),
		coalesce(r.psk_key IS NOT NULL, 0), coalesce(r.pending_create OR r.pending_delete, 0)
	FROM managed_objects o INDEXED BY managed_objects_live
	LEFT JOIN registrations r ON r.tenant = o.tenant AND r.device = o.id
	WHERE ` + liveCondition

// LiveRegistrations calls fn for every device whose managed object holds
// a live registration, across tenants, streaming them from one query; an
// error of fn stops it and is returned.
func (s *Store) LiveRegistrations(ctx context.Context, fn func(store.LiveRegistration) error) error {
	rows, err := s.db.Query(ctx, selectLive)
	if err != nil {
		return fmt.Errorf("live registrations: %w", err)
	}
	defer rows.Close()
	var frag []byte
	for rows.Next() {
		var (
			l        store.LiveRegistration
			a        store.RecordAccess
			recorded bool
		)
		err := rows.Scan(&l.Tenant, &l.DeviceID, &frag, &recorded, &l.Serialization, &a.SecurityMode, &a.PSKIdentity, &a.Keyed, &a.Incomplete)
		if err != nil {
			return fmt.Errorf("live registrations: %w", err)
		}
		if l.Fragment, err = decodeFragments(frag); err != nil {
			return fmt.Errorf("live registration of %s: %w", l.DeviceID, err)
		}
		if recorded {
			l.Record = &a
		}
		if err := fn(l); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("live registrations: %w", err)
	}
	return nil
}
