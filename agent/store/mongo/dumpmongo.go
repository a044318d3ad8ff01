package mongo

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// The MongoDB engine's dumps: every kind. Export streams each collection
// with a cursor; ImportBatch turns the records into documents of the
// engine's own shapes (as its methods write them), inserts them, and
// rebuilds what the engine derives from them (operation queues, open
// alarms). MongoDB without transactions (FerretDB) cannot write a batch
// all at once, so a batch that fails is undone: its inserted documents
// are deleted and the ones it replaced put back. Only the raise of the
// id counter stays, which is harmless.

// DumpKinds returns every kind: this engine stores them all.
func (s *Store) DumpKinds() []string { return slices.Clone(store.DumpKinds) }

// eachDoc streams the documents of c that filter selects, decoded into
// T, to fn; an error of fn is returned as it is.
func eachDoc[T any](ctx context.Context, c *mongo.Collection, filter bson.D, fn func(T) error) error {
	return eachSorted(ctx, c, filter, nil, fn)
}

// eachSorted is eachDoc in the order of sort (an index's, so that the
// server does not sort in memory).
func eachSorted[T any](ctx context.Context, c *mongo.Collection, filter, sort bson.D, fn func(T) error) error {
	opts := options.Find().SetBatchSize(256)
	if sort != nil {
		opts.SetSort(sort)
	}
	cur, err := c.Find(ctx, filter, opts)
	if err != nil {
		return fmt.Errorf("read %s: %w", c.Name(), err)
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		var d T
		if err := cur.Decode(&d); err != nil {
			return fmt.Errorf("read %s: %w", c.Name(), err)
		}
		if err := fn(d); err != nil {
			return err
		}
	}
	if err := cur.Err(); err != nil {
		return fmt.Errorf("read %s: %w", c.Name(), err)
	}
	return nil
}

// plainDoc is Plain of a decoded document, nil kept nil.
func plainDoc(m map[string]any) store.DumpDoc {
	if m == nil {
		return nil
	}
	d, _ := Plain(m).(map[string]any)
	return d
}

