package store

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// Errors of dumps, beside the engines' own.
var (
	// ErrDump: the input is not a whole, valid dump (not one at all, of
	// a newer version, a bad line, out of order, truncated).
	ErrDump = errors.New("invalid dump")
	// ErrNotEmpty: the store to import into holds data already.
	ErrNotEmpty = errors.New("store is not empty")
)

// DumpHeader is a dump's first line.
type DumpHeader struct {
	Format  string   `json:"format"`
	Version int      `json:"version"`
	Created DumpTime `json:"created"`
	// Engine is the engine the dump was exported from ("embedded",
	// "mongodb"), Agent the version of the binary that wrote it: for the
	// reader's information only.
	Engine string `json:"engine,omitempty"`
	Agent  string `json:"agent,omitempty"`
}

// dumpTrailer is a dump's last line: what came before it, so that a
// dump cut short is told from a whole one.
type dumpTrailer struct {
	Kind    string `json:"kind"` // "end"
	Records int64  `json:"records"`
	Counts  Counts `json:"counts"`
}

const kindEnd = "end"

// Counts are how many records of each kind.
type Counts map[string]int64

// Total is the number of records.
func (c Counts) Total() int64 {
	var n int64
	for _, v := range c {
		n += v
	}
	return n
}

// String lists the counts in dump order: "tenant 2, user 3, ...".
func (c Counts) String() string {
	var parts []string
	for _, k := range DumpKinds {
		if c[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, c[k]))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(c)) {
		if _, known := kindRank(k); !known && c[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, c[k]))
		}
	}
	if len(parts) == 0 {
		return "no records"
	}
	return strings.Join(parts, ", ")
}

// LineError is an error of one line of a dump.
type LineError struct {
	Line int
	Kind string // "" when the line has none that could be read
	Ref  string // Record.Ref of the line's record, "" if it was not read
	Err  error
}

func (e *LineError) Error() string {
	what := ""
	switch {
	case e.Kind != "" && e.Ref != "":
		what = " (" + e.Kind + " " + e.Ref + ")"
	case e.Kind != "":
		what = " (" + e.Kind + ")"
	}
	return fmt.Sprintf("line %d%s: %v", e.Line, what, e.Err)
}

func (e *LineError) Unwrap() error { return e.Err }

// BatchError is an engine's error of one record of a batch it was given
// to import: Index is the record's place in the batch.
type BatchError struct {
	Index int
	Err   error
}

func (e *BatchError) Error() string { return fmt.Sprintf("record %d of the batch: %v", e.Index, e.Err) }
func (e *BatchError) Unwrap() error { return e.Err }

// maxDumpLine bounds one line: a binary chunk's 255 KiB in base64 with
// room to spare, far below anything that strains memory.
const maxDumpLine = 16 << 20

// DumpWriter writes a dump: the header when made, then each record, and
// the trailer on Close. It checks that records come in dump order.
type DumpWriter struct {
	w      *bufio.Writer
	counts Counts
	rank   int
}

// NewDumpWriter writes h (Format and Version set) and returns the writer
// of the records.
func NewDumpWriter(w io.Writer, h DumpHeader) (*DumpWriter, error) {
	h.Format, h.Version = DumpFormat, DumpVersion
	if h.Created.IsZero() {
		h.Created = DumpTime(time.Now())
	}
	b, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("dump header: %w", err)
	}
	d := &DumpWriter{w: bufio.NewWriterSize(w, 256<<10), counts: Counts{}}
	return d, d.line(b)
}

func (d *DumpWriter) line(b []byte) error {
	if _, err := d.w.Write(b); err != nil {
		return err
	}
	return d.w.WriteByte('\n')
}

// Write writes one record.
func (d *DumpWriter) Write(r Record) error {
	rank, ok := kindRank(r.Kind())
	if !ok {
		return fmt.Errorf("%w: record of unknown kind %q", ErrDump, r.Kind())
	}
	if rank < d.rank {
		return fmt.Errorf("%w: %s record after %s records", ErrDump, r.Kind(), DumpKinds[d.rank])
	}
	d.rank = rank
	b, err := EncodeRecord(r)
	if err != nil {
		return err
	}
	if len(b) >= maxDumpLine {
		return fmt.Errorf("%s %s: %d bytes, more than a line may hold (%d)", r.Kind(), r.Ref(), len(b), maxDumpLine)
	}
	d.counts[r.Kind()]++
	return d.line(b)
}

