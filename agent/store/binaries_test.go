package store_test

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/storetest"
)

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	return b
}

func TestBinaryRoundTrip(t *testing.T) {
	s := storetest.OpenTest(t)
	const chunk = store.BinaryChunkSize
	tests := []struct {
		name string
		size int
	}{
		{"empty", 0},
		{"one byte", 1},
		{"one chunk exactly", chunk},
		{"one chunk and a byte", chunk + 1},
		{"three chunks and a half", 3*chunk + chunk/2},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := randomBytes(tc.size, uint64(i))
			b, err := s.CreateBinary(ctx, "acme", store.Binary{Name: "fw.bin", ContentType: "application/x-firmware", Fragments: map[string]any{"version": "1.2"}},
				bytes.NewReader(data), 4*chunk)
			check(t, err)
			if b.ID == "" || b.Length != int64(tc.size) {
				t.Fatalf("created %+v, want an ID and length %d", b, tc.size)
			}
			got, back, err := s.ReadBinary(ctx, "acme", b.ID, 4*chunk)
			check(t, err)
			if !bytes.Equal(back, data) {
				t.Fatalf("read back %d bytes, not the %d stored", len(back), len(data))
			}
			if got.Name != "fw.bin" || got.ContentType != "application/x-firmware" || got.Length != int64(tc.size) || got.Fragments["version"] != "1.2" {
				t.Fatalf("metadata %+v", got)
			}
			// a reader with a small buffer sees the same bytes
			_, rc, err := s.OpenBinary(ctx, "acme", b.ID)
			check(t, err)
			var out bytes.Buffer
			if _, err := io.CopyBuffer(&out, struct{ io.Reader }{rc}, make([]byte, 1000)); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Bytes(), data) {
				t.Fatalf("streamed %d bytes, not the %d stored", out.Len(), len(data))
			}
			if _, err := s.GetBinary(ctx, "other", b.ID); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("another tenant's GetBinary: %v, want ErrNotFound", err)
			}
			if _, _, err := s.ReadBinary(ctx, "acme", b.ID, int64(tc.size)-1); tc.size > 0 && !errors.Is(err, store.ErrTooLarge) {
				t.Fatalf("ReadBinary under its length: %v, want ErrTooLarge", err)
			}
		})
	}
}

// failingReader yields n bytes, then err.
type failingReader struct {
	n   int
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n == 0 {
		return 0, f.err
	}
	k := min(len(p), f.n)
	f.n -= k
	return k, nil
}

func TestBinaryLimitsAndFailures(t *testing.T) {
	s := storetest.OpenTest(t)
	client, err := mongo.Connect(options.Client().ApplyURI("mongodb://" + s.EmbeddedAddr() + "/"))
	check(t, err)
	t.Cleanup(func() { _ = client.Disconnect(ctx) })
	db := client.Database("lwm2m")
	const chunk = store.BinaryChunkSize
	boom := errors.New("connection reset")
	tests := []struct {
		name string
		r    io.Reader
		max  int64
		want error
	}{
		{"one byte over the limit", bytes.NewReader(make([]byte, 2*chunk+1)), 2 * chunk, store.ErrTooLarge},
		{"far over the limit", bytes.NewReader(make([]byte, 5*chunk)), chunk, store.ErrTooLarge},
		{"reader fails after two chunks", &failingReader{n: 2*chunk + 10, err: boom}, 10 * chunk, boom},
		{"no name", nil, chunk, store.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name := "x.bin"
			if tc.r == nil {
				name, tc.r = "", bytes.NewReader(nil)
			}
			_, err := s.CreateBinary(ctx, "acme", store.Binary{Name: name}, tc.r, tc.max)
			if !errors.Is(err, tc.want) {
				t.Fatalf("CreateBinary: %v, want %v", err, tc.want)
			}
			// nothing of it is left, neither metadata nor chunks
			for _, c := range []string{"binaries", "binaryChunks"} {
				n, err := db.Collection(c).CountDocuments(ctx, bson.D{})
				check(t, err)
				if n != 0 {
					t.Fatalf("a failed upload left %d documents in %s", n, c)
				}
			}
		})
	}
}

func TestBinaryListAndDelete(t *testing.T) {
	s := storetest.OpenTest(t)
	var ids []string
	for i, name := range []string{"a.bin", "b.bin", "c.bin"} {
		b, err := s.CreateBinary(ctx, "acme", store.Binary{Name: name}, bytes.NewReader(randomBytes(store.BinaryChunkSize+i, uint64(i))), 1<<24)
		check(t, err)
		ids = append(ids, b.ID)
	}
	must(s.CreateBinary(ctx, "other", store.Binary{Name: "theirs.bin"}, bytes.NewReader([]byte("x")), 10))

	list, total, err := s.ListBinaries(ctx, "acme", store.Page{Size: 2, WithTotal: true})
	check(t, err)
	if total != 3 || len(list) != 2 || list[0].Name != "a.bin" || list[1].Name != "b.bin" || list[0].ContentType != "application/octet-stream" {
		t.Fatalf("first page %+v, total %d", list, total)
	}
	if err := s.DeleteBinary(ctx, "other", ids[1]); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another tenant's delete: %v, want ErrNotFound", err)
	}
	check(t, s.DeleteBinary(ctx, "acme", ids[1]))
	if _, err := s.GetBinary(ctx, "acme", ids[1]); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted binary: %v, want ErrNotFound", err)
	}
	if err := s.DeleteBinary(ctx, "acme", ids[1]); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete: %v, want ErrNotFound", err)
	}
	list, _, err = s.ListBinaries(ctx, "acme", store.Page{Size: 10})
	check(t, err)
	if len(list) != 2 || list[0].ID != ids[0] || list[1].ID != ids[2] {
		t.Fatalf("after delete %+v", list)
	}
	// the others' bytes are untouched
	_, data, err := s.ReadBinary(ctx, "acme", ids[2], 1<<24)
	check(t, err)
	if !bytes.Equal(data, randomBytes(store.BinaryChunkSize+2, 2)) {
		t.Fatal("c.bin changed when b.bin was deleted")
	}
}