// Export streams every record of the store in dump order. Binaries
// whose upload broke off are left out: the contract never shows them.
func (s *Store) Export(ctx context.Context, fn func(store.Record) error) error {
	all := bson.D{}
	steps := []func() error{
		func() error {
			return eachDoc(ctx, s.tenants, all, func(t store.Tenant) error {
				return fn(&store.TenantRecord{ID: t.ID, Domain: t.Domain, CreationTime: store.DumpTime(t.CreationTime)})
			})
		},
		func() error {
			return eachDoc(ctx, s.users, all, func(u userDoc) error {
				return fn(&store.UserRecord{Tenant: u.Tenant, UserName: u.UserName, PasswordHash: u.Hash, Roles: u.Roles})
			})
		},
		func() error {
			return eachDoc(ctx, s.counters, all, func(c counterDoc) error {
				return fn(&store.CounterRecord{Name: c.Name, Value: c.N})
			})
		},
		func() error {
			return eachDoc(ctx, s.objects, all, func(m map[string]any) error {
				mo := moFromDoc(m)
				return fn(&store.ManagedObjectRecord{Tenant: str(m, "tenant"), ID: mo.ID, Name: mo.Name, Type: mo.Type,
					CreationTime: store.DumpTime(mo.CreationTime), LastUpdated: store.DumpTime(mo.LastUpdated), Fragments: mo.Fragments})
			})
		},
		func() error {
			// in the order they were added, across parents
			return eachSorted(ctx, s.childRefs, all, bson.D{{Key: "seq", Value: 1}}, func(d refDoc) error {
				return fn(&store.ChildReferenceRecord{Tenant: d.Tenant, Type: d.Kind, Parent: d.Parent, Child: d.Child})
			})
		},
		func() error {
			return eachDoc(ctx, s.externalIDs, all, func(d extDoc) error {
				return fn(&store.ExternalIDRecord{Tenant: d.Tenant, Type: d.Type, ExternalID: d.ExternalID.ExternalID, ManagedObjectID: d.ManagedObjectID})
			})
		},
		func() error {
			return eachDoc(ctx, s.endpoints, all, func(d endpointDoc) error {
				return fn(&store.EndpointRecord{Endpoint: d.Endpoint, Tenant: d.Tenant, DeviceID: d.DeviceID})
			})
		},
		func() error {
			return eachDoc(ctx, s.pskIDs, all, func(d pskDoc) error {
				kind, ident, _ := strings.Cut(d.Key, "/")
				return fn(&store.PSKIdentityRecord{Type: kind, Identity: ident, Tenant: d.Tenant, DeviceID: d.DeviceID})
			})
		},
		func() error {
			return eachDoc(ctx, s.deviceRegs, all, func(d deviceRegDoc) error {
				r := d.registration()
				r.Params = plainDoc(r.Params)
				return fn(store.RegistrationRecordOf(d.Tenant, d.DeviceID, r))
			})
		},
		func() error {
			return eachDoc(ctx, s.protocols, all, func(d protocolRecordDoc) error {
				r, err := recordOf(d)
				if err != nil {
					return err
				}
				return fn(store.ProtocolDumpOf(r))
			})
		},
		func() error {
			return eachDoc(ctx, s.postOperations, all, func(d postOpsDoc) error {
				return fn(&store.PostOperationsRecord{Tenant: d.Tenant, Commands: d.Commands, Updated: store.DumpTime(d.Updated)})
			})
		},
		func() error {
			return eachDoc(ctx, s.operations, all, func(m map[string]any) error {
				return fn(store.OperationRecordOf(str(m, "tenant"), opFromDoc(m)))
			})
		},
		func() error {
			return eachSorted(ctx, s.bulkOps, all, bson.D{{Key: "tenant", Value: 1}, {Key: "seq", Value: 1}}, func(d bulkDoc) error {
				return s.exportBulk(ctx, d, fn)
			})
		},
		func() error {
			return eachDoc(ctx, s.measurements, all, func(d bucketDoc) error {
				if err := d.unpack(); err != nil {
					return err
				}
				for i := range d.M {
					m := d.measurement(i)
					if err := fn(&store.MeasurementRecord{Tenant: d.Tenant, ID: m.ID, Source: m.Source, Type: m.Type,
						Time: store.DumpTime(m.Time), Fragments: m.Fragments}); err != nil {
						return err
					}
				}
				return nil
			})
		},
		func() error {
			return eachDoc(ctx, s.events, all, func(m map[string]any) error {
				e := eventFromDoc(m)
				return fn(&store.EventRecord{Tenant: str(m, "tenant"), ID: e.ID, Source: e.Source, Type: e.Type, Text: e.Text,
					Time: store.DumpTime(e.Time), CreationTime: store.DumpTime(e.CreationTime), Fragments: e.Fragments})
			})
		},
		func() error {
			return eachDoc(ctx, s.alarms, all, func(m map[string]any) error {
				a := alarmFromDoc(m)
				return fn(&store.AlarmRecord{Tenant: str(m, "tenant"), ID: a.ID, Source: a.Source, Type: a.Type, Text: a.Text,
					Severity: a.Severity, Status: a.Status, Count: a.Count, Time: store.DumpTime(a.Time),
					FirstOccurrenceTime: store.DumpTime(a.FirstOccurrenceTime), CreationTime: store.DumpTime(a.CreationTime), Fragments: a.Fragments})
			})
		},
		func() error {
			return eachDoc(ctx, s.values, all, func(d valuesDoc) error {
				r := &store.ValuesRecord{Tenant: d.Tenant, DeviceID: d.DeviceID}
				for _, v := range d.V {
					r.Values = append(r.Values, store.ValueRecord{Path: v.Path, Value: store.DumpValue{V: Plain(v.Value)}, Type: v.Type, Time: store.DumpTime(v.Time)})
				}
				slices.SortFunc(r.Values, func(a, b store.ValueRecord) int { return comparePaths(a.Path, b.Path) })
				return fn(r)
			})
		},
		func() error {
			return eachDoc(ctx, s.binaries, bson.D{{Key: "complete", Value: true}}, func(m map[string]any) error {
				return s.exportBinary(ctx, m, fn)
			})
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

type counterDoc struct {
	Name string `bson:"_id"`
	N    int64  `bson:"n"`
}

// exportBulk exports a bulk operation with its devices, and its claim
// if a claimer had not finished it.
func (s *Store) exportBulk(ctx context.Context, d bulkDoc, fn func(store.Record) error) error {
	targets := make([]string, d.Total)
	// The devices' keys run from tenant/id/0 to tenant/id/<total-1>:
	// one range of _id, in the order of their text.
	from := key(d.Tenant, d.ID+"/")
	to := key(d.Tenant, d.ID+"0") // "0" follows "/"
	n := 0
	err := eachDoc(ctx, s.bulkTargets, bson.D{{Key: "_id", Value: bson.D{{Key: "$gte", Value: from}, {Key: "$lt", Value: to}}}},
		func(t struct {
			Key    string `bson:"_id"`
			Device string `bson:"device"`
		}) error {
			pos, err := strconv.Atoi(strings.TrimPrefix(t.Key, from))
			if err != nil || pos < 0 || pos >= d.Total || targets[pos] != "" {
				return fmt.Errorf("export bulk operation %s/%s: device key %q", d.Tenant, d.ID, t.Key)
			}
			targets[pos] = t.Device
			n++
			return nil
		})
	if err != nil {
		return err
	}
	if n != d.Total {
		return fmt.Errorf("export bulk operation %s/%s: %d devices, it counts %d", d.Tenant, d.ID, n, d.Total)
	}
	r := store.BulkOperationRecordOf(d.Tenant, d.bulk(), targets)
	if c := d.Claim; c != nil {
		r.Claim = &store.BulkClaimRecord{OperationID: strconv.FormatInt(c.Seq, 10), DeviceID: c.Device, At: store.DumpTime(c.At)}
	}
	return fn(r)
}

func (s *Store) exportBinary(ctx context.Context, m map[string]any, fn func(store.Record) error) error {
	b := binFromDoc(m)
	tenant, chunks := str(m, "tenant"), asInt64(m["chunks"])
	err := fn(&store.BinaryRecord{Tenant: tenant, ID: b.ID, Name: b.Name, ContentType: b.ContentType, Length: b.Length,
		Owner: b.Owner, CreationTime: store.DumpTime(b.CreationTime), LastUpdated: store.DumpTime(b.LastUpdated),
		Fragments: b.Fragments, Chunks: chunks})
	if err != nil {
		return err
	}
	for n := range chunks {
		var d struct {
			Data []byte `bson:"data"`
		}
		if err := s.binChunks.FindOne(ctx, bson.D{{Key: "_id", Value: chunkKey(tenant, b.ID, n)}}).Decode(&d); err != nil {
			return fmt.Errorf("read chunk %d of binary %s/%s: %w", n, tenant, b.ID, err)
		}
		if err := fn(&store.BinaryChunkRecord{Tenant: tenant, BinaryID: b.ID, N: n, Data: d.Data}); err != nil {
			return err
		}
	}
	return nil
}

// ImportReady refuses a store that holds anything beyond an empty
// management tenant with its users.
func (s *Store) ImportReady(ctx context.Context) error {
	var t store.Tenant
	err := s.tenants.FindOne(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$ne", Value: store.ManagementTenant}}}}).Decode(&t)
	if err == nil {
		return fmt.Errorf("%w: it holds tenant %s", store.ErrNotEmpty, t.ID)
	}
	if !errors.Is(err, mongo.ErrNoDocuments) {
		return fmt.Errorf("check the store is empty: %w", err)
	}
	var u userDoc
	err = s.users.FindOne(ctx, bson.D{{Key: "tenant", Value: bson.D{{Key: "$ne", Value: store.ManagementTenant}}}}).Decode(&u)
	if err == nil {
		return fmt.Errorf("%w: it holds users of tenant %s", store.ErrNotEmpty, u.Tenant)
	}
	if !errors.Is(err, mongo.ErrNoDocuments) {
		return fmt.Errorf("check the store is empty: %w", err)
	}
	for _, c := range []*mongo.Collection{
		s.objects, s.externalIDs, s.endpoints, s.pskIDs, s.deviceRegs, s.protocols, s.postOperations,
		s.operations, s.opQueues, s.measurements, s.events, s.alarms, s.openAlarms(), s.values, s.binaries, s.binChunks,
		s.childRefs, s.bulkOps, s.bulkTargets,
	} {
		err := c.FindOne(ctx, bson.D{}, options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})).Err()
		if err == nil {
			return fmt.Errorf("%w: it holds %s", store.ErrNotEmpty, c.Name())
		}
		if !errors.Is(err, mongo.ErrNoDocuments) {
			return fmt.Errorf("check the store is empty: %w", err)
		}
	}
	return nil
}

// mongoWrite is one document an import writes: inserted, or, with
// replace, put in place of whatever has its _id, which undo restores.
type mongoWrite struct {
	rec     int // the record's place in the batch
	c       *mongo.Collection
	id      string
	doc     any
	replace bool
	prev    bson.Raw // what replace found; nil when nothing
}

// mongoImport is the import of one batch.
type mongoImport struct {
	s      *Store
	ctx    context.Context
	writes []*mongoWrite
	done   []*mongoWrite
	// buckets are the measurement buckets the batch writes, by _id.
	buckets map[string]*importBucket
	misfits []tenantMeasurement
	// misfitRecs are the misfits' places in the batch.
	misfitRecs []int
	// queues are the operations the batch queues, by device.
	queues map[[2]string]*queueAdd
	// binaries are the binaries of the batch (their chunk counts), and
	// complete those whose last chunk it holds.
	binaries map[string]int64
	complete []*mongoWrite
	tenants  []string // whose post-operations changed
	users    [][2]string
}

type importBucket struct {
	d bucketDoc
	w *mongoWrite
}

type queueAdd struct{ pending, executing []string }

// ImportBatch writes the records (see Dumps) and undoes what it wrote
// when one of them fails.
func (s *Store) ImportBatch(ctx context.Context, records []store.Record) error {
	im := &mongoImport{s: s, ctx: ctx, buckets: map[string]*importBucket{}, queues: map[[2]string]*queueAdd{}, binaries: map[string]int64{}}
	if err := s.raiseIDs(ctx, records); err != nil {
		return err
	}
	for i, r := range records {
		if err := im.add(i, r); err != nil {
			return &store.BatchError{Index: i, Err: err}
		}
	}
	if err := im.run(); err != nil {
		im.undo()
		return err
	}
	for _, t := range im.tenants {
		s.postOps.drop(t)
	}
	for _, u := range im.users {
		s.auth.Forget(u[0], u[1])
	}
	return nil
}

// raiseIDs raises the id counter to at least the source's and every id
// of the batch, before anything is written, and drops the block of ids
// this process reserved below it, so that a new id never takes an
// imported one. A measurement's id is its bucket's number times
// bucketMax plus its place: its bucket's number is what counts.
func (s *Store) raiseIDs(ctx context.Context, records []store.Record) error {
	var top int64
	for _, r := range records {
		switch x := r.(type) {
		case *store.CounterRecord:
			if x.Name != store.CounterIDs {
				if _, err := s.counters.UpdateOne(ctx, bson.D{{Key: "_id", Value: x.Name}},
					bson.D{{Key: "$max", Value: bson.D{{Key: "n", Value: x.Value}}}}, options.UpdateOne().SetUpsert(true)); err != nil {
					return fmt.Errorf("import counter %s: %w", x.Name, err)
				}
				continue
			}
			top = max(top, x.Value)
		case *store.MeasurementRecord:
			if n, err := strconv.ParseInt(x.ID, 10, 64); err == nil {
				top = max(top, n/bucketMax)
			}
		case *store.BulkOperationRecord:
			for _, id := range []string{x.ID, claimID(x)} {
				if n, err := strconv.ParseInt(id, 10, 64); err == nil {
					top = max(top, n)
				}
			}
		default:
			if id := store.RecordID(r); id != "" {
				if n, err := strconv.ParseInt(id, 10, 64); err == nil {
					top = max(top, n)
				}
			}
		}
	}
	if top == 0 {
		return nil
	}
	_, err := s.counters.UpdateOne(ctx, bson.D{{Key: "_id", Value: store.CounterIDs}},
		bson.D{{Key: "$max", Value: bson.D{{Key: "n", Value: top}}}}, options.UpdateOne().SetUpsert(true))
	if err != nil {
		return fmt.Errorf("import: raise the id counter: %w", err)
	}
	s.ids.mu.Lock()
	s.ids.next, s.ids.hi = 0, 0
	s.ids.mu.Unlock()
	return nil
}

func (im *mongoImport) insert(rec int, c *mongo.Collection, id string, doc any) *mongoWrite {
	w := &mongoWrite{rec: rec, c: c, id: id, doc: doc}
	im.writes = append(im.writes, w)
	return w
}

// replace writes doc in place of the document id, reading it first so
// that undo can put it back.
func (im *mongoImport) replace(rec int, c *mongo.Collection, id string, doc any) error {
	w := &mongoWrite{rec: rec, c: c, id: id, doc: doc, replace: true}
	err := c.FindOne(im.ctx, bson.D{{Key: "_id", Value: id}}).Decode(&w.prev)
	if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
		return fmt.Errorf("read %s %s: %w", c.Name(), id, err)
	}
	im.writes = append(im.writes, w)
	return nil
}

// importSeq reads an id of the id sequence.
func importSeq(id string) (int64, error) {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: id %q is not a number of the id sequence", store.ErrInvalid, id)
	}
	return n, nil
}

