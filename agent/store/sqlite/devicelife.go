package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// The statements of a device's creation and removal, named so that a
// test checks the index each one uses: every one is a lookup of the
// device's rows by a key or an index that leads with (tenant, device).
const (
	sqlDeviceOfEndpoint = "SELECT device FROM external_ids WHERE tenant = ? AND type = ? AND external_id = ?"
	// The index of a device's external IDs holds their key after its
	// own columns, which gives them in order.
	sqlEndpointIDsOf    = "SELECT external_id FROM external_ids WHERE tenant = ? AND device = ? AND type = ? ORDER BY external_id"
	sqlUnbindEndpoints  = "DELETE FROM endpoints WHERE tenant = ? AND device = ? RETURNING endpoint"
	sqlUnbindIdentities = "DELETE FROM psk_identities WHERE tenant = ? AND device = ? RETURNING iif(kind = ?, identity, NULL)"
)

// removeDeviceRows remove the device's external IDs, object and record.
var removeDeviceRows = []string{
	"DELETE FROM external_ids WHERE tenant = ? AND device = ?",
	"DELETE FROM managed_objects WHERE tenant = ? AND id = ?",
	"DELETE FROM registrations WHERE tenant = ? AND device = ?",
}

// A device is several rows: its managed object, its external IDs, its
// endpoint binding, its PSK identities and its registration record. On
// this engine each creation and removal below is one change of the
// writer, so that no reader ever sees a part of it, and a crash keeps all
// of it or none. The pending markers of the record keep the meaning they
// have on the MongoDB engine all the same: CreateIncompleteDevice leaves
// the record incomplete until the caller, having bound what it binds in
// between (PSK identities), calls CompleteDevice; until then the
// protocol layers refuse the device, and the next start removes it
// (repairDevices).

// CreateIncompleteDevice creates the LwM2M device d in the tenant, in one
// change: its registration record marked incomplete, its managed object,
// its external IDs (c8y_Id = endpoint first) and the binding of its
// endpoint, unless another tenant holds it. If the tenant already has a
// device for the endpoint, it returns that device's id and an error
// wrapping ErrConflict, and nothing is written; another external ID
// taken is ErrConflict too, with nothing written.
func (s *Store) CreateIncompleteDevice(ctx context.Context, tenant string, d store.NewDevice) (id string, err error) {
	return s.createDevice(ctx, tenant, d, false)
}

// CreateDevice creates the LwM2M device for endpoint in the tenant, as
// auto-registration does: a managed object named after it, of type
// c8y_lwm2m, with c8y_IsDevice and c8y_SupportedOperations, the external
// ID c8y_Id = endpoint, the binding of the endpoint unless another
// tenant holds it, and a complete registration record of securityMode
// NO_SEC, in one change. If the tenant already has a device for the
// endpoint, it returns that device's id and an error wrapping
// ErrConflict.
func (s *Store) CreateDevice(ctx context.Context, tenant, endpoint string) (id string, err error) {
	return s.createDevice(ctx, tenant, store.AutoRegistered(endpoint), true)
}

func (s *Store) createDevice(ctx context.Context, tenant string, d store.NewDevice, complete bool) (string, error) {
	nd, err := deviceRowsOf(d, complete)
	if err != nil {
		return "", err
	}
	var id, holder string
	err = s.db.Write(ctx, func(tx *Tx) error {
		seq, err := nextID(tx)
		if err != nil {
			return err
		}
		id = strconv.FormatInt(seq, 10)
		holder, err = nd.insert(tx, tenant, seq)
		return err
	})
	if err != nil {
		return holder, fmt.Errorf("create device %s: %w", d.Endpoint, err)
	}
	return id, nil
}

// deviceRows is a device to create, checked and encoded outside the
// writer.
type deviceRows struct {
	d        store.NewDevice
	name     string
	doc      string
	reg      store.DeviceRegistration
	complete bool
}

