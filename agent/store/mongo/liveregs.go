package mongo

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// recordInfo is what a restore needs of a device's registration record.
type recordInfo struct {
	serialization string
	access        store.RecordAccess
}

// live is the LiveRegistration of the tenant's device, with what records
// holds of its registration record.
func live(tenant, id string, frag map[string]any, records map[string]*recordInfo) store.LiveRegistration {
	l := store.LiveRegistration{Tenant: tenant, DeviceID: id, Fragment: frag}
	if r := records[key(tenant, id)]; r != nil {
		l.Serialization = r.serialization
		l.Record = &r.access
	}
	return l
}

// LiveRegistrations calls fn for every device whose managed object holds
// a live registration, streaming them from the store; an error of fn
// stops it and is returned.
func (s *Store) LiveRegistrations(ctx context.Context, fn func(store.LiveRegistration) error) error {
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
		{Key: "serialization", Value: 1}, {Key: "params." + store.ParamSecurityMode, Value: 1},
		{Key: "params." + store.PSKParams[store.PSKServer], Value: 1}, {Key: "pskKey", Value: 1}, {Key: "pending", Value: 1},
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
