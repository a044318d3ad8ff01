package mongo

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// retentionIndexes serve Expire: across tenants, the oldest first.
func (s *Store) retentionIndexes() []struct {
	c    *mongo.Collection
	keys bson.D
} {
	return []struct {
		c    *mongo.Collection
		keys bson.D
	}{
		{s.measurements, bson.D{{Key: "end", Value: 1}}},
		{s.events, bson.D{{Key: "time", Value: 1}}},
		{s.alarms, bson.D{{Key: "status", Value: 1}, {Key: "time", Value: 1}}},
		{s.operations, bson.D{{Key: "status", Value: 1}, {Key: "lastUpdated", Value: 1}}},
	}
}

// Expire deletes the oldest records of kind older than before, at most
// limit (of buckets, for measurements): their ids are read through the
// kind's index, then deleted together.
func (s *Store) Expire(ctx context.Context, kind store.DataKind, before time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, fmt.Errorf("%w: expire %s: limit %d", store.ErrInvalid, kind, limit)
	}
	var (
		c      *mongo.Collection
		filter bson.D
		by     string
	)
	switch kind {
	case store.DataMeasurement:
		c, filter, by = s.measurements, bson.D{{Key: "end", Value: bson.D{{Key: "$lt", Value: before}}}}, "end"
	case store.DataEvent:
		c, filter, by = s.events, bson.D{{Key: "time", Value: bson.D{{Key: "$lt", Value: before}}}}, "time"
	case store.DataAlarm:
		c, filter, by = s.alarms, bson.D{{Key: "status", Value: store.AlarmCleared}, {Key: "time", Value: bson.D{{Key: "$lt", Value: before}}}}, "time"
	case store.DataOperation:
		c, filter, by = s.operations, bson.D{
			{Key: "status", Value: bson.D{{Key: "$in", Value: bson.A{store.OpSuccessful, store.OpFailed}}}},
			{Key: "lastUpdated", Value: bson.D{{Key: "$lt", Value: before}}}}, "lastUpdated"
	default:
		return 0, fmt.Errorf("%w: expire: unknown kind of data %q", store.ErrInvalid, kind)
	}
	fail := func(err error) (int, error) {
		return 0, fmt.Errorf("expire %s before %s: %w", kind, before.UTC().Format(time.RFC3339), err)
	}
	cur, err := c.Find(ctx, filter, options.Find().SetSort(bson.D{{Key: by, Value: 1}}).SetLimit(int64(limit)).
		SetProjection(bson.D{{Key: "_id", Value: 1}, {Key: "n", Value: 1}}))
	if err != nil {
		return fail(err)
	}
	var docs []struct {
		ID any `bson:"_id"`
		N  int `bson:"n"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return fail(err)
	}
	if len(docs) == 0 {
		return 0, nil
	}
	ids, records := make(bson.A, len(docs)), 0
	for i, d := range docs {
		ids[i] = d.ID
		if kind == store.DataMeasurement {
			records += d.N
		} else {
			records++
		}
	}
	// the filter again: a record that changed since it was read (an
	// alarm raised again, an operation retried) is no longer old
	res, err := c.DeleteMany(ctx, append(bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}}, filter...))
	if err != nil {
		return fail(err)
	}
	if int(res.DeletedCount) < len(docs) {
		// some changed under the read and stayed: count what went
		return int(res.DeletedCount), nil
	}
	return records, nil
}