// importFragments refuses fragments this engine would not store, or
// store under another name: a record is imported as it is or not at all.
func importFragments(frags map[string]any, fixed map[string]bool) error {
	if err := checkFragments(frags); err != nil {
		return err
	}
	for k := range frags {
		if reserved[k] || fixed[k] {
			return fmt.Errorf("%w: fragment %q is a fixed member", store.ErrInvalid, k)
		}
	}
	return nil
}

var moFixed = map[string]bool{"name": true, "type": true}

func (im *mongoImport) add(i int, rec store.Record) error {
	s := im.s
	switch r := rec.(type) {
	case *store.TenantRecord:
		if !store.ValidTenantID(r.ID) {
			return fmt.Errorf("%w: tenant id %q", store.ErrInvalid, r.ID)
		}
		t := store.Tenant{ID: r.ID, Domain: r.Domain, CreationTime: r.CreationTime.Time()}
		if r.ID == store.ManagementTenant {
			return im.replace(i, s.tenants, r.ID, t)
		}
		im.insert(i, s.tenants, r.ID, t)
	case *store.UserRecord:
		if r.UserName == "" || len(r.PasswordHash) == 0 {
			return fmt.Errorf("%w: a user needs a name and a password hash", store.ErrInvalid)
		}
		roles := r.Roles
		if roles == nil {
			roles = []string{}
		}
		k := r.Tenant + "/" + r.UserName
		d := userDoc{ID: k, Tenant: r.Tenant, UserName: r.UserName, Hash: r.PasswordHash, Roles: roles}
		im.users = append(im.users, [2]string{r.Tenant, r.UserName})
		if r.Tenant == store.ManagementTenant {
			return im.replace(i, s.users, k, d)
		}
		im.insert(i, s.users, k, d)
	case *store.CounterRecord:
		// raised by raiseIDs
	case *store.ManagedObjectRecord:
		seq, err := importSeq(r.ID)
		if err != nil {
			return err
		}
		if err := importFragments(r.Fragments, moFixed); err != nil {
			return err
		}
		mo := store.ManagedObject{ID: r.ID, Name: r.Name, Type: r.Type, CreationTime: r.CreationTime.Time(), LastUpdated: r.LastUpdated.Time(), Fragments: r.Fragments}
		im.insert(i, s.objects, key(r.Tenant, r.ID), s.moDoc(r.Tenant, mo, seq))
	case *store.ExternalIDRecord:
		if r.Type == "" || r.ExternalID == "" {
			return fmt.Errorf("%w: external ID needs type and externalId", store.ErrInvalid)
		}
		k := extKey(r.Tenant, r.Type, r.ExternalID)
		im.insert(i, s.externalIDs, k, extDoc{Key: k, Tenant: r.Tenant, ExternalID: store.ExternalID{Type: r.Type, ExternalID: r.ExternalID, ManagedObjectID: r.ManagedObjectID}})
	case *store.EndpointRecord:
		im.insert(i, s.endpoints, r.Endpoint, endpointDoc{Endpoint: r.Endpoint, Tenant: r.Tenant, DeviceID: r.DeviceID})
	case *store.PSKIdentityRecord:
		if r.Identity == "" || (r.Type != store.PSKServer && r.Type != store.PSKBootstrap) {
			return fmt.Errorf("%w: psk identity of type %q", store.ErrInvalid, r.Type)
		}
		k := pskKey(r.Type, r.Identity)
		im.insert(i, s.pskIDs, k, pskDoc{Key: k, Tenant: r.Tenant, DeviceID: r.DeviceID})
	case *store.RegistrationRecord:
		k := key(r.Tenant, r.DeviceID)
		im.insert(i, s.deviceRegs, k, registrationDoc(k, r))
	case *store.ProtocolDumpRecord:
		pr, err := r.Record()
		if err != nil {
			return err
		}
		d, err := protocolDocOf(pr)
		if err != nil {
			return err
		}
		im.insert(i, s.protocols, d.Key, d)
	case *store.PostOperationsRecord:
		k := postOpsKey(r.Tenant)
		im.insert(i, s.postOperations, k, postOpsDoc{Key: k, Tenant: r.Tenant, Commands: r.Commands, Updated: r.Updated.Time()})
		im.tenants = append(im.tenants, r.Tenant)
	case *store.OperationRecord:
		return im.addOperation(i, r)
	case *store.ChildReferenceRecord:
		return im.addReference(i, r)
	case *store.BulkOperationRecord:
		return im.addBulk(i, r)
	case *store.MeasurementRecord:
		return im.addMeasurement(i, r)
	case *store.EventRecord:
		seq, err := importSeq(r.ID)
		if err != nil {
			return err
		}
		if err := importFragments(r.Fragments, eventFixed); err != nil {
			return err
		}
		im.insert(i, s.events, key(r.Tenant, r.ID), flatDoc(bson.D{
			{Key: "_id", Value: key(r.Tenant, r.ID)}, {Key: "id", Value: r.ID}, {Key: "tenant", Value: r.Tenant},
			{Key: "seq", Value: seq}, {Key: "source", Value: r.Source}, {Key: "type", Value: r.Type},
			{Key: "text", Value: r.Text}, {Key: "time", Value: r.Time.Time()}, {Key: "creationTime", Value: r.CreationTime.Time()},
		}, r.Fragments, eventFixed))
	case *store.AlarmRecord:
		return im.addAlarm(i, r)
	case *store.ValuesRecord:
		v := map[string]store.ResourceValue{}
		for _, x := range r.Values {
			k, err := valueKey(x.Path)
			if err != nil {
				return err
			}
			v[k] = store.ResourceValue{Path: x.Path, Value: x.Value.V, Type: x.Type, Time: x.Time.Time()}
		}
		k := key(r.Tenant, r.DeviceID)
		im.insert(i, s.values, k, bson.D{{Key: "_id", Value: k}, {Key: "tenant", Value: r.Tenant}, {Key: "deviceId", Value: r.DeviceID}, {Key: "v", Value: v}})
	case *store.BinaryRecord:
		return im.addBinary(i, r)
	case *store.BinaryChunkRecord:
		return im.addChunk(i, r)
	default:
		return fmt.Errorf("%w: records of kind %s", errors.ErrUnsupported, rec.Kind())
	}
	return nil
}

