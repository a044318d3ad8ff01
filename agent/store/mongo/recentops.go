package mongo

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// RecentOperations returns up to limit (at most MaxPageSize) operations
// of a device that have ended (SUCCESSFUL or FAILED), the most recently
// created first. Both MongoDB and the embedded store answer it from the
// (tenant, deviceId, seq) index, reading the device's operations newest
// first until limit have ended.
func (s *Store) RecentOperations(ctx context.Context, tenant, deviceID string, limit int) ([]store.Operation, error) {
	if limit <= 0 {
		return nil, nil
	}
	filter := bson.D{
		{Key: "tenant", Value: tenant}, {Key: "deviceId", Value: deviceID},
		{Key: "status", Value: bson.D{{Key: "$in", Value: []string{store.OpSuccessful, store.OpFailed}}}},
	}
	var docs []map[string]any
	if _, err := s.findPage(ctx, s.operations, filter, bson.D{{Key: "seq", Value: -1}}, store.Page{Size: limit, Current: 1}, &docs); err != nil {
		return nil, fmt.Errorf("recent operations of %s: %w", deviceID, err)
	}
	out := make([]store.Operation, len(docs))
	for i, d := range docs {
		out[i] = opFromDoc(d)
	}
	return out, nil
}
