package registry

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Defaults of the record limits of Options.
const (
	// DefaultMaxLineBytes bounds one record. A line with every column
	// filled, keys and a generic UI included, stays below 4 KiB.
	DefaultMaxLineBytes = 64 << 10
	// DefaultMaxFields bounds the fields of one record: the file format
	// has about 30 columns, and columns the agent does not know are
	// allowed beside them.
	DefaultMaxFields = 1000
)

// The causes of LimitError; they are the refusal causes the agent counts.
const (
	CauseLine   = "csv_line"
	CauseFields = "csv_fields"
)

// LimitError is a file refused because one record is over a limit of
// Options: the whole file is refused, as encoding/csv would have to build
// the record before anything could be said about it.
type LimitError struct {
	Cause string // CauseLine or CauseFields
	Line  int    // where the record starts, from 1
	Limit int
}

func (e *LimitError) Error() string {
	if e.Cause == CauseFields {
		return fmt.Sprintf("registration file: line %d has more than %d fields", e.Line, e.Limit)
	}
	return fmt.Sprintf("registration file: line %d is longer than %d bytes", e.Line, e.Limit)
}

var bom = []byte("\xef\xbb\xbf")

// readFile reads a registration file, without its byte order mark, and
// checks each record as it arrives: a file is refused at the first
// record over a limit, having held no more than the records before it.
// The separator is the header's (detectSeparator), found as soon as the
// header line has arrived.
func readFile(r io.Reader, opts Options) ([]byte, error) {
	var (
		data    []byte
		buf     = make([]byte, 32<<10)
		start   = -1 // where the file starts after its byte order mark
		head    = headerScan{}
		records recordCheck
		checked int // bytes fed to records
	)
	for {
		n, err := r.Read(buf)
		data = append(data, buf[:n]...)
		if int64(len(data)) > opts.MaxBytes {
			return nil, fmt.Errorf("registration file: %w: more than %d bytes", ErrTooLarge, opts.MaxBytes)
		}
		eof := errors.Is(err, io.EOF)
		if err != nil && !eof {
			return nil, fmt.Errorf("read registration file: %w", err)
		}
		if start < 0 && (len(data) >= len(bom) || eof) {
			start = 0
			if bytes.HasPrefix(data, bom) {
				start = len(bom)
			}
			checked = start
		}
		if start >= 0 && records.sep == 0 {
			head.feed(data[checked+head.n:])
			switch {
			case head.done || eof:
				records = recordCheck{sep: byte(head.sep()), maxBytes: opts.MaxLineBytes, maxFields: opts.MaxFields, line: 1}
			case head.fields() > opts.MaxFields:
				return nil, &LimitError{Cause: CauseFields, Line: head.line, Limit: opts.MaxFields}
			case head.n > opts.MaxLineBytes:
				return nil, &LimitError{Cause: CauseLine, Line: head.line, Limit: opts.MaxLineBytes}
			}
		}
		if records.sep != 0 {
			if err := records.feed(data[checked:]); err != nil {
				return nil, err
			}
			checked = len(data)
		}
		if eof {
			if err := records.end(); err != nil {
				return nil, err
			}
			return data[start:], nil
		}
	}
}

// headerScan reads the first line as detectSeparator does: up to the
// first line end outside quotes after something other than white space,
// counting the separators outside quotes.
type headerScan struct {
	semi, comma int
	inQuote     bool
	started     bool
	done        bool
	n           int // bytes read
	line        int // of the header, from 1 (blank lines come before it)
}

func (h *headerScan) feed(p []byte) {
	if h.line == 0 {
		h.line = 1
	}
	for _, b := range p {
		if h.done {
			return
		}
		h.n++
		switch {
		case b == '"':
			h.inQuote = !h.inQuote
		case h.inQuote:
		case b == ';':
			h.semi++
		case b == ',':
			h.comma++
		case b == '\n':
			if h.started {
				h.done = true
				return
			}
			h.line++
			continue
		case b == '\r' || b == ' ' || b == '\t':
			continue
		}
		h.started = true
	}
}

// sep is the more frequent separator, ";" on a tie because Cumulocity's
// template uses it.
func (h *headerScan) sep() rune {
	if h.comma > h.semi {
		return ','
	}
	return ';'
}

// fields is the fewest fields the header can have with either separator.
func (h *headerScan) fields() int { return max(h.semi, h.comma) + 1 }

// recordCheck follows encoding/csv's reading of records (RFC 4180 quotes,
// no lazy quotes, blank lines skipped, a record that fails to parse ending
// with its line) to measure each record's bytes and fields as the bytes
// arrive.
type recordCheck struct {
	sep                 byte
	maxBytes, maxFields int
	line                int // of the next byte
	st                  csvState
	start               int // line of the record being read
	bytes, fields       int
}

type csvState int

const (
	between      csvState = iota // no record begun
	fieldStart                   // at the start of a field
	unquoted                     // in a field without quotes
	quoted                       // in a quoted field
	afterQuote                   // after a quote in a quoted field: its end, or an escaped quote
	afterQuoteCR                 // after a quoted field and a CR: csv takes CR LF for LF
	badRecord                    // csv refuses the record: the rest of its line is skipped
)

func (c *recordCheck) feed(p []byte) error {
	for _, b := range p {
		if c.st == between {
			if b == '\n' {
				c.line++
				continue
			}
			c.st, c.start, c.bytes, c.fields = fieldStart, c.line, 0, 0
		}
		if b == '\n' && c.st != quoted {
			c.line++
			if err := c.end(); err != nil {
				return err
			}
			continue
		}
		c.bytes++
		if c.maxBytes > 0 && c.bytes > c.maxBytes {
			return &LimitError{Cause: CauseLine, Line: c.start, Limit: c.maxBytes}
		}
		if b == c.sep && (c.st == fieldStart || c.st == unquoted || c.st == afterQuote) {
			if err := c.fieldEnded(); err != nil {
				return err
			}
			continue
		}
		switch c.st {
		case fieldStart:
			switch b {
			case '"':
				c.st = quoted
			default:
				c.st = unquoted
			}
		case unquoted:
			if b == '"' {
				c.st = badRecord
			}
		case quoted:
			if b == '"' {
				c.st = afterQuote
			} else if b == '\n' {
				c.line++
			}
		case afterQuote:
			switch b {
			case '"':
				c.st = quoted
			case '\r':
				c.st = afterQuoteCR
			default:
				c.st = badRecord
			}
		case afterQuoteCR:
			c.st = badRecord
		}
	}
	return nil
}

// fieldEnded counts a field ended by a separator; the next one starts.
func (c *recordCheck) fieldEnded() error {
	c.st = fieldStart
	return c.countField()
}

func (c *recordCheck) countField() error {
	c.fields++
	if c.maxFields > 0 && c.fields > c.maxFields {
		return &LimitError{Cause: CauseFields, Line: c.start, Limit: c.maxFields}
	}
	return nil
}

// end ends the record at a line end or the end of the file. Its last
// field counts unless csv refuses the record before reaching it.
func (c *recordCheck) end() error {
	st := c.st
	c.st = between
	if st == between || st == quoted || st == badRecord {
		return nil
	}
	return c.countField()
}
