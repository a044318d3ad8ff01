package mongo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

var binFixed = map[string]bool{
	"id": true, "name": true, "type": true, "contentType": true, "length": true, "chunks": true,
	"complete": true, "creationTime": true, "lastUpdated": true, "owner": true, "c8y_IsBinary": true,
}

func binFromDoc(m map[string]any) store.Binary {
	b := store.Binary{
		ID: str(m, "id"), Name: str(m, "name"), ContentType: str(m, "contentType"), Owner: str(m, "owner"),
		CreationTime: asTime(m["creationTime"]), LastUpdated: asTime(m["lastUpdated"]),
		Fragments: fragmentsOf(m, binFixed),
	}
	b.Length = asInt64(m["length"])
	return b
}

func asInt64(v any) int64 {
	switch n := v.(type) {
	case int32:
		return int64(n)
	case int64:
		return n
	case float64:
		return int64(n)
	}
	return 0
}

// chunkKey is the _id of a binary's n-th chunk: looked up by _id, which
// the embedded store answers from an index (a scan of the chunks would
// read every stored byte).
func chunkKey(tenant, id string, n int64) string {
	return key(tenant, id+"/"+strconv.FormatInt(n, 10))
}

// CreateBinary stores the bytes r yields as a new binary of the tenant,
// chunk by chunk, and returns it as stored. More than max bytes is
// ErrTooLarge; nothing is kept of a binary that failed. The binary is
// invisible (ErrNotFound) until its last chunk is stored. An error of r
// is returned wrapped, so that the caller can tell a client's limit from
// the store's.
func (s *Store) CreateBinary(ctx context.Context, tenant string, b store.Binary, r io.Reader, max int64) (store.Binary, error) {
	if err := checkFragments(b.Fragments); err != nil {
		return store.Binary{}, err
	}
	if b.Name == "" {
		return store.Binary{}, fmt.Errorf("%w: a binary needs a name", store.ErrInvalid)
	}
	if b.ContentType == "" {
		b.ContentType = "application/octet-stream"
	}
	ids, err := s.newIDs(ctx, 1)
	if err != nil {
		return store.Binary{}, err
	}
	b.ID = strconv.FormatInt(ids[0], 10)
	b.CreationTime = now()
	b.LastUpdated = b.CreationTime
	d := bson.D{
		{Key: "_id", Value: key(tenant, b.ID)}, {Key: "id", Value: b.ID}, {Key: "tenant", Value: tenant},
		{Key: "seq", Value: ids[0]}, {Key: "name", Value: b.Name}, {Key: "contentType", Value: b.ContentType},
		{Key: "length", Value: int64(0)}, {Key: "chunks", Value: int64(0)}, {Key: "complete", Value: false},
		{Key: "creationTime", Value: b.CreationTime}, {Key: "lastUpdated", Value: b.LastUpdated},
		{Key: "owner", Value: b.Owner},
	}
	// The metadata goes first, marked incomplete: a binary whose upload
	// broke off is then findable for deletion, never half readable.
	if _, err := s.binaries.InsertOne(ctx, flatDoc(d, b.Fragments, binFixed)); err != nil {
		return store.Binary{}, fmt.Errorf("create binary %s: %w", b.Name, err)
	}
	var n, length int64
	cleanup := func(cause error) (store.Binary, error) {
		// the client or the store failed, not this cleanup's caller: it
		// runs to the end even if the request is gone
		if err := s.deleteBinary(context.WithoutCancel(ctx), tenant, b.ID, n); err != nil {
			s.log.Error("remove failed binary upload", "binary", b.ID, "err", err)
		}
		return store.Binary{}, cause
	}
	buf := make([]byte, store.BinaryChunkSize)
	for {
		k, rerr := io.ReadFull(r, buf)
		if k > 0 {
			if length+int64(k) > max {
				return cleanup(fmt.Errorf("binary %s: more than %d bytes: %w", b.Name, max, store.ErrTooLarge))
			}
			_, err := s.binChunks.InsertOne(ctx, bson.D{
				{Key: "_id", Value: chunkKey(tenant, b.ID, n)}, {Key: "data", Value: buf[:k]},
			})
			if err != nil {
				return cleanup(fmt.Errorf("store chunk %d of binary %s: %w", n, b.Name, err))
			}
			n++
			length += int64(k)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return cleanup(fmt.Errorf("read binary %s: %w", b.Name, rerr))
		}
	}
	b.Length = length
	b.LastUpdated = now()
	_, err = s.binaries.UpdateOne(ctx, bson.D{{Key: "_id", Value: key(tenant, b.ID)}}, bson.D{{Key: "$set", Value: bson.D{
		{Key: "length", Value: length}, {Key: "chunks", Value: n}, {Key: "complete", Value: true},
		{Key: "lastUpdated", Value: b.LastUpdated},
	}}})
	if err != nil {
		return cleanup(fmt.Errorf("complete binary %s: %w", b.Name, err))
	}
	if b.Fragments == nil {
		b.Fragments = map[string]any{}
	}
	return b, nil
}