// Counts returns the records written so far, by kind.
func (d *DumpWriter) Counts() Counts { return maps.Clone(d.counts) }

// Close writes the trailer and flushes; it does not close the
// underlying writer.
func (d *DumpWriter) Close() error {
	b, err := json.Marshal(dumpTrailer{Kind: kindEnd, Records: d.counts.Total(), Counts: d.counts})
	if err != nil {
		return err
	}
	if err := d.line(b); err != nil {
		return err
	}
	return d.w.Flush()
}

// DumpReader reads a dump line by line: the header when made, then each
// record, checking the order of kinds and, at the end, the trailer.
type DumpReader struct {
	sc     *bufio.Scanner
	header DumpHeader
	line   int
	counts Counts
	rank   int
	ended  bool
}

// NewDumpReader reads and checks the header of the dump r holds.
func NewDumpReader(r io.Reader) (*DumpReader, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxDumpLine)
	d := &DumpReader{sc: sc, counts: Counts{}}
	b, err := d.next()
	if err == io.EOF {
		return nil, fmt.Errorf("%w: empty input, not a dump", ErrDump)
	}
	if err != nil {
		return nil, err
	}
	bad := func(format string, args ...any) error {
		return &LineError{Line: 1, Err: fmt.Errorf("%w: "+format, append([]any{ErrDump}, args...)...)}
	}
	if err := json.Unmarshal(b, &d.header); err != nil {
		return nil, bad("not a dump header: %v", err)
	}
	switch h := d.header; {
	case h.Format != DumpFormat:
		return nil, bad("format %q, not %q: not a dump of lwm2m-agent's store", h.Format, DumpFormat)
	case h.Version < 1:
		return nil, bad("version %d", h.Version)
	case h.Version > DumpVersion:
		return nil, bad("version %d is newer than this binary reads (%d): import it with the lwm2m-agent that wrote it, or a newer one", h.Version, DumpVersion)
	}
	return d, nil
}

// Header returns the dump's header.
func (d *DumpReader) Header() DumpHeader { return d.header }

// Line returns the number of the last line read (the header is line 1).
func (d *DumpReader) Line() int { return d.line }

// Counts returns the records read so far, by kind.
func (d *DumpReader) Counts() Counts { return maps.Clone(d.counts) }

func (d *DumpReader) next() ([]byte, error) {
	if !d.sc.Scan() {
		if err := d.sc.Err(); err != nil {
			if errors.Is(err, bufio.ErrTooLong) {
				return nil, &LineError{Line: d.line + 1, Err: fmt.Errorf("%w: longer than %d bytes", ErrDump, maxDumpLine)}
			}
			return nil, fmt.Errorf("read line %d: %w", d.line+1, err)
		}
		return nil, io.EOF
	}
	d.line++
	return d.sc.Bytes(), nil
}

// Next returns the next record, or io.EOF once the trailer has been read
// and matches what came before it. Every other error is a *LineError
// wrapping ErrDump, or the input's own.
func (d *DumpReader) Next() (Record, error) {
	for {
		if d.ended {
			b, err := d.next()
			if err == io.EOF {
				return nil, io.EOF
			}
			if err != nil {
				return nil, err
			}
			if len(strings.TrimSpace(string(b))) == 0 {
				continue
			}
			return nil, &LineError{Line: d.line, Err: fmt.Errorf("%w: a line after the end line", ErrDump)}
		}
		b, err := d.next()
		if err == io.EOF {
			return nil, &LineError{Line: d.line, Err: fmt.Errorf("%w: the dump ends after line %d without its end line: it is truncated", ErrDump, d.line)}
		}
		if err != nil {
			return nil, err
		}
		kind, _, kerr := splitKind(b)
		if kerr == nil && kind == kindEnd {
			return nil, d.trailer(b)
		}
		r, err := DecodeRecord(b)
		if err != nil {
			return nil, &LineError{Line: d.line, Kind: kind, Err: fmt.Errorf("%w: %w", ErrDump, err)}
		}
		rank, _ := kindRank(r.Kind())
		if rank < d.rank {
			return nil, &LineError{Line: d.line, Kind: r.Kind(), Ref: r.Ref(),
				Err: fmt.Errorf("%w: a %s record after %s records: the dump is out of order", ErrDump, r.Kind(), DumpKinds[d.rank])}
		}
		d.rank = rank
		d.counts[r.Kind()]++
		return r, nil
	}
}

