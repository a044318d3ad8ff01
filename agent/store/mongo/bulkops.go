package mongo

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// A bulk operation is one document; its devices are documents of
// bulkTargets keyed by position, so that a claim reads one of them.
//
// Without transactions, a claim is two writes: the document's position
// moves on with the claim (the operation's id, reserved first, and its
// device) in one conditional update, of which one of concurrent
// claimers wins; then the operation is inserted under that id and the
// claim removed. A claimer that dies in between leaves the claim, which
// the next claim finishes (the insert of a reserved id happens at most
// once), so that no device is skipped or gets two operations. open says
// that devices or a claim are left, for the scheduler's poll.
type bulkDoc struct {
	Key          string         `bson:"_id"`
	ID           string         `bson:"id"`
	Tenant       string         `bson:"tenant"`
	Seq          int64          `bson:"seq"`
	GroupID      string         `bson:"groupId"`
	StartDate    time.Time      `bson:"startDate"`
	RampMs       int64          `bson:"creationRamp"`
	Prototype    map[string]any `bson:"prototype"`
	Status       string         `bson:"status"`
	Total        int            `bson:"total"`
	Position     int            `bson:"position"`
	NextAt       time.Time      `bson:"nextAt"`
	Open         bool           `bson:"open"`
	Claim        *bulkClaim     `bson:"claim,omitempty"`
	CreationTime time.Time      `bson:"creationTime"`
	LastUpdated  time.Time      `bson:"lastUpdated"`
	Fragments    map[string]any `bson:"fragments"`
}

type bulkClaim struct {
	Seq    int64     `bson:"seq"`
	Device string    `bson:"device"`
	At     time.Time `bson:"at"`
}

// claimGrace is how long a claim is left to its claimer, another agent
// maybe, before the next claim takes it for the leftover of one that
// died.
const claimGrace = 30 * time.Second

func (d bulkDoc) bulk() store.BulkOperation {
	b := store.BulkOperation{
		ID: d.ID, GroupID: d.GroupID, StartDate: d.StartDate.UTC(), CreationRamp: time.Duration(d.RampMs) * time.Millisecond,
		Prototype: d.Prototype, Status: d.Status, Total: d.Total, Position: d.Position, NextAt: d.NextAt.UTC(),
		CreationTime: d.CreationTime.UTC(), LastUpdated: d.LastUpdated.UTC(), Fragments: d.Fragments,
	}
	if b.Prototype == nil {
		b.Prototype = map[string]any{}
	} else {
		b.Prototype = Plain(b.Prototype).(map[string]any)
	}
	if b.Fragments == nil {
		b.Fragments = map[string]any{}
	} else {
		b.Fragments = Plain(b.Fragments).(map[string]any)
	}
	return b
}

func targetKey(tenant, id string, pos int) string { return key(tenant, id+"/"+strconv.Itoa(pos)) }

// CreateBulkOperation stores b, ACTIVE, with its devices: the devices
// first, so that a document never names devices that are not there.
func (s *Store) CreateBulkOperation(ctx context.Context, tenant string, b store.BulkOperation) (store.BulkOperation, error) {
	if len(b.Targets) == 0 {
		return store.BulkOperation{}, fmt.Errorf("%w: a bulk operation needs devices", store.ErrInvalid)
	}
	if err := checkFragments(b.Prototype); err != nil {
		return store.BulkOperation{}, err
	}
	if err := checkFragments(b.Fragments); err != nil {
		return store.BulkOperation{}, err
	}
	ids, err := s.newIDs(ctx, 1)
	if err != nil {
		return store.BulkOperation{}, err
	}
	b.ID = strconv.FormatInt(ids[0], 10)
	for from := 0; from < len(b.Targets); from += 1000 {
		batch := b.Targets[from:min(from+1000, len(b.Targets))]
		docs := make([]any, len(batch))
		for i, d := range batch {
			docs[i] = bson.D{{Key: "_id", Value: targetKey(tenant, b.ID, from+i)}, {Key: "device", Value: d}}
		}
		if _, err := s.bulkTargets.InsertMany(ctx, docs); err != nil {
			return store.BulkOperation{}, fmt.Errorf("create bulk operation: devices: %w", err)
		}
	}
	t := now()
	if b.Prototype == nil {
		b.Prototype = map[string]any{}
	}
	if b.Fragments == nil {
		b.Fragments = map[string]any{}
	}
	d := bulkDoc{
		Key: key(tenant, b.ID), ID: b.ID, Tenant: tenant, Seq: ids[0], GroupID: b.GroupID,
		StartDate: b.StartDate.UTC().Truncate(time.Millisecond), RampMs: b.CreationRamp.Milliseconds(), Prototype: b.Prototype,
		Status: store.BulkActive, Total: len(b.Targets), NextAt: b.StartDate.UTC().Truncate(time.Millisecond), Open: true,
		CreationTime: t, LastUpdated: t, Fragments: b.Fragments,
	}
	if _, err := s.bulkOps.InsertOne(ctx, d); err != nil {
		return store.BulkOperation{}, fmt.Errorf("create bulk operation: %w", err)
	}
	return d.bulk(), nil
}

