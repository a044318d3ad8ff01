package mongo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// Config says which MongoDB deployment to use.
type Config struct {
	// URI of a MongoDB deployment (or another server of its wire
	// protocol); required.
	URI string
	// Database name; default "lwm2m".
	Database string
	// Logger; nil discards.
	Logger *slog.Logger
	// SoleWriter says that no other agent uses the database, so that
	// what a change left unfinished at open is a crash's leftover, to
	// repair at once rather than after a grace for replicas at work.
	SoleWriter bool
}

// Store is the MongoDB engine of the storage contract. It is safe for
// concurrent use.
type Store struct {
	log    *slog.Logger
	client *mongo.Client
	db     *mongo.Database

	counters, tenants, users, objects, externalIDs, endpoints,
	events, alarms, measurements, values, operations, opQueues *mongo.Collection
	deviceRegs, pskIDs *mongo.Collection
	protocols          *mongo.Collection
	postOperations     *mongo.Collection
	// binaries are the files' metadata, binChunks their bytes
	binaries, binChunks *mongo.Collection
	// the decode backlog (decodebacklog.go)
	decodeValues, decodeGroups, decodeCounts *mongo.Collection
	// the firmware grants (fwgrants.go)
	fwGrants *mongo.Collection
	// child references (references.go), bulk operations and their
	// devices (bulkops.go)
	childRefs, bulkOps, bulkTargets *mongo.Collection
	// DTLS sessions (dtlssessions.go)
	dtlsSessions *mongo.Collection
	// the replicas' leases and, on a read-modify-write server, their
	// claims of operations (replicas.go)
	leases, opClaims *mongo.Collection

	*shared // with every pool of this store (Pool)

	uri      string // to open more pools
	database string

	// rmw is set for a server that applies an update by reading the
	// document and writing it back (FerretDB 1.x), which loses one of
	// two concurrent updates of a document: the store then serializes
	// its updates of one document, and sends short bulks (see bulkSize).
	rmw        bool
	soleWriter bool
}

// shared is the state of a store that its pools share: what serializes
// writes and what caches reads, so that a write through one pool is seen
// through the others at once.
type shared struct {
	postOps postOpsCache
	ids     idBlock
	auth    *store.LoginCache
	queues  [64]sync.Mutex
	alarmMu [64]sync.Mutex // serializes the raises of one open alarm
	objMu   [64]sync.Mutex // serializes the updates of one managed object
	opMu    [64]sync.Mutex // serializes the conditional status changes of one operation
	// decodeMu serializes the decode backlog's changes on a
	// read-modify-write server (lockDecodes)
	decodeMu sync.Mutex
}

// bind points the store's collections at client's database and returns
// their names.
func (s *Store) bind(client *mongo.Client) []string {
	s.client = client
	s.db = client.Database(s.database)
	var names []string
	for _, c := range []struct {
		p    **mongo.Collection
		name string
	}{
		{&s.counters, "counters"}, {&s.tenants, "tenants"}, {&s.users, "users"},
		{&s.objects, "managedObjects"}, {&s.externalIDs, "externalIds"},
		{&s.endpoints, "endpoints"}, {&s.events, "events"}, {&s.alarms, "alarms"},
		{&s.measurements, "measurementBuckets"}, {&s.values, "lastValues"},
		{&s.operations, "operations"}, {&s.opQueues, "operationQueues"},
		{&s.deviceRegs, "deviceRegistrations"}, {&s.pskIDs, "pskIdentities"},
		{&s.protocols, "deviceProtocols"}, {&s.postOperations, "postOperations"},
		{&s.binaries, "binaries"}, {&s.binChunks, "binaryChunks"},
		{&s.decodeValues, "decodeValues"}, {&s.decodeGroups, "decodeGroups"}, {&s.decodeCounts, "decodeCounts"},
		{&s.fwGrants, "firmwareGrants"},
		{&s.childRefs, "childReferences"}, {&s.bulkOps, "bulkOperations"}, {&s.bulkTargets, "bulkTargets"},
		{&s.dtlsSessions, "dtlsSessions"},
		{&s.leases, "leases"}, {&s.opClaims, "operationClaims"},
	} {
		*c.p = s.db.Collection(c.name)
		names = append(names, c.name)
	}
	return names
}

