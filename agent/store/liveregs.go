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
}

// LiveRegistrations calls fn for every device whose managed object holds
// a live registration, streaming them from the store; an error of fn
// stops it and is returned.
func (s *Store) LiveRegistrations(ctx context.Context, fn func(LiveRegistration) error) error {
	formats, err := s.serializations(ctx)
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
		if err := fn(LiveRegistration{Tenant: d.Tenant, DeviceID: d.ID, Fragment: frag, Serialization: formats[key(d.Tenant, d.ID)]}); err != nil {
			return err
		}
	}
	if err := cur.Err(); err != nil {
		return fmt.Errorf("live registrations: %w", err)
	}
	return nil
}

// serializations returns the serialization of every device that has one,
// by key(tenant, device): few devices have one, and one scan is cheaper
// than a read per restored device.
func (s *Store) serializations(ctx context.Context) (map[string]string, error) {
	cur, err := s.deviceRegs.Find(ctx, bson.D{{Key: "serialization", Value: bson.D{{Key: "$gt", Value: ""}}}},
		options.Find().SetProjection(bson.D{{Key: "serialization", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("device serializations: %w", err)
	}
	defer cur.Close(ctx)
	out := map[string]string{}
	for cur.Next(ctx) {
		var d struct {
			Key           string `bson:"_id"`
			Serialization string `bson:"serialization"`
		}
		if err := cur.Decode(&d); err != nil {
			return nil, fmt.Errorf("device serializations: %w", err)
		}
		out[d.Key] = d.Serialization
	}
	if err := cur.Err(); err != nil {
		return nil, fmt.Errorf("device serializations: %w", err)
	}
	return out, nil
}