func registrationDoc(k string, r *store.RegistrationRecord) bson.D {
	d := bson.D{{Key: "_id", Value: k}, {Key: "tenant", Value: r.Tenant}, {Key: "deviceId", Value: r.DeviceID}}
	// Only what the record holds, as the engine's own writes leave out
	// what they do not set (a record of only a serialization has no
	// params and no time).
	if r.Params != nil {
		d = append(d, bson.E{Key: "params", Value: map[string]any(r.Params)})
	}
	for _, f := range []struct {
		name string
		v    []byte
	}{{"pskKey", r.PSKKey}, {"bootstrapPskKey", r.BootstrapPSKKey}, {"credentialsHash", r.CredentialsHash}} {
		if len(f.v) > 0 {
			d = append(d, bson.E{Key: f.name, Value: f.v})
		}
	}
	if r.Serialization != "" {
		d = append(d, bson.E{Key: "serialization", Value: r.Serialization})
	}
	if !r.Updated.IsZero() {
		d = append(d, bson.E{Key: "updated", Value: r.Updated.Time()})
	}
	if r.Incomplete || r.Deleting || len(r.Release) > 0 {
		// as SaveDeviceRegistration marks them: a deletion alone
		p := pendingDoc{Create: r.Incomplete && !r.Deleting, Delete: r.Deleting, Release: r.Release}
		d = append(d, bson.E{Key: "pending", Value: p})
	}
	return d
}

