package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Sentinel errors; the API maps them to HTTP statuses.
var (
	// ErrNotFound: no such object in the caller's tenant.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the object already exists (a unique key is taken).
	ErrConflict = errors.New("already exists")
	// ErrInvalid: the input cannot be stored as given.
	ErrInvalid = errors.New("invalid")
	// ErrUnauthorized: wrong tenant, user name or password.
	ErrUnauthorized = errors.New("wrong credentials")
)

// Config selects and configures the database.
type Config struct {
	// URI of a MongoDB deployment; empty starts the embedded FerretDB.
	URI string
	// DataDir holds the embedded store's SQLite files (in DataDir/db).
	DataDir string
	// Database name; default "lwm2m".
	Database string
	// Logger; nil discards.
	Logger *slog.Logger
	// VerboseEmbedded lets the embedded FerretDB log through Logger;
	// otherwise it logs only errors.
	VerboseEmbedded bool
}

// Store is the agent's persistence. It is safe for concurrent use.
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

	*shared // with every pool of this store (Pool)

	uri      string // to open more pools
	database string
	pool     bool // a Pool: closing it leaves the database and the rest open

	stopEmbedded context.CancelFunc // nil with an external MongoDB
	embeddedDone chan struct{}
	embeddedAddr string
	embeddedDir  string
}

// shared is the state of a store that its pools share: what serializes
// writes and what caches reads, so that a write through one pool is seen
// through the others at once.
type shared struct {
	postOps postOpsCache
	ids     idBlock
	auth    *authCache
	sqlx    *sqlIndex // the embedded store's own indexes; nil with MongoDB
	queues  [64]sync.Mutex
	alarmMu [64]sync.Mutex // serializes the raises of one open alarm
	objMu   [64]sync.Mutex // serializes the updates of one managed object
	opMu    [64]sync.Mutex // serializes the conditional status changes of one operation
}

// EmbeddedAddr returns the loopback address the embedded database listens
// on (for tools that want to look at it with a MongoDB client), or "" when
// the store uses an external MongoDB.
func (s *Store) EmbeddedAddr() string { return s.embeddedAddr }

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
	} {
		*c.p = s.db.Collection(c.name)
		names = append(names, c.name)
	}
	return names
}

// Pool returns the store over a pool of its own of at most size
// connections, sharing everything else (caches, ID blocks, the embedded
// database): for a part of the agent that must not wait behind another's
// writes, as the API behind the measurement writers. Close it before the
// store.
func (s *Store) Pool(size int) (*Store, error) {
	copts := options.Client().ApplyURI(s.uri).
		SetBSONOptions(&options.BSONOptions{DefaultDocumentMap: true, BinaryAsSlice: true}).
		SetTimeout(30 * time.Second).SetMaxPoolSize(uint64(size))
	client, err := mongo.Connect(copts)
	if err != nil {
		return nil, fmt.Errorf("connect a pool to %s: %w", redactURI(s.uri), err)
	}
	p := *s
	p.pool = true
	p.bind(client)
	return &p, nil
}

// embeddedPoolSize bounds the connections to the embedded database.
const embeddedPoolSize = 8

