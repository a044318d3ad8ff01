package mongo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// Claims of operations on a read-modify-write server.
//
// FerretDB 1.x applies an update by reading the documents its filter
// matches and writing them back, so two agents moving one operation from
// PENDING to EXECUTING at once would both succeed and both send it. Of
// two inserts of one _id, though, one fails on any server: an agent
// claims the move by inserting the operation's claim document, checks
// the operation is still PENDING, and removes the claim once the
// operation leaves EXECUTING. MongoDB does not need this (the status is
// in the update's filter) and never writes a claim.

// claimStale is how old a claim of an operation still PENDING must be
// to be taken for one whose agent died between the claim and its write:
// far longer than that write takes.
const claimStale = 30 * time.Second

type claimDoc struct {
	Key string    `bson:"_id"`
	At  time.Time `bson:"at"`
}

// claim takes the move of cur from PENDING to EXECUTING, or says
// ErrConflict when another agent has it or the operation moved on.
func (s *Store) claimOp(ctx context.Context, tenant string, cur store.Operation) error {
	k := key(tenant, cur.ID)
	for try := 0; ; try++ {
		_, err := s.opClaims.InsertOne(ctx, claimDoc{Key: k, At: now()})
		if err == nil {
			break
		}
		if !isDup(err) {
			return fmt.Errorf("claim operation %s: %w", cur.ID, err)
		}
		var c claimDoc
		err = s.opClaims.FindOne(ctx, bson.D{{Key: "_id", Value: k}}).Decode(&c)
		switch {
		case errors.Is(err, mongo.ErrNoDocuments):
			continue // released meanwhile
		case err != nil:
			return fmt.Errorf("claim operation %s: %w", cur.ID, err)
		case try > 0 || time.Since(c.At) < claimStale:
			return fmt.Errorf("claim operation %s: %w: another agent sends it", cur.ID, store.ErrConflict)
		}
		got, err := s.GetOperation(ctx, tenant, cur.ID)
		if err != nil {
			return err
		}
		if got.Status != store.OpPending {
			return fmt.Errorf("claim operation %s: %w: it is %s", cur.ID, store.ErrConflict, got.Status)
		}
		// a claim left by an agent that died before its write
		if _, err := s.opClaims.DeleteOne(ctx, bson.D{{Key: "_id", Value: k}, {Key: "at", Value: c.At}}); err != nil {
			return fmt.Errorf("claim operation %s: %w", cur.ID, err)
		}
	}
	got, err := s.GetOperation(ctx, tenant, cur.ID)
	if err == nil && got.Status != store.OpPending {
		err = fmt.Errorf("claim operation %s: %w: it is %s", cur.ID, store.ErrConflict, got.Status)
	}
	if err != nil {
		s.unclaimOp(ctx, tenant, cur.ID)
		return err
	}
	return nil
}

// unclaim removes the claim of an operation that left EXECUTING (or was
// not moved there). A claim left behind by a failure here is taken over
// by the next claim once stale.
func (s *Store) unclaimOp(ctx context.Context, tenant, id string) {
	if _, err := s.opClaims.DeleteOne(context.WithoutCancel(ctx), bson.D{{Key: "_id", Value: key(tenant, id)}}); err != nil {
		s.log.Warn("operation claim not removed", "operation", id, "err", err)
	}
}
