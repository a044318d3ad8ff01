package mongo_test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/ferrettest"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/storetest"
)

// brokenReader yields n zero bytes, then fails.
type brokenReader struct{ n int }

func (b *brokenReader) Read(p []byte) (int, error) {
	if b.n == 0 {
		return 0, errors.New("connection reset")
	}
	k := min(len(p), b.n)
	clear(p[:k])
	b.n -= k
	return k, nil
}

// The suite sees no binary left by a failed upload; this looks behind
// it, at the chunks already written when the upload failed.
func TestFailedUploadLeavesNoChunks(t *testing.T) {
	uri := ferrettest.Start(t)
	s := storetest.OpenMongoAt(t, uri)
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	check(t, err)
	t.Cleanup(func() { _ = client.Disconnect(ctx) })
	db := client.Database("lwm2m")
	const chunk = store.BinaryChunkSize
	for _, r := range []io.Reader{bytes.NewReader(make([]byte, 3*chunk+1)), &brokenReader{n: 2*chunk + 10}} {
		if _, err := s.CreateBinary(ctx, "acme", store.Binary{Name: "x.bin"}, r, 3*chunk); err == nil {
			t.Fatal("an upload over its limit or broken off was stored")
		}
		for _, c := range []string{"binaries", "binaryChunks"} {
			n, err := db.Collection(c).CountDocuments(ctx, bson.D{})
			check(t, err)
			if n != 0 {
				t.Fatalf("a failed upload left %d documents in %s", n, c)
			}
		}
	}
}