func (s *Store) readBulk(ctx context.Context, tenant, id string) (bulkDoc, error) {
	var d bulkDoc
	if err := findKey(ctx, s.bulkOps, tenant, id, &d); err != nil {
		return bulkDoc{}, fmt.Errorf("bulk operation %s: %w", id, err)
	}
	return d, nil
}

// GetBulkOperation returns it with its progress.
func (s *Store) GetBulkOperation(ctx context.Context, tenant, id string) (store.BulkOperation, error) {
	d, err := s.readBulk(ctx, tenant, id)
	if err != nil {
		return store.BulkOperation{}, err
	}
	b := d.bulk()
	return b, s.fillProgress(ctx, tenant, &b)
}

func (s *Store) fillProgress(ctx context.Context, tenant string, b *store.BulkOperation) error {
	for _, c := range []struct {
		status string
		n      *int64
	}{
		{store.OpPending, &b.Progress.Pending}, {store.OpExecuting, &b.Progress.Executing},
		{store.OpSuccessful, &b.Progress.Successful}, {store.OpFailed, &b.Progress.Failed},
	} {
		n, err := s.operations.CountDocuments(ctx, bson.D{{Key: "tenant", Value: tenant},
			{Key: store.BulkOperationIDField, Value: b.ID}, {Key: "status", Value: c.status}})
		if err != nil {
			return fmt.Errorf("progress of bulk operation %s: %w", b.ID, err)
		}
		*c.n = n
	}
	return nil
}

// ListBulkOperations lists the tenant's bulk operations by id.
func (s *Store) ListBulkOperations(ctx context.Context, tenant string, p store.Page) ([]store.BulkOperation, int64, error) {
	var docs []bulkDoc
	total, err := s.findPage(ctx, s.bulkOps, bson.D{{Key: "tenant", Value: tenant}}, bson.D{{Key: "seq", Value: 1}}, p, &docs)
	if err != nil {
		return nil, 0, err
	}
	out := make([]store.BulkOperation, len(docs))
	for i, d := range docs {
		out[i] = d.bulk()
		if err := s.fillProgress(ctx, tenant, &out[i]); err != nil {
			return nil, 0, err
		}
	}
	return out, total, nil
}

// SetBulkStatus cancels or deletes a bulk operation.
func (s *Store) SetBulkStatus(ctx context.Context, tenant, id, status string) (store.BulkOperation, error) {
	if err := store.CheckBulkStop(status); err != nil {
		return store.BulkOperation{}, err
	}
	k := key(tenant, id)
	defer s.lockEmbedded(&s.objMu, k)()
	var d bulkDoc
	from := bson.A{store.BulkDeleted}
	if status == store.BulkCanceled {
		from = append(from, store.BulkCanceled)
	}
	err := s.bulkOps.FindOneAndUpdate(ctx,
		bson.D{{Key: "_id", Value: k}, {Key: "status", Value: bson.D{{Key: "$nin", Value: from}}}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "status", Value: status}, {Key: "lastUpdated", Value: now()}}}},
		options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		stored, rerr := s.readBulk(ctx, tenant, id)
		if rerr != nil {
			return store.BulkOperation{}, rerr
		}
		return store.BulkOperation{}, fmt.Errorf("set bulk operation %s %s: %w: it is %s already", id, status, store.ErrInvalid, stored.Status)
	}
	if err != nil {
		return store.BulkOperation{}, fmt.Errorf("set bulk operation %s %s: %w", id, status, err)
	}
	b := d.bulk()
	return b, s.fillProgress(ctx, tenant, &b)
}

var runningBulk = bson.D{{Key: "$in", Value: bson.A{store.BulkActive, store.BulkInProgress}}}

// DueBulkOperations lists the bulk operations whose next operation is
// due, across tenants.
func (s *Store) DueBulkOperations(ctx context.Context, t time.Time, limit int) ([]store.TenantBulkOperation, error) {
	opts := options.Find().SetSort(bson.D{{Key: "nextAt", Value: 1}})
	if limit > 0 {
		opts.SetLimit(int64(limit))
	}
	cur, err := s.bulkOps.Find(ctx, bson.D{{Key: "open", Value: true}, {Key: "nextAt", Value: bson.D{{Key: "$lte", Value: t}}},
		{Key: "status", Value: runningBulk}}, opts)
	if err != nil {
		return nil, fmt.Errorf("due bulk operations: %w", err)
	}
	var docs []bulkDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("due bulk operations: %w", err)
	}
	out := make([]store.TenantBulkOperation, len(docs))
	for i, d := range docs {
		out[i] = store.TenantBulkOperation{Tenant: d.Tenant, BulkOperation: d.bulk()}
	}
	return out, nil
}