func (d *DumpReader) trailer(b []byte) error {
	var t dumpTrailer
	if err := json.Unmarshal(b, &t); err != nil {
		return &LineError{Line: d.line, Kind: kindEnd, Err: fmt.Errorf("%w: %v", ErrDump, err)}
	}
	if t.Records != d.counts.Total() || !maps.Equal(t.Counts, d.counts) {
		return &LineError{Line: d.line, Kind: kindEnd, Err: fmt.Errorf("%w: the end line counts %d records (%v), the dump holds %d (%v)",
			ErrDump, t.Records, t.Counts, d.counts.Total(), d.counts)}
	}
	// Read on, to make sure nothing but blank lines follows: io.EOF.
	d.ended = true
	_, err := d.Next()
	return err
}

// VerifyDump reads a whole dump and returns its header and counts, or
// the error of its first bad line.
func VerifyDump(r io.Reader) (DumpHeader, Counts, error) {
	d, err := NewDumpReader(r)
	if err != nil {
		return DumpHeader{}, nil, err
	}
	for {
		_, err := d.Next()
		if err == io.EOF {
			return d.header, d.counts, nil
		}
		if err != nil {
			return d.header, d.counts, err
		}
	}
}

// ExportDump writes the whole store d holds to w as a dump. progress, if
// set, is called with the counts so far now and then, and at the end.
func ExportDump(ctx context.Context, d Dumps, w io.Writer, h DumpHeader, progress func(Counts)) (Counts, error) {
	dw, err := NewDumpWriter(w, h)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	var n int64
	err = d.Export(ctx, func(r Record) error {
		if err := dw.Write(r); err != nil {
			return err
		}
		if n++; progress != nil && n%progressEvery == 0 {
			progress(dw.Counts())
		}
		return nil
	})
	if err != nil {
		return dw.Counts(), fmt.Errorf("export: %w", err)
	}
	if err := dw.Close(); err != nil {
		return dw.Counts(), fmt.Errorf("export: %w", err)
	}
	if progress != nil {
		progress(dw.Counts())
	}
	return dw.Counts(), nil
}

const progressEvery = 10_000

// ImportOptions tune ImportDump; zero fields take their defaults.
type ImportOptions struct {
	// BatchRecords and BatchBytes bound a batch (default 5,000 records
	// and 8 MiB of lines): each is written all or nothing. On the
	// embedded engine a batch is a commit with its fsync: batches of
	// 5,000 import a fifth to a third faster than batches of 1,000.
	BatchRecords int
	BatchBytes   int
	// Progress, if set, is called with the counts imported after each
	// batch.
	Progress func(Counts)
}

// ImportError is ImportDump's error: Imported says what was written
// before it, in whole batches; Imported.Total() > 0 means the store
// holds part of the dump and must be emptied before another import.
type ImportError struct {
	Imported Counts
	Err      error
}

func (e *ImportError) Error() string {
	if e.Imported.Total() == 0 {
		return e.Err.Error() + "; nothing was imported"
	}
	return fmt.Sprintf("%v; %d records of the batches before it were imported (%v) and stay: "+
		"empty the store before importing again", e.Err, e.Imported.Total(), e.Imported)
}

func (e *ImportError) Unwrap() error { return e.Err }

