package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// DeviceRegistration is what bulk registration knows of a device beyond its
// managed object: its registration and bootstrap parameters, and its
// secrets. The secrets are for the DTLS and bootstrap layers only; nothing
// in the API returns them.
type DeviceRegistration struct {
	// Params are the non-secret fields, by their camelCase names
	// (endpointId, lwm2mServerUri, securityMode, ...).
	Params          map[string]any
	PSKKey          []byte
	BootstrapPSKKey []byte
	CredentialsHash []byte
	Updated         time.Time
}

type deviceRegDoc struct {
	Key             string         `bson:"_id"`
	Tenant          string         `bson:"tenant"`
	DeviceID        string         `bson:"deviceId"`
	Params          map[string]any `bson:"params"`
	PSKKey          []byte         `bson:"pskKey,omitempty"`
	BootstrapPSKKey []byte         `bson:"bootstrapPskKey,omitempty"`
	CredentialsHash []byte         `bson:"credentialsHash,omitempty"`
	Updated         time.Time      `bson:"updated"`
}

// SaveDeviceRegistration stores (or replaces) a device's registration.
func (s *Store) SaveDeviceRegistration(ctx context.Context, tenant, deviceID string, r DeviceRegistration) error {
	d := deviceRegDoc{
		Key: key(tenant, deviceID), Tenant: tenant, DeviceID: deviceID, Params: r.Params,
		PSKKey: r.PSKKey, BootstrapPSKKey: r.BootstrapPSKKey, CredentialsHash: r.CredentialsHash,
		Updated: time.Now().UTC().Truncate(time.Millisecond),
	}
	_, err := s.deviceRegs.ReplaceOne(ctx, bson.D{{Key: "_id", Value: d.Key}}, d, options.Replace().SetUpsert(true))
	if err != nil {
		return fmt.Errorf("save registration of %s: %w", deviceID, err)
	}
	return nil
}

// DeviceRegistrationOf returns a device's registration, secrets included:
// for the protocol layers, never for an API answer.
func (s *Store) DeviceRegistrationOf(ctx context.Context, tenant, deviceID string) (DeviceRegistration, error) {
	var d deviceRegDoc
	err := s.deviceRegs.FindOne(ctx, bson.D{{Key: "_id", Value: key(tenant, deviceID)}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return DeviceRegistration{}, ErrNotFound
	}
	if err != nil {
		return DeviceRegistration{}, fmt.Errorf("read registration of %s: %w", deviceID, err)
	}
	return DeviceRegistration{Params: d.Params, PSKKey: d.PSKKey, BootstrapPSKKey: d.BootstrapPSKKey, CredentialsHash: d.CredentialsHash, Updated: d.Updated}, nil
}

// PSK identity kinds: the identity a device presents to the LwM2M server,
// and the one it presents to the bootstrap server.
const (
	PSKServer    = "lwm2m"
	PSKBootstrap = "bootstrap"
)

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
		return fmt.Errorf("%w: empty psk identity", ErrInvalid)
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
		return fmt.Errorf("%s psk identity %q: %w", kind, identity, ErrConflict)
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
		return "", "", ErrNotFound
	}
	if err != nil {
		return "", "", fmt.Errorf("read %s psk identity: %w", kind, err)
	}
	return d.Tenant, d.DeviceID, nil
}
