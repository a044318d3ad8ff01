package mongo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// pendingDoc is what a registration record says of the unfinished
// change that wrote it; a record without one is complete.
type pendingDoc struct {
	Create  bool              `bson:"create,omitempty"`
	Delete  bool              `bson:"delete,omitempty"`
	Release map[string]string `bson:"release,omitempty"`
}

type deviceRegDoc struct {
	Key             string         `bson:"_id"`
	Tenant          string         `bson:"tenant"`
	DeviceID        string         `bson:"deviceId"`
	Params          map[string]any `bson:"params"`
	PSKKey          []byte         `bson:"pskKey,omitempty"`
	BootstrapPSKKey []byte         `bson:"bootstrapPskKey,omitempty"`
	CredentialsHash []byte         `bson:"credentialsHash,omitempty"`
	Serialization   string         `bson:"serialization,omitempty"`
	Updated         time.Time      `bson:"updated"`
	Pending         *pendingDoc    `bson:"pending,omitempty"`
}

// SaveDeviceRegistration stores (or replaces) a device's registration
// parameters and secrets. The device's Serialization is not changed:
// SetDeviceSerialization owns it. r.Incomplete, r.Deleting and
// r.Release, when set, are stored in the same write; otherwise the
// record stays as complete or incomplete as it was, so that a change
// made while the device's creation or deletion is under way does not
// complete it.
func (s *Store) SaveDeviceRegistration(ctx context.Context, tenant, deviceID string, r store.DeviceRegistration) error {
	set := bson.D{
		{Key: "tenant", Value: tenant}, {Key: "deviceId", Value: deviceID}, {Key: "params", Value: r.Params},
		{Key: "updated", Value: time.Now().UTC().Truncate(time.Millisecond)},
	}
	// field by field: a change must not clear what another one under way
	// marked (a deletion above all)
	switch {
	case r.Deleting:
		set = append(set, bson.E{Key: "pending.delete", Value: true})
	case r.Incomplete:
		set = append(set, bson.E{Key: "pending.create", Value: true})
	}
	if len(r.Release) > 0 {
		set = append(set, bson.E{Key: "pending.release", Value: r.Release})
	}
	unset := bson.D{}
	for _, f := range []struct {
		name string
		v    []byte
	}{{"pskKey", r.PSKKey}, {"bootstrapPskKey", r.BootstrapPSKKey}, {"credentialsHash", r.CredentialsHash}} {
		if len(f.v) > 0 {
			set = append(set, bson.E{Key: f.name, Value: f.v})
		} else {
			unset = append(unset, bson.E{Key: f.name, Value: ""})
		}
	}
	upd := bson.D{{Key: "$set", Value: set}}
	if len(unset) > 0 {
		upd = append(upd, bson.E{Key: "$unset", Value: unset})
	}
	_, err := s.deviceRegs.UpdateOne(ctx, bson.D{{Key: "_id", Value: key(tenant, deviceID)}}, upd, options.UpdateOne().SetUpsert(true))
	if err != nil {
		return fmt.Errorf("save registration of %s: %w", deviceID, err)
	}
	return nil
}

// SetDeviceSerialization stores the content format name the device's
// requests use from now on; "" removes it. A device without registration
// parameters (an auto-registered one) gets a registration document that
// holds only this.
func (s *Store) SetDeviceSerialization(ctx context.Context, tenant, deviceID, format string) error {
	var upd bson.D
	if format == "" {
		upd = bson.D{{Key: "$unset", Value: bson.D{{Key: "serialization", Value: ""}}}}
	} else {
		upd = bson.D{{Key: "$set", Value: bson.D{
			{Key: "tenant", Value: tenant}, {Key: "deviceId", Value: deviceID}, {Key: "serialization", Value: format},
		}}}
	}
	_, err := s.deviceRegs.UpdateOne(ctx, bson.D{{Key: "_id", Value: key(tenant, deviceID)}}, upd, options.UpdateOne().SetUpsert(format != ""))
	if err != nil {
		return fmt.Errorf("set serialization of %s: %w", deviceID, err)
	}
	return nil
}

// CompleteDevice marks the device's registration record complete: the
// last write of a change, after which the device is what the record
// says for every reader. A device being deleted is not completed.
func (s *Store) CompleteDevice(ctx context.Context, tenant, deviceID string) error {
	// The embedded store looks up by _id alone in its index, and decodes
	// every record for any other filter: the deletion's mark is read
	// first rather than filtered on, which a deletion starting between
	// the two could only lose if it began in those microseconds.
	r, err := s.DeviceSettings(ctx, tenant, deviceID)
	if err == nil && r.Deleting {
		err = store.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("complete registration of %s: %w", deviceID, err)
	}
	res, err := s.deviceRegs.UpdateOne(ctx, bson.D{{Key: "_id", Value: key(tenant, deviceID)}},
		bson.D{{Key: "$unset", Value: bson.D{{Key: "pending", Value: ""}}}})
	if err != nil {
		return fmt.Errorf("complete registration of %s: %w", deviceID, err)
	}
	if res.MatchedCount == 0 {
		// removed meanwhile (RemoveIncompleteDevice): nothing to complete
		return fmt.Errorf("complete registration of %s: %w", deviceID, store.ErrNotFound)
	}
	return nil
}

