package storetest

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

var binaryCases = []suiteCase{
	{"RoundTrip", testBinaryRoundTrip},
	{"LimitsAndFailures", testBinaryLimitsAndFailures},
	{"ListAndDelete", testBinaryListAndDelete},
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	return b
}

func testBinaryRoundTrip(t *testing.T, s store.Engine) {
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
			defer rc.Close()
			var out bytes.Buffer
			if _, err := io.CopyBuffer(&out, struct{ io.Reader }{rc}, make([]byte, 1000)); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Bytes(), data) {
				t.Fatalf("streamed %d bytes, not the %d stored", out.Len(), len(data))
			}
			if _, _, err := s.ReadBinary(ctx, "acme", b.ID, int64(tc.size)-1); tc.size > 0 && !errors.Is(err, store.ErrTooLarge) {
				t.Fatalf("ReadBinary under its length: %v, want ErrTooLarge", err)
			}
		})
	}
	for _, name := range []string{"get", "open", "read"} {
		t.Run("missing binary "+name, func(t *testing.T) {
			var err error
			switch name {
			case "get":
				_, err = s.GetBinary(ctx, "acme", "no-such-binary")
			case "open":
				_, _, err = s.OpenBinary(ctx, "acme", "no-such-binary")
			case "read":
				_, _, err = s.ReadBinary(ctx, "acme", "no-such-binary", chunk)
			}
			if !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("got %v, want ErrNotFound", err)
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

// A refused or broken upload leaves no binary behind.
func testBinaryLimitsAndFailures(t *testing.T, s store.Engine) {
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
			if _, err := s.CreateBinary(ctx, "acme", store.Binary{Name: name}, tc.r, tc.max); !errors.Is(err, tc.want) {
				t.Fatalf("CreateBinary: %v, want %v", err, tc.want)
			}
			if l, total, err := s.ListBinaries(ctx, "acme", store.Page{WithTotal: true}); err != nil || total != 0 || len(l) != 0 {
				t.Fatalf("a failed upload left %d binaries (%v)", total, err)
			}
		})
	}
}

func testBinaryListAndDelete(t *testing.T, s store.Engine) {
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
	list, total, err = s.ListBinaries(ctx, "acme", store.Page{Size: 2, Current: 2})
	check(t, err)
	if total != -1 || len(list) != 1 || list[0].ID != ids[2] {
		t.Fatalf("second page %+v, total %d", list, total)
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