func deviceRowsOf(d store.NewDevice, complete bool) (deviceRows, error) {
	if d.Endpoint == "" {
		return deviceRows{}, fmt.Errorf("%w: empty endpoint", store.ErrInvalid)
	}
	doc, err := objectFragments(d.Fragments)
	if err != nil {
		return deviceRows{}, err
	}
	nd := deviceRows{d: d, name: d.Name, doc: doc, reg: d.Registration, complete: complete}
	if nd.name == "" {
		nd.name = d.Endpoint
	}
	// A complete creation is one change, so no reader ever sees the
	// record pending: it is written complete at once.
	nd.reg.Incomplete = !complete
	return nd, nil
}

// insert writes the device's rows under the id seq, unless the tenant
// has a device for the endpoint already: then it returns that device's
// id and an error wrapping ErrConflict, having written nothing.
func (nd deviceRows) insert(tx *Tx, tenant string, seq int64) (holder string, err error) {
	d := nd.d
	// The endpoint's c8y_Id names the tenant's device for it: the claim
	// that a second creation of the endpoint loses.
	err = tx.QueryRow(sqlDeviceOfEndpoint, tenant, store.ExternalIDDevice, d.Endpoint).Scan(&holder)
	if err == nil {
		return holder, fmt.Errorf("%w: the tenant has a device for the endpoint", store.ErrConflict)
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return "", err
	}
	id := strconv.FormatInt(seq, 10)
	now := nowMilli()
	_, err = tx.Exec(`INSERT INTO managed_objects (tenant, id, seq, name, type, creation_time, last_updated, fragments)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, tenant, id, seq, nd.name, store.DeviceType, now.UnixMilli(), now.UnixMilli(), nd.doc)
	if err != nil {
		return "", err
	}
	if err := saveRegistration(tx, tenant, id, nd.reg); err != nil {
		return "", err
	}
	xs := append([]store.ExternalID{{Type: store.ExternalIDDevice, ExternalID: d.Endpoint}}, d.ExternalIDs...)
	for _, x := range xs {
		_, err := tx.Exec("INSERT INTO external_ids (tenant, type, external_id, device) VALUES (?, ?, ?, ?)",
			tenant, x.Type, x.ExternalID, id)
		if err != nil {
			return "", fmt.Errorf("external id %s %s: %w", x.Type, x.ExternalID, err)
		}
	}
	// An endpoint another tenant's device holds stays bound to it.
	_, err = tx.Exec(`INSERT INTO endpoints (endpoint, tenant, device) VALUES (?, ?, ?)
		ON CONFLICT (endpoint) DO NOTHING`, d.Endpoint, tenant, id)
	if err != nil {
		return "", fmt.Errorf("bind endpoint %s: %w", d.Endpoint, err)
	}
	return "", nil
}

// RemoveIncompleteDevice removes the tenant's device as long as its
// registration record is incomplete: what its creation wrote, or what a
// deletion left. A device that has no record or a complete one is
// store.ErrComplete: it is no creation's leftover.
func (s *Store) RemoveIncompleteDevice(ctx context.Context, tenant, id string) error {
	err := s.db.Write(ctx, func(tx *Tx) error {
		r, err := readRegistration(tx.QueryRow(selectRegistration, tenant, id), id)
		if errors.Is(err, store.ErrNotFound) || err == nil && !r.Incomplete {
			return store.ErrComplete
		}
		if err != nil {
			return err
		}
		_, err = removeDevice(tx, tenant, id, r)
		return err
	})
	if err != nil {
		return fmt.Errorf("remove device %s: %w", id, err)
	}
	return nil
}

// DeleteManagedObject deletes the object and everything that names it,
// in one change: its endpoint bindings, its PSK identities, its external
// IDs, its registration record and what deviceCleanup names, so that a
// new device may claim its endpoint and identities. It returns what the
// device was reachable by; the caller ends its live registrations and
// sessions. A record marked as being deleted whose object is gone (a
// deletion the MongoDB engine left unfinished, or a record saved with
// Deleting) is removed as a device.
func (s *Store) DeleteManagedObject(ctx context.Context, tenant, id string) (store.DeletedDevice, error) {
	var gone store.DeletedDevice
	err := s.db.Write(ctx, func(tx *Tx) error {
		var one int
		objErr := tx.QueryRow("SELECT 1 FROM managed_objects WHERE tenant = ? AND id = ?", tenant, id).Scan(&one)
		if objErr != nil && !errors.Is(objErr, sql.ErrNoRows) {
			return objErr
		}
		r, err := readRegistration(tx.QueryRow(selectRegistration, tenant, id), id)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if objErr != nil && !r.Deleting {
			return store.ErrNotFound
		}
		gone, err = removeDevice(tx, tenant, id, r)
		return err
	})
	if err != nil {
		return store.DeletedDevice{}, fmt.Errorf("delete managed object %s: %w", id, err)
	}
	return gone, nil
}

// removeDevice removes the tenant's device whose registration record is
// r (the zero record when it has none) and names what it was reachable
// by as the MongoDB engine does: the record's endpoint and the device's
// c8y_Id external IDs, the lwm2m PSK identities the record names or has
// yet to release. Unlike the MongoDB engine, which unbinds only those
// names, it removes every binding of the device, found by the bindings'
// (tenant, device) indexes, and names the bound ones it did not name
// already after them: a binding left naming a removed device would keep
// its endpoint or identity from any other device.
func removeDevice(tx *Tx, tenant, id string, r store.DeviceRegistration) (store.DeletedDevice, error) {
	var gone store.DeletedDevice
	if ep, _ := r.Params[store.ParamEndpointID].(string); ep != "" {
		gone.Endpoints = append(gone.Endpoints, ep)
	}
	eps, err := stringsOf(tx, sqlEndpointIDsOf, tenant, id, store.ExternalIDDevice)
	if err != nil {
		return gone, fmt.Errorf("remove device %s: external ids: %w", id, err)
	}
	gone.Endpoints = appendNew(gone.Endpoints, eps...)
	for _, ident := range []string{r.PSKIdentity(store.PSKServer), r.Release[store.PSKServer]} {
		if ident != "" {
			gone.Identities = appendNew(gone.Identities, ident)
		}
	}
	bound, err := stringsOf(tx, sqlUnbindEndpoints, tenant, id)
	if err != nil {
		return gone, fmt.Errorf("remove device %s: unbind endpoints: %w", id, err)
	}
	slices.Sort(bound)
	gone.Endpoints = appendNew(gone.Endpoints, bound...)
	bound, err = stringsOf(tx, sqlUnbindIdentities, tenant, id, store.PSKServer)
	if err != nil {
		return gone, fmt.Errorf("remove device %s: unbind psk identities: %w", id, err)
	}
	slices.Sort(bound)
	gone.Identities = appendNew(gone.Identities, bound...)
	for _, q := range removeDeviceRows {
		if _, err := tx.Exec(q, tenant, id); err != nil {
			return gone, fmt.Errorf("remove device %s: %w", id, err)
		}
	}
	for _, cleanup := range deviceCleanup {
		if err := cleanup(tx, tenant, id); err != nil {
			return gone, fmt.Errorf("remove device %s: %w", id, err)
		}
	}
	return gone, nil
}

// stringsOf runs a query of the change and returns the strings of its
// one column, NULLs left out.
func stringsOf(tx *Tx, query string, args ...any) ([]string, error) {
	rows, err := tx.Query(query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v sql.NullString
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		if v.Valid {
			out = append(out, v.String)
		}
	}
	return out, rows.Err()
}

// appendNew appends to list each of names it does not hold yet.
func appendNew(list []string, names ...string) []string {
	for _, n := range names {
		if !slices.Contains(list, n) {
			list = append(list, n)
		}
	}
	return list
}

// AdoptNoSecDevice gives the tenant's device the registration record
// auto-registration gives a new device (securityMode NO_SEC) if it has
// none, or one that names no security mode, holds no key and is not
// being written: a device auto-registered before such records were
// written. adopted is false when the record says anything else. The
// record is read and written in one change, so nothing written
// meanwhile is overwritten.
func (s *Store) AdoptNoSecDevice(ctx context.Context, tenant, id, endpoint string) (adopted bool, err error) {
	err = s.db.Write(ctx, func(tx *Tx) error {
		adopted = false
		var (
			params, mode   sql.NullString
			keyed, pending bool
		)
		err := tx.QueryRow(`SELECT params, psk_key IS NOT NULL, pending_create OR pending_delete OR pending_release IS NOT NULL,
				json_type(params, '$.`+store.ParamSecurityMode+`')
			FROM registrations WHERE tenant = ? AND device = ?`, tenant, id).Scan(&params, &keyed, &pending, &mode)
		merged := map[string]any{}
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return err
		case pending || keyed || mode.Valid:
			return nil
		case params.Valid:
			if err := json.Unmarshal([]byte(params.String), &merged); err != nil {
				return fmt.Errorf("read registration of %s: params: %w", id, err)
			}
		}
		merged[store.ParamEndpointID], merged[store.ParamSecurityMode] = endpoint, store.SecurityNoSec
		b, err := json.Marshal(merged)
		if err != nil {
			return err
		}
		_, err = tx.Exec(`INSERT INTO registrations (tenant, device, params, updated) VALUES (?, ?, ?, ?)
			ON CONFLICT (tenant, device) DO UPDATE SET params = excluded.params, updated = excluded.updated`,
			tenant, id, string(b), nowMilli().UnixMilli())
		adopted = err == nil
		return err
	})
	if err != nil {
		return false, fmt.Errorf("adopt device %s: %w", id, err)
	}
	return adopted, nil
}

// repairDevices finishes, at the start, what a stop cut short, as the
// MongoDB engine's start does: it removes every device whose creation
// (CreateIncompleteDevice without CompleteDevice) or deletion did not
// finish, and releases the PSK identities a change of a record left to
// release. This engine's file has no other writer, so every unfinished
// change is a leftover. The records are read a page at a time from the
// partial index of unfinished ones, each page repaired in one change.
func (s *Store) repairDevices(ctx context.Context) error {
	const page = 256
	removed, deleted, released := 0, 0, 0
	var after struct{ tenant, device string }
	for {
		rows, err := s.db.Query(ctx, selectPending, after.tenant, after.device, page)
		if err != nil {
			return fmt.Errorf("repair unfinished device changes: %w", err)
		}
		var keys [][2]string
		for rows.Next() {
			var k [2]string
			if err := rows.Scan(&k[0], &k[1]); err != nil {
				rows.Close()
				return fmt.Errorf("repair unfinished device changes: %w", err)
			}
			keys = append(keys, k)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("repair unfinished device changes: %w", err)
		}
		if len(keys) == 0 {
			break
		}
		after.tenant, after.device = keys[len(keys)-1][0], keys[len(keys)-1][1]
		var r, d, l int
		err = s.db.Write(ctx, func(tx *Tx) error {
			r, d, l = 0, 0, 0
			for _, k := range keys {
				tenant, id := k[0], k[1]
				reg, err := readRegistration(tx.QueryRow(selectRegistration, tenant, id), id)
				if err != nil {
					return err
				}
				switch {
				case reg.Deleting:
					d++
				case reg.Incomplete:
					r++
				default:
					l++
					if err := releasePending(tx, tenant, id, reg); err != nil {
						return err
					}
					continue
				}
				if _, err := removeDevice(tx, tenant, id, reg); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("repair unfinished device changes: %w", err)
		}
		removed, deleted, released = removed+r, deleted+d, released+l
	}
	if removed+deleted+released > 0 {
		s.db.log.Warn("devices whose creation, deletion or change a stop cut short repaired: the created ones removed (import them again), the deleted ones removed whole, the identities a change gave up released",
			"removed", removed, "deleted", deleted, "released", released)
	}
	return nil
}

// selectPending reads a page of the unfinished records after a key, from
// their partial index (registrations_pending), whose condition it spells
// as the index does.
const selectPending = `SELECT tenant, device FROM registrations
	WHERE (pending_create OR pending_delete OR pending_release IS NOT NULL) AND (tenant, device) > (?, ?)
	ORDER BY tenant, device LIMIT ?`

// releasePending releases the identities of r.ToRelease and marks the
// record complete (ReleasePendingIdentities inside a change).
func releasePending(tx *Tx, tenant, id string, r store.DeviceRegistration) error {
	for kind, ident := range r.ToRelease() {
		if err := unbindPSK(tx, kind, ident, tenant, id); err != nil {
			return err
		}
	}
	return completeDevice(tx, tenant, id)
}
