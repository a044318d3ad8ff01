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

// grantDoc is a firmware grant as stored: _id is its key, the device's
// one lookup; revocation and the sweep have indexes of their own
// (ensureIndexes).
type grantDoc struct {
	Key       string    `bson:"_id"`
	Tenant    string    `bson:"tenant"`
	Device    string    `bson:"device"`
	Endpoint  string    `bson:"endpoint"`
	Operation string    `bson:"operation"`
	Scheme    string    `bson:"scheme"`
	Binary    string    `bson:"binary"`
	URL       string    `bson:"url"`
	Expires   time.Time `bson:"expires"`
}

func (d grantDoc) grant() store.FirmwareGrant {
	return store.FirmwareGrant{Key: d.Key, Tenant: d.Tenant, DeviceID: d.Device, Endpoint: d.Endpoint, OperationID: d.Operation,
		Scheme: d.Scheme, BinaryID: d.Binary, URL: d.URL, Expires: d.Expires.UTC()}
}

// PutFirmwareGrant creates the grant of g.Key, or replaces it.
func (s *Store) PutFirmwareGrant(ctx context.Context, g store.FirmwareGrant) error {
	if g.Key == "" || g.Tenant == "" {
		return fmt.Errorf("%w: a firmware grant needs a key and a tenant", store.ErrInvalid)
	}
	d := grantDoc{Key: g.Key, Tenant: g.Tenant, Device: g.DeviceID, Endpoint: g.Endpoint, Operation: g.OperationID,
		Scheme: g.Scheme, Binary: g.BinaryID, URL: g.URL, Expires: g.Expires.Truncate(time.Millisecond)}
	_, err := s.fwGrants.ReplaceOne(ctx, bson.D{{Key: "_id", Value: g.Key}}, d, options.Replace().SetUpsert(true))
	if err != nil {
		return fmt.Errorf("put firmware grant of operation %s: %w", g.OperationID, err)
	}
	return nil
}

// FirmwareGrant returns the grant of key unless it expired at now.
func (s *Store) FirmwareGrant(ctx context.Context, key string, now time.Time) (store.FirmwareGrant, error) {
	var d grantDoc
	err := s.fwGrants.FindOne(ctx, bson.D{{Key: "_id", Value: key}, {Key: "expires", Value: bson.D{{Key: "$gt", Value: now}}}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return store.FirmwareGrant{}, fmt.Errorf("firmware grant: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.FirmwareGrant{}, fmt.Errorf("read firmware grant: %w", err)
	}
	return d.grant(), nil
}

// RevokeFirmwareGrants removes the tenant's grants of operationID.
func (s *Store) RevokeFirmwareGrants(ctx context.Context, tenant, operationID string) (int, error) {
	if operationID == "" {
		return 0, fmt.Errorf("%w: revoke firmware grants: no operation", store.ErrInvalid)
	}
	res, err := s.fwGrants.DeleteMany(ctx, bson.D{{Key: "tenant", Value: tenant}, {Key: "operation", Value: operationID}})
	if err != nil {
		return 0, fmt.Errorf("revoke firmware grants of operation %s: %w", operationID, err)
	}
	return int(res.DeletedCount), nil
}

// ExpiredFirmwareGrants lists at most limit grants expired before before.
func (s *Store) ExpiredFirmwareGrants(ctx context.Context, before time.Time, limit int) ([]store.FirmwareGrant, error) {
	cur, err := s.fwGrants.Find(ctx, bson.D{{Key: "expires", Value: bson.D{{Key: "$lte", Value: before}}}},
		options.Find().SetSort(bson.D{{Key: "expires", Value: 1}}).SetLimit(int64(limit)))
	if err != nil {
		return nil, fmt.Errorf("list expired firmware grants: %w", err)
	}
	var docs []grantDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("list expired firmware grants: %w", err)
	}
	out := make([]store.FirmwareGrant, len(docs))
	for i, d := range docs {
		out[i] = d.grant()
	}
	return out, nil
}

// DeleteFirmwareGrant removes the grant of key if it still expires at
// expires.
func (s *Store) DeleteFirmwareGrant(ctx context.Context, key string, expires time.Time) (bool, error) {
	res, err := s.fwGrants.DeleteOne(ctx, bson.D{{Key: "_id", Value: key}, {Key: "expires", Value: expires.Truncate(time.Millisecond)}})
	if err != nil {
		return false, fmt.Errorf("delete firmware grant: %w", err)
	}
	return res.DeletedCount > 0, nil
}
