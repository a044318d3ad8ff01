package mongo

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// SetOperationFragment sets one fragment of an operation that is not
// final, such as the progress of a firmware update that lasts longer than
// one exchange with its device, so that a restart resumes it from the
// step it reached. The fixed and reserved members (status, c8y_Command,
// tenant, ...) are not fragments: ErrInvalid; a missing operation is
// ErrNotFound. The caller owns the operation (the runner, while it is
// EXECUTING).
func (s *Store) SetOperationFragment(ctx context.Context, tenant, id, name string, value any) error {
	if opFixed[name] || reserved[name] {
		return fmt.Errorf("%w: %q is not a fragment of an operation", store.ErrInvalid, name)
	}
	if err := checkFragments(map[string]any{name: nil}); err != nil {
		return err
	}
	res, err := s.operations.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: key(tenant, id)}},
		bson.D{{Key: "$set", Value: bson.D{{Key: name, Value: value}, {Key: "lastUpdated", Value: now()}}}})
	if err != nil {
		return fmt.Errorf("set fragment %s of operation %s: %w", name, id, err)
	}
	if res.MatchedCount == 0 {
		return store.ErrNotFound
	}
	return nil
}
