package store

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// LiveRegistration is what the store holds of a device's LwM2M
// registration: the lwm2m fragment of its managed object, which the
// session layer writes on every Register, Update, De-register and expiry
// anyway (a live one has a registrationId, an ended one an empty one),
// and the serialization set for the device. The agent restores these
// when it starts, so that devices need not register again.
type LiveRegistration struct {
	Tenant   string
	DeviceID string
	// Fragment is the lwm2m fragment, with plain Go values (Plain).
	Fragment map[string]any
	// Serialization is the device's content format name, "" for none
	// (DeviceRegistration.Serialization).
	Serialization string
	// Record is what the device's registration record says of how it may
	// connect now, nil when it has none: a registration restored without
	// a look at it would outlive a change of security cut short by a
	// crash, or a record that was never written.
	Record *RecordAccess
}

// RecordAccess is what a registration record says of how its device may
// connect: DeviceRegistration without its other parameters and secrets.
type RecordAccess struct {
	SecurityMode string // DeviceRegistration.SecurityMode
	PSKIdentity  string // the lwm2m PSK identity the record names
	Keyed        bool   // a PSK key is stored
	Incomplete   bool   // DeviceRegistration.Incomplete
}

// Access returns what the record says of how its device may connect.
func (r DeviceRegistration) Access() RecordAccess {
	return RecordAccess{SecurityMode: r.SecurityMode(), PSKIdentity: r.PSKIdentity(PSKServer), Keyed: len(r.PSKKey) > 0, Incomplete: r.Incomplete}
}

// recordInfo is what a restore needs of a device's registration record.
type recordInfo struct {
	serialization string
	access        RecordAccess
}

// live is the LiveRegistration of the tenant's device, with what records
// holds of its registration record.
func live(tenant, id string, frag map[string]any, records map[string]*recordInfo) LiveRegistration {
	l := LiveRegistration{Tenant: tenant, DeviceID: id, Fragment: frag}
	if r := records[key(tenant, id)]; r != nil {
		l.Serialization = r.serialization
		l.Record = &r.access
	}
	return l
}

// LiveRegistrations calls fn for every device whose managed object holds
// a live registration, streaming them from the store; an error of fn
// stops it and is returned.
func (s *Store) LiveRegistrations(ctx context.Context, fn func(LiveRegistration) error) error {
	records, err := s.records(ctx)
	if err != nil {
		return err
	}
	cur, err := s.objects.Find(ctx, bson.D{{Key: "lwm2m.registrationId", Value: bson.D{{Key: "$gt", Value: ""}}}},
		options.Find().SetProjection(bson.D{{Key: "tenant", Value: 1}, {Key: "id", Value: 1}, {Key: "lwm2m", Value: 1}}))
	if err != nil {
		return fmt.Errorf("live registrations: %w", err)
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		var d struct {
			Tenant string         `bson:"tenant"`
			ID     string         `bson:"id"`
			LwM2M  map[string]any `bson:"lwm2m"`
		}
		if err := cur.Decode(&d); err != nil {
			return fmt.Errorf("live registrations: %w", err)
		}
		frag, _ := Plain(d.LwM2M).(map[string]any)
		if err := fn(live(d.Tenant, d.ID, frag, records)); err != nil {
			return err
		}
	}
	if err := cur.Err(); err != nil {
		return fmt.Errorf("live registrations: %w", err)
	}
	return nil
}

// records returns what a restore needs of every registration record, by
// key(tenant, device): one scan of the records is far cheaper than a read
// per restored device.
func (s *Store) records(ctx context.Context) (map[string]*recordInfo, error) {
	cur, err := s.deviceRegs.Find(ctx, bson.D{}, options.Find().SetProjection(bson.D{
		{Key: "serialization", Value: 1}, {Key: "params." + ParamSecurityMode, Value: 1},
		{Key: "params." + pskParams[PSKServer], Value: 1}, {Key: "pskKey", Value: 1}, {Key: "pending", Value: 1},
	}))
	if err != nil {
		return nil, fmt.Errorf("registration records: %w", err)
	}
	defer cur.Close(ctx)
	out := map[string]*recordInfo{}
	for cur.Next(ctx) {
		var d deviceRegDoc
		if err := cur.Decode(&d); err != nil {
			return nil, fmt.Errorf("registration records: %w", err)
		}
		r := d.registration()
		out[d.Key] = &recordInfo{serialization: r.Serialization, access: r.Access()}
	}
	if err := cur.Err(); err != nil {
		return nil, fmt.Errorf("registration records: %w", err)
	}
	return out, nil
}
