package mongo

import (
	"bytes"
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

// Measurements are stored in buckets: one document per tenant, source,
// type and hour of measurement time holding up to bucketMax of them, each
// written once by one insert. This is what makes tens of thousands of
// values per second affordable for the embedded store, which costs about
// the same per document whatever its size. A measurement's ID is its
// bucket's sequence number times bucketMax plus its index in the bucket,
// so a single measurement is found by the bucket's _id.
const (
	bucketMax    = 1000
	bucketWindow = time.Hour
)

type bucketEntry struct {
	T time.Time      `bson:"t"`
	F map[string]any `bson:"f"`
}

type bucketDoc struct {
	Key    string    `bson:"_id"`
	Seq    int64     `bson:"seq"`
	Tenant string    `bson:"tenant"`
	Source string    `bson:"source"`
	Type   string    `bson:"type"`
	Start  time.Time `bson:"start"`
	End    time.Time `bson:"end"`
	N      int       `bson:"n"`
	Frags  []string  `bson:"frags"`  // fragment names present
	Series []string  `bson:"series"` // "fragment.series" present
	SNames []string  `bson:"snames"` // series names present
	// Data holds the measurements, sorted by time, as one BSON document
	// {m: [{t, f}, ...]} in a binary field. The database stores and ships
	// it as opaque bytes: the embedded store's cost grows with the number
	// of fields it converts, and nothing queries inside a bucket anyway.
	Data []byte        `bson:"data"`
	M    []bucketEntry `bson:"-"`
}

type bucketData struct {
	M []bucketEntry `bson:"m"`
}

func (d *bucketDoc) pack() error {
	b, err := bson.Marshal(bucketData{M: d.M})
	if err != nil {
		return fmt.Errorf("%w: measurement fragments: %v", store.ErrInvalid, err)
	}
	d.Data = b
	return nil
}

func (d *bucketDoc) unpack() error {
	var bd bucketData
	dec := bson.NewDecoder(bson.NewDocumentReader(bytes.NewReader(d.Data)))
	dec.DefaultDocumentMap()
	dec.BinaryAsSlice()
	if err := dec.Decode(&bd); err != nil {
		return fmt.Errorf("decode measurement bucket %s: %w", d.Key, err)
	}
	d.M = bd.M
	return nil
}

// tenantMeasurement is a measurement on its way into a bucket; pos is its
// index in the caller's slice.
type tenantMeasurement struct {
	tenant string
	m      store.Measurement
	pos    int
}

func checkMeasurement(m store.Measurement) error {
	if m.Source == "" || m.Type == "" {
		return fmt.Errorf("%w: measurement needs source and type", store.ErrInvalid)
	}
	return checkFragments(m.Fragments)
}

// AddMeasurements stores measurements in one write and returns their IDs
// in the order given. Time defaults to now.
func (s *Store) AddMeasurements(ctx context.Context, tenant string, ms []store.Measurement) ([]string, error) {
	items := make([]tenantMeasurement, len(ms))
	for i, m := range ms {
		if err := checkMeasurement(m); err != nil {
			return nil, err
		}
		items[i] = tenantMeasurement{tenant: tenant, m: m, pos: i}
	}
	docs, ids, err := s.buildBuckets(ctx, items)
	if err != nil {
		return nil, err
	}
	if err := s.insertBuckets(ctx, docs, false); err != nil {
		return nil, err
	}
	return ids, nil
}

// buildBuckets groups items into bucket documents with fresh sequence
// numbers; ids[i] is the ID of items[i].
func (s *Store) buildBuckets(ctx context.Context, items []tenantMeasurement) ([]any, []string, error) {
	type gk struct {
		tenant, source, typ string
		window              int64
	}
	groups := map[gk][]tenantMeasurement{}
	var order []gk
	t0 := now()
	for _, it := range items {
		if it.m.Time.IsZero() {
			it.m.Time = t0
		}
		it.m.Time = it.m.Time.UTC().Truncate(time.Millisecond)
		k := gk{it.tenant, it.m.Source, it.m.Type, it.m.Time.UnixMilli() / bucketWindow.Milliseconds()}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], it)
	}
	n := 0
	for _, k := range order {
		n += (len(groups[k]) + bucketMax - 1) / bucketMax
	}
	seqs, err := s.newIDs(ctx, n)
	if err != nil {
		return nil, nil, err
	}
	docs := make([]any, 0, n)
	ids := make([]string, len(items))
	for _, k := range order {
		g := groups[k]
		slices.SortStableFunc(g, func(a, b tenantMeasurement) int { return a.m.Time.Compare(b.m.Time) })
		for chunk := range slices.Chunk(g, bucketMax) {
			seq := seqs[0]
			seqs = seqs[1:]
			d := bucketDoc{
				Key: key(k.tenant, "b"+strconv.FormatInt(seq, 10)), Seq: seq, Tenant: k.tenant,
				Source: k.source, Type: k.typ, M: make([]bucketEntry, len(chunk)),
			}
			for i, it := range chunk {
				f := it.m.Fragments
				if f == nil {
					f = map[string]any{}
				}
				d.M[i] = bucketEntry{T: it.m.Time, F: f}
				ids[it.pos] = strconv.FormatInt(seq*bucketMax+int64(i), 10)
			}
			if err := d.seal(); err != nil {
				return nil, nil, err
			}
			docs = append(docs, d)
		}
	}
	return docs, ids, nil
}

// seal sets what a bucket says of its measurements, M, sorted by time:
// their number, first and last times, the fragments and series they
// have (what lists filter buckets by), and packs them.
func (d *bucketDoc) seal() error {
	d.N, d.Start, d.End = len(d.M), d.M[0].T, d.M[len(d.M)-1].T
	d.Frags, d.Series, d.SNames = nil, nil, nil
	seen := map[string]bool{}
	for _, e := range d.M {
		for frag, v := range e.F {
			if !seen[frag] {
				seen[frag] = true
				d.Frags = append(d.Frags, frag)
			}
			if series, ok := asMap(v); ok {
				for sn := range series {
					if !seen[frag+"."+sn] {
						seen[frag+"."+sn] = true
						d.Series = append(d.Series, frag+"."+sn)
					}
					if !seen["\x00"+sn] {
						seen["\x00"+sn] = true
						d.SNames = append(d.SNames, sn)
					}
				}
			}
		}
	}
	return d.pack()
}

// insertBuckets writes bucket documents in one unordered InsertMany. With
// retry, duplicate keys count as written: a retried batch keeps its IDs,
// so what an earlier, partly failed attempt wrote is not written twice.
func (s *Store) insertBuckets(ctx context.Context, docs []any, retry bool) error {
	if len(docs) == 0 {
		return nil
	}
	_, err := s.measurements.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
	if err == nil {
		return nil
	}
	var bwe mongo.BulkWriteException
	if retry && errors.As(err, &bwe) && bwe.WriteConcernError == nil {
		onlyDups := true
		for _, we := range bwe.WriteErrors {
			if we.Code != 11000 {
				onlyDups = false
			}
		}
		if onlyDups {
			return nil
		}
	}
	return fmt.Errorf("store %d measurement buckets: %w", len(docs), err)
}

// GetMeasurement returns one measurement of the tenant.
func (s *Store) GetMeasurement(ctx context.Context, tenant, id string) (store.Measurement, error) {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil || n < 0 {
		return store.Measurement{}, store.ErrNotFound
	}
	var d bucketDoc
	if err := findKey(ctx, s.measurements, tenant, "b"+strconv.FormatInt(n/bucketMax, 10), &d); err != nil {
		return store.Measurement{}, err
	}
	if err := d.unpack(); err != nil {
		return store.Measurement{}, err
	}
	i := int(n % bucketMax)
	if i >= len(d.M) {
		return store.Measurement{}, store.ErrNotFound
	}
	return d.measurement(i), nil
}

func (d *bucketDoc) measurement(i int) store.Measurement {
	e := d.M[i]
	f, _ := Plain(e.F).(map[string]any)
	return store.Measurement{
		ID: strconv.FormatInt(d.Seq*bucketMax+int64(i), 10), Source: d.Source, Type: d.Type,
		Time: e.T.UTC(), Fragments: f,
	}
}

