package mongo

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

var opFixed = map[string]bool{
	"id": true, "deviceId": true, "status": true, "creationTime": true, "lastUpdated": true,
	"c8y_Command": true, "failureReason": true, "attempts": true,
}

func validOpStatus(s string) bool {
	switch s {
	case store.OpPending, store.OpExecuting, store.OpSuccessful, store.OpFailed:
		return true
	}
	return false
}

func opFromDoc(m map[string]any) store.Operation {
	op := store.Operation{
		ID: str(m, "id"), DeviceID: str(m, "deviceId"), Status: str(m, "status"),
		CreationTime: asTime(m["creationTime"]), LastUpdated: asTime(m["lastUpdated"]),
		FailureReason: str(m, "failureReason"), Fragments: fragmentsOf(m, opFixed),
	}
	if c, ok := m["c8y_Command"].(map[string]any); ok {
		op.HasCommand = true
		op.Text, op.Result = str(c, "text"), str(c, "result")
	}
	switch a := m["attempts"].(type) {
	case int32:
		op.Attempts = int(a)
	case int64:
		op.Attempts = int(a)
	}
	return op
}

// Pending operations of a device are listed in a per-device queue
// document, so that a device's Register or Update, which asks for them,
// reads one document by _id instead of scanning all operations.
type queueDoc struct {
	Tenant   string   `bson:"tenant"`
	DeviceID string   `bson:"deviceId"`
	IDs      []string `bson:"ids"`
}

