package storetest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

var binaryCases = []suiteCase{
	{"RoundTrip", testBinaryRoundTrip},
	{"LimitsAndFailures", testBinaryLimitsAndFailures},
	{"ListAndDelete", testBinaryListAndDelete},
	{"HiddenWhileUploaded", testBinaryHiddenWhileUploaded},
	{"DeletedWhileRead", testBinaryDeletedWhileRead},
	{"ReaderCancelled", testBinaryReaderCancelled},
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

// gateReader yields data, stopping after its first `at` bytes until gate
// is closed; stopped is closed when a Read is asked for more meanwhile.
type gateReader struct {
	data    []byte
	at      int
	gate    chan struct{}
	stopped chan struct{}
	once    bool
}

func (g *gateReader) Read(p []byte) (int, error) {
	if g.at == 0 && !g.once {
		g.once = true
		close(g.stopped)
		<-g.gate
	}
	if len(g.data) == 0 {
		return 0, io.EOF
	}
	k := len(p)
	if g.at > 0 {
		k = min(k, g.at)
		g.at -= k
	}
	k = copy(p, g.data[:min(k, len(g.data))])
	g.data = g.data[k:]
	return k, nil
}

// While a binary's bytes arrive, its first chunk already stored, the
// binary is invisible, and the store takes other writes: an upload
// must not hold every other change of the agent until it ends.
func testBinaryHiddenWhileUploaded(t *testing.T, s store.Engine) {
	const chunk = store.BinaryChunkSize
	data := randomBytes(3*chunk, 7)
	r := &gateReader{data: data, at: chunk + 10, gate: make(chan struct{}), stopped: make(chan struct{})}
	type created struct {
		b   store.Binary
		err error
	}
	done := make(chan created, 1)
	go func() {
		b, err := s.CreateBinary(ctx, "acme", store.Binary{Name: "big.bin"}, r, 4*chunk)
		done <- created{b, err}
	}()
	released := false
	release := func() {
		if !released {
			released = true
			close(r.gate)
		}
	}
	t.Cleanup(func() { release(); <-done })
	// The upload has stored its first chunk and waits for more bytes.
	<-r.stopped

	if l, total, err := s.ListBinaries(ctx, "acme", store.Page{WithTotal: true}); err != nil || total != 0 || len(l) != 0 {
		t.Fatalf("a binary being uploaded is listed: %d (%v)", total, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	mo, err := s.CreateManagedObject(wctx, "acme", store.ManagedObject{Name: "meanwhile"})
	if err != nil {
		t.Fatalf("a write while a binary is uploaded: %v", err)
	}
	if _, err := s.GetManagedObject(ctx, "acme", mo.ID); err != nil {
		t.Fatalf("the write made while a binary is uploaded: %v", err)
	}

	release()
	c := <-done
	done <- c
	check(t, c.err)
	got, back, err := s.ReadBinary(ctx, "acme", c.b.ID, 4*chunk)
	check(t, err)
	if got.Length != int64(len(data)) || !bytes.Equal(back, data) {
		t.Fatalf("read back %d bytes (length %d), not the %d stored", len(back), got.Length, len(data))
	}
}

// A binary deleted while it is read fails the reader with ErrNotFound
// at the first chunk it has not read yet: it never ends early as if the
// bytes were all there.
func testBinaryDeletedWhileRead(t *testing.T, s store.Engine) {
	const chunk = store.BinaryChunkSize
	b := must(s.CreateBinary(ctx, "acme", store.Binary{Name: "fw.bin"}, bytes.NewReader(randomBytes(3*chunk, 3)), 4*chunk))
	_, rc, err := s.OpenBinary(ctx, "acme", b.ID)
	check(t, err)
	defer rc.Close()
	if _, err := io.ReadFull(rc, make([]byte, chunk)); err != nil {
		t.Fatal(err)
	}
	check(t, s.DeleteBinary(ctx, "acme", b.ID))
	if n, err := io.Copy(io.Discard, rc); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("read on after the delete: %d bytes, %v; want ErrNotFound", n, err)
	}
}

// A reader whose context ends stops with the context's error at its next
// chunk, and the store serves other reads as before.
func testBinaryReaderCancelled(t *testing.T, s store.Engine) {
	const chunk = store.BinaryChunkSize
	data := randomBytes(3*chunk, 5)
	b := must(s.CreateBinary(ctx, "acme", store.Binary{Name: "fw.bin"}, bytes.NewReader(data), 4*chunk))
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	_, rc, err := s.OpenBinary(rctx, "acme", b.ID)
	check(t, err)
	defer rc.Close()
	if _, err := io.ReadFull(rc, make([]byte, chunk)); err != nil {
		t.Fatal(err)
	}
	cancel()
	if n, err := io.Copy(io.Discard, rc); !errors.Is(err, context.Canceled) {
		t.Fatalf("read on after cancel: %d bytes, %v; want context.Canceled", n, err)
	}
	_, back, err := s.ReadBinary(ctx, "acme", b.ID, 4*chunk)
	check(t, err)
	if !bytes.Equal(back, data) {
		t.Fatal("the binary changed when a reader was cancelled")
	}
}
