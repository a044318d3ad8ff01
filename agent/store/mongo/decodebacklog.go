package mongo

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// The decode backlog (store.DecodeBacklog) is three collections:
//
//   - decodeValues, one document per value, _id its seq (from the id
//     counter, so that a process's later values have greater ones), with
//     its group's key: {group, _id} takes a group's head in order,
//     {decoder, queued} a decoder's oldest values (expiry, statistics);
//   - decodeGroups, one document per group that has values, _id its
//     key: when it is due (nextTry), who leases it until when (lease,
//     leaseUntil), and tail, the greatest seq appended to it; {decoder,
//     nextTry} finds a decoder's due groups;
//   - decodeCounts, one document per tenant: its number of values.
//
// A value is inserted before its group is upserted, and a group is
// removed only when it has no value and its tail has not moved since it
// was read: an append that comes between finds no group and upserts it
// again, so that no value is ever without its group. Only a process
// killed between the two writes leaves a value without a group, and a
// tenant's count above its values; Open repairs both.
//
// A lease is a token written with leaseUntil by one update of many
// groups, each taken only if it was free; the groups that carry the
// token afterwards are the taker's. On a server that applies updates by
// reading and writing back (FerretDB 1.x), two takers could both see a
// group free, so the store serializes its backlog changes there.

type decodeValueDoc struct {
	Seq      int64     `bson:"_id"`
	Group    string    `bson:"group"`
	Tenant   string    `bson:"tenant"`
	Device   string    `bson:"device"`
	Endpoint string    `bson:"endpoint"`
	Path     string    `bson:"path"`
	Decoder  string    `bson:"decoder"`
	Argument string    `bson:"argument"`
	Action   bool      `bson:"action"`
	Type     string    `bson:"type"`
	Value    []byte    `bson:"value"`
	Time     time.Time `bson:"time"`
	Queued   time.Time `bson:"queued"`
	Attempts int       `bson:"attempts"`
}

type decodeGroupDoc struct {
	Key        string    `bson:"_id"`
	NextTry    time.Time `bson:"nextTry"`
	LeaseUntil time.Time `bson:"leaseUntil"`
	Tail       int64     `bson:"tail"`
}

// noLease is the leaseUntil of a free group.
var noLease = time.UnixMilli(0).UTC()

// groupKey is a group's _id; tenants and device ids hold no '/'.
func groupKey(g store.DecodeGroup) string { return g.Tenant + "/" + g.Device + "/" + g.Decoder }

func (d decodeValueDoc) value() store.DecodeValue {
	return store.DecodeValue{
		Seq: d.Seq, Tenant: d.Tenant, Device: d.Device, Endpoint: d.Endpoint, Path: d.Path, Decoder: d.Decoder,
		Argument: d.Argument, Action: d.Action, Type: d.Type, Value: d.Value, Time: d.Time.UTC(), Queued: d.Queued.UTC(), Attempts: d.Attempts,
	}
}

var _ store.DecodeBacklog = (*Store)(nil)

// lockDecodes serializes the backlog's changes on a read-modify-write
// server; elsewhere it does nothing.
func (s *Store) lockDecodes() func() {
	if !s.rmw {
		return func() {}
	}
	s.decodeMu.Lock()
	return s.decodeMu.Unlock
}