// CreateBulkStep claims the device at b.Position and creates its
// operation. A device deleted since the bulk operation was created is
// passed over: the position moves on, and the zero Operation says so.
func (s *Store) CreateBulkStep(ctx context.Context, tenant string, b store.BulkOperation, next time.Time) (store.Operation, error) {
	d, err := s.readBulk(ctx, tenant, b.ID)
	if err != nil {
		return store.Operation{}, err
	}
	if d.Claim != nil {
		if !s.soleWriter && time.Since(d.Claim.At) < claimGrace {
			return store.Operation{}, fmt.Errorf("bulk operation %s: %w: position %d is being claimed", b.ID, store.ErrConflict, d.Position-1)
		}
		if _, err := s.finishClaim(ctx, tenant, d.bulk(), *d.Claim); err != nil {
			return store.Operation{}, err
		}
	}
	if d.Position != b.Position || d.Position >= d.Total || (d.Status != store.BulkActive && d.Status != store.BulkInProgress) {
		return store.Operation{}, fmt.Errorf("bulk operation %s: %w: position %d is not the next, or it stopped", b.ID, store.ErrConflict, b.Position)
	}
	var target struct {
		Device string `bson:"device"`
	}
	if err := s.bulkTargets.FindOne(ctx, bson.D{{Key: "_id", Value: targetKey(tenant, b.ID, b.Position)}}).Decode(&target); err != nil {
		return store.Operation{}, fmt.Errorf("bulk operation %s: device at %d: %w", b.ID, b.Position, err)
	}
	ids, err := s.newIDs(ctx, 1)
	if err != nil {
		return store.Operation{}, err
	}
	claim := bulkClaim{Seq: ids[0], Device: target.Device, At: now()}
	k := key(tenant, b.ID)
	unlock := s.lockEmbedded(&s.objMu, k)
	res, err := s.bulkOps.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: k}, {Key: "position", Value: b.Position}, {Key: "status", Value: runningBulk},
			{Key: "claim", Value: bson.D{{Key: "$exists", Value: false}}}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "position", Value: b.Position + 1}, {Key: "nextAt", Value: next.UTC().Truncate(time.Millisecond)},
			{Key: "status", Value: store.BulkInProgress}, {Key: "claim", Value: claim}, {Key: "lastUpdated", Value: claim.At}}}})
	unlock()
	if err != nil {
		return store.Operation{}, fmt.Errorf("bulk operation %s: claim %d: %w", b.ID, b.Position, err)
	}
	if res.MatchedCount == 0 {
		return store.Operation{}, fmt.Errorf("bulk operation %s: %w: position %d was claimed by another", b.ID, store.ErrConflict, b.Position)
	}
	b.Total = d.Total
	b.Position++
	return s.finishClaim(ctx, tenant, b, claim)
}

// finishClaim creates the operation of claim, unless it is there (its
// id is the claim's) or its device is gone, and removes the claim; b is
// the bulk operation with the claim's position taken.
func (s *Store) finishClaim(ctx context.Context, tenant string, b store.BulkOperation, c bulkClaim) (store.Operation, error) {
	var op store.Operation
	var gone struct{}
	err := findKey(ctx, s.objects, tenant, c.Device, &gone)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return store.Operation{}, err
	default:
		op = b.StepOperation(c.Device)
		doc := newOpDoc(tenant, &op, c.Seq, now())
		_, err := s.operations.InsertOne(ctx, doc)
		switch {
		case isDup(err):
			// the claim was finished by another
		case err != nil:
			return store.Operation{}, fmt.Errorf("bulk operation %s: create operation: %w", b.ID, err)
		default:
			if err := s.enqueue(ctx, tenant, c.Device, op.ID); err != nil {
				return store.Operation{}, err
			}
		}
	}
	k := key(tenant, b.ID)
	defer s.lockEmbedded(&s.objMu, k)()
	_, err = s.bulkOps.UpdateOne(ctx, bson.D{{Key: "_id", Value: k}, {Key: "claim.seq", Value: c.Seq}},
		bson.D{{Key: "$unset", Value: bson.D{{Key: "claim", Value: ""}}}, {Key: "$set", Value: bson.D{{Key: "open", Value: b.Position < b.Total}}}})
	if err != nil {
		return store.Operation{}, fmt.Errorf("bulk operation %s: end claim: %w", b.ID, err)
	}
	return op, nil
}

// BulkOperationIDs lists the ids of the bulk operation's operations in
// status.
func (s *Store) BulkOperationIDs(ctx context.Context, tenant, id, status string, limit int) ([]string, error) {
	opts := options.Find().SetSort(bson.D{{Key: "seq", Value: 1}}).SetProjection(bson.D{{Key: "id", Value: 1}})
	if limit > 0 {
		opts.SetLimit(int64(limit))
	}
	cur, err := s.operations.Find(ctx, bson.D{{Key: "tenant", Value: tenant}, {Key: store.BulkOperationIDField, Value: id},
		{Key: "status", Value: status}}, opts)
	if err != nil {
		return nil, fmt.Errorf("operations of bulk operation %s: %w", id, err)
	}
	var docs []struct {
		ID string `bson:"id"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("operations of bulk operation %s: %w", id, err)
	}
	out := make([]string, len(docs))
	for i, d := range docs {
		out[i] = d.ID
	}
	return out, nil
}
