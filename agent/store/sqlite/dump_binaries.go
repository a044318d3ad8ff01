package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// Dumpers of the binaries: each complete binary, then its chunks. One
// whose upload is under way or broke off is not exported.

func exportBinaries(ctx context.Context, q *sql.Tx, fn func(store.Record) error) error {
	return eachRow(ctx, q, "binaries", "SELECT tenant, "+binColumns+" FROM binaries WHERE state = 1 ORDER BY tenant, seq", func(rows *sql.Rows) error {
		var tenant string
		b, chunks, err := readBinary(prefixed{rows, []any{&tenant}}, "")
		if err != nil {
			return fmt.Errorf("export binaries: %w", err)
		}
		err = fn(&store.BinaryRecord{Tenant: tenant, ID: b.ID, Name: b.Name, ContentType: b.ContentType, Length: b.Length,
			Owner: b.Owner, CreationTime: store.DumpTime(b.CreationTime), LastUpdated: store.DumpTime(b.LastUpdated),
			Fragments: b.Fragments, Chunks: chunks})
		if err != nil {
			return err
		}
		// One chunk at a time, in the export's transaction.
		for n := range chunks {
			var data []byte
			err := q.QueryRowContext(ctx, "SELECT data FROM binary_chunks WHERE tenant = ? AND id = ? AND n = ?", tenant, b.ID, n).Scan(&data)
			if err != nil {
				return fmt.Errorf("export chunk %d of binary %s/%s: %w", n, tenant, b.ID, err)
			}
			if err := fn(&store.BinaryChunkRecord{Tenant: tenant, BinaryID: b.ID, N: n, Data: data}); err != nil {
				return err
			}
		}
		return nil
	})
}

// importBinaries imports a binary or one of its chunks.
func importBinaries(im *importer, rec store.Record) error {
	switch r := rec.(type) {
	case *store.BinaryRecord:
		return importBinary(im, r)
	case *store.BinaryChunkRecord:
		return importBinaryChunk(im, r)
	}
	return fmt.Errorf("%w: %s record among the binaries", store.ErrInvalid, rec.Kind())
}

// importBinary inserts a binary's metadata, hidden (uploading) until
// its last chunk is imported: one whose chunks a failed import left
// short is removed at the next open, as an upload that broke off.
func importBinary(im *importer, r *store.BinaryRecord) error {
	seq, err := im.seq(r.ID)
	if err != nil {
		return err
	}
	if r.Name == "" || r.Chunks < 0 || r.Length < 0 {
		return fmt.Errorf("%w: binary needs a name, and its length and chunks", store.ErrInvalid)
	}
	doc, err := importFragments(r.Fragments, binFixed, marshal)
	if err != nil {
		return err
	}
	state := binUploading
	if r.Chunks == 0 {
		state = binComplete
	}
	_, err = im.tx.Exec(`INSERT INTO binaries (tenant, id, seq, name, content_type, length, chunks, state,
			creation_time, last_updated, owner, fragments) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.Tenant, r.ID, seq, r.Name, r.ContentType, r.Length, r.Chunks, state,
		r.CreationTime.Time().UnixMilli(), r.LastUpdated.Time().UnixMilli(), r.Owner, doc)
	if err != nil {
		return fmt.Errorf("import binary: %w", err)
	}
	return nil
}

func importBinaryChunk(im *importer, r *store.BinaryChunkRecord) error {
	var chunks int64
	err := im.tx.QueryRow("SELECT chunks FROM binaries WHERE tenant = ? AND id = ? AND state = ?", r.Tenant, r.BinaryID, binUploading).Scan(&chunks)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: binary %s of the chunk is not in the dump before it", store.ErrInvalid, r.BinaryID)
	}
	if err != nil {
		return fmt.Errorf("import chunk: %w", err)
	}
	if r.N < 0 || r.N >= chunks {
		return fmt.Errorf("%w: chunk %d of binary %s, which has %d", store.ErrInvalid, r.N, r.BinaryID, chunks)
	}
	if _, err := im.tx.Exec("INSERT INTO binary_chunks (tenant, id, n, data) VALUES (?, ?, ?, ?)", r.Tenant, r.BinaryID, r.N, r.Data); err != nil {
		return fmt.Errorf("import chunk: %w", err)
	}
	if r.N == chunks-1 {
		if _, err := im.tx.Exec("UPDATE binaries SET state = ? WHERE tenant = ? AND id = ?", binComplete, r.Tenant, r.BinaryID); err != nil {
			return fmt.Errorf("import chunk: complete the binary: %w", err)
		}
	}
	return nil
}
