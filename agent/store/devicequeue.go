package store

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// DeviceQueue is what a device's queue document says of the operations
// that have not ended.
type DeviceQueue struct {
	PendingCount int         // every PENDING operation
	Pending      []Operation // the oldest of them, up to the limit asked for
	Executing    []Operation // sent, or being sent, not ended; oldest first
}

// QueueOf reads a device's queue in one read of its queue document: how
// many operations are PENDING, up to limit of them (all if limit <= 0),
// and those EXECUTING.
func (s *Store) QueueOf(ctx context.Context, tenant, deviceID string, limit int) (DeviceQueue, error) {
	var q struct {
		IDs       []string `bson:"ids"`
		Executing []string `bson:"executing"`
	}
	err := s.opQueues.FindOne(ctx, bson.D{{Key: "_id", Value: key(tenant, deviceID)}}).Decode(&q)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return DeviceQueue{}, nil
	}
	if err != nil {
		return DeviceQueue{}, fmt.Errorf("read operation queue of %s: %w", deviceID, err)
	}
	dq := DeviceQueue{PendingCount: len(q.IDs)}
	if dq.Pending, err = s.queuedOps(ctx, tenant, deviceID, q.IDs, OpPending, limit); err != nil {
		return DeviceQueue{}, err
	}
	if dq.Executing, err = s.queuedOps(ctx, tenant, deviceID, q.Executing, OpExecuting, 0); err != nil {
		return DeviceQueue{}, err
	}
	return dq, nil
}
