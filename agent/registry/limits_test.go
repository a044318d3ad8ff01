package registry

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
)

func TestRecordLimits(t *testing.T) {
	opts := Options{MaxLineBytes: 120, MaxFields: 8}
	long := strings.Repeat("x", 100)
	tests := []struct {
		name  string
		in    string
		cause string
		line  int
	}{
		{"within", hdr + "\n" + okLine + "\n", "", 0},
		{"a long line", hdr + "\n" + okLine + "\n" + okLine + long + "\n", CauseLine, 3},
		{"a long quoted field over lines", hdr + "\n" + okLine + "\n" + `a;"` + strings.Repeat("y\n", 60) + `"` + "\n", CauseLine, 3},
		{"fields", hdr + "\n" + okLine + ";a;b\n", CauseFields, 2},
		{"fields after blank lines", hdr + "\n\n\n" + okLine + ";a;b\n", CauseFields, 4},
		{"separators in quotes are no fields", hdr + "\n" + `a;b;c;d;e;f;";;;;;;;;;;"` + "\n", "", 0},
		{"separators after a bare quote are no fields", hdr + "\n" + `a;b;c;d;e;f"g;h;i;j;k;l` + "\n", "", 0},
		{"an escaped quote", hdr + "\n" + `a;b;c;d;e;f;"g"";h;i;j;k;l"` + "\n", "", 0},
		{"the last field at the end of the file", hdr + "\n" + okLine + ";a;b", CauseFields, 2},
		{"the other separator", strings.ReplaceAll(hdr+"\n"+okLine+";a;b\n", ";", ","), CauseFields, 2},
		{"a header of separators", strings.Repeat(";", 1000), CauseFields, 1},
		{"a header without a line end", strings.Repeat("h", 1000), CauseLine, 1},
		{"a header of separators after a byte order mark and blank lines", "\xef\xbb\xbf\n \r\n" + strings.Repeat(";", 1000), CauseFields, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCSV(strings.NewReader(tc.in), opts)
			var le *LimitError
			if tc.cause == "" {
				if errors.As(err, &le) {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.As(err, &le) || le.Cause != tc.cause || le.Line != tc.line {
				t.Fatalf("got %v, want %s at line %d", err, tc.cause, tc.line)
			}
			want := fmt.Sprintf("line %d is longer than 120 bytes", tc.line)
			if tc.cause == CauseFields {
				want = fmt.Sprintf("line %d has more than 8 fields", tc.line)
			}
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("%q does not say %q", err, want)
			}
		})
	}
}

// endless is a file of n separators that never ends a line.
type endless struct{ n, read int64 }

func (e *endless) Read(p []byte) (int, error) {
	if e.read >= e.n {
		return 0, io.EOF
	}
	k := min(int64(len(p)), e.n-e.read)
	for i := range k {
		p[i] = ';'
	}
	e.read += k
	return int(k), nil
}

// A 63 MB file of separators is refused after its first kilobytes, with
// little memory: encoding/csv made 63 million fields of it (1.8 GB).
func TestSeparatorFileRefusedEarly(t *testing.T) {
	for _, sep := range []string{";", ","} {
		src := &endless{n: 63 << 20}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := ParseCSV(io.MultiReader(strings.NewReader(strings.Repeat(sep, 10)), src), Options{})
		runtime.ReadMemStats(&after)
		var le *LimitError
		if !errors.As(err, &le) || le.Cause != CauseFields || le.Line != 1 {
			t.Fatalf("got %v", err)
		}
		if src.read > 64<<10 {
			t.Errorf("%d bytes read before the refusal", src.read)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
			t.Errorf("%d bytes allocated to refuse it", alloc)
		}
	}
}

// csvRecord is one record as encoding/csv reads it, with where it starts
// and how many bytes it spans (without its line end).
type csvRecord struct {
	line, bytes, fields int
	// a record csv refuses for a quote at the end of the file may hold
	// its last line end or not: bytes is without it, upTo with it
	upTo int
}

// csvRecords reads data as ParseCSV's csv.Reader does.
func csvRecords(data []byte) []csvRecord {
	data = bytes.TrimPrefix(data, bom)
	lineStart := []int{0, 0} // by line, from 1
	for i, b := range data {
		if b == '\n' {
			lineStart = append(lineStart, i+1)
		}
	}
	cr := csv.NewReader(bytes.NewReader(data))
	cr.Comma = detectSeparator(data)
	cr.FieldsPerRecord = -1
	var out []csvRecord
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		line := 0
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			line = pe.StartLine
		} else if err == nil {
			line, _ = cr.FieldPos(0)
		}
		end := int(cr.InputOffset())
		span, upTo := end-lineStart[line], end-lineStart[line]
		if end > 0 && data[end-1] == '\n' {
			span--
			if !errors.Is(err, csv.ErrQuote) || end < len(data) {
				upTo--
			}
		}
		out = append(out, csvRecord{line: line, bytes: span, fields: len(rec), upTo: upTo})
	}
}

// FuzzRecordLimits holds the record limits to encoding/csv: a file passes
// exactly when no record csv reads from it is over a limit, and a refusal
// names a record that is (the header is measured before its separator is
// known, by the first line's separators and bytes).
func FuzzRecordLimits(f *testing.F) {
	f.Add([]byte(hdr+"\n"+okLine+"\n"), 40, 4)
	f.Add([]byte("a;b\n\"c;d\"\";e\"\nf\"g;h;i\n\n\"j\nk\";l"), 5, 2)
	f.Add([]byte("\xef\xbb\xbfa,b,c\r\n\"x\"\r\ny,z"), 3, 2)
	f.Add([]byte("a;b\n\"unterminated;x;y;z\nw"), 8, 2)
	f.Fuzz(func(t *testing.T, data []byte, maxLine, maxFields int) {
		maxLine, maxFields = 1+int(uint(maxLine)%64), 1+int(uint(maxFields)%8)
		_, err := readFile(bytes.NewReader(data), Options{MaxBytes: 1 << 20, MaxLineBytes: maxLine, MaxFields: maxFields})
		var le *LimitError
		refused := errors.As(err, &le)
		if err != nil && !refused {
			t.Fatalf("%v", err)
		}
		var head headerScan
		head.feed(bytes.TrimPrefix(data, bom))
		found := false
		for _, r := range csvRecords(data) {
			if refused && r.line == le.Line {
				found = true
			}
			over := map[string]bool{CauseLine: r.upTo > maxLine, CauseFields: r.fields > maxFields}
			if !refused && (r.bytes > maxLine || over[CauseFields]) {
				t.Fatalf("%q passed limits %d bytes, %d fields with a record %+v", data, maxLine, maxFields, r)
			}
			if refused && r.line == le.Line && !over[le.Cause] && le.Line != head.line {
				t.Fatalf("%q refused with %v, but its record is %+v", data, err, r)
			}
		}
		if refused && !found && le.Line != head.line {
			t.Fatalf("%q refused with %v, but no record starts there", data, err)
		}
	})
}