// binaryMeta reads a binary's metadata document; an incomplete binary is
// ErrNotFound.
func (s *Store) binaryMeta(ctx context.Context, tenant, id string) (map[string]any, error) {
	var m map[string]any
	if err := findKey(ctx, s.binaries, tenant, id, &m); err != nil {
		return nil, err
	}
	if c, _ := m["complete"].(bool); !c {
		return nil, store.ErrNotFound
	}
	return m, nil
}

// GetBinary returns the tenant's binary id (its metadata).
func (s *Store) GetBinary(ctx context.Context, tenant, id string) (store.Binary, error) {
	m, err := s.binaryMeta(ctx, tenant, id)
	if err != nil {
		return store.Binary{}, err
	}
	return binFromDoc(m), nil
}

// OpenBinary returns the tenant's binary id and a reader of its bytes,
// which reads one chunk from the store at a time, with ctx.
func (s *Store) OpenBinary(ctx context.Context, tenant, id string) (store.Binary, io.ReadCloser, error) {
	m, err := s.binaryMeta(ctx, tenant, id)
	if err != nil {
		return store.Binary{}, nil, err
	}
	b := binFromDoc(m)
	return b, &store.ChunkReader{Chunks: asInt64(m["chunks"]), Length: b.Length, Fetch: func(n int64) ([]byte, error) {
		var d struct {
			Data []byte `bson:"data"`
		}
		err := s.binChunks.FindOne(ctx, bson.D{{Key: "_id", Value: chunkKey(tenant, id, n)}}).Decode(&d)
		if errors.Is(err, mongo.ErrNoDocuments) {
			return nil, fmt.Errorf("binary %s deleted while read: %w", id, store.ErrNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("binary %s: %w", id, err)
		}
		return d.Data, nil
	}}, nil
}

// ReadBinary returns the bytes of the tenant's binary id, if it holds at
// most max bytes (ErrTooLarge otherwise).
func (s *Store) ReadBinary(ctx context.Context, tenant, id string, max int64) (store.Binary, []byte, error) {
	return store.ReadWhole(ctx, s, tenant, id, max)
}

// ListBinaries lists the tenant's binaries in creation order; total is -1
// unless p.WithTotal.
func (s *Store) ListBinaries(ctx context.Context, tenant string, p store.Page) ([]store.Binary, int64, error) {
	var docs []map[string]any
	total, err := s.findPage(ctx, s.binaries, bson.D{{Key: "tenant", Value: tenant}, {Key: "complete", Value: true}},
		bson.D{{Key: "seq", Value: 1}}, p, &docs)
	if err != nil {
		return nil, 0, err
	}
	out := make([]store.Binary, len(docs))
	for i, d := range docs {
		out[i] = binFromDoc(d)
	}
	return out, total, nil
}

// DeleteBinary removes the tenant's binary id, also one whose upload
// broke off.
func (s *Store) DeleteBinary(ctx context.Context, tenant, id string) error {
	var m map[string]any
	if err := findKey(ctx, s.binaries, tenant, id, &m); err != nil {
		return err
	}
	chunks := asInt64(m["chunks"])
	if c, _ := m["complete"].(bool); !c {
		// an upload that broke off does not know how far it got
		chunks = -1
	}
	return s.deleteBinary(ctx, tenant, id, chunks)
}

// deleteBinary removes the metadata first, so that nobody starts reading
// a binary whose chunks are going, then the chunks, one by one by _id:
// a filter on anything else scans every stored byte in the embedded
// store. chunks < 0 deletes until the first missing chunk.
func (s *Store) deleteBinary(ctx context.Context, tenant, id string, chunks int64) error {
	if _, err := s.binaries.DeleteOne(ctx, bson.D{{Key: "_id", Value: key(tenant, id)}}); err != nil {
		return fmt.Errorf("delete binary %s: %w", id, err)
	}
	for n := int64(0); chunks < 0 || n < chunks; n++ {
		res, err := s.binChunks.DeleteOne(ctx, bson.D{{Key: "_id", Value: chunkKey(tenant, id, n)}})
		if err != nil {
			return fmt.Errorf("delete chunk %d of binary %s: %w", n, id, err)
		}
		if chunks < 0 && res.DeletedCount == 0 {
			break
		}
	}
	return nil
}
