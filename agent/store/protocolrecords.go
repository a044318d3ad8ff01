package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// ProtocolRecord is a tenant's device protocol as engines store it
// (ProtocolRecords). What the protocol holds is JSON, each a JSON
// object, which the engines keep as they are given it and answer as
// equivalent JSON (not byte for byte: an engine may store it in another
// form, as MongoDB does in BSON).
type ProtocolRecord struct {
	Tenant   string
	ObjectID uint16
	// Source is where the definition came from (see Protocol.Source).
	Source  string
	Updated time.Time
	// Definition is the object's definition, Functionalities and
	// Validation are by resource ID; empty means {}.
	Definition, Functionalities, Validation json.RawMessage
}

// Check returns r as an engine stores it, its JSON compacted and empty
// JSON made {}; ErrInvalid for a record without tenant, for JSON that is
// not an object, and for a member name that starts with '$' anywhere in
// it, which MongoDB would read as a value of another type (a date, a
// long) rather than as a member.
func (r ProtocolRecord) Check() (ProtocolRecord, error) {
	if r.Tenant == "" {
		return ProtocolRecord{}, fmt.Errorf("%w: protocol record %d without tenant", ErrInvalid, r.ObjectID)
	}
	for _, f := range []struct {
		name string
		v    *json.RawMessage
	}{{"definition", &r.Definition}, {"functionalities", &r.Functionalities}, {"validation", &r.Validation}} {
		v, err := jsonObject(*f.v)
		if err != nil {
			return ProtocolRecord{}, fmt.Errorf("%w: protocol record %d of %s: %s: %w", ErrInvalid, r.ObjectID, r.Tenant, f.name, err)
		}
		*f.v = v
	}
	return r, nil
}

func jsonObject(raw json.RawMessage) (json.RawMessage, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return json.RawMessage("{}"), nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, err
	}
	if buf.Bytes()[0] != '{' {
		return nil, errors.New("not a JSON object")
	}
	if err := noDollarNames(json.NewDecoder(bytes.NewReader(buf.Bytes()))); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// noDollarNames reads one JSON value and refuses a member name in it
// that starts with '$'.
func noDollarNames(dec *json.Decoder) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	for dec.More() {
		if d == '{' {
			name, err := dec.Token()
			if err != nil {
				return err
			}
			if s, _ := name.(string); strings.HasPrefix(s, "$") {
				return fmt.Errorf("member name %q starts with '$'", s)
			}
		}
		if err := noDollarNames(dec); err != nil {
			return err
		}
	}
	_, err = dec.Token() // the closing delimiter
	return err
}

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
func (s *Store) PutProtocolRecord(ctx context.Context, r ProtocolRecord) error {
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
func protocolDocOf(r ProtocolRecord) (protocolRecordDoc, error) {
	d := protocolRecordDoc{Key: protoKey(r.Tenant, r.ObjectID), Tenant: r.Tenant, ObjectID: int32(r.ObjectID), Source: r.Source, Updated: r.Updated}
	for _, f := range []struct {
		json json.RawMessage
		doc  *bson.Raw
	}{{r.Definition, &d.Def}, {r.Functionalities, &d.Funcs}, {r.Validation, &d.Validation}} {
		if err := bson.UnmarshalExtJSON(f.json, false, f.doc); err != nil {
			return protocolRecordDoc{}, fmt.Errorf("%w: protocol record %d of %s: %w", ErrInvalid, r.ObjectID, r.Tenant, err)
		}
	}
	return d, nil
}

func recordOf(d protocolRecordDoc) (ProtocolRecord, error) {
	r := ProtocolRecord{Tenant: d.Tenant, ObjectID: uint16(d.ObjectID), Source: d.Source, Updated: d.Updated.UTC()}
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
			return ProtocolRecord{}, fmt.Errorf("stored protocol %s: %w", d.Key, err)
		}
		*f.json = j
	}
	return r, nil
}

// GetProtocolRecord returns the tenant's record of objectID.
func (s *Store) GetProtocolRecord(ctx context.Context, tenant string, objectID uint16) (ProtocolRecord, error) {
	var d protocolRecordDoc
	if err := findKey(ctx, s.protocols, tenant, strconv.Itoa(int(objectID)), &d); err != nil {
		return ProtocolRecord{}, err
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
		return ErrNotFound
	}
	return nil
}

// FirstProtocolRecord returns the record of objectID of the first tenant,
// by tenant ID, that has one.
func (s *Store) FirstProtocolRecord(ctx context.Context, objectID uint16) (ProtocolRecord, error) {
	var d protocolRecordDoc
	err := s.protocols.FindOne(ctx, bson.D{{Key: "objectId", Value: int32(objectID)}},
		options.FindOne().SetSort(bson.D{{Key: "tenant", Value: 1}})).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return ProtocolRecord{}, ErrNotFound
	}
	if err != nil {
		return ProtocolRecord{}, fmt.Errorf("find protocol %d: %w", objectID, err)
	}
	return recordOf(d)
}

// ListProtocolRecords lists the tenant's records by object ID; total is
// -1 unless p.WithTotal.
func (s *Store) ListProtocolRecords(ctx context.Context, tenant string, p Page) ([]ProtocolRecord, int64, error) {
	var docs []protocolRecordDoc
	total, err := s.findPage(ctx, s.protocols, bson.D{{Key: "tenant", Value: tenant}}, bson.D{{Key: "objectId", Value: 1}}, p, &docs)
	if err != nil {
		return nil, 0, err
	}
	out := make([]ProtocolRecord, 0, len(docs))
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