// CreateOperations stores operations for one or more devices of the
// tenant, PENDING, with consecutive IDs in the order given. Every device
// must exist in the tenant (ErrNotFound otherwise; nothing is stored).
func (s *Store) CreateOperations(ctx context.Context, tenant string, ops []store.Operation) ([]store.Operation, error) {
	if len(ops) == 0 {
		return nil, nil
	}
	checked := map[string]bool{}
	for _, op := range ops {
		if err := checkFragments(op.Fragments); err != nil {
			return nil, err
		}
		if checked[op.DeviceID] {
			continue
		}
		var d struct{}
		if err := findKey(ctx, s.objects, tenant, op.DeviceID, &d); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return nil, fmt.Errorf("device %q: %w", op.DeviceID, store.ErrNotFound)
			}
			return nil, err
		}
		checked[op.DeviceID] = true
	}
	ids, err := s.newIDs(ctx, len(ops))
	if err != nil {
		return nil, err
	}
	t := now()
	docs := make([]any, len(ops))
	out := make([]store.Operation, len(ops))
	byDevice := map[string][]string{}
	var devices []string
	for i, op := range ops {
		docs[i] = newOpDoc(tenant, &op, ids[i], t)
		out[i] = op
		if _, ok := byDevice[op.DeviceID]; !ok {
			devices = append(devices, op.DeviceID)
		}
		byDevice[op.DeviceID] = append(byDevice[op.DeviceID], op.ID)
	}
	if _, err := s.operations.InsertMany(ctx, docs); err != nil {
		return nil, fmt.Errorf("create operations: %w", err)
	}
	for _, dev := range devices {
		if err := s.enqueue(ctx, tenant, dev, byDevice[dev]...); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// newOpDoc is the document of a new operation op with the number seq,
// PENDING since t, and sets what the store set of op.
func newOpDoc(tenant string, op *store.Operation, seq int64, t time.Time) bson.D {
	op.ID = strconv.FormatInt(seq, 10)
	op.Status, op.CreationTime, op.LastUpdated = store.OpPending, t, t
	op.Result, op.FailureReason, op.Attempts = "", "", 0
	if op.Fragments == nil {
		op.Fragments = map[string]any{}
	}
	d := bson.D{
		{Key: "_id", Value: key(tenant, op.ID)}, {Key: "id", Value: op.ID}, {Key: "tenant", Value: tenant},
		{Key: "seq", Value: seq}, {Key: "deviceId", Value: op.DeviceID}, {Key: "status", Value: op.Status},
		{Key: "creationTime", Value: t}, {Key: "lastUpdated", Value: t}, {Key: "attempts", Value: 0},
	}
	if op.HasCommand {
		d = append(d, bson.E{Key: "c8y_Command", Value: bson.D{{Key: "text", Value: op.Text}}})
	}
	return flatDoc(d, op.Fragments, opFixed)
}

// CreateOperation stores one PENDING operation.
func (s *Store) CreateOperation(ctx context.Context, tenant string, op store.Operation) (store.Operation, error) {
	out, err := s.CreateOperations(ctx, tenant, []store.Operation{op})
	if err != nil {
		return store.Operation{}, err
	}
	return out[0], nil
}

// lockQueue serializes the updates of one device's queue document on the
// embedded store, and returns the unlock. FerretDB 1.24 applies an update
// by reading the document and writing it back, so an operation added to
// a queue while another one left it could be lost from it, and stay
// PENDING unseen until the next start repaired the queues. MongoDB
// applies each update atomically and needs no lock.
func (s *Store) lockQueue(tenant, deviceID string) func() {
	return s.lockEmbedded(&s.queues, key(tenant, deviceID))
}

// lockEmbedded locks the one of locks that k hashes to on the embedded
// store, and returns the unlock; with MongoDB it locks nothing.
func (s *Store) lockEmbedded(locks *[64]sync.Mutex, k string) func() {
	if !s.rmw {
		return func() {}
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(k))
	mu := &locks[h.Sum32()%uint32(len(locks))]
	mu.Lock()
	return mu.Unlock
}

// lockEmbeddedMany is lockEmbedded for many keys at once: their stripes
// are taken in ascending order, so two callers cannot wait on each other.
func (s *Store) lockEmbeddedMany(locks *[64]sync.Mutex, keys []string) func() {
	if !s.rmw || len(keys) == 0 {
		return func() {}
	}
	var taken [64]bool
	for _, k := range keys {
		h := fnv.New32a()
		_, _ = h.Write([]byte(k))
		taken[h.Sum32()%uint32(len(locks))] = true
	}
	for i := range taken {
		if taken[i] {
			locks[i].Lock()
		}
	}
	return func() {
		for i := range taken {
			if taken[i] {
				locks[i].Unlock()
			}
		}
	}
}

func (s *Store) enqueue(ctx context.Context, tenant, deviceID string, ids ...string) error {
	defer s.lockQueue(tenant, deviceID)()
	_, err := s.opQueues.UpdateOne(ctx, bson.D{{Key: "_id", Value: key(tenant, deviceID)}},
		bson.D{
			{Key: "$set", Value: bson.D{{Key: "tenant", Value: tenant}, {Key: "deviceId", Value: deviceID}}},
			{Key: "$addToSet", Value: bson.D{{Key: "ids", Value: bson.D{{Key: "$each", Value: ids}}}}},
		}, options.UpdateOne().SetUpsert(true))
	if err != nil {
		return fmt.Errorf("queue operations of %s: %w", deviceID, err)
	}
	return nil
}

// GetOperation returns the tenant's operation id.
func (s *Store) GetOperation(ctx context.Context, tenant, id string) (store.Operation, error) {
	var m map[string]any
	if err := findKey(ctx, s.operations, tenant, id, &m); err != nil {
		return store.Operation{}, err
	}
	return opFromDoc(m), nil
}

// SetStatus moves an operation to status. result (c8y_Command.result) and
// failureReason are set when not empty; EXECUTING counts an attempt.
// SUCCESSFUL and FAILED are final: changing them is ErrInvalid. Back to
// PENDING (a request that timed out) queues the operation again.
func (s *Store) SetStatus(ctx context.Context, tenant, id, status, result, failureReason string) error {
	if !validOpStatus(status) {
		return fmt.Errorf("%w: operation status %q", store.ErrInvalid, status)
	}
	cur, err := s.GetOperation(ctx, tenant, id)
	if err != nil {
		return err
	}
	return s.moveStatus(ctx, tenant, cur, status, result, failureReason)
}

// SetStatusFrom is SetStatus that changes the operation only when it is
// read in status from: ErrConflict otherwise, and nothing changes. The
// runner's watchdog fails an operation stuck in EXECUTING with it, and the
// runner settles those a previous run left EXECUTING.
func (s *Store) SetStatusFrom(ctx context.Context, tenant, id, from, status, result, failureReason string) error {
	if !validOpStatus(status) {
		return fmt.Errorf("%w: operation status %q", store.ErrInvalid, status)
	}
	// Of callers changing one operation from one status, one must win:
	// the embedded store serializes their read and write with a lock,
	// MongoDB checks the status in the update's filter.
	defer s.lockEmbedded(&s.opMu, key(tenant, id))()
	cur, err := s.GetOperation(ctx, tenant, id)
	if err != nil {
		return err
	}
	if cur.Status != from {
		return fmt.Errorf("set operation %s %s: %w: it is %s, not %s", id, status, store.ErrConflict, cur.Status, from)
	}
	return s.moveStatusFrom(ctx, tenant, cur, from, status, result, failureReason)
}

// Transition is SetStatus of an operation as the caller last read it,
// cur, without reading it again: for the operation runner, which saves a
// round trip per change with it. As the embedded engine's, it changes
// the operation only while it is still in cur.Status (ErrConflict
// otherwise), so that of replicas sending one operation (PENDING to
// EXECUTING) one does: MongoDB checks the status in the update's
// filter. A read-modify-write server (FerretDB) cannot, so there the
// move to EXECUTING is claimed first (claimOp) and the others are written
// as the operation became meanwhile.
func (s *Store) Transition(ctx context.Context, tenant string, cur store.Operation, status, result, failureReason string) error {
	if !validOpStatus(status) {
		return fmt.Errorf("%w: operation status %q", store.ErrInvalid, status)
	}
	if s.rmw && status == store.OpExecuting && cur.Status == store.OpPending {
		if err := s.claimOp(ctx, tenant, cur); err != nil {
			return err
		}
	}
	return s.moveStatusFrom(ctx, tenant, cur, cur.Status, status, result, failureReason)
}

// Executed moves cur, PENDING, to its outcome in one update that counts
// the attempt EXECUTING would have counted. On a read-modify-write
// server the move from PENDING is claimed first, as Transition's to
// EXECUTING is.
func (s *Store) Executed(ctx context.Context, tenant string, cur store.Operation, status, result, failureReason string) error {
	if status != store.OpSuccessful && status != store.OpFailed {
		return fmt.Errorf("%w: %q is not an outcome", store.ErrInvalid, status)
	}
	if cur.Status != store.OpPending {
		return fmt.Errorf("%w: operation %s is %s, not %s", store.ErrInvalid, cur.ID, cur.Status, store.OpPending)
	}
	if s.rmw {
		if err := s.claimOp(ctx, tenant, cur); err != nil {
			return err
		}
	}
	return s.moveStatusCounted(ctx, tenant, cur, store.OpPending, status, result, failureReason, true)
}

// Unsend returns an operation the caller moved to EXECUTING, cur, to
// PENDING when it did not send it after all (its device stopped
// listening meanwhile), and takes back the attempt that counted.
func (s *Store) Unsend(ctx context.Context, tenant string, cur store.Operation) error {
	if cur.Status != store.OpExecuting {
		return fmt.Errorf("%w: operation %s is %s, not %s", store.ErrInvalid, cur.ID, cur.Status, store.OpExecuting)
	}
	res, err := s.operations.UpdateOne(ctx, bson.D{{Key: "_id", Value: key(tenant, cur.ID)}}, bson.D{
		{Key: "$set", Value: bson.D{{Key: "status", Value: store.OpPending}, {Key: "lastUpdated", Value: now()}}},
		{Key: "$inc", Value: bson.D{{Key: "attempts", Value: -1}}},
	})
	if err != nil {
		return fmt.Errorf("unsend operation %s: %w", cur.ID, err)
	}
	if res.MatchedCount == 0 {
		return store.ErrNotFound
	}
	if s.rmw {
		s.unclaimOp(ctx, tenant, cur.ID)
	}
	return s.requeue(ctx, tenant, cur.DeviceID, cur.ID, store.OpPending)
}

// moveStatus is SetStatus of an operation read as cur.
func (s *Store) moveStatus(ctx context.Context, tenant string, cur store.Operation, status, result, failureReason string) error {
	return s.moveStatusFrom(ctx, tenant, cur, "", status, result, failureReason)
}

// moveStatusFrom is moveStatus that, with MongoDB and from set, changes
// the operation only if it is still in status from: ErrConflict if not.
func (s *Store) moveStatusFrom(ctx context.Context, tenant string, cur store.Operation, from, status, result, failureReason string) error {
	return s.moveStatusCounted(ctx, tenant, cur, from, status, result, failureReason, status == store.OpExecuting)
}

// moveStatusCounted is moveStatusFrom that counts an attempt when count
// is set.
func (s *Store) moveStatusCounted(ctx context.Context, tenant string, cur store.Operation, from, status, result, failureReason string, count bool) error {
	id := cur.ID
	if cur.Status == store.OpSuccessful || cur.Status == store.OpFailed {
		return fmt.Errorf("%w: operation %s is %s already", store.ErrInvalid, id, cur.Status)
	}
	set := bson.D{{Key: "status", Value: status}, {Key: "lastUpdated", Value: now()}}
	if result != "" {
		set = append(set, bson.E{Key: "c8y_Command.result", Value: result})
	}
	if failureReason != "" {
		set = append(set, bson.E{Key: "failureReason", Value: failureReason})
	}
	upd := bson.D{{Key: "$set", Value: set}}
	if count {
		upd = append(upd, bson.E{Key: "$inc", Value: bson.D{{Key: "attempts", Value: 1}}})
	}
	// On a read-modify-write server (FerretDB) by _id alone: it finds a
	// document by index only with a filter of _id and nothing else, and
	// scans the whole collection otherwise, so the status is checked on
	// the read before, under the operation's lock, not in the filter. Between the two, only an operation EXECUTING
	// longer than any request lasts is changed by two writers (the runner
	// and its watchdog), and the watchdog's limit is above the longest
	// request.
	filter := bson.D{{Key: "_id", Value: key(tenant, id)}}
	checked := from != "" && !s.rmw
	if checked {
		filter = append(filter, bson.E{Key: "status", Value: from})
	}
	res, err := s.operations.UpdateOne(ctx, filter, upd)
	if err != nil {
		return fmt.Errorf("set operation %s %s: %w", id, status, err)
	}
	if s.rmw && status != store.OpExecuting && res.MatchedCount > 0 {
		s.unclaimOp(ctx, tenant, id)
	}
	if res.MatchedCount == 0 {
		if !checked {
			return store.ErrNotFound
		}
		got, err := s.GetOperation(ctx, tenant, id)
		if err != nil {
			return err
		}
		return fmt.Errorf("set operation %s %s: %w: it is %s, not %s", id, status, store.ErrConflict, got.Status, from)
	}
	return s.requeue(ctx, tenant, cur.DeviceID, id, status)
}

// requeue keeps the device's queue document in step with an operation's
// new status: PENDING ones are in ids, EXECUTING ones in executing (so
// that the watchdog finds them without scanning every operation), final
// ones in neither.
func (s *Store) requeue(ctx context.Context, tenant, deviceID, id, status string) error {
	var upd bson.D
	switch status {
	case store.OpPending:
		upd = bson.D{
			{Key: "$set", Value: bson.D{{Key: "tenant", Value: tenant}, {Key: "deviceId", Value: deviceID}}},
			{Key: "$pull", Value: bson.D{{Key: "executing", Value: id}}},
			{Key: "$addToSet", Value: bson.D{{Key: "ids", Value: id}}},
		}
	case store.OpExecuting:
		upd = bson.D{
			{Key: "$set", Value: bson.D{{Key: "tenant", Value: tenant}, {Key: "deviceId", Value: deviceID}}},
			{Key: "$pull", Value: bson.D{{Key: "ids", Value: id}}},
			{Key: "$addToSet", Value: bson.D{{Key: "executing", Value: id}}},
		}
	default:
		upd = bson.D{{Key: "$pull", Value: bson.D{{Key: "ids", Value: id}, {Key: "executing", Value: id}}}}
	}
	defer s.lockQueue(tenant, deviceID)()
	_, err := s.opQueues.UpdateOne(ctx, bson.D{{Key: "_id", Value: key(tenant, deviceID)}}, upd,
		options.UpdateOne().SetUpsert(status == store.OpPending || status == store.OpExecuting))
	if err != nil {
		return fmt.Errorf("queue of %s: operation %s %s: %w", deviceID, id, status, err)
	}
	return nil
}

// Executing returns up to limit operations of every tenant that are
// EXECUTING, in creation order. It reads every operation: it is for the
// start of the agent, when operations left EXECUTING by the previous run
// must be settled.
func (s *Store) Executing(ctx context.Context, limit int) ([]store.TenantOperation, error) {
	filter, sort := bson.D{{Key: "status", Value: store.OpExecuting}}, bson.D{{Key: "seq", Value: 1}}
	opts := options.Find().SetSort(sort)
	if limit > 0 {
		opts.SetLimit(int64(limit))
	}
	cur, err := s.operations.Find(ctx, filter, opts)
	if err != nil {
		return nil, fmt.Errorf("executing operations: %w", err)
	}
	var docs []map[string]any
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("executing operations: %w", err)
	}
	out := make([]store.TenantOperation, len(docs))
	for i, d := range docs {
		out[i] = store.TenantOperation{Tenant: str(d, "tenant"), Operation: opFromDoc(d)}
	}
	return out, nil
}