// Open connects to the database (starting the embedded one when cfg.URI is
// empty) and ensures the collections' indexes.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "store")
	if cfg.Database == "" {
		cfg.Database = "lwm2m"
	}
	s := &Store{log: log, shared: &shared{auth: newAuthCache(4096, time.Minute)}, database: cfg.Database}
	uri := cfg.URI
	if uri == "" {
		var err error
		if uri, err = s.startEmbedded(cfg); err != nil {
			return nil, err
		}
	}
	copts := options.Client().ApplyURI(uri).
		SetBSONOptions(&options.BSONOptions{DefaultDocumentMap: true, BinaryAsSlice: true}).
		SetTimeout(30 * time.Second)
	if cfg.URI == "" {
		// The embedded database holds 100 SQLite connections, and each
		// statement of an update command keeps one until the whole command
		// ends (see embeddedBulk); requests beyond that wait forever. A
		// small pool and short bulks keep well below it, and SQLite writes
		// one at a time anyway, so a small pool costs nothing.
		copts.SetMaxPoolSize(embeddedPoolSize)
	}
	s.uri = uri
	client, err := mongo.Connect(copts)
	if err != nil {
		s.stop()
		return nil, fmt.Errorf("connect to %s: %w", redactURI(uri), err)
	}
	names := s.bind(client)
	if err := s.ensureIndexes(ctx); err != nil {
		_ = s.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	if s.embeddedDir != "" {
		if err := s.indexIDLookups(ctx, s.embeddedDir, cfg.Database, names); err != nil {
			_ = s.Close(context.WithoutCancel(ctx))
			return nil, fmt.Errorf("embedded store: %w", err)
		}
		if s.sqlx, err = openSQLIndex(ctx, s.embeddedDir, cfg.Database); err != nil {
			_ = s.Close(context.WithoutCancel(ctx))
			return nil, fmt.Errorf("embedded store: %w", err)
		}
	}
	if err := s.repairQueues(ctx); err != nil {
		_ = s.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	if err := s.repairIncompleteDevices(ctx); err != nil {
		_ = s.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	return s, nil
}

// startEmbedded runs FerretDB on a loopback port over DataDir/db and
// returns its URI.
func (s *Store) startEmbedded(cfg Config) (string, error) {
	dir := filepath.Join(cfg.DataDir, "db")
	if cfg.DataDir == "" {
		dir = "db"
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("embedded store: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("embedded store: %w", err)
	}
	flog := slog.New(slog.DiscardHandler)
	if cfg.Logger != nil {
		var h slog.Handler = secretFilter{h: cfg.Logger.Handler()}
		if !cfg.VerboseEmbedded {
			h = levelFilter{h: h, min: slog.LevelError}
		}
		flog = slog.New(h).With("component", "ferretdb")
	}
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: "127.0.0.1:0"},
		Handler:   "sqlite",
		SQLiteURL: "file:" + abs + "/?_pragma=synchronous(normal)",
		Logger:    flog,
	})
	if err != nil {
		return "", fmt.Errorf("embedded store in %s: %w", dir, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.stopEmbedded = cancel
	s.embeddedDone = make(chan struct{})
	go func() {
		defer close(s.embeddedDone)
		_ = f.Run(ctx)
	}()
	// MongoDBURI waits for the listener Run sets up.
	uri := f.MongoDBURI()
	if u, err := url.Parse(uri); err == nil {
		s.embeddedAddr = u.Host
	}
	s.embeddedDir = abs
	s.log.Debug("embedded store started", "uri", uri, "dir", abs)
	return uri, nil
}

func (s *Store) stop() {
	s.sqlx.close()
	s.sqlx = nil
	if s.stopEmbedded != nil {
		s.stopEmbedded()
		<-s.embeddedDone
		s.stopEmbedded = nil
	}
}

// Close disconnects and stops the embedded database (a Pool only
// disconnects).
func (s *Store) Close(ctx context.Context) error {
	var err error
	if s.client != nil {
		err = s.client.Disconnect(ctx)
	}
	if !s.pool {
		s.stop()
	}
	if err != nil {
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
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("read %s %s: %w", c.Name(), id, err)
	}
	return nil
}

// Page selects one page of a list, as Cumulocity pages: Current counts
// from 1, Size is clamped to 1..MaxPageSize (0 means DefaultPageSize).
type Page struct {
	Size      int
	Current   int
	WithTotal bool // also count all matches (costs a second query)
}

// Paging defaults and limits of the API.
const (
	DefaultPageSize = 5
	MaxPageSize     = 2000
)

func (p Page) norm() Page {
	if p.Size <= 0 {
		p.Size = DefaultPageSize
	}
	p.Size = min(p.Size, MaxPageSize)
	p.Current = max(p.Current, 1)
	return p
}

func (p Page) skip() int64 { return int64(p.Current-1) * int64(p.Size) }

// findPage runs a paged find; total is -1 unless p.WithTotal.
func (s *Store) findPage(ctx context.Context, c *mongo.Collection, filter, sort bson.D, p Page, out any) (total int64, err error) {
	p = p.norm()
	if s.sqlx != nil {
		ids, total, ok, err := s.sqlx.page(ctx, c.Name(), filter, sort, p)
		if err != nil {
			return 0, err
		}
		if ok {
			return total, findEach(ctx, c, ids, out)
		}
	}
	cur, err := c.Find(ctx, filter, options.Find().SetSort(sort).SetSkip(p.skip()).SetLimit(int64(p.Size)))
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

// findEach reads the documents ids into out, a pointer to a slice, in
// the order of ids; documents removed meanwhile are left out.
func findEach(ctx context.Context, c *mongo.Collection, ids []string, out any) error {
	slice := reflect.ValueOf(out).Elem()
	slice.SetLen(0)
	for _, id := range ids {
		elem := reflect.New(slice.Type().Elem())
		err := c.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(elem.Interface())
		if errors.Is(err, mongo.ErrNoDocuments) {
			continue
		}
		if err != nil {
			return fmt.Errorf("list %s: read %s: %w", c.Name(), id, err)
		}
		slice.Set(reflect.Append(slice, elem.Elem()))
	}
	return nil
}

// TotalPages converts a total count into Cumulocity's statistics.totalPages.
func TotalPages(total int64, size int) int64 {
	size = Page{Size: size}.norm().Size
	return (total + int64(size) - 1) / int64(size)
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

// levelFilter passes only records at or above min. It defers WithAttrs
// and WithGroup until a record passes: FerretDB adds every SQL query and
// its arguments as attributes, and formatting them for records that are
// dropped anyway would cost more than the queries.
type levelFilter struct {
	h   slog.Handler
	min slog.Level
	ops []func(slog.Handler) slog.Handler
}

func (f levelFilter) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= f.min && f.h.Enabled(ctx, l)
}

func (f levelFilter) Handle(ctx context.Context, r slog.Record) error {
	h := f.h
	for _, op := range f.ops {
		h = op(h)
	}
	return h.Handle(ctx, r)
}

func (f levelFilter) with(op func(slog.Handler) slog.Handler) slog.Handler {
	return levelFilter{h: f.h, min: f.min, ops: append(slices.Clip(f.ops), op)}
}

func (f levelFilter) WithAttrs(a []slog.Attr) slog.Handler {
	return f.with(func(h slog.Handler) slog.Handler { return h.WithAttrs(a) })
}

func (f levelFilter) WithGroup(g string) slog.Handler {
	return f.with(func(h slog.Handler) slog.Handler { return h.WithGroup(g) })
}

// RedactURI returns a database URI without its credentials, for logs,
// errors and messages.
func RedactURI(uri string) string { return redactURI(uri) }

func redactURI(uri string) string {
	// Credentials must not reach logs or error messages.
	if u, err := url.Parse(uri); err == nil && u.User != nil {
		u.User = nil
		return u.String()
	}
	return uri
}
