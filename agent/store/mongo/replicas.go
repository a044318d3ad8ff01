package mongo

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// holderDoc is what the replicas read of a device's managed object: the
// registration it holds and the replica holding it.
type holderDoc struct {
	Key   string `bson:"_id"`
	LwM2M struct {
		RegistrationID string `bson:"registrationId"`
		Replica        string `bson:"replica"`
	} `bson:"lwm2m"`
}

func (d holderDoc) replica() string {
	if d.LwM2M.RegistrationID == "" {
		return ""
	}
	return d.LwM2M.Replica
}

// PendingSince lists the PENDING operations created at or after since,
// through the index of (status, creationTime), with the replicas of
// their devices read in one more query.
func (s *Store) PendingSince(ctx context.Context, since time.Time, limit int) ([]store.PendingOperation, error) {
	opts := options.Find().SetSort(bson.D{{Key: "creationTime", Value: 1}, {Key: "seq", Value: 1}}).
		SetProjection(bson.D{{Key: "tenant", Value: 1}, {Key: "id", Value: 1}, {Key: "deviceId", Value: 1}, {Key: "creationTime", Value: 1}})
	if limit > 0 {
		opts.SetLimit(int64(limit))
	}
	cur, err := s.operations.Find(ctx, bson.D{{Key: "status", Value: store.OpPending}, {Key: "creationTime", Value: bson.D{{Key: "$gte", Value: since}}}}, opts)
	if err != nil {
		return nil, fmt.Errorf("pending operations since %v: %w", since, err)
	}
	var docs []struct {
		Tenant       string    `bson:"tenant"`
		ID           string    `bson:"id"`
		DeviceID     string    `bson:"deviceId"`
		CreationTime time.Time `bson:"creationTime"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("pending operations since %v: %w", since, err)
	}
	out := make([]store.PendingOperation, len(docs))
	var keys []string
	for i, d := range docs {
		out[i] = store.PendingOperation{Tenant: d.Tenant, DeviceID: d.DeviceID, ID: d.ID, CreationTime: d.CreationTime.UTC()}
		if k := key(d.Tenant, d.DeviceID); !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	holders, err := s.holders(ctx, keys)
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].Replica = holders[key(out[i].Tenant, out[i].DeviceID)]
		if s.rmw {
			if err := s.ensureQueued(ctx, out[i]); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// holders reads the replicas holding the devices of keys.
func (s *Store) holders(ctx context.Context, keys []string) (map[string]string, error) {
	out := make(map[string]string, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	proj := options.Find().SetProjection(bson.D{{Key: "lwm2m.registrationId", Value: 1}, {Key: "lwm2m.replica", Value: 1}})
	if s.rmw {
		// FerretDB finds by index only a filter of _id alone
		for _, k := range keys {
			var d holderDoc
			err := s.objects.FindOne(ctx, bson.D{{Key: "_id", Value: k}}).Decode(&d)
			if errors.Is(err, mongo.ErrNoDocuments) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("replica of %s: %w", k, err)
			}
			out[k] = d.replica()
		}
		return out, nil
	}
	cur, err := s.objects.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: keys}}}}, proj)
	if err != nil {
		return nil, fmt.Errorf("replicas of %d devices: %w", len(keys), err)
	}
	var docs []holderDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("replicas of %d devices: %w", len(keys), err)
	}
	for _, d := range docs {
		out[d.Key] = d.replica()
	}
	return out, nil
}

// ensureQueued puts a PENDING operation back into its device's queue
// document where a read-modify-write server lost it: two agents
// changing one queue document at once (one adding an operation, the
// other removing a finished one) may each write back what it read, and
// the lock of enqueue serializes one process's writes only.
func (s *Store) ensureQueued(ctx context.Context, op store.PendingOperation) error {
	var q queueDoc
	err := s.opQueues.FindOne(ctx, bson.D{{Key: "_id", Value: key(op.Tenant, op.DeviceID)}}).Decode(&q)
	if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
		return fmt.Errorf("queue of %s: %w", op.DeviceID, err)
	}
	if slices.Contains(q.IDs, op.ID) {
		return nil
	}
	return s.enqueue(ctx, op.Tenant, op.DeviceID, op.ID)
}

// RegistrationByID finds the live registration id through the index of
// lwm2m.registrationId, with the device's registration record.
func (s *Store) RegistrationByID(ctx context.Context, id string) (store.LiveRegistration, error) {
	if id == "" {
		return store.LiveRegistration{}, fmt.Errorf("registration %q: %w", id, store.ErrNotFound)
	}
	var d struct {
		Tenant string         `bson:"tenant"`
		ID     string         `bson:"id"`
		LwM2M  map[string]any `bson:"lwm2m"`
	}
	err := s.objects.FindOne(ctx, bson.D{{Key: "lwm2m.registrationId", Value: id}},
		options.FindOne().SetProjection(bson.D{{Key: "tenant", Value: 1}, {Key: "id", Value: 1}, {Key: "lwm2m", Value: 1}})).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return store.LiveRegistration{}, fmt.Errorf("registration %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.LiveRegistration{}, fmt.Errorf("registration %s: %w", id, err)
	}
	records := map[string]*recordInfo{}
	reg, err := s.DeviceSettings(ctx, d.Tenant, d.ID)
	switch {
	case err == nil:
		records[key(d.Tenant, d.ID)] = &recordInfo{serialization: reg.Serialization, access: reg.Access()}
	case !errors.Is(err, store.ErrNotFound):
		return store.LiveRegistration{}, fmt.Errorf("registration %s: %w", id, err)
	}
	frag, _ := Plain(d.LwM2M).(map[string]any)
	return live(d.Tenant, d.ID, frag, records), nil
}

// AcquireLease updates the lease's document where it is free, expired
// or holder's, and inserts it where there is none: MongoDB applies the
// filter and the change at once, and of two inserts of one _id one
// fails. A read-modify-write server (FerretDB) checks the filter on a
// read before its write, so the lease is read back: two agents taking
// an expired lease at the same instant are told apart by the last
// write.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (bool, error) {
	if name == "" || holder == "" || ttl <= 0 {
		return false, fmt.Errorf("%w: lease %q for %q, %v", store.ErrInvalid, name, holder, ttl)
	}
	filter := bson.D{{Key: "_id", Value: name}, {Key: "$or", Value: bson.A{
		bson.D{{Key: "holder", Value: holder}},
		bson.D{{Key: "expires", Value: bson.D{{Key: "$lte", Value: now}}}},
	}}}
	_, err := s.leases.UpdateOne(ctx, filter, bson.D{{Key: "$set", Value: bson.D{
		{Key: "holder", Value: holder}, {Key: "expires", Value: now.Add(ttl)},
	}}}, options.UpdateOne().SetUpsert(true))
	if isDup(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("lease %s: %w", name, err)
	}
	if !s.rmw {
		return true, nil
	}
	var d struct {
		Holder string `bson:"holder"`
	}
	if err := s.leases.FindOne(ctx, bson.D{{Key: "_id", Value: name}}).Decode(&d); err != nil {
		return false, fmt.Errorf("lease %s: %w", name, err)
	}
	return d.Holder == holder, nil
}

// ReleaseLease removes holder's lease document.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	if _, err := s.leases.DeleteOne(ctx, bson.D{{Key: "_id", Value: name}, {Key: "holder", Value: holder}}); err != nil {
		return fmt.Errorf("release lease %s: %w", name, err)
	}
	return nil
}

// WatchPending follows the inserts of operations through a change
// stream, which MongoDB has on replica sets and sharded clusters only.
func (s *Store) WatchPending(ctx context.Context, fn func(store.PendingOperation)) error {
	if s.rmw {
		return fmt.Errorf("watch operations: %w", store.ErrUnsupported)
	}
	cs, err := s.operations.Watch(ctx, mongo.Pipeline{{{Key: "$match", Value: bson.D{{Key: "operationType", Value: "insert"}}}}})
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("watch operations: %w: %w", store.ErrUnsupported, err)
	}
	defer cs.Close(context.WithoutCancel(ctx))
	for cs.Next(ctx) {
		var ev struct {
			Doc struct {
				Tenant       string    `bson:"tenant"`
				ID           string    `bson:"id"`
				DeviceID     string    `bson:"deviceId"`
				Status       string    `bson:"status"`
				CreationTime time.Time `bson:"creationTime"`
			} `bson:"fullDocument"`
		}
		if err := cs.Decode(&ev); err != nil {
			return fmt.Errorf("watch operations: %w", err)
		}
		d := ev.Doc
		if d.Status != store.OpPending {
			continue
		}
		op := store.PendingOperation{Tenant: d.Tenant, DeviceID: d.DeviceID, ID: d.ID, CreationTime: d.CreationTime.UTC()}
		holders, err := s.holders(ctx, []string{key(d.Tenant, d.DeviceID)})
		if err != nil {
			return err
		}
		op.Replica = holders[key(d.Tenant, d.DeviceID)]
		fn(op)
	}
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("watch operations: %w", cs.Err())
}

var _ store.PendingWatcher = (*Store)(nil)
