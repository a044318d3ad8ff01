package mongo

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// reserved top-level members that a fragment cannot replace.
var reserved = map[string]bool{
	"_id": true, "id": true, "tenant": true, "seq": true, "self": true,
	"creationTime": true, "lastUpdated": true, "owner": true,
}

func checkFragments(f map[string]any) error {
	for k := range f {
		if k == "" || strings.HasPrefix(k, "$") || strings.Contains(k, ".") {
			return fmt.Errorf("%w: fragment name %q: it must be non-empty and contain no '.' and no leading '$'", store.ErrInvalid, k)
		}
	}
	return nil
}

func (s *Store) moDoc(tenant string, mo store.ManagedObject, seq int64) bson.D {
	d := bson.D{
		{Key: "_id", Value: key(tenant, mo.ID)}, {Key: "id", Value: mo.ID},
		{Key: "tenant", Value: tenant}, {Key: "seq", Value: seq},
		{Key: "name", Value: mo.Name}, {Key: "type", Value: mo.Type},
		{Key: "creationTime", Value: mo.CreationTime}, {Key: "lastUpdated", Value: mo.LastUpdated},
	}
	for k, v := range mo.Fragments {
		if !reserved[k] && k != "name" && k != "type" {
			d = append(d, bson.E{Key: k, Value: v})
		}
	}
	return d
}

func moFromDoc(m map[string]any) store.ManagedObject {
	mo := store.ManagedObject{Fragments: map[string]any{}}
	for k, v := range m {
		switch k {
		case "id":
			mo.ID, _ = v.(string)
		case "name":
			mo.Name, _ = v.(string)
		case "type":
			mo.Type, _ = v.(string)
		case "creationTime":
			mo.CreationTime = asTime(v)
		case "lastUpdated":
			mo.LastUpdated = asTime(v)
		case "_id", "tenant", "seq":
		default:
			mo.Fragments[k] = Plain(v)
		}
	}
	return mo
}

func asTime(v any) time.Time {
	switch t := v.(type) {
	case bson.DateTime:
		return t.Time().UTC()
	case time.Time:
		return t.UTC()
	}
	return time.Time{}
}

// Plain turns values decoded from BSON into plain Go values that
// encoding/json writes as expected: documents become map[string]any,
// arrays []any, dates time.Time.
func Plain(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			t[k] = Plain(e)
		}
		return t
	case bson.M:
		return Plain(map[string]any(t))
	case bson.D:
		m := make(map[string]any, len(t))
		for _, e := range t {
			m[e.Key] = Plain(e.Value)
		}
		return m
	case bson.A:
		return Plain([]any(t))
	case []any:
		for i, e := range t {
			t[i] = Plain(e)
		}
		return t
	case bson.DateTime:
		return t.Time().UTC()
	case int32:
		return int64(t)
	}
	return v
}

// CreateManagedObject stores a new object with a fresh ID (mo.ID is
// ignored) and returns it as stored.
func (s *Store) CreateManagedObject(ctx context.Context, tenant string, mo store.ManagedObject) (store.ManagedObject, error) {
	if err := checkFragments(mo.Fragments); err != nil {
		return store.ManagedObject{}, err
	}
	ids, err := s.newIDs(ctx, 1)
	if err != nil {
		return store.ManagedObject{}, err
	}
	mo.ID = strconv.FormatInt(ids[0], 10)
	now := time.Now().UTC().Truncate(time.Millisecond)
	mo.CreationTime, mo.LastUpdated = now, now
	if mo.Fragments == nil {
		mo.Fragments = map[string]any{}
	}
	for k := range mo.Fragments {
		if reserved[k] || k == "name" || k == "type" {
			delete(mo.Fragments, k)
		}
	}
	if _, err := s.objects.InsertOne(ctx, s.moDoc(tenant, mo, ids[0])); err != nil {
		return store.ManagedObject{}, fmt.Errorf("create managed object: %w", err)
	}
	return mo, nil
}

// GetManagedObject returns the tenant's object id.
func (s *Store) GetManagedObject(ctx context.Context, tenant, id string) (store.ManagedObject, error) {
	var m map[string]any
	if err := findKey(ctx, s.objects, tenant, id, &m); err != nil {
		return store.ManagedObject{}, err
	}
	return moFromDoc(m), nil
}

// UpdateManagedObject merges fields into the object: each top-level member
// replaces the stored one ("name" and "type" included), a nil value removes
// the fragment, reserved members (id, creationTime, ...) are ignored. It
// returns the updated object.
func (s *Store) UpdateManagedObject(ctx context.Context, tenant, id string, fields map[string]any) (store.ManagedObject, error) {
	if err := checkFragments(fields); err != nil {
		return store.ManagedObject{}, err
	}
	set := bson.D{{Key: "lastUpdated", Value: time.Now().UTC().Truncate(time.Millisecond)}}
	unset := bson.D{}
	for k, v := range fields {
		switch {
		case reserved[k]:
		case v == nil && k != "name" && k != "type":
			unset = append(unset, bson.E{Key: k, Value: ""})
		default:
			set = append(set, bson.E{Key: k, Value: v})
		}
	}
	upd := bson.D{{Key: "$set", Value: set}}
	if len(unset) > 0 {
		upd = append(upd, bson.E{Key: "$unset", Value: unset})
	}
	var m map[string]any
	// The embedded store applies an update by reading the document and
	// writing it back: two updates of one object at once could lose one.
	defer s.lockEmbedded(&s.objMu, key(tenant, id))()
	err := s.objects.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: key(tenant, id)}}, upd,
		options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&m)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return store.ManagedObject{}, store.ErrNotFound
	}
	if err != nil {
		return store.ManagedObject{}, fmt.Errorf("update managed object %s: %w", id, err)
	}
	return moFromDoc(m), nil
}

// UpdateFragments merges fragments into the object like
// UpdateManagedObject, without reading it back.
func (s *Store) UpdateFragments(ctx context.Context, tenant, id string, fragments map[string]any) error {
	if err := checkFragments(fragments); err != nil {
		return err
	}
	set := bson.D{{Key: "lastUpdated", Value: time.Now().UTC().Truncate(time.Millisecond)}}
	for k, v := range fragments {
		if !reserved[k] {
			set = append(set, bson.E{Key: k, Value: v})
		}
	}
	defer s.lockEmbedded(&s.objMu, key(tenant, id))()
	res, err := s.objects.UpdateOne(ctx, bson.D{{Key: "_id", Value: key(tenant, id)}}, bson.D{{Key: "$set", Value: set}})
	if err != nil {
		return fmt.Errorf("update fragments of %s: %w", id, err)
	}
	if res.MatchedCount == 0 {
		return store.ErrNotFound
	}
	return nil
}

// DeleteManagedObject deletes the object and everything that names it:
// its endpoint binding, its PSK identities, its external IDs, its
// registration record, last known values and operation queue, so that a
// new device may claim its endpoint and identities. Its measurements,
// events, alarms and operations stay, as history. No transaction makes
// these writes one: the registration record is first marked as being
// deleted (written for an object that has none), which makes the device
// absent for the LwM2M, DTLS and bootstrap servers as an incomplete one
// is; the object and last the record go after the rest, so that a
// deletion cut short leaves a marked record, and the next start (or a
// repeated DELETE) finishes it. It returns what the device was
// reachable by; the caller ends its live registrations and sessions.
func (s *Store) DeleteManagedObject(ctx context.Context, tenant, id string) (store.DeletedDevice, error) {
	err := s.objects.FindOne(ctx, bson.D{{Key: "_id", Value: key(tenant, id)}}, options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})).Err()
	if errors.Is(err, mongo.ErrNoDocuments) {
		// the object is gone; a deletion that failed after it is finished
		r, rerr := s.DeviceSettings(ctx, tenant, id)
		if rerr != nil || !r.Deleting {
			return store.DeletedDevice{}, store.ErrNotFound
		}
		return s.removeDevice(ctx, tenant, id, r)
	}
	if err != nil {
		return store.DeletedDevice{}, fmt.Errorf("delete managed object %s: %w", id, err)
	}
	_, err = s.deviceRegs.UpdateOne(ctx, bson.D{{Key: "_id", Value: key(tenant, id)}}, bson.D{{Key: "$set", Value: bson.D{
		{Key: "tenant", Value: tenant}, {Key: "deviceId", Value: id}, {Key: "pending.delete", Value: true},
		{Key: "updated", Value: time.Now().UTC().Truncate(time.Millisecond)},
	}}}, options.UpdateOne().SetUpsert(true))
	if err != nil {
		return store.DeletedDevice{}, fmt.Errorf("delete managed object %s: mark its registration: %w", id, err)
	}
	r, err := s.DeviceSettings(ctx, tenant, id)
	if err != nil {
		return store.DeletedDevice{}, fmt.Errorf("delete managed object %s: %w", id, err)
	}
	return s.removeDevice(ctx, tenant, id, r)
}

// removeDevice removes the tenant's device whose registration record is
// r, in the order that leaves, if cut short, a device that cannot
// connect and a record naming what is left: the endpoint bindings (the
// record's endpoint and the device's c8y_Id external IDs), the PSK
// identities the record names or has yet to release, the external IDs,
// last known values, operation queue, the managed object, and last the
// record. Only bindings that name the device are removed. Its operations
// stay as history; those still PENDING or EXECUTING fail first
// (FailureDeviceDeleted), so that nothing waits for a device that is gone.
func (s *Store) removeDevice(ctx context.Context, tenant, id string, r store.DeviceRegistration) (store.DeletedDevice, error) {
	var gone store.DeletedDevice
	xs, err := s.ExternalIDsOf(ctx, tenant, id)
	if err != nil {
		return gone, fmt.Errorf("remove device %s: %w", id, err)
	}
	if ep, _ := r.Params[store.ParamEndpointID].(string); ep != "" {
		gone.Endpoints = append(gone.Endpoints, ep)
	}
	for _, x := range xs {
		if x.Type == store.ExternalIDDevice && !slices.Contains(gone.Endpoints, x.ExternalID) {
			gone.Endpoints = append(gone.Endpoints, x.ExternalID)
		}
	}
	for _, ep := range gone.Endpoints {
		if _, err := s.endpoints.DeleteOne(ctx, bson.D{{Key: "_id", Value: ep}, {Key: "tenant", Value: tenant}, {Key: "deviceId", Value: id}}); err != nil {
			return gone, fmt.Errorf("remove device %s: unbind endpoint: %w", id, err)
		}
	}
	for _, kind := range []string{store.PSKServer, store.PSKBootstrap} {
		for _, ident := range []string{r.PSKIdentity(kind), r.Release[kind]} {
			if ident == "" {
				continue
			}
			if err := s.UnbindPSKIdentity(ctx, kind, ident, tenant, id); err != nil {
				return gone, fmt.Errorf("remove device %s: %w", id, err)
			}
			if kind == store.PSKServer && !slices.Contains(gone.Identities, ident) {
				gone.Identities = append(gone.Identities, ident)
			}
		}
	}
	for _, x := range xs {
		// by _id: the embedded store's index serves no other filter
		if _, err := s.externalIDs.DeleteOne(ctx, bson.D{{Key: "_id", Value: extKey(tenant, x.Type, x.ExternalID)}}); err != nil {
			return gone, fmt.Errorf("remove device %s: external id: %w", id, err)
		}
	}
	if _, err := s.operations.UpdateMany(ctx,
		bson.D{{Key: "tenant", Value: tenant}, {Key: "deviceId", Value: id}, {Key: "status", Value: bson.D{{Key: "$in", Value: bson.A{store.OpPending, store.OpExecuting}}}}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "status", Value: store.OpFailed}, {Key: "failureReason", Value: store.FailureDeviceDeleted}, {Key: "lastUpdated", Value: now()}}}}); err != nil {
		return gone, fmt.Errorf("remove device %s: fail its operations: %w", id, err)
	}
	if err := s.deleteReferencesOf(ctx, tenant, id); err != nil {
		return gone, fmt.Errorf("remove device %s: %w", id, err)
	}
	for _, c := range []*mongo.Collection{s.values, s.opQueues, s.objects, s.deviceRegs} {
		if _, err := c.DeleteOne(ctx, bson.D{{Key: "_id", Value: key(tenant, id)}}); err != nil {
			return gone, fmt.Errorf("remove device %s: %s: %w", id, c.Name(), err)
		}
	}
	return gone, nil
}