// Pool returns the store over a pool of its own of at most size
// connections, sharing everything else (caches, ID blocks, the embedded
// server): for a part of the agent that must not wait behind another's
// writes, as the API behind the measurement writers. Close it before the
// store.
func (s *Store) Pool(size int) (store.Engine, error) {
	return s.pool(size)
}

func (s *Store) pool(size int) (*Store, error) {
	copts := clientOptions(s.uri).SetMaxPoolSize(uint64(size))
	client, err := mongo.Connect(copts)
	if err != nil {
		return nil, fmt.Errorf("connect a pool to %s: %w", store.RedactURI(s.uri), err)
	}
	p := *s
	p.bind(client)
	return &p, nil
}

// rmwPoolSize bounds the connections to a read-modify-write server:
// FerretDB 1.x holds 100 SQLite connections, and each statement of an
// update command keeps one until the whole command ends; requests beyond
// that wait forever. SQLite writes one at a time anyway.
const rmwPoolSize = 8

// Open connects to the MongoDB deployment at cfg.URI, ensures the
// collections' indexes and repairs what a stop cut short.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "store")
	if cfg.URI == "" {
		return nil, errors.New("store: no MongoDB URI")
	}
	if cfg.Database == "" {
		cfg.Database = "lwm2m"
	}
	s := &Store{log: log, shared: &shared{auth: store.NewLoginCache()}, database: cfg.Database, uri: cfg.URI, soleWriter: cfg.SoleWriter}
	rmw, err := readModifyWrite(ctx, cfg.URI)
	if err != nil {
		return nil, err
	}
	s.rmw = rmw
	copts := clientOptions(cfg.URI)
	if rmw {
		copts.SetMaxPoolSize(rmwPoolSize)
	}
	client, err := mongo.Connect(copts)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", store.RedactURI(cfg.URI), err)
	}
	s.bind(client)
	if err := s.ensureIndexes(ctx); err != nil {
		_ = s.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	if err := s.repairQueues(ctx); err != nil {
		_ = s.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	if err := s.repairIncompleteDevices(ctx); err != nil {
		_ = s.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	if err := s.repairDecodeBacklog(ctx); err != nil {
		_ = s.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	return s, nil
}

func clientOptions(uri string) *options.ClientOptions {
	return options.Client().ApplyURI(uri).
		SetBSONOptions(&options.BSONOptions{DefaultDocumentMap: true, BinaryAsSlice: true}).
		SetTimeout(30 * time.Second)
}

// readModifyWrite asks the server what it is: FerretDB says so in
// buildInfo, and applies updates by reading and writing back.
func readModifyWrite(ctx context.Context, uri string) (bool, error) {
	client, err := mongo.Connect(clientOptions(uri).SetMaxPoolSize(1))
	if err != nil {
		return false, fmt.Errorf("connect to %s: %w", store.RedactURI(uri), err)
	}
	defer client.Disconnect(context.WithoutCancel(ctx))
	var info bson.M
	if err := client.Database("admin").RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info); err != nil {
		return false, fmt.Errorf("connect to %s: buildInfo: %w", store.RedactURI(uri), err)
	}
	_, ferret := info["ferretdbVersion"]
	return ferret, nil
}

// Close disconnects.
func (s *Store) Close(ctx context.Context) error {
	if s.client == nil {
		return nil
	}
	if err := s.client.Disconnect(ctx); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

func (s *Store) ensureIndexes(ctx context.Context) error {
	type idx struct {
		c      *mongo.Collection
		keys   bson.D
		unique bool
	}
	all := []idx{
		{s.users, bson.D{{Key: "tenant", Value: 1}, {Key: "userName", Value: 1}}, true},
		{s.objects, bson.D{{Key: "tenant", Value: 1}, {Key: "type", Value: 1}}, false},
		{s.externalIDs, bson.D{{Key: "tenant", Value: 1}, {Key: "type", Value: 1}, {Key: "externalId", Value: 1}}, true},
		{s.externalIDs, bson.D{{Key: "tenant", Value: 1}, {Key: "managedObjectId", Value: 1}}, false},
		{s.events, bson.D{{Key: "tenant", Value: 1}, {Key: "source", Value: 1}, {Key: "time", Value: -1}}, false},
		{s.alarms, bson.D{{Key: "tenant", Value: 1}, {Key: "source", Value: 1}, {Key: "time", Value: -1}}, false},
		{s.measurements, bson.D{{Key: "tenant", Value: 1}, {Key: "source", Value: 1}, {Key: "start", Value: 1}}, false},
		{s.operations, bson.D{{Key: "tenant", Value: 1}, {Key: "deviceId", Value: 1}, {Key: "seq", Value: 1}}, false},
		{s.protocols, bson.D{{Key: "tenant", Value: 1}, {Key: "objectId", Value: 1}}, false},
		// FirstProtocolRecord: an object's records by tenant
		{s.protocols, bson.D{{Key: "objectId", Value: 1}, {Key: "tenant", Value: 1}}, false},
		{s.binaries, bson.D{{Key: "tenant", Value: 1}, {Key: "seq", Value: 1}}, false},
		// the decode backlog: a group's values in order, a decoder's
		// oldest values, a decoder's due groups
		{s.decodeValues, bson.D{{Key: "group", Value: 1}, {Key: "_id", Value: 1}}, false},
		{s.decodeValues, bson.D{{Key: "decoder", Value: 1}, {Key: "queued", Value: 1}}, false},
		{s.decodeGroups, bson.D{{Key: "decoder", Value: 1}, {Key: "nextTry", Value: 1}}, false},
		// firmware grants: revoked by operation, swept by expiry
		{s.fwGrants, bson.D{{Key: "tenant", Value: 1}, {Key: "operation", Value: 1}}, false},
		{s.fwGrants, bson.D{{Key: "expires", Value: 1}}, false},
		// a parent's children in order, a child's parents
		{s.childRefs, bson.D{{Key: "tenant", Value: 1}, {Key: "kind", Value: 1}, {Key: "parent", Value: 1}, {Key: "seq", Value: 1}}, false},
		{s.childRefs, bson.D{{Key: "tenant", Value: 1}, {Key: "child", Value: 1}, {Key: "kind", Value: 1}, {Key: "seq", Value: 1}}, false},
		// every reference in the order it was added, for a dump
		{s.childRefs, bson.D{{Key: "seq", Value: 1}}, false},
		// a tenant's bulk operations, the due ones, a bulk
		// operation's operations by status
		{s.bulkOps, bson.D{{Key: "tenant", Value: 1}, {Key: "seq", Value: 1}}, false},
		{s.bulkOps, bson.D{{Key: "open", Value: 1}, {Key: "nextAt", Value: 1}}, false},
		{s.operations, bson.D{{Key: "tenant", Value: 1}, {Key: store.BulkOperationIDField, Value: 1}, {Key: "status", Value: 1}, {Key: "seq", Value: 1}}, false},
		// a datagram's DTLS session by Connection ID, else by address
		{s.dtlsSessions, bson.D{{Key: "localCid", Value: 1}, {Key: "lastActive", Value: -1}}, false},
		{s.dtlsSessions, bson.D{{Key: "addr", Value: 1}, {Key: "lastActive", Value: -1}}, false},
		// the replicas' watch for new operations, a device moved to
		// another replica (replicas.go)
		{s.operations, bson.D{{Key: "status", Value: 1}, {Key: "creationTime", Value: 1}}, false},
		{s.objects, bson.D{{Key: "lwm2m.registrationId", Value: 1}}, false},
	}
	for _, r := range s.retentionIndexes() {
		all = append(all, idx{r.c, r.keys, false})
	}
	for _, i := range all {
		m := mongo.IndexModel{Keys: i.keys}
		if i.unique {
			m.Options = options.Index().SetUnique(true)
		}
		if _, err := i.c.Indexes().CreateOne(ctx, m); err != nil {
			return fmt.Errorf("create index on %s: %w", i.c.Name(), err)
		}
	}
	return nil
}

// idBlock hands out IDs from a block reserved in the counters collection,
// so most new objects cost no extra round trip. IDs are unique across
// replicas sharing a database; within one process they increase.
type idBlock struct {
	mu       sync.Mutex
	next, hi int64 // next free, one past the last reserved
}

const idBlockSize = 64

// newIDs returns n fresh decimal IDs.
func (s *Store) newIDs(ctx context.Context, n int) ([]int64, error) {
	s.ids.mu.Lock()
	defer s.ids.mu.Unlock()
	out := make([]int64, 0, n)
	for len(out) < n {
		if s.ids.next >= s.ids.hi {
			size := int64(max(idBlockSize, n-len(out)))
			var doc struct {
				N int64 `bson:"n"`
			}
			err := s.counters.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: "ids"}},
				bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: size}}}},
				options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.After)).Decode(&doc)
			if err != nil {
				return nil, fmt.Errorf("reserve ids: %w", err)
			}
			s.ids.next, s.ids.hi = doc.N-size+1, doc.N+1
		}
		out = append(out, s.ids.next)
		s.ids.next++
	}
	return out, nil
}

