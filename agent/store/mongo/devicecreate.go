package mongo

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// CreateIncompleteDevice creates the LwM2M device d in the tenant: its
// registration record (marked incomplete), then its managed object, its
// external IDs (c8y_Id = endpoint first: the claim of the device, which
// a concurrent creator of the same endpoint loses) and last the binding
// of the endpoint to the device, unless another tenant holds it. The
// device is no device for the protocol layers until CompleteDevice; the
// caller adds what else it writes in between (PSK identities) and
// removes it all with RemoveIncompleteDevice if it gives up. If the
// tenant already has a device for the endpoint, it returns that
// device's ID and an error wrapping ErrConflict, and nothing is written.
func (s *Store) CreateIncompleteDevice(ctx context.Context, tenant string, d store.NewDevice) (id string, err error) {
	return s.createIncomplete(ctx, tenant, d, 0)
}

// createIncomplete is CreateIncompleteDevice under the id seq, reserved
// by NewDeviceID, or a fresh one when seq is 0.
func (s *Store) createIncomplete(ctx context.Context, tenant string, d store.NewDevice, seq int64) (id string, err error) {
	if d.Endpoint == "" {
		return "", fmt.Errorf("%w: empty endpoint", store.ErrInvalid)
	}
	frags := map[string]any{}
	for k, v := range d.Fragments {
		if !reserved[k] && k != "name" && k != "type" {
			frags[k] = v
		}
	}
	if err := checkFragments(frags); err != nil {
		return "", err
	}
	if x, err := s.GetExternalID(ctx, tenant, store.ExternalIDDevice, d.Endpoint); err == nil {
		return x.ManagedObjectID, fmt.Errorf("device %s: %w", d.Endpoint, store.ErrConflict)
	}
	if seq == 0 {
		ids, err := s.newIDs(ctx, 1)
		if err != nil {
			return "", err
		}
		seq = ids[0]
	}
	id = strconv.FormatInt(seq, 10)
	reg := d.Registration
	reg.Incomplete = true
	if err := s.SaveDeviceRegistration(ctx, tenant, id, reg); err != nil {
		return "", err
	}
	undo := func(err error) (string, error) {
		if rerr := s.RemoveIncompleteDevice(context.WithoutCancel(ctx), tenant, id); rerr != nil {
			s.log.Error("remove a device whose creation failed; the next start removes it", "tenant", tenant, "device", id, "err", rerr)
		}
		return "", err
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	name := d.Name
	if name == "" {
		name = d.Endpoint
	}
	mo := store.ManagedObject{ID: id, Name: name, Type: store.DeviceType, CreationTime: now, LastUpdated: now, Fragments: frags}
	if _, err := s.objects.InsertOne(ctx, s.moDoc(tenant, mo, seq)); err != nil {
		return undo(fmt.Errorf("create device %s: %w", d.Endpoint, err))
	}
	if err := s.insertExternalID(ctx, tenant, store.ExternalID{Type: store.ExternalIDDevice, ExternalID: d.Endpoint, ManagedObjectID: id}); err != nil {
		_, _ = undo(err)
		if errors.Is(err, store.ErrConflict) {
			// a concurrent creator claimed the endpoint first
			if x, err2 := s.GetExternalID(ctx, tenant, store.ExternalIDDevice, d.Endpoint); err2 == nil {
				return x.ManagedObjectID, err
			}
		}
		return "", err
	}
	for _, x := range d.ExternalIDs {
		x.ManagedObjectID = id
		if err := s.insertExternalID(ctx, tenant, x); err != nil {
			return undo(err)
		}
	}
	_, err = s.endpoints.InsertOne(ctx, endpointDoc{Endpoint: d.Endpoint, Tenant: tenant, DeviceID: id})
	if err != nil && !isDup(err) {
		return undo(fmt.Errorf("bind endpoint %s: %w", d.Endpoint, err))
	}
	return id, nil
}

// CreateDevice creates the LwM2M device for endpoint in the tenant, as
// auto-registration does: a managed object named after it, of type
// c8y_lwm2m, with c8y_IsDevice and c8y_SupportedOperations, the external
// ID c8y_Id = endpoint, the binding of the endpoint unless another
// tenant holds it, and a complete registration record of securityMode
// NO_SEC, all or nothing (see CreateIncompleteDevice). If the tenant
// already has a device for the endpoint, it returns that device's ID and
// an error wrapping ErrConflict.
func (s *Store) CreateDevice(ctx context.Context, tenant, endpoint string) (id string, err error) {
	return s.createDevice(ctx, tenant, endpoint, 0)
}

// createDevice is CreateDevice under the id seq (0: a fresh one).
func (s *Store) createDevice(ctx context.Context, tenant, endpoint string, seq int64) (id string, err error) {
	id, err = s.createIncomplete(ctx, tenant, store.AutoRegistered(endpoint), seq)
	if err != nil {
		return id, err
	}
	if err := s.CompleteDevice(ctx, tenant, id); err != nil {
		if rerr := s.RemoveIncompleteDevice(context.WithoutCancel(ctx), tenant, id); rerr != nil {
			s.log.Error("remove a device whose creation failed; the next start removes it", "tenant", tenant, "device", id, "err", rerr)
		}
		return "", err
	}
	return id, nil
}

// RemoveIncompleteDevice removes the tenant's device as long as its
// registration record is incomplete: what its creation wrote, or what a
// deletion left (see removeDevice for the order, which lets a removal
// cut short be done again by the next start). A device that has none or
// a complete record is ErrComplete: it is no creation's leftover.
func (s *Store) RemoveIncompleteDevice(ctx context.Context, tenant, id string) error {
	var d deviceRegDoc
	err := s.deviceRegs.FindOne(ctx, bson.D{{Key: "_id", Value: key(tenant, id)}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return fmt.Errorf("remove device %s: %w", id, store.ErrComplete)
	}
	if err != nil {
		return fmt.Errorf("remove device %s: read its registration: %w", id, err)
	}
	r := d.registration()
	if !r.Incomplete {
		return fmt.Errorf("remove device %s: %w", id, store.ErrComplete)
	}
	_, err = s.removeDevice(ctx, tenant, id, r)
	return err
}

// ReleasePendingIdentities releases the identities a change of the
// device's record left to release (DeviceRegistration.Release), except
// those the record names again, and marks the record complete.
func (s *Store) ReleasePendingIdentities(ctx context.Context, tenant, id string) error {
	r, err := s.DeviceSettings(ctx, tenant, id)
	if err != nil {
		return err
	}
	if r.Incomplete {
		return fmt.Errorf("release identities of %s: its creation has not finished", id)
	}
	for kind, ident := range r.ToRelease() {
		if err := s.UnbindPSKIdentity(ctx, kind, ident, tenant, id); err != nil {
			return err
		}
	}
	return s.CompleteDevice(ctx, tenant, id)
}

// pendingGrace is how old an unfinished change of a shared database must
// be before a starting agent takes it for a crash's leftover: another
// replica may be making it now, and one takes milliseconds.
const pendingGrace = 10 * time.Minute

// repairIncompleteDevices finishes, at the store's start, what a crash
// cut short: it removes every device whose creation or deletion did not
// // finish, and releases the PSK identities a change did not release. A
// database of one agent (Config.SoleWriter) has no other writer, so
// everything unfinished is a leftover; a shared one may have replicas
// writing, so only changes older than pendingGrace are.
func (s *Store) repairIncompleteDevices(ctx context.Context) error {
	keys, err := s.pendingRegistrations(ctx)
	if err != nil {
		return fmt.Errorf("repair unfinished device changes: %w", err)
	}
	cutoff := time.Now()
	if !s.soleWriter {
		cutoff = cutoff.Add(-pendingGrace)
	}
	removed, deleted, released := 0, 0, 0
	for _, k := range keys {
		tenant, id, ok := strings.Cut(k, "/")
		if !ok {
			continue
		}
		r, err := s.DeviceSettings(ctx, tenant, id)
		if err != nil {
			return fmt.Errorf("repair unfinished device changes: %w", err)
		}
		if r.Updated.After(cutoff) {
			continue
		}
		if r.Incomplete {
			if err := s.RemoveIncompleteDevice(ctx, tenant, id); err != nil {
				return fmt.Errorf("repair unfinished device changes: %w", err)
			}
			if r.Deleting {
				deleted++
			} else {
				removed++
			}
			continue
		}
		if err := s.ReleasePendingIdentities(ctx, tenant, id); err != nil {
			return fmt.Errorf("repair unfinished device changes: %w", err)
		}
		released++
	}
	if removed+deleted+released > 0 {
		s.log.Warn("devices whose creation, deletion or change a stop cut short repaired: the created ones removed (import them again), the deleted ones removed whole, the identities a change gave up released",
			"removed", removed, "deleted", deleted, "released", released)
	}
	return nil
}

// pendingRegistrations returns the keys of the registration records an
// unfinished change left.
func (s *Store) pendingRegistrations(ctx context.Context) ([]string, error) {
	cur, err := s.deviceRegs.Find(ctx, bson.D{{Key: "pending", Value: bson.D{{Key: "$exists", Value: true}}}},
		options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("unfinished registrations: %w", err)
	}
	defer cur.Close(ctx)
	var keys []string
	for cur.Next(ctx) {
		var d struct {
			Key string `bson:"_id"`
		}
		if err := cur.Decode(&d); err != nil {
			return nil, fmt.Errorf("unfinished registrations: %w", err)
		}
		keys = append(keys, d.Key)
	}
	if err := cur.Err(); err != nil {
		return nil, fmt.Errorf("unfinished registrations: %w", err)
	}
	return keys, nil
}

// AdoptNoSecDevice gives the tenant's device the registration record
// auto-registration gives a new device (securityMode NO_SEC) if it has
// none, or one that names no security mode, holds no key and is not
// being written: a device auto-registered before such records were
// written. adopted is false when the record says anything else.
func (s *Store) AdoptNoSecDevice(ctx context.Context, tenant, id, endpoint string) (adopted bool, err error) {
	r, err := s.DeviceSettings(ctx, tenant, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		_, err = s.deviceRegs.InsertOne(ctx, deviceRegDoc{
			Key: key(tenant, id), Tenant: tenant, DeviceID: id,
			Params:  map[string]any{store.ParamEndpointID: endpoint, store.ParamSecurityMode: store.SecurityNoSec},
			Updated: time.Now().UTC().Truncate(time.Millisecond),
		})
		if isDup(err) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("adopt device %s: %w", id, err)
		}
		return true, nil
	case err != nil:
		return false, err
	case r.Incomplete || r.SecurityMode() != "" || len(r.PSKKey) > 0:
		return false, nil
	}
	params := map[string]any{}
	for k, v := range r.Params {
		params[k] = v
	}
	params[store.ParamEndpointID], params[store.ParamSecurityMode] = endpoint, store.SecurityNoSec
	// a mode, a key or a creation written meanwhile wins
	absent := bson.D{{Key: "$exists", Value: false}}
	res, err := s.deviceRegs.UpdateOne(ctx, bson.D{
		{Key: "_id", Value: key(tenant, id)}, {Key: "pending", Value: absent},
		{Key: "params." + store.ParamSecurityMode, Value: absent}, {Key: "pskKey", Value: absent},
	}, bson.D{{Key: "$set", Value: bson.D{{Key: "params", Value: params}, {Key: "updated", Value: time.Now().UTC().Truncate(time.Millisecond)}}}})
	if err != nil {
		return false, fmt.Errorf("adopt device %s: %w", id, err)
	}
	return res.ModifiedCount == 1, nil
}