func (im *mongoImport) addOperation(i int, r *store.OperationRecord) error {
	seq, err := importSeq(r.ID)
	if err != nil {
		return err
	}
	if !validOpStatus(r.Status) {
		return fmt.Errorf("%w: operation status %q", store.ErrInvalid, r.Status)
	}
	if err := importFragments(r.Fragments, opFixed); err != nil {
		return err
	}
	k := key(r.Tenant, r.ID)
	d := bson.D{
		{Key: "_id", Value: k}, {Key: "id", Value: r.ID}, {Key: "tenant", Value: r.Tenant},
		{Key: "seq", Value: seq}, {Key: "deviceId", Value: r.DeviceID}, {Key: "status", Value: r.Status},
		{Key: "creationTime", Value: r.CreationTime.Time()}, {Key: "lastUpdated", Value: r.LastUpdated.Time()},
		{Key: "attempts", Value: r.Attempts},
	}
	if r.Command != nil {
		c := bson.D{{Key: "text", Value: r.Command.Text}}
		if r.Command.Result != "" {
			c = append(c, bson.E{Key: "result", Value: r.Command.Result})
		}
		d = append(d, bson.E{Key: "c8y_Command", Value: c})
	}
	if r.FailureReason != "" {
		d = append(d, bson.E{Key: "failureReason", Value: r.FailureReason})
	}
	im.insert(i, im.s.operations, k, flatDoc(d, r.Fragments, opFixed))
	dev := [2]string{r.Tenant, r.DeviceID}
	q := im.queues[dev]
	if q == nil {
		q = &queueAdd{}
		im.queues[dev] = q
	}
	switch r.Status {
	case store.OpPending:
		q.pending = append(q.pending, r.ID)
	case store.OpExecuting:
		q.executing = append(q.executing, r.ID)
	}
	return nil
}

func claimID(r *store.BulkOperationRecord) string {
	if r.Claim == nil {
		return ""
	}
	return r.Claim.OperationID
}

// addReference adds a reference after those imported before it, with a
// number of the sequence to keep the dump's order.
func (im *mongoImport) addReference(i int, r *store.ChildReferenceRecord) error {
	if err := r.Check(); err != nil {
		return err
	}
	ids, err := im.s.newIDs(im.ctx, 1)
	if err != nil {
		return err
	}
	k := refKey(r.Tenant, r.Type, r.Parent, r.Child)
	im.insert(i, im.s.childRefs, k, refDoc{Key: k, Tenant: r.Tenant, Kind: r.Type, Parent: r.Parent, Child: r.Child, Seq: ids[0]})
	return nil
}

// addBulk adds a bulk operation with its devices (before it, as its
// creation writes them) and finishes its claim, as the next claimer
// would: the claim's operation is stored under its id unless the dump
// held it or its device is gone.
func (im *mongoImport) addBulk(i int, r *store.BulkOperationRecord) error {
	if err := r.Check(); err != nil {
		return err
	}
	seq, err := importSeq(r.ID)
	if err != nil {
		return err
	}
	for _, f := range []store.DumpDoc{r.Prototype, r.Fragments} {
		if err := checkFragments(f); err != nil {
			return err
		}
	}
	for pos, d := range r.Targets {
		k := targetKey(r.Tenant, r.ID, pos)
		im.insert(i, im.s.bulkTargets, k, bson.D{{Key: "_id", Value: k}, {Key: "device", Value: d}})
	}
	b := r.BulkOperation()
	proto, frags := map[string]any(r.Prototype), map[string]any(r.Fragments)
	if proto == nil {
		proto = map[string]any{}
	}
	if frags == nil {
		frags = map[string]any{}
	}
	im.insert(i, im.s.bulkOps, key(r.Tenant, r.ID), bulkDoc{
		Key: key(r.Tenant, r.ID), ID: r.ID, Tenant: r.Tenant, Seq: seq, GroupID: r.GroupID,
		StartDate: b.StartDate, RampMs: r.CreationRamp, Prototype: proto, Status: r.Status, Total: b.Total,
		Position: r.Position, NextAt: b.NextAt, Open: r.Position < b.Total, CreationTime: b.CreationTime,
		LastUpdated: b.LastUpdated, Fragments: frags,
	})
	op := r.ClaimedOperation()
	if op == nil {
		return nil
	}
	if held, err := im.has(im.s.operations, key(r.Tenant, op.ID)); err != nil || held {
		return err
	}
	if there, err := im.has(im.s.objects, key(r.Tenant, op.DeviceID)); err != nil || !there {
		return err
	}
	return im.addOperation(i, op)
}

// has says whether the document id is in c, or among the batch's
// writes before.
func (im *mongoImport) has(c *mongo.Collection, id string) (bool, error) {
	for _, w := range im.writes {
		if w.c == c && w.id == id {
			return true, nil
		}
	}
	err := c.FindOne(im.ctx, bson.D{{Key: "_id", Value: id}}, options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})).Err()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %s %s: %w", c.Name(), id, err)
	}
	return true, nil
}

func (im *mongoImport) addAlarm(i int, r *store.AlarmRecord) error {
	seq, err := importSeq(r.ID)
	if err != nil {
		return err
	}
	if !store.ValidAlarmStatus(r.Status) || !store.ValidSeverity(r.Severity) {
		return fmt.Errorf("%w: alarm status %q, severity %q", store.ErrInvalid, r.Status, r.Severity)
	}
	if err := importFragments(r.Fragments, alarmFixed); err != nil {
		return err
	}
	k := key(r.Tenant, r.ID)
	im.insert(i, im.s.alarms, k, flatDoc(bson.D{
		{Key: "_id", Value: k}, {Key: "id", Value: r.ID}, {Key: "tenant", Value: r.Tenant},
		{Key: "seq", Value: seq}, {Key: "source", Value: r.Source}, {Key: "type", Value: r.Type},
		{Key: "text", Value: r.Text}, {Key: "severity", Value: r.Severity}, {Key: "status", Value: r.Status},
		{Key: "count", Value: r.Count}, {Key: "time", Value: r.Time.Time()},
		{Key: "firstOccurrenceTime", Value: r.FirstOccurrenceTime.Time()}, {Key: "creationTime", Value: r.CreationTime.Time()},
	}, r.Fragments, alarmFixed))
	if r.Status != store.AlarmCleared {
		// the one open alarm of its source and type: a second is a conflict
		ok := openKey(r.Tenant, r.Source, r.Type)
		im.insert(i, im.s.openAlarms(), ok, openDoc{Key: ok, AlarmID: r.ID})
	}
	return nil
}

