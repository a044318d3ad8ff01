package sqlite

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

func openEngine(t testing.TB, cfg Config) Engine {
	t.Helper()
	e, err := OpenEngine(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(context.Background()) })
	return e
}

func chachaBytes(n int, seed byte) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

// midway is an upload's body that, once half of it has been read, runs
// check: in the middle of the upload, on the uploading goroutine.
type midway struct {
	r     *bytes.Reader
	half  int64
	check func()
	done  bool
}

func (m *midway) Read(p []byte) (int, error) {
	if !m.done && m.r.Size()-int64(m.r.Len()) >= m.half {
		m.done = true
		m.check()
	}
	return m.r.Read(p)
}

// A binary of 20 MiB goes in and comes out whole, in 81 chunk rows; in
// the middle of its upload it is invisible and other writes go through
// the writer at once, which they could not if the upload were one
// change (the writer would be waiting in this very Read).
func TestBinaryLarge(t *testing.T) {
	ctx := context.Background()
	e := openEngine(t, Config{Dir: t.TempDir()})
	const size = 20 << 20
	data := chachaBytes(size, 1)
	checked := false
	body := &midway{r: bytes.NewReader(data), half: size / 2, check: func() {
		checked = true
		if n := intOf(t, e.db, "SELECT count(*) FROM binary_chunks"); n < 30 {
			t.Errorf("half way: %d chunks stored", n)
		}
		if l, total, err := e.ListBinaries(ctx, "acme", store.Page{WithTotal: true}); err != nil || total != 0 || len(l) != 0 {
			t.Errorf("half way: %d binaries listed (%v)", total, err)
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if _, err := e.CreateManagedObject(wctx, "acme", store.ManagedObject{Name: "meanwhile"}); err != nil {
			t.Errorf("a write in the middle of the upload: %v", err)
		}
	}}
	b, err := e.CreateBinary(ctx, "acme", store.Binary{Name: "fw.bin"}, body, 32<<20)
	if err != nil {
		t.Fatal(err)
	}
	if !checked {
		t.Fatal("the upload's middle was never reached")
	}
	const chunks = (size + store.BinaryChunkSize - 1) / store.BinaryChunkSize
	if n := intOf(t, e.db, "SELECT count(*) FROM binary_chunks WHERE tenant = 'acme' AND id = ?", b.ID); n != chunks {
		t.Fatalf("%d chunk rows, want %d", n, chunks)
	}
	got, rc, err := e.OpenBinary(ctx, "acme", b.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	back, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if got.Length != size || !bytes.Equal(back, data) {
		t.Fatalf("read back %d bytes (length %d), not the %d stored", len(back), got.Length, size)
	}
	if err := e.DeleteBinary(ctx, "acme", b.ID); err != nil {
		t.Fatal(err)
	}
	if n := intOf(t, e.db, "SELECT count(*) FROM binary_chunks"); n != 0 {
		t.Fatalf("%d chunk rows after the delete", n)
	}
}

// The suite sees no binary left by a failed upload; this looks behind
// it, at the rows already written when the upload failed.
func TestBinaryFailedUploadLeavesNoRows(t *testing.T) {
	ctx := context.Background()
	e := openEngine(t, Config{Dir: t.TempDir()})
	const chunk = store.BinaryChunkSize
	boom := errors.New("connection reset")
	for _, tc := range []struct {
		name string
		r    io.Reader
		want error
	}{
		{"over the limit", bytes.NewReader(make([]byte, 3*chunk+1)), store.ErrTooLarge},
		{"broken off", io.MultiReader(bytes.NewReader(make([]byte, 2*chunk+10)), iotestErr{boom}), boom},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := e.CreateBinary(ctx, "acme", store.Binary{Name: "x.bin"}, tc.r, 3*chunk); !errors.Is(err, tc.want) {
				t.Fatalf("CreateBinary: %v, want %v", err, tc.want)
			}
			for _, table := range []string{"binaries", "binary_chunks"} {
				if n := intOf(t, e.db, "SELECT count(*) FROM "+table); n != 0 {
					t.Fatalf("a failed upload left %d rows in %s", n, table)
				}
			}
		})
	}
}

type iotestErr struct{ err error }

func (r iotestErr) Read([]byte) (int, error) { return 0, r.err }

