package store

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// ExecutingOf returns the operations of a device that are EXECUTING (sent,
// or being sent, and not ended yet), oldest first: its queue document
// lists them, so no scan of the operations is needed.
func (s *Store) ExecutingOf(ctx context.Context, tenant, deviceID string) ([]Operation, error) {
	var q struct {
		Executing []string `bson:"executing"`
	}
	err := s.opQueues.FindOne(ctx, bson.D{{Key: "_id", Value: key(tenant, deviceID)}}).Decode(&q)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read operation queue of %s: %w", deviceID, err)
	}
	return s.queuedOps(ctx, tenant, deviceID, q.Executing, OpExecuting, 0)
}