// addMeasurement puts the measurement into the bucket its id names, at
// its place: a dump of this engine holds each bucket's measurements in
// order, and a bucket a batch boundary cut is continued. A measurement
// whose id names no free place in a bucket of its source and type (ids
// of the embedded engine, which numbers measurements one by one) is
// stored with a new id at the end of the batch; nothing refers to a
// measurement by its id.
func (im *mongoImport) addMeasurement(i int, r *store.MeasurementRecord) error {
	if r.Source == "" || r.Type == "" {
		return fmt.Errorf("%w: measurement needs source and type", store.ErrInvalid)
	}
	if err := checkFragments(r.Fragments); err != nil {
		return err
	}
	n, err := importSeq(r.ID)
	if err != nil {
		return err
	}
	frags := map[string]any(r.Fragments)
	if frags == nil {
		frags = map[string]any{}
	}
	seq, at := n/bucketMax, int(n%bucketMax)
	k := key(r.Tenant, "b"+strconv.FormatInt(seq, 10))
	b := im.buckets[k]
	if b == nil {
		var d bucketDoc
		err := im.s.measurements.FindOne(im.ctx, bson.D{{Key: "_id", Value: k}}).Decode(&d)
		switch {
		case err == nil:
			// cut by the batch before: continued in place
			if err := d.unpack(); err != nil {
				return err
			}
			b = &importBucket{d: d}
			if err := im.replace(i, im.s.measurements, k, nil); err != nil {
				return err
			}
			b.w = im.writes[len(im.writes)-1]
		case errors.Is(err, mongo.ErrNoDocuments) && at == 0:
			b = &importBucket{d: bucketDoc{Key: k, Seq: seq, Tenant: r.Tenant, Source: r.Source, Type: r.Type}}
			b.w = im.insert(i, im.s.measurements, k, nil)
		case errors.Is(err, mongo.ErrNoDocuments):
		default:
			return fmt.Errorf("read measurement bucket %s: %w", k, err)
		}
		if b != nil {
			im.buckets[k] = b
		}
	}
	t := r.Time.Time()
	if b == nil || b.d.Tenant != r.Tenant || b.d.Source != r.Source || b.d.Type != r.Type || len(b.d.M) != at ||
		(at > 0 && t.Before(b.d.M[at-1].T)) {
		im.misfits = append(im.misfits, tenantMeasurement{tenant: r.Tenant, m: store.Measurement{Source: r.Source, Type: r.Type, Time: t, Fragments: frags}, pos: len(im.misfits)})
		im.misfitRecs = append(im.misfitRecs, i)
		return nil
	}
	b.d.M = append(b.d.M, bucketEntry{T: t, F: frags})
	return nil
}

func (im *mongoImport) addBinary(i int, r *store.BinaryRecord) error {
	seq, err := importSeq(r.ID)
	if err != nil {
		return err
	}
	if r.Name == "" || r.Chunks < 0 || r.Length < 0 {
		return fmt.Errorf("%w: binary needs a name, and its length and chunks", store.ErrInvalid)
	}
	if err := importFragments(r.Fragments, binFixed); err != nil {
		return err
	}
	k := key(r.Tenant, r.ID)
	// Complete only once its last chunk is stored: until then the
	// contract does not show it.
	im.insert(i, im.s.binaries, k, flatDoc(bson.D{
		{Key: "_id", Value: k}, {Key: "id", Value: r.ID}, {Key: "tenant", Value: r.Tenant},
		{Key: "seq", Value: seq}, {Key: "name", Value: r.Name}, {Key: "contentType", Value: r.ContentType},
		{Key: "length", Value: r.Length}, {Key: "chunks", Value: r.Chunks}, {Key: "complete", Value: r.Chunks == 0},
		{Key: "creationTime", Value: r.CreationTime.Time()}, {Key: "lastUpdated", Value: r.LastUpdated.Time()},
		{Key: "owner", Value: r.Owner},
	}, r.Fragments, binFixed))
	im.binaries[k] = r.Chunks
	return nil
}

func (im *mongoImport) addChunk(i int, r *store.BinaryChunkRecord) error {
	k := key(r.Tenant, r.BinaryID)
	chunks, ok := im.binaries[k]
	if !ok {
		var m struct {
			Chunks int64 `bson:"chunks"`
		}
		err := im.s.binaries.FindOne(im.ctx, bson.D{{Key: "_id", Value: k}}).Decode(&m)
		if errors.Is(err, mongo.ErrNoDocuments) {
			return fmt.Errorf("%w: binary %s of the chunk is not in the dump before it", store.ErrInvalid, r.BinaryID)
		}
		if err != nil {
			return fmt.Errorf("read binary %s: %w", r.BinaryID, err)
		}
		chunks = m.Chunks
		im.binaries[k] = chunks
	}
	if r.N < 0 || r.N >= chunks {
		return fmt.Errorf("%w: chunk %d of binary %s, which has %d", store.ErrInvalid, r.N, r.BinaryID, chunks)
	}
	im.insert(i, im.s.binChunks, chunkKey(r.Tenant, r.BinaryID, r.N), bson.D{
		{Key: "_id", Value: chunkKey(r.Tenant, r.BinaryID, r.N)}, {Key: "data", Value: r.Data},
	})
	if r.N == chunks-1 {
		im.complete = append(im.complete, &mongoWrite{rec: i, c: im.s.binaries, id: k})
	}
	return nil
}