// ListManagedObjects lists the tenant's objects, by ID unless the query
// has $orderby. total is -1 unless f.Page.WithTotal.
func (s *Store) ListManagedObjects(ctx context.Context, tenant string, f store.ManagedObjectFilter) (mos []store.ManagedObject, total int64, err error) {
	filter := bson.D{{Key: "tenant", Value: tenant}}
	if f.Type != "" {
		filter = append(filter, bson.E{Key: "type", Value: f.Type})
	}
	if f.FragmentType != "" {
		filter = append(filter, bson.E{Key: f.FragmentType, Value: bson.D{{Key: "$exists", Value: true}}})
	}
	sort := bson.D{{Key: "seq", Value: 1}}
	if strings.TrimSpace(f.Query) != "" {
		q, err := store.ParseQuery(f.Query)
		if err != nil {
			return nil, 0, err
		}
		if q.Where != nil {
			filter = append(filter, bson.E{Key: "$and", Value: bson.A{queryFilter(*q.Where)}})
		}
		qs := querySort(q.OrderBy)
		if len(qs) > 0 && !slices.ContainsFunc(qs, func(e bson.E) bool { return e.Key == "seq" }) {
			// the object's number breaks ties, unless the query sorts
			// by it already: a sort may name a key once
			sort = append(qs, sort...)
		} else if len(qs) > 0 {
			sort = qs
		}
	}
	var docs []map[string]any
	total, err = s.findPage(ctx, s.objects, filter, sort, f.Page, &docs)
	if err != nil {
		return nil, 0, err
	}
	mos = make([]store.ManagedObject, len(docs))
	for i, d := range docs {
		mos[i] = moFromDoc(d)
	}
	return mos, total, nil
}

type extDoc struct {
	Key              string `bson:"_id"`
	Tenant           string `bson:"tenant"`
	store.ExternalID `bson:",inline"`
}

// extKey escapes type and external ID so that no two pairs share a key.
func extKey(tenant, typ, ext string) string {
	return key(tenant, url.PathEscape(typ)+"/"+url.PathEscape(ext))
}

// CreateExternalID names an existing object of the tenant; ErrConflict if
// the (type, externalId) pair is taken in the tenant.
func (s *Store) CreateExternalID(ctx context.Context, tenant string, x store.ExternalID) error {
	if x.Type == "" || x.ExternalID == "" {
		return fmt.Errorf("%w: external ID needs type and externalId", store.ErrInvalid)
	}
	if _, err := s.GetManagedObject(ctx, tenant, x.ManagedObjectID); err != nil {
		return err
	}
	return s.insertExternalID(ctx, tenant, x)
}