// DeviceRegistrationOf returns a device's registration, secrets included:
// for the protocol layers, never for an API answer. A device that has no
// registration parameters (only a Serialization), or whose creation has
// not finished (Incomplete), is ErrNotFound here.
func (s *Store) DeviceRegistrationOf(ctx context.Context, tenant, deviceID string) (store.DeviceRegistration, error) {
	r, err := s.DeviceSettings(ctx, tenant, deviceID)
	if err == nil && (r.Incomplete || r.Params == nil && len(r.PSKKey) == 0 && len(r.BootstrapPSKKey) == 0 && len(r.CredentialsHash) == 0) {
		return store.DeviceRegistration{}, store.ErrNotFound
	}
	return r, err
}

// DeviceSettings returns whatever is stored for the device's registration:
// parameters and secrets as DeviceRegistrationOf, and also the
// Serialization of a device that has no parameters, and a record that is
// Incomplete. One read serves the LwM2M server's Register, which needs
// all of it.
func (s *Store) DeviceSettings(ctx context.Context, tenant, deviceID string) (store.DeviceRegistration, error) {
	var d deviceRegDoc
	err := s.deviceRegs.FindOne(ctx, bson.D{{Key: "_id", Value: key(tenant, deviceID)}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return store.DeviceRegistration{}, store.ErrNotFound
	}
	if err != nil {
		return store.DeviceRegistration{}, fmt.Errorf("read registration of %s: %w", deviceID, err)
	}
	return d.registration(), nil
}

func (d deviceRegDoc) registration() store.DeviceRegistration {
	r := store.DeviceRegistration{Params: d.Params, PSKKey: d.PSKKey, BootstrapPSKKey: d.BootstrapPSKKey, CredentialsHash: d.CredentialsHash, Serialization: d.Serialization, Updated: d.Updated}
	if d.Pending != nil {
		r.Incomplete, r.Deleting, r.Release = d.Pending.Create || d.Pending.Delete, d.Pending.Delete, d.Pending.Release
	}
	return r
}

type pskDoc struct {
	Key      string `bson:"_id"`
	Tenant   string `bson:"tenant"`
	DeviceID string `bson:"deviceId"`
}

func pskKey(kind, identity string) string { return kind + "/" + identity }

// BindPSKIdentity makes identity (of kind PSKServer or PSKBootstrap) name
// the tenant's device during DTLS handshakes. Like an endpoint, an
// identity belongs to the device that claimed it first, across tenants:
// a handshake carries no tenant. ErrConflict when another device holds it.
func (s *Store) BindPSKIdentity(ctx context.Context, kind, identity, tenant, deviceID string) error {
	if identity == "" {
		return fmt.Errorf("%w: empty psk identity", store.ErrInvalid)
	}
	_, err := s.pskIDs.InsertOne(ctx, pskDoc{Key: pskKey(kind, identity), Tenant: tenant, DeviceID: deviceID})
	if isDup(err) {
		t, id, err2 := s.DeviceByPSKIdentity(ctx, kind, identity)
		if err2 != nil {
			return err2
		}
		if t == tenant && id == deviceID {
			return nil
		}
		return fmt.Errorf("%s psk identity %q: %w", kind, identity, store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("bind %s psk identity of %s: %w", kind, deviceID, err)
	}
	return nil
}

// UnbindPSKIdentity releases identity if the tenant's device holds it.
func (s *Store) UnbindPSKIdentity(ctx context.Context, kind, identity, tenant, deviceID string) error {
	_, err := s.pskIDs.DeleteOne(ctx, bson.D{
		{Key: "_id", Value: pskKey(kind, identity)}, {Key: "tenant", Value: tenant}, {Key: "deviceId", Value: deviceID},
	})
	if err != nil {
		return fmt.Errorf("unbind %s psk identity of %s: %w", kind, deviceID, err)
	}
	return nil
}

// DeviceByPSKIdentity returns the device that holds identity.
func (s *Store) DeviceByPSKIdentity(ctx context.Context, kind, identity string) (tenant, id string, err error) {
	var d pskDoc
	err = s.pskIDs.FindOne(ctx, bson.D{{Key: "_id", Value: pskKey(kind, identity)}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return "", "", store.ErrNotFound
	}
	if err != nil {
		return "", "", fmt.Errorf("read %s psk identity: %w", kind, err)
	}
	return d.Tenant, d.DeviceID, nil
}