// run writes what add planned: the documents in order (consecutive
// inserts into one collection in one command), then the operation
// queues, then the completion of binaries.
func (im *mongoImport) run() error {
	ctx := im.ctx
	for _, b := range im.buckets {
		if err := b.d.seal(); err != nil {
			return &store.BatchError{Index: b.w.rec, Err: err}
		}
		b.w.doc = b.d
	}
	if len(im.misfits) > 0 {
		docs, _, err := im.s.buildBuckets(ctx, im.misfits)
		if err != nil {
			return &store.BatchError{Index: im.misfitRecs[0], Err: err}
		}
		for _, d := range docs {
			bd := d.(bucketDoc)
			im.insert(im.misfitRecs[0], im.s.measurements, bd.Key, bd)
		}
		im.s.log.Info("import: measurements stored with new ids, their ids naming no place in this engine's buckets", "count", len(im.misfits))
	}
	for j := 0; j < len(im.writes); {
		w := im.writes[j]
		if w.replace {
			_, err := w.c.ReplaceOne(ctx, bson.D{{Key: "_id", Value: w.id}}, w.doc, options.Replace().SetUpsert(true))
			if err != nil {
				return &store.BatchError{Index: w.rec, Err: importErr(w.c, err)}
			}
			im.done = append(im.done, w)
			j++
			continue
		}
		end := j + 1
		for end < len(im.writes) && end-j < 1000 && !im.writes[end].replace && im.writes[end].c == w.c {
			end++
		}
		docs := make([]any, end-j)
		for n, x := range im.writes[j:end] {
			docs[n] = x.doc
		}
		_, err := w.c.InsertMany(ctx, docs)
		if err != nil {
			// Ordered: the documents before the failed one are in, and
			// undone. When the driver does not say which failed, none
			// is undone, since deleting by _id a document this batch did
			// not write would delete the one that was there.
			failed := j
			var bwe mongo.BulkWriteException
			if errors.As(err, &bwe) && len(bwe.WriteErrors) > 0 {
				failed = min(j+bwe.WriteErrors[0].Index, end-1)
				im.done = append(im.done, im.writes[j:failed]...)
			}
			return &store.BatchError{Index: im.writes[failed].rec, Err: importErr(w.c, err)}
		}
		im.done = append(im.done, im.writes[j:end]...)
		j = end
	}
	for dev, q := range im.queues {
		if len(q.pending)+len(q.executing) == 0 {
			continue
		}
		add := bson.D{}
		if len(q.pending) > 0 {
			add = append(add, bson.E{Key: "ids", Value: bson.D{{Key: "$each", Value: q.pending}}})
		}
		if len(q.executing) > 0 {
			add = append(add, bson.E{Key: "executing", Value: bson.D{{Key: "$each", Value: q.executing}}})
		}
		unlock := im.s.lockQueue(dev[0], dev[1])
		_, err := im.s.opQueues.UpdateOne(ctx, bson.D{{Key: "_id", Value: key(dev[0], dev[1])}}, bson.D{
			{Key: "$set", Value: bson.D{{Key: "tenant", Value: dev[0]}, {Key: "deviceId", Value: dev[1]}}},
			{Key: "$addToSet", Value: add},
		}, options.UpdateOne().SetUpsert(true))
		unlock()
		if err != nil {
			return fmt.Errorf("import: queue the operations of %s/%s: %w", dev[0], dev[1], err)
		}
	}
	for _, w := range im.complete {
		_, err := w.c.UpdateOne(ctx, bson.D{{Key: "_id", Value: w.id}}, bson.D{{Key: "$set", Value: bson.D{{Key: "complete", Value: true}}}})
		if err != nil {
			return &store.BatchError{Index: w.rec, Err: fmt.Errorf("complete binary: %w", err)}
		}
	}
	return nil
}

// importErr is an insert's error without the driver's text for a taken
// key, which quotes the key: a PSK identity is a secret's name.
func importErr(c *mongo.Collection, err error) error {
	if isDup(err) {
		return fmt.Errorf("%s: %w: the store holds it already, or the dump holds it twice", c.Name(), store.ErrConflict)
	}
	return fmt.Errorf("write %s: %w", c.Name(), err)
}

// undo deletes what the batch inserted and puts back what it replaced,
// last first; it runs to the end even if the import's context ended.
func (im *mongoImport) undo() {
	ctx := context.WithoutCancel(im.ctx)
	for _, w := range slices.Backward(im.done) {
		var err error
		if w.replace && w.prev != nil {
			_, err = w.c.ReplaceOne(ctx, bson.D{{Key: "_id", Value: w.id}}, w.prev)
		} else {
			_, err = w.c.DeleteOne(ctx, bson.D{{Key: "_id", Value: w.id}})
		}
		if err != nil {
			im.s.log.Error("import: undo a batch that failed", "collection", w.c.Name(), "err", err)
		}
	}
}