func (s *Store) insertExternalID(ctx context.Context, tenant string, x store.ExternalID) error {
	_, err := s.externalIDs.InsertOne(ctx, extDoc{Key: extKey(tenant, x.Type, x.ExternalID), Tenant: tenant, ExternalID: x})
	if isDup(err) {
		return fmt.Errorf("external id %s %s: %w", x.Type, x.ExternalID, store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("create external id %s %s: %w", x.Type, x.ExternalID, err)
	}
	return nil
}

// GetExternalID resolves an external ID in the tenant.
func (s *Store) GetExternalID(ctx context.Context, tenant, typ, ext string) (store.ExternalID, error) {
	var d extDoc
	err := s.externalIDs.FindOne(ctx, bson.D{{Key: "_id", Value: extKey(tenant, typ, ext)}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return store.ExternalID{}, store.ErrNotFound
	}
	if err != nil {
		return store.ExternalID{}, fmt.Errorf("read external id %s %s: %w", typ, ext, err)
	}
	return d.ExternalID, nil
}

// ExternalIDsOf lists the external IDs of the tenant's object id.
func (s *Store) ExternalIDsOf(ctx context.Context, tenant, id string) ([]store.ExternalID, error) {
	cur, err := s.externalIDs.Find(ctx, bson.D{{Key: "tenant", Value: tenant}, {Key: "managedObjectId", Value: id}},
		options.Find().SetSort(bson.D{{Key: "type", Value: 1}, {Key: "externalId", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("list external ids of %s: %w", id, err)
	}
	var ds []extDoc
	if err := cur.All(ctx, &ds); err != nil {
		return nil, fmt.Errorf("list external ids of %s: %w", id, err)
	}
	out := make([]store.ExternalID, len(ds))
	for i, d := range ds {
		out[i] = d.ExternalID
	}
	return out, nil
}

// DeleteExternalID removes an external ID of the tenant.
func (s *Store) DeleteExternalID(ctx context.Context, tenant, typ, ext string) error {
	res, err := s.externalIDs.DeleteOne(ctx, bson.D{{Key: "_id", Value: extKey(tenant, typ, ext)}})
	if err != nil {
		return fmt.Errorf("delete external id %s %s: %w", typ, ext, err)
	}
	if res.DeletedCount == 0 {
		return store.ErrNotFound
	}
	return nil
}

type endpointDoc struct {
	Endpoint string `bson:"_id"`
	Tenant   string `bson:"tenant"`
	DeviceID string `bson:"deviceId"`
}

// DeviceByEndpoint returns the device an LwM2M endpoint name is bound to:
// the one of the tenant that created a device for it first.
func (s *Store) DeviceByEndpoint(ctx context.Context, endpoint string) (tenant, id string, err error) {
	var d endpointDoc
	err = s.endpoints.FindOne(ctx, bson.D{{Key: "_id", Value: endpoint}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return "", "", store.ErrNotFound
	}
	if err != nil {
		return "", "", fmt.Errorf("read endpoint %s: %w", endpoint, err)
	}
	return d.Tenant, d.DeviceID, nil
}

// UpdateFragmentsMany merges fragments into many objects of one tenant in
// one round trip (an unordered bulk of updates by _id). Objects that do not
// exist are skipped; their IDs are returned.
func (s *Store) UpdateFragmentsMany(ctx context.Context, tenant string, updates map[string]map[string]any) (missing []string, err error) {
	return s.updateMany(ctx, tenant, updates, checkFragments)
}

// UpdateFieldsMany sets single fields of fragments in many objects of one
// tenant, keyed "fragment.field" (a fragment that is not there is
// created), leaving the fragments' other fields as they are: what a
// writer that read a fragment earlier must use, so that it cannot undo
// a change made meanwhile to a field it does not set. Objects that do not
// exist are skipped; their IDs are returned.
func (s *Store) UpdateFieldsMany(ctx context.Context, tenant string, updates map[string]map[string]any) (missing []string, err error) {
	return s.updateMany(ctx, tenant, updates, checkFields)
}

// checkFields accepts "fragment.field" keys, and plain fragment names.
func checkFields(f map[string]any) error {
	for k := range f {
		frag, field, dotted := strings.Cut(k, ".")
		if err := checkFragments(map[string]any{frag: nil}); err != nil {
			return err
		}
		if dotted && (field == "" || strings.HasPrefix(field, "$") || strings.Contains(field, ".")) {
			return fmt.Errorf("%w: field %q: it must be fragment.field with a non-empty field name without '.' and leading '$'", store.ErrInvalid, k)
		}
	}
	return nil
}

func (s *Store) updateMany(ctx context.Context, tenant string, updates map[string]map[string]any, check func(map[string]any) error) (missing []string, err error) {
	if len(updates) == 0 {
		return nil, nil
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	ids := make([]string, 0, len(updates))
	models := make([]mongo.WriteModel, 0, len(updates))
	for id, fragments := range updates {
		if err := check(fragments); err != nil {
			return nil, fmt.Errorf("update fragments of %s: %w", id, err)
		}
		set := bson.D{{Key: "lastUpdated", Value: now}}
		for k, v := range fragments {
			if frag, _, _ := strings.Cut(k, "."); !reserved[frag] {
				set = append(set, bson.E{Key: k, Value: v})
			}
		}
		ids = append(ids, id)
		models = append(models, mongo.NewUpdateOneModel().
			SetFilter(bson.D{{Key: "_id", Value: key(tenant, id)}}).
			SetUpdate(bson.D{{Key: "$set", Value: set}}))
	}
	var matched int64
	for start := 0; start < len(models); start += s.bulkSize() {
		chunk := models[start:min(start+s.bulkSize(), len(models))]
		keys := make([]string, 0, len(chunk))
		for _, id := range ids[start:min(start+s.bulkSize(), len(ids))] {
			keys = append(keys, key(tenant, id))
		}
		unlock := s.lockEmbeddedMany(&s.objMu, keys)
		res, err := s.objects.BulkWrite(ctx, chunk, options.BulkWrite().SetOrdered(false))
		unlock()
		if err != nil {
			return nil, fmt.Errorf("update fragments of %d objects: %w", len(chunk), err)
		}
		matched += res.MatchedCount
	}
	if matched < int64(len(models)) {
		// rare: find which ones are gone, for the caller's log
		for _, id := range ids {
			if err := s.objects.FindOne(ctx, bson.D{{Key: "_id", Value: key(tenant, id)}}).Err(); errors.Is(err, mongo.ErrNoDocuments) {
				missing = append(missing, id)
			}
		}
	}
	return missing, nil
}
