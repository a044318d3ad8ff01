package mongo

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// QueueOf reads a device's queue in one read of its queue document: how
// many operations are PENDING, up to limit of them (all if limit <= 0),
// and those EXECUTING.
func (s *Store) QueueOf(ctx context.Context, tenant, deviceID string, limit int) (store.DeviceQueue, error) {
	var q struct {
		IDs       []string `bson:"ids"`
		Executing []string `bson:"executing"`
	}
	err := s.opQueues.FindOne(ctx, bson.D{{Key: "_id", Value: key(tenant, deviceID)}}).Decode(&q)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return store.DeviceQueue{}, nil
	}
	if err != nil {
		return store.DeviceQueue{}, fmt.Errorf("read operation queue of %s: %w", deviceID, err)
	}
	dq := store.DeviceQueue{PendingCount: len(q.IDs)}
	if dq.Pending, err = s.queuedOps(ctx, tenant, deviceID, q.IDs, store.OpPending, limit); err != nil {
		return store.DeviceQueue{}, err
	}
	if dq.Executing, err = s.queuedOps(ctx, tenant, deviceID, q.Executing, store.OpExecuting, 0); err != nil {
		return store.DeviceQueue{}, err
	}
	return dq, nil
}