// A crash in the middle of an upload or a deletion leaves a binary
// unfinished; the next open removes it and its chunks, and only it.
func TestBinaryUnfinishedRemovedAtOpen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	e, err := OpenEngine(ctx, Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	kept, err := e.CreateBinary(ctx, "acme", store.Binary{Name: "kept.bin"}, bytes.NewReader(chachaBytes(2*store.BinaryChunkSize, 2)), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	// What a crash leaves: an upload with two chunks of three, and a
	// deletion with 40 chunks still to go (more than one change's worth).
	err = e.db.Write(ctx, func(tx *Tx) error {
		for _, b := range []struct {
			id     string
			state  int
			chunks int
		}{{"up", binUploading, 2}, {"del", binDeleting, 2*chunksPerDelete + 8}} {
			if _, err := tx.Exec(`INSERT INTO binaries (tenant, id, seq, name, content_type, length, chunks, state,
				creation_time, last_updated, owner, fragments) VALUES ('acme', ?, 0, 'x', 'x', 0, 0, ?, 0, 0, '', '{}')`, b.id, b.state); err != nil {
				return err
			}
			for n := range b.chunks {
				if _, err := tx.Exec("INSERT INTO binary_chunks (tenant, id, n, data) VALUES ('acme', ?, ?, x'00')", b.id, n); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	e.Close(ctx)

	e = openEngine(t, Config{Dir: dir})
	if n := intOf(t, e.db, "SELECT count(*) FROM binaries WHERE id <> ?", kept.ID); n != 0 {
		t.Fatalf("%d unfinished binaries left after open", n)
	}
	if n := intOf(t, e.db, "SELECT count(*) FROM binary_chunks WHERE id <> ?", kept.ID); n != 0 {
		t.Fatalf("%d chunks of unfinished binaries left after open", n)
	}
	if _, data, err := e.ReadBinary(ctx, "acme", kept.ID, 1<<30); err != nil || !bytes.Equal(data, chachaBytes(2*store.BinaryChunkSize, 2)) {
		t.Fatalf("the complete binary after open: %d bytes, %v", len(data), err)
	}
}

// A reader between two Reads holds no read connection (and so no read
// transaction, which would keep the WAL from being checkpointed): with
// one read connection, other reads go on while it is open, before and
// after its context is cancelled.
func TestBinaryReaderHoldsNoConnection(t *testing.T) {
	ctx := context.Background()
	e := openEngine(t, Config{Dir: t.TempDir(), Readers: 1})
	const chunk = store.BinaryChunkSize
	b, err := e.CreateBinary(ctx, "acme", store.Binary{Name: "fw.bin"}, bytes.NewReader(chachaBytes(3*chunk, 3)), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	_, rc, err := e.OpenBinary(rctx, "acme", b.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	// Half a chunk: the reader is in the middle of its first chunk.
	if _, err := io.ReadFull(rc, make([]byte, chunk/2)); err != nil {
		t.Fatal(err)
	}
	readMeanwhile := func(when string) {
		t.Helper()
		qctx, qcancel := context.WithTimeout(ctx, 10*time.Second)
		defer qcancel()
		if _, err := e.GetBinary(qctx, "acme", b.ID); err != nil {
			t.Fatalf("a read %s: %v", when, err)
		}
	}
	readMeanwhile("while a reader is open")
	cancel()
	if _, err := io.Copy(io.Discard, rc); !errors.Is(err, context.Canceled) {
		t.Fatalf("read after cancel: %v", err)
	}
	readMeanwhile("after a reader was cancelled")
}

// Every query of the binaries is served by the index meant for it.
func TestBinaryQueryPlans(t *testing.T) {
	checkPlans(t, openEngine(t, Config{Dir: t.TempDir()}).db, []planCase{
		{"metadata", "SELECT " + binColumns + " FROM binaries WHERE tenant = 'a' AND id = '1' AND state = 1",
			"SEARCH binaries USING PRIMARY KEY (tenant=? AND id=?)"},
		{"list", "SELECT " + binColumns + " FROM binaries WHERE tenant = 'a' AND state = 1 ORDER BY seq LIMIT 5 OFFSET 0",
			"SEARCH binaries USING INDEX binaries_list (tenant=?)"},
		{"count", "SELECT count(*) FROM binaries WHERE tenant = 'a' AND state = 1",
			"SEARCH binaries USING COVERING INDEX binaries_list (tenant=?)"},
		{"unfinished", "SELECT tenant, id FROM binaries WHERE state <> 1", "SCAN binaries USING INDEX binaries_unfinished"},
		{"chunk", "SELECT data FROM binary_chunks WHERE tenant = 'a' AND id = '1' AND n = 0",
			"SEARCH binary_chunks USING INDEX binary_chunks_key (tenant=? AND id=? AND n=?)"},
		{"chunks to delete", "DELETE FROM binary_chunks WHERE rowid IN (SELECT rowid FROM binary_chunks WHERE tenant = 'a' AND id = '1' LIMIT 16)",
			"SEARCH binary_chunks USING COVERING INDEX binary_chunks_key (tenant=? AND id=?)"},
	})
}
