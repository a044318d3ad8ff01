package mongo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// protocolRecordDoc is a record in the deviceProtocols collection: its
// JSON is kept as BSON documents, so that the documents have the shape
// they had when the store encoded protocols itself.
type protocolRecordDoc struct {
	Key        string    `bson:"_id"`
	Tenant     string    `bson:"tenant"`
	ObjectID   int32     `bson:"objectId"`
	Def        bson.Raw  `bson:"definition"`
	Source     string    `bson:"source"`
	Funcs      bson.Raw  `bson:"functionalities"`
	Validation bson.Raw  `bson:"validation"`
	Updated    time.Time `bson:"updated"`
}

func protoKey(tenant string, objectID uint16) string {
	return key(tenant, strconv.Itoa(int(objectID)))
}

// PutProtocolRecord creates or replaces the record of r.Tenant and
// r.ObjectID.
func (s *Store) PutProtocolRecord(ctx context.Context, r store.ProtocolRecord) error {
	r, err := r.Check()
	if err != nil {
		return err
	}
	d, err := protocolDocOf(r)
	if err != nil {
		return err
	}
	if _, err := s.protocols.ReplaceOne(ctx, bson.D{{Key: "_id", Value: d.Key}}, d, options.Replace().SetUpsert(true)); err != nil {
		return fmt.Errorf("save protocol %d of %s: %w", r.ObjectID, r.Tenant, err)
	}
	return nil
}

// protocolDocOf is the document of a checked record.
func protocolDocOf(r store.ProtocolRecord) (protocolRecordDoc, error) {
	d := protocolRecordDoc{Key: protoKey(r.Tenant, r.ObjectID), Tenant: r.Tenant, ObjectID: int32(r.ObjectID), Source: r.Source, Updated: r.Updated}
	for _, f := range []struct {
		json json.RawMessage
		doc  *bson.Raw
	}{{r.Definition, &d.Def}, {r.Functionalities, &d.Funcs}, {r.Validation, &d.Validation}} {
		if err := bson.UnmarshalExtJSON(f.json, false, f.doc); err != nil {
			return protocolRecordDoc{}, fmt.Errorf("%w: protocol record %d of %s: %w", store.ErrInvalid, r.ObjectID, r.Tenant, err)
		}
	}
	return d, nil
}

func recordOf(d protocolRecordDoc) (store.ProtocolRecord, error) {
	r := store.ProtocolRecord{Tenant: d.Tenant, ObjectID: uint16(d.ObjectID), Source: d.Source, Updated: d.Updated.UTC()}
	for _, f := range []struct {
		doc  bson.Raw
		json *json.RawMessage
	}{{d.Def, &r.Definition}, {d.Funcs, &r.Functionalities}, {d.Validation, &r.Validation}} {
		if len(f.doc) == 0 {
			*f.json = json.RawMessage("{}")
			continue
		}
		j, err := bson.MarshalExtJSON(f.doc, false, false)
		if err != nil {
			return store.ProtocolRecord{}, fmt.Errorf("stored protocol %s: %w", d.Key, err)
		}
		*f.json = j
	}
	return r, nil
}

// GetProtocolRecord returns the tenant's record of objectID.
func (s *Store) GetProtocolRecord(ctx context.Context, tenant string, objectID uint16) (store.ProtocolRecord, error) {
	var d protocolRecordDoc
	if err := findKey(ctx, s.protocols, tenant, strconv.Itoa(int(objectID)), &d); err != nil {
		return store.ProtocolRecord{}, err
	}
	return recordOf(d)
}

// DeleteProtocolRecord deletes the tenant's record of objectID.
func (s *Store) DeleteProtocolRecord(ctx context.Context, tenant string, objectID uint16) error {
	res, err := s.protocols.DeleteOne(ctx, bson.D{{Key: "_id", Value: protoKey(tenant, objectID)}})
	if err != nil {
		return fmt.Errorf("delete protocol %d of %s: %w", objectID, tenant, err)
	}
	if res.DeletedCount == 0 {
		return store.ErrNotFound
	}
	return nil
}

// FirstProtocolRecord returns the record of objectID of the first tenant,
// by tenant ID, that has one.
func (s *Store) FirstProtocolRecord(ctx context.Context, objectID uint16) (store.ProtocolRecord, error) {
	var d protocolRecordDoc
	err := s.protocols.FindOne(ctx, bson.D{{Key: "objectId", Value: int32(objectID)}},
		options.FindOne().SetSort(bson.D{{Key: "tenant", Value: 1}})).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return store.ProtocolRecord{}, store.ErrNotFound
	}
	if err != nil {
		return store.ProtocolRecord{}, fmt.Errorf("find protocol %d: %w", objectID, err)
	}
	return recordOf(d)
}

// ListProtocolRecords lists the tenant's records by object ID; total is
// -1 unless p.WithTotal.
func (s *Store) ListProtocolRecords(ctx context.Context, tenant string, p store.Page) ([]store.ProtocolRecord, int64, error) {
	var docs []protocolRecordDoc
	total, err := s.findPage(ctx, s.protocols, bson.D{{Key: "tenant", Value: tenant}}, bson.D{{Key: "objectId", Value: 1}}, p, &docs)
	if err != nil {
		return nil, 0, err
	}
	out := make([]store.ProtocolRecord, 0, len(docs))
	for _, d := range docs {
		r, err := recordOf(d)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, r)
	}
	return out, total, nil
}

// ProtocolObjectIDs lists the object IDs the tenant has records of, in
// order.
func (s *Store) ProtocolObjectIDs(ctx context.Context, tenant string) ([]uint16, error) {
	filter := bson.D{{Key: "tenant", Value: tenant}}
	sort := bson.D{{Key: "objectId", Value: 1}}
	cur, err := s.protocols.Find(ctx, filter, options.Find().SetSort(sort).SetProjection(bson.D{{Key: "objectId", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("list protocols: %w", err)
	}
	var docs []struct {
		ObjectID int32 `bson:"objectId"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("list protocols: %w", err)
	}
	ids := make([]uint16, len(docs))
	for i, d := range docs {
		ids[i] = uint16(d.ObjectID)
	}
	return ids, nil
}