// ImportDump imports the dump r holds into d, which must be empty
// (ErrNotEmpty otherwise, see Dumps.ImportReady), in batches, each
// written all or nothing. It returns the counts imported. A dump found
// bad or truncated part way stops the import at that line, after the
// batches before it: VerifyDump first when that must not happen.
func ImportDump(ctx context.Context, d Dumps, r io.Reader, opt ImportOptions) (Counts, error) {
	if opt.BatchRecords <= 0 {
		opt.BatchRecords = 5000
	}
	if opt.BatchBytes <= 0 {
		opt.BatchBytes = 8 << 20
	}
	imported := Counts{}
	fail := func(err error) (Counts, error) {
		return imported, &ImportError{Imported: maps.Clone(imported), Err: err}
	}
	dr, err := NewDumpReader(r)
	if err != nil {
		return fail(err)
	}
	if err := d.ImportReady(ctx); err != nil {
		return fail(err)
	}
	// The dump is read and decoded on a goroutine of its own, a batch
	// ahead of the one being written: decoding costs about as much as
	// writing, and the two then overlap.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan importBatch, 1)
	readErr := make(chan error, 1)
	go func() {
		defer close(batches)
		readErr <- readBatches(ctx, dr, opt, batches)
	}()
	for b := range batches {
		if err := d.ImportBatch(ctx, b.records); err != nil {
			cancel()
			for range batches {
			}
			<-readErr
			var be *BatchError
			if errors.As(err, &be) && be.Index >= 0 && be.Index < len(b.records) {
				rec := b.records[be.Index]
				err = &LineError{Line: b.lines[be.Index], Kind: rec.Kind(), Ref: rec.Ref(), Err: be.Err}
			}
			return fail(fmt.Errorf("%w (lines %d to %d, the batch of it, were not imported)", err, b.lines[0], b.lines[len(b.lines)-1]))
		}
		for _, rec := range b.records {
			imported[rec.Kind()]++
		}
		if opt.Progress != nil {
			opt.Progress(maps.Clone(imported))
		}
	}
	// Every batch before a bad line is written; the one it is in is not.
	if err := <-readErr; err != nil {
		return fail(err)
	}
	return imported, nil
}

// importBatch is a batch of records with their lines.
type importBatch struct {
	records []Record
	lines   []int
}

// readBatches sends the records of dr in batches of opt's size, the last
// one only once the end line has been read and checked; it returns the
// reader's error, or ctx's when the writer gave up.
func readBatches(ctx context.Context, dr *DumpReader, opt ImportOptions, out chan<- importBatch) error {
	var (
		b    importBatch
		size int
	)
	send := func() error {
		if len(b.records) == 0 {
			return nil
		}
		select {
		case out <- b:
		case <-ctx.Done():
			return ctx.Err()
		}
		b, size = importBatch{}, 0
		return nil
	}
	for {
		rec, err := dr.Next()
		if err == io.EOF {
			return send()
		}
		if err != nil {
			return err
		}
		b.records, b.lines = append(b.records, rec), append(b.lines, dr.Line())
		size += len(dr.sc.Bytes())
		if len(b.records) >= opt.BatchRecords || size >= opt.BatchBytes {
			if err := send(); err != nil {
				return err
			}
		}
	}
}

// CopyStore copies the store from holds into to, which must be empty, as
// an export of from and an import of that dump would, without a file.
func CopyStore(ctx context.Context, from, to Dumps, h DumpHeader, opt ImportOptions) (Counts, error) {
	// The target is checked before anything is read, so that a copy into
	// a store that holds data fails at once.
	if err := to.ImportReady(ctx); err != nil {
		return nil, &ImportError{Imported: Counts{}, Err: err}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	exported := make(chan error, 1)
	go func() {
		_, err := ExportDump(ctx, from, pw, h, nil)
		pw.CloseWithError(err)
		exported <- err
	}()
	// An export that fails ends the import with its error (the pipe's),
	// and an import that fails ends the export (it can no longer write).
	n, err := ImportDump(ctx, to, pr, opt)
	pr.CloseWithError(errors.New("the import ended"))
	cancel()
	<-exported
	return n, err
}