func match(f store.MeasurementFilter, e bucketEntry) bool {
	if !f.DateFrom.IsZero() && e.T.Before(f.DateFrom) {
		return false
	}
	if !f.DateTo.IsZero() && !e.T.Before(f.DateTo) {
		return false
	}
	if f.ValueFragmentType != "" {
		v, ok := e.F[f.ValueFragmentType]
		if !ok {
			return false
		}
		if f.ValueFragmentSeries != "" {
			series, _ := v.(map[string]any)
			if _, ok := series[f.ValueFragmentSeries]; !ok {
				return false
			}
		}
	} else if f.ValueFragmentSeries != "" {
		found := false
		for _, v := range e.F {
			if series, ok := v.(map[string]any); ok {
				if _, ok := series[f.ValueFragmentSeries]; ok {
					found = true
					break
				}
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// ListMeasurements lists the tenant's measurements in time order (newest
// first with Revert). Order is by bucket, then by time within a bucket:
// a measurement that arrives later than newer ones of its source and type
// may be listed after them. total is -1 unless f.Page.WithTotal.
func (s *Store) ListMeasurements(ctx context.Context, tenant string, f store.MeasurementFilter) ([]store.Measurement, int64, error) {
	filter := bson.D{{Key: "tenant", Value: tenant}}
	if f.Source != "" {
		filter = append(filter, bson.E{Key: "source", Value: f.Source})
	}
	if f.Type != "" {
		filter = append(filter, bson.E{Key: "type", Value: f.Type})
	}
	switch {
	case f.ValueFragmentType != "" && f.ValueFragmentSeries != "":
		filter = append(filter, bson.E{Key: "series", Value: f.ValueFragmentType + "." + f.ValueFragmentSeries})
	case f.ValueFragmentType != "":
		filter = append(filter, bson.E{Key: "frags", Value: f.ValueFragmentType})
	case f.ValueFragmentSeries != "":
		filter = append(filter, bson.E{Key: "snames", Value: f.ValueFragmentSeries})
	}
	if !f.DateFrom.IsZero() {
		filter = append(filter, bson.E{Key: "end", Value: bson.D{{Key: "$gte", Value: f.DateFrom}}})
	}
	if !f.DateTo.IsZero() {
		filter = append(filter, bson.E{Key: "start", Value: bson.D{{Key: "$lt", Value: f.DateTo}}})
	}
	dir := 1
	if f.Revert {
		dir = -1
	}
	next, done, err := s.buckets(ctx, tenant, f, filter, dir)
	if err != nil {
		return nil, 0, err
	}
	defer done()
	p := f.Page.Norm()
	skip := p.Skip()
	var out []store.Measurement
	var total int64
	for {
		d, ok, err := next()
		if err != nil {
			return nil, 0, err
		}
		if !ok {
			break
		}
		for j := range d.M {
			i := j
			if f.Revert {
				i = len(d.M) - 1 - j
			}
			if !match(f, d.M[i]) {
				continue
			}
			total++
			if total <= skip || len(out) >= p.Size {
				continue
			}
			out = append(out, d.measurement(i))
		}
		if len(out) >= p.Size && !p.WithTotal {
			break
		}
	}
	if !p.WithTotal {
		total = -1
	}
	return out, total, nil
}

// buckets iterates over the measurement buckets that filter selects, in
// start and sequence order (dir 1 or -1); done releases the iteration.
func (s *Store) buckets(ctx context.Context, tenant string, f store.MeasurementFilter, filter bson.D, dir int) (next func() (bucketDoc, bool, error), done func(), err error) {
	cur, err := s.measurements.Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "start", Value: dir}, {Key: "seq", Value: dir}}))
	if err != nil {
		return nil, nil, fmt.Errorf("list measurements: %w", err)
	}
	next = func() (bucketDoc, bool, error) {
		if !cur.Next(ctx) {
			if err := cur.Err(); err != nil {
				return bucketDoc{}, false, fmt.Errorf("list measurements: %w", err)
			}
			return bucketDoc{}, false, nil
		}
		var d bucketDoc
		if err := cur.Decode(&d); err != nil {
			return bucketDoc{}, false, fmt.Errorf("list measurements: %w", err)
		}
		if err := d.unpack(); err != nil {
			return bucketDoc{}, false, err
		}
		return d, true, nil
	}
	return next, func() { _ = cur.Close(ctx) }, nil
}

func asMap(v any) (map[string]any, bool) {
	switch m := v.(type) {
	case map[string]any:
		return m, true
	case bson.M:
		return m, true
	}
	return nil, false
}