// AppendDecodes reserves room in the tenant's count, inserts what fits,
// then upserts the groups.
func (s *Store) AppendDecodes(ctx context.Context, tenant string, vals []store.DecodeValue, bound int) (int, error) {
	now := now()
	vals, err := store.PrepareDecodeValues(tenant, vals, now)
	if err != nil || len(vals) == 0 {
		return 0, err
	}
	defer s.lockDecodes()()
	fail := func(err error) (int, error) {
		return 0, fmt.Errorf("append %d values to the decode backlog of %s: %w", len(vals), tenant, err)
	}
	k := int64(len(vals))
	var count struct {
		N int64 `bson:"n"`
	}
	err = s.decodeCounts.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: tenant}}, bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: k}}}},
		options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.After)).Decode(&count)
	if err != nil {
		return fail(err)
	}
	take := k - min(max(count.N-int64(bound), 0), k)
	giveBack := func(n int64) error {
		_, err := s.decodeCounts.UpdateOne(ctx, bson.D{{Key: "_id", Value: tenant}}, bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: -n}}}})
		return err
	}
	if take < k {
		if err := giveBack(k - take); err != nil {
			return fail(err)
		}
	}
	if take == 0 {
		return len(vals), nil
	}
	ids, err := s.newIDs(ctx, int(take))
	if err != nil {
		_ = giveBack(take)
		return fail(err)
	}
	docs := make([]any, take)
	tails := map[store.DecodeGroup]int64{}
	for i, v := range vals[:take] {
		g := v.Group()
		docs[i] = decodeValueDoc{
			Seq: ids[i], Group: groupKey(g), Tenant: tenant, Device: v.Device, Endpoint: v.Endpoint, Path: v.Path, Decoder: v.Decoder,
			Argument: v.Argument, Action: v.Action, Type: v.Type, Value: v.Value, Time: v.Time.UTC(), Queued: v.Queued.UTC(), Attempts: v.Attempts,
		}
		tails[g] = ids[i]
	}
	if _, err := s.decodeValues.InsertMany(ctx, docs); err != nil {
		_ = giveBack(take)
		return fail(err)
	}
	for _, g := range store.DecodeGroups(vals[:take]) {
		if err := s.upsertGroup(ctx, g, tails[g], now); err != nil {
			// the values are taken back, so that the caller may append
			// them again; if that fails too, Open finds them a group
			if _, derr := s.decodeValues.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}}); derr == nil {
				_ = giveBack(take)
			}
			return fail(err)
		}
	}
	return len(vals) - int(take), nil
}

// upsertGroup makes sure g has its document, due at now if it is new,
// with a tail of at least tail.
func (s *Store) upsertGroup(ctx context.Context, g store.DecodeGroup, tail int64, now time.Time) error {
	_, err := s.decodeGroups.UpdateOne(ctx, bson.D{{Key: "_id", Value: groupKey(g)}}, bson.D{
		{Key: "$max", Value: bson.D{{Key: "tail", Value: tail}}},
		{Key: "$setOnInsert", Value: bson.D{
			{Key: "tenant", Value: g.Tenant}, {Key: "device", Value: g.Device}, {Key: "decoder", Value: g.Decoder},
			{Key: "nextTry", Value: now}, {Key: "leaseUntil", Value: noLease}, {Key: "lease", Value: ""},
		}},
	}, options.UpdateOne().SetUpsert(true))
	return err
}

// claim leases the groups of keys that are free at now with a token of
// its own, and returns those it got.
func (s *Store) claim(ctx context.Context, keys []string, now time.Time, lease time.Duration) ([]decodeGroupDoc, error) {
	ids, err := s.newIDs(ctx, 1)
	if err != nil {
		return nil, err
	}
	token := strconv.FormatInt(ids[0], 10)
	_, err = s.decodeGroups.UpdateMany(ctx, bson.D{
		{Key: "_id", Value: bson.D{{Key: "$in", Value: keys}}},
		{Key: "leaseUntil", Value: bson.D{{Key: "$lte", Value: now}}},
	}, bson.D{{Key: "$set", Value: bson.D{{Key: "leaseUntil", Value: now.Add(lease)}, {Key: "lease", Value: token}}}})
	if err != nil {
		return nil, err
	}
	var got []decodeGroupDoc
	cur, err := s.decodeGroups.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: keys}}}, {Key: "lease", Value: token}},
		options.Find().SetSort(bson.D{{Key: "nextTry", Value: 1}}))
	if err != nil {
		return nil, err
	}
	if err := cur.All(ctx, &got); err != nil {
		return nil, err
	}
	return got, nil
}

// TakeDecodes finds the due groups, leases them, and reads the values of
// those it got, oldest first.
func (s *Store) TakeDecodes(ctx context.Context, decoder string, now time.Time, lease time.Duration, limit int) ([]store.DecodeValue, error) {
	if limit <= 0 {
		return nil, nil
	}
	defer s.lockDecodes()()
	fail := func(err error) ([]store.DecodeValue, error) {
		return nil, fmt.Errorf("take values of decoder %s: %w", decoder, err)
	}
	now = now.UTC()
	cur, err := s.decodeGroups.Find(ctx, bson.D{
		{Key: "decoder", Value: decoder},
		{Key: "nextTry", Value: bson.D{{Key: "$lte", Value: now}}},
		{Key: "leaseUntil", Value: bson.D{{Key: "$lte", Value: now}}},
	}, options.Find().SetSort(bson.D{{Key: "nextTry", Value: 1}}).SetLimit(int64(limit)).SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return fail(err)
	}
	var due []decodeGroupDoc
	if err := cur.All(ctx, &due); err != nil {
		return fail(err)
	}
	if len(due) == 0 {
		return nil, nil
	}
	keys := make([]string, len(due))
	for i, g := range due {
		keys[i] = g.Key
	}
	got, err := s.claim(ctx, keys, now, lease)
	if err != nil {
		return fail(err)
	}
	if len(got) == 0 {
		return nil, nil
	}
	// a group's head at a time, in the order the groups are due: one
	// query over them all would give the values in seq order, and the
	// limit would favour the groups that came first over those due first
	var vals []store.DecodeValue
	var idle []decodeGroupDoc // empty, or past the limit: freed
	for _, g := range got {
		var head []store.DecodeValue
		if len(vals) < limit {
			if head, err = s.findDecodes(ctx, bson.D{{Key: "group", Value: g.Key}}, bson.D{{Key: "_id", Value: 1}}, limit-len(vals)); err != nil {
				return fail(err)
			}
		}
		if len(head) == 0 {
			idle = append(idle, g)
		}
		vals = append(vals, head...)
	}
	if err := s.endLeases(ctx, idle, bson.D{{Key: "$set", Value: freeGroup}}); err != nil {
		return fail(err)
	}
	return vals, nil
}

var freeGroup = bson.D{{Key: "leaseUntil", Value: noLease}, {Key: "lease", Value: ""}}

func (s *Store) findDecodes(ctx context.Context, filter, sort bson.D, limit int) ([]store.DecodeValue, error) {
	o := options.Find().SetSort(sort)
	if limit > 0 {
		o.SetLimit(int64(limit))
	}
	cur, err := s.decodeValues.Find(ctx, filter, o)
	if err != nil {
		return nil, err
	}
	var docs []decodeValueDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, err
	}
	out := make([]store.DecodeValue, len(docs))
	for i, d := range docs {
		out[i] = d.value()
	}
	return out, nil
}

// endLeases removes the groups of gs that have no value left and a tail
// that has not moved since gs was read, and applies update to the others.
func (s *Store) endLeases(ctx context.Context, gs []decodeGroupDoc, update bson.D) error {
	if len(gs) == 0 {
		return nil
	}
	keys := make([]string, len(gs))
	for i, g := range gs {
		keys[i] = g.Key
	}
	held, err := distinct(ctx, s.decodeValues, "group", bson.D{{Key: "group", Value: bson.D{{Key: "$in", Value: keys}}}})
	if err != nil {
		return err
	}
	for _, g := range gs {
		if slices.Contains(held, g.Key) {
			continue
		}
		if _, err := s.decodeGroups.DeleteOne(ctx, bson.D{{Key: "_id", Value: g.Key}, {Key: "tail", Value: g.Tail}}); err != nil {
			return err
		}
	}
	_, err = s.decodeGroups.UpdateMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: keys}}}}, update)
	return err
}

// distinct returns the distinct strings of field among the documents of
// c that match filter. It is an aggregation rather than the distinct
// command, which FerretDB 1.x refuses with a time limit (maxTimeMS), as
// the client sends every command.
func distinct(ctx context.Context, c *mongo.Collection, field string, filter bson.D) ([]string, error) {
	cur, err := c.Aggregate(ctx, mongo.Pipeline{
		{{Key: "$match", Value: filter}},
		{{Key: "$group", Value: bson.D{{Key: "_id", Value: "$" + field}}}},
	})
	if err != nil {
		return nil, err
	}
	var docs []struct {
		V string `bson:"_id"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return nil, err
	}
	out := make([]string, len(docs))
	for i, d := range docs {
		out[i] = d.V
	}
	return out, nil
}

// groupsOf reads the groups of vals as they are now.
func (s *Store) groupsOf(ctx context.Context, vals []store.DecodeValue) ([]decodeGroupDoc, error) {
	if len(vals) == 0 {
		return nil, nil
	}
	var keys []string
	for _, g := range store.DecodeGroups(vals) {
		keys = append(keys, groupKey(g))
	}
	cur, err := s.decodeGroups.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: keys}}}})
	if err != nil {
		return nil, err
	}
	var gs []decodeGroupDoc
	if err := cur.All(ctx, &gs); err != nil {
		return nil, err
	}
	return gs, nil
}

// TakeExpiredDecodes reads the decoder's oldest values, leases their
// groups, and reads again those of the groups it got: a value another
// taker finished meanwhile is not returned.
func (s *Store) TakeExpiredDecodes(ctx context.Context, decoder string, before, now time.Time, lease time.Duration, limit int) ([]store.DecodeValue, error) {
	if limit <= 0 {
		return nil, nil
	}
	defer s.lockDecodes()()
	fail := func(err error) ([]store.DecodeValue, error) {
		return nil, fmt.Errorf("take expired values of decoder %s: %w", decoder, err)
	}
	now = now.UTC()
	old, err := s.findDecodes(ctx, bson.D{{Key: "decoder", Value: decoder}, {Key: "queued", Value: bson.D{{Key: "$lt", Value: before.UTC()}}}},
		bson.D{{Key: "queued", Value: 1}, {Key: "_id", Value: 1}}, limit)
	if err != nil {
		return fail(err)
	}
	if len(old) == 0 {
		return nil, nil
	}
	var keys []string
	for _, g := range store.DecodeGroups(old) {
		keys = append(keys, groupKey(g))
	}
	got, err := s.claim(ctx, keys, now, lease)
	if err != nil {
		return fail(err)
	}
	if len(got) == 0 {
		return nil, nil
	}
	seqs := make([]int64, len(old))
	for i, v := range old {
		seqs[i] = v.Seq
	}
	keys = keys[:0]
	for _, g := range got {
		keys = append(keys, g.Key)
	}
	vals, err := s.findDecodes(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: seqs}}}, {Key: "group", Value: bson.D{{Key: "$in", Value: keys}}}},
		bson.D{{Key: "queued", Value: 1}, {Key: "_id", Value: 1}}, 0)
	if err != nil {
		return fail(err)
	}
	return vals, nil
}

// SettleDecodes removes the done values, each tenant's from its count,
// counts the retries' attempts, and ends the leases: a group is freed by
// the last of its writes, so that no taker sees it half settled.
func (s *Store) SettleDecodes(ctx context.Context, done, retry []store.DecodeValue, now, next time.Time) error {
	if len(done)+len(retry) == 0 {
		return nil
	}
	defer s.lockDecodes()()
	fail := func(err error) error {
		return fmt.Errorf("settle %d values of the decode backlog: %w", len(done)+len(retry), err)
	}
	retried := store.DecodeGroups(retry)
	var finished []store.DecodeValue // of groups with nothing to retry
	for _, v := range done {
		if !slices.Contains(retried, v.Group()) {
			finished = append(finished, v)
		}
	}
	gs, err := s.groupsOf(ctx, finished)
	if err != nil {
		return fail(err)
	}
	byTenant := map[string][]int64{}
	for _, v := range done {
		byTenant[v.Tenant] = append(byTenant[v.Tenant], v.Seq)
	}
	for tenant, seqs := range byTenant {
		res, err := s.decodeValues.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: seqs}}}, {Key: "tenant", Value: tenant}})
		if err != nil {
			return fail(err)
		}
		if res.DeletedCount == 0 {
			continue
		}
		if _, err := s.decodeCounts.UpdateOne(ctx, bson.D{{Key: "_id", Value: tenant}},
			bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: -res.DeletedCount}}}}); err != nil {
			return fail(err)
		}
	}
	if len(retry) > 0 {
		seqs := make([]int64, len(retry))
		for i, v := range retry {
			seqs[i] = v.Seq
		}
		if _, err := s.decodeValues.UpdateMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: seqs}}}},
			bson.D{{Key: "$inc", Value: bson.D{{Key: "attempts", Value: 1}}}}); err != nil {
			return fail(err)
		}
		keys := make([]string, len(retried))
		for i, g := range retried {
			keys[i] = groupKey(g)
		}
		if _, err := s.decodeGroups.UpdateMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: keys}}}},
			bson.D{{Key: "$set", Value: append(slices.Clone(freeGroup), bson.E{Key: "nextTry", Value: next.UTC()})}}); err != nil {
			return fail(err)
		}
	}
	err = s.endLeases(ctx, gs, bson.D{{Key: "$set", Value: freeGroup}, {Key: "$max", Value: bson.D{{Key: "nextTry", Value: now.UTC()}}}})
	if err != nil {
		return fail(err)
	}
	return nil
}

// ResumeDecodes brings the free waiting groups' next try forward.
func (s *Store) ResumeDecodes(ctx context.Context, decoder string, now time.Time) error {
	defer s.lockDecodes()()
	now = now.UTC()
	f := bson.D{{Key: "nextTry", Value: bson.D{{Key: "$gt", Value: now}}}, {Key: "leaseUntil", Value: bson.D{{Key: "$lte", Value: now}}}}
	if decoder != "" {
		f = append(bson.D{{Key: "decoder", Value: decoder}}, f...)
	}
	if _, err := s.decodeGroups.UpdateMany(ctx, f, bson.D{{Key: "$set", Value: bson.D{{Key: "nextTry", Value: now}}}}); err != nil {
		return fmt.Errorf("resume the decode backlog of %q: %w", decoder, err)
	}
	return nil
}

// DecodeBacklogStats counts each decoder's values and reads its oldest:
// the servers this engine meets do not all have $min in $group.
func (s *Store) DecodeBacklogStats(ctx context.Context) ([]store.DecodeBacklogStat, error) {
	fail := func(err error) ([]store.DecodeBacklogStat, error) {
		return nil, fmt.Errorf("decode backlog statistics: %w", err)
	}
	decoders, err := distinct(ctx, s.decodeValues, "decoder", bson.D{})
	if err != nil {
		return fail(err)
	}
	slices.Sort(decoders)
	var out []store.DecodeBacklogStat
	for _, d := range decoders {
		n, err := s.decodeValues.CountDocuments(ctx, bson.D{{Key: "decoder", Value: d}})
		if err != nil {
			return fail(err)
		}
		var oldest decodeValueDoc
		err = s.decodeValues.FindOne(ctx, bson.D{{Key: "decoder", Value: d}}, options.FindOne().SetSort(bson.D{{Key: "queued", Value: 1}})).Decode(&oldest)
		if errors.Is(err, mongo.ErrNoDocuments) {
			continue // finished meanwhile
		}
		if err != nil {
			return fail(err)
		}
		out = append(out, store.DecodeBacklogStat{Decoder: d, Waiting: n, Oldest: oldest.Queued.UTC()})
	}
	return out, nil
}

// repairDecodeBacklog sets each tenant's count to its values, and gives
// a group to the values of a process killed before it upserted theirs.
// With other agents at work, a count may be off by their appends under
// way, which the next repair corrects.
func (s *Store) repairDecodeBacklog(ctx context.Context) error {
	fail := func(err error) error { return fmt.Errorf("repair the decode backlog: %w", err) }
	cur, err := s.decodeValues.Aggregate(ctx, mongo.Pipeline{
		{{Key: "$group", Value: bson.D{{Key: "_id", Value: "$tenant"}, {Key: "n", Value: bson.D{{Key: "$sum", Value: 1}}}}}},
	})
	if err != nil {
		return fail(err)
	}
	var counts []struct {
		Tenant string `bson:"_id"`
		N      int64  `bson:"n"`
	}
	if err := cur.All(ctx, &counts); err != nil {
		return fail(err)
	}
	tenants := make([]string, 0, len(counts))
	for _, c := range counts {
		tenants = append(tenants, c.Tenant)
		if _, err := s.decodeCounts.UpdateOne(ctx, bson.D{{Key: "_id", Value: c.Tenant}}, bson.D{{Key: "$set", Value: bson.D{{Key: "n", Value: c.N}}}},
			options.UpdateOne().SetUpsert(true)); err != nil {
			return fail(err)
		}
	}
	if _, err := s.decodeCounts.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$nin", Value: tenants}}}}); err != nil {
		return fail(err)
	}
	groups, err := distinct(ctx, s.decodeValues, "group", bson.D{})
	if err != nil {
		return fail(err)
	}
	have, err := distinct(ctx, s.decodeGroups, "_id", bson.D{})
	if err != nil {
		return fail(err)
	}
	slices.Sort(have)
	for _, k := range groups {
		if _, found := slices.BinarySearch(have, k); found {
			continue
		}
		var last decodeValueDoc
		err := s.decodeValues.FindOne(ctx, bson.D{{Key: "group", Value: k}}, options.FindOne().SetSort(bson.D{{Key: "_id", Value: -1}})).Decode(&last)
		if errors.Is(err, mongo.ErrNoDocuments) {
			continue
		}
		if err != nil {
			return fail(err)
		}
		if err := s.upsertGroup(ctx, last.value().Group(), last.Seq, now()); err != nil {
			return fail(err)
		}
	}
	return nil
}