// ExecutingBefore returns up to limit operations that have been EXECUTING
// since before t (by their lastUpdated), found through the devices' queue
// documents, which are one per device rather than one per operation. An
// ID left in a queue document by a write that failed halfway is removed
// there once its operation is seen in another status.
func (s *Store) ExecutingBefore(ctx context.Context, t time.Time, limit int) ([]store.TenantOperation, error) {
	cur, err := s.opQueues.Find(ctx, bson.D{{Key: "executing.0", Value: bson.D{{Key: "$exists", Value: true}}}},
		options.Find().SetProjection(bson.D{{Key: "tenant", Value: 1}, {Key: "deviceId", Value: 1}, {Key: "executing", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("executing operations: %w", err)
	}
	var docs []struct {
		Tenant    string   `bson:"tenant"`
		DeviceID  string   `bson:"deviceId"`
		Executing []string `bson:"executing"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("executing operations: %w", err)
	}
	var out []store.TenantOperation
	for _, d := range docs {
		for _, id := range d.Executing {
			if limit > 0 && len(out) >= limit {
				return out, nil
			}
			op, err := s.GetOperation(ctx, d.Tenant, id)
			if errors.Is(err, store.ErrNotFound) || (err == nil && op.Status != store.OpExecuting) {
				status := store.OpFailed
				if err == nil {
					status = op.Status
				}
				if err := s.requeue(ctx, d.Tenant, d.DeviceID, id, status); err != nil {
					return out, err
				}
				continue
			}
			if err != nil {
				return out, err
			}
			if op.LastUpdated.Before(t) {
				out = append(out, store.TenantOperation{Tenant: d.Tenant, Operation: op})
			}
		}
	}
	return out, nil
}

// Pending returns up to limit (all if limit <= 0) PENDING operations of a
// device, oldest first.
func (s *Store) Pending(ctx context.Context, tenant, deviceID string, limit int) ([]store.Operation, error) {
	var q queueDoc
	err := s.opQueues.FindOne(ctx, bson.D{{Key: "_id", Value: key(tenant, deviceID)}}).Decode(&q)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read operation queue of %s: %w", deviceID, err)
	}
	return s.queuedOps(ctx, tenant, deviceID, q.IDs, store.OpPending, limit)
}

// queuedOps reads the operations ids of a device's queue document in
// creation order, up to limit (all if limit <= 0), keeping those still
// in status: a queue document may name one that moved on meanwhile.
func (s *Store) queuedOps(ctx context.Context, tenant, deviceID string, ids []string, status string, limit int) ([]store.Operation, error) {
	sortIDs(ids)
	var out []store.Operation
	for _, id := range ids {
		if limit > 0 && len(out) >= limit {
			break
		}
		op, err := s.GetOperation(ctx, tenant, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if op.Status == status && op.DeviceID == deviceID {
			out = append(out, op)
		}
	}
	return out, nil
}

// QueuedDevices calls fn for every device whose queue lists PENDING
// operations, streaming the
// queue documents, one per device; an error of fn stops it and is
// returned. It is for the agent's start, to find the devices that have
// work without reading a queue per registered device.
func (s *Store) QueuedDevices(ctx context.Context, fn func(tenant, deviceID string) error) error {
	cur, err := s.opQueues.Find(ctx, bson.D{{Key: "ids.0", Value: bson.D{{Key: "$exists", Value: true}}}},
		options.Find().SetProjection(bson.D{{Key: "tenant", Value: 1}, {Key: "deviceId", Value: 1}}))
	if err != nil {
		return fmt.Errorf("queued devices: %w", err)
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		var d struct {
			Tenant   string `bson:"tenant"`
			DeviceID string `bson:"deviceId"`
		}
		if err := cur.Decode(&d); err != nil {
			return fmt.Errorf("queued devices: %w", err)
		}
		if err := fn(d.Tenant, d.DeviceID); err != nil {
			return err
		}
	}
	if err := cur.Err(); err != nil {
		return fmt.Errorf("queued devices: %w", err)
	}
	return nil
}

// PendingCount returns how many operations of a device are queued.
func (s *Store) PendingCount(ctx context.Context, tenant, deviceID string) (int, error) {
	var q queueDoc
	err := s.opQueues.FindOne(ctx, bson.D{{Key: "_id", Value: key(tenant, deviceID)}}).Decode(&q)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read operation queue of %s: %w", deviceID, err)
	}
	return len(q.IDs), nil
}

// ListOperations lists the tenant's operations in creation order; total is
// -1 unless f.Page.WithTotal.
func (s *Store) ListOperations(ctx context.Context, tenant string, f store.OperationFilter) ([]store.Operation, int64, error) {
	filter := bson.D{{Key: "tenant", Value: tenant}}
	if f.DeviceID != "" {
		filter = append(filter, bson.E{Key: "deviceId", Value: f.DeviceID})
	}
	if f.Status != "" {
		filter = append(filter, bson.E{Key: "status", Value: f.Status})
	}
	var docs []map[string]any
	total, err := s.findPage(ctx, s.operations, filter, bson.D{{Key: "seq", Value: 1}}, f.Page, &docs)
	if err != nil {
		return nil, 0, err
	}
	out := make([]store.Operation, len(docs))
	for i, d := range docs {
		out[i] = opFromDoc(d)
	}
	return out, total, nil
}

// repairQueues puts every PENDING operation into its device's queue: an
// operation stored just before a crash may have missed it, as there are
// no transactions to tie the two writes together.
func (s *Store) repairQueues(ctx context.Context) error {
	cur, err := s.operations.Find(ctx, bson.D{{Key: "status", Value: store.OpPending}},
		options.Find().SetProjection(bson.D{{Key: "tenant", Value: 1}, {Key: "deviceId", Value: 1}, {Key: "id", Value: 1}}))
	if err != nil {
		return fmt.Errorf("repair operation queues: %w", err)
	}
	defer cur.Close(ctx)
	type dev struct{ tenant, id string }
	ids := map[dev][]string{}
	for cur.Next(ctx) {
		var d struct {
			Tenant   string `bson:"tenant"`
			DeviceID string `bson:"deviceId"`
			ID       string `bson:"id"`
		}
		if err := cur.Decode(&d); err != nil {
			return fmt.Errorf("repair operation queues: %w", err)
		}
		k := dev{d.Tenant, d.DeviceID}
		ids[k] = append(ids[k], d.ID)
	}
	if err := cur.Err(); err != nil {
		return fmt.Errorf("repair operation queues: %w", err)
	}
	for k, v := range ids {
		if err := s.enqueue(ctx, k.tenant, k.id, v...); err != nil {
			return err
		}
	}
	return nil
}

// sortIDs puts operation IDs in creation order (they are numbers).
func sortIDs(ids []string) {
	slices.SortFunc(ids, func(a, b string) int {
		x, _ := strconv.ParseInt(a, 10, 64)
		y, _ := strconv.ParseInt(b, 10, 64)
		return cmp.Compare(x, y)
	})
}