// key is the _id of a tenant's object. Tenant IDs contain no '/', so the
// first '/' splits it unambiguously. Putting the tenant into _id makes
// {_id: key(tenant, id)} both the tenant check and the one filter the
// embedded store answers without scanning the collection.
func key(tenant, id string) string { return tenant + "/" + id }

// findKey decodes the document with _id key(tenant, id) into v.
func findKey(ctx context.Context, c *mongo.Collection, tenant, id string, v any) error {
	err := c.FindOne(ctx, bson.D{{Key: "_id", Value: key(tenant, id)}}).Decode(v)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return store.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("read %s %s: %w", c.Name(), id, err)
	}
	return nil
}

// findPage runs a paged find; total is -1 unless p.WithTotal.
func (s *Store) findPage(ctx context.Context, c *mongo.Collection, filter, sort bson.D, p store.Page, out any) (total int64, err error) {
	p = p.Norm()
	cur, err := c.Find(ctx, filter, options.Find().SetSort(sort).SetSkip(p.Skip()).SetLimit(int64(p.Size)))
	if err != nil {
		return 0, fmt.Errorf("list %s: %w", c.Name(), err)
	}
	if err := cur.All(ctx, out); err != nil {
		return 0, fmt.Errorf("list %s: %w", c.Name(), err)
	}
	total = -1
	if p.WithTotal {
		if total, err = c.CountDocuments(ctx, filter); err != nil {
			return 0, fmt.Errorf("count %s: %w", c.Name(), err)
		}
	}
	return total, nil
}

// timeRange adds dateFrom (inclusive) and dateTo (exclusive) on field.
func timeRange(f bson.D, field string, from, to time.Time) bson.D {
	r := bson.D{}
	if !from.IsZero() {
		r = append(r, bson.E{Key: "$gte", Value: from})
	}
	if !to.IsZero() {
		r = append(r, bson.E{Key: "$lt", Value: to})
	}
	if len(r) > 0 {
		f = append(f, bson.E{Key: field, Value: r})
	}
	return f
}

func isDup(err error) bool { return mongo.IsDuplicateKeyError(err) }

// rmwBulk is how many statements one update command may carry on a
// read-modify-write server: FerretDB 1.x keeps a SQLite connection open
// for every statement of an update command until the command ends, from
// a pool of 100, so a long bulk (or a few at once) would wait forever
// for a connection that its own statements hold.
const rmwBulk = 8

// bulkSize is how many updates to send in one command.
func (s *Store) bulkSize() int {
	if s.rmw {
		return rmwBulk
	}
	return 1000
}

var _ store.Engine = (*Store)(nil)
var _ store.Pooled = (*Store)(nil)

func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }
