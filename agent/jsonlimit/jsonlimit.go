// Package jsonlimit checks a JSON document against structure limits in one
// pass over its bytes, before anything decodes it.
//
// Decoding builds the whole tree first, and what the store then does with
// it grows faster than its size: an object of 20,000 members takes the
// embedded store seconds to write and every other tenant's list seconds
// to read past. The checks here cost one comparison per byte and nothing
// per value, so a hostile document is refused for less than it costs to
// receive.
package jsonlimit

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Limits bound a document; a zero field is no limit.
type Limits struct {
	// Depth bounds how deep objects and arrays nest: {} is 1 deep.
	Depth int
	// Members bounds the members of one object.
	Members int
	// Array bounds the elements of one array.
	Array int
	// Values bounds the members and elements of the whole document.
	Values int
	// Fragment bounds the bytes of the value of each member of the
	// top-level object (a fragment of a managed object or an operation).
	Fragment int
	// Name checks every member name at every depth; nil takes any.
	Name func(name string) error
}

// The causes of LimitError, one per limit; they are the refusal causes
// the agent counts.
const (
	CauseDepth    = "json_depth"
	CauseMembers  = "json_members"
	CauseArray    = "json_array"
	CauseValues   = "json_values"
	CauseFragment = "fragment_size"
)

// LimitError is a document over one of its limits.
type LimitError struct {
	Cause string // one of the Cause constants
	Limit int
	// Path names the members from the top-level object to where the
	// limit was passed, joined by " > "; array elements are not named.
	Path string
}

func (e *LimitError) Error() string {
	var msg string
	switch e.Cause {
	case CauseDepth:
		msg = fmt.Sprintf("JSON nested deeper than %d levels", e.Limit)
	case CauseMembers:
		msg = fmt.Sprintf("a JSON object of more than %d members", e.Limit)
	case CauseArray:
		msg = fmt.Sprintf("a JSON array of more than %d elements", e.Limit)
	case CauseValues:
		msg = fmt.Sprintf("a JSON document of more than %d members and array elements in all", e.Limit)
	case CauseFragment:
		msg = fmt.Sprintf("fragment %s is larger than %d bytes", strconv.Quote(e.Path), e.Limit)
	default:
		msg = e.Cause
	}
	if e.Path != "" && e.Cause != CauseFragment {
		msg += " at " + e.Path
	}
	return msg
}

// NameError is a member name Limits.Name refused.
type NameError struct {
	Name string
	Path string // as LimitError.Path, ending with Name
	Err  error
}

func (e *NameError) Error() string {
	return fmt.Sprintf("member name %s (at %s) is not accepted: %v", strconv.Quote(e.Name), e.Path, e.Err)
}

func (e *NameError) Unwrap() error { return e.Err }

// SyntaxError is a document that is not JSON.
type SyntaxError struct {
	Offset int // of the byte at fault
	Msg    string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("%s at byte %d", e.Msg, e.Offset) }

// frame is an object or array being read.
type frame struct {
	object bool
	n      int // members or elements so far
	// the name of the member being read, as offsets into the document:
	// names are only decoded for an error or the Name check
	keyStart, keyEnd int
}

type scanner struct {
	data   []byte
	pos    int
	l      Limits
	stack  []frame
	values int
	// where the value of the top-level member being read starts; -1
	// outside one
	fragStart int
}

// Check reads data as exactly one JSON value (white space around it
// allowed) and returns the first limit it passes (*LimitError), the first
// name Limits.Name refuses (*NameError), or why it is not JSON
// (*SyntaxError). It stops at the first problem, so a document nested a
// million deep costs as much as one nested Depth+1 deep.
func Check(data []byte, l Limits) error {
	s := &scanner{data: data, l: l, fragStart: -1}
	return s.run()
}

func (s *scanner) syntax(msg string) error {
	if s.pos >= len(s.data) {
		return &SyntaxError{Offset: len(s.data), Msg: "unexpected end of JSON input"}
	}
	return &SyntaxError{Offset: s.pos, Msg: fmt.Sprintf("%s, not %s", msg, strconv.QuoteRune(rune(s.data[s.pos])))}
}

func (s *scanner) skipSpace() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// path names the members from the top to the one being read; a long
// path keeps its ends, which are what a person looks for.
func (s *scanner) path() string {
	var names []string
	for _, f := range s.stack {
		if f.object && f.keyEnd > f.keyStart {
			names = append(names, decodeName(s.data[f.keyStart:f.keyEnd]))
		}
	}
	if len(names) > maxPathNames {
		names = append(append(names[:maxPathNames/2:maxPathNames/2], "…"), names[len(names)-maxPathNames/2:]...)
	}
	return strings.Join(names, " > ")
}

// maxPathNames bounds the names of a path in an error.
const maxPathNames = 6

func (s *scanner) limit(cause string, limit int) error {
	return &LimitError{Cause: cause, Limit: limit, Path: s.path()}
}

// decodeName is a member name without its quotes, escapes resolved.
func decodeName(quoted []byte) string {
	inner := quoted[1 : len(quoted)-1]
	if !strings.ContainsRune(string(inner), '\\') {
		return string(inner)
	}
	var name string
	if err := json.Unmarshal(quoted, &name); err != nil {
		return string(inner)
	}
	return name
}

// count counts one more member or element of the innermost container.
func (s *scanner) count() error {
	f := &s.stack[len(s.stack)-1]
	f.n++
	if f.object && s.l.Members > 0 && f.n > s.l.Members {
		return s.limit(CauseMembers, s.l.Members)
	}
	if !f.object && s.l.Array > 0 && f.n > s.l.Array {
		return s.limit(CauseArray, s.l.Array)
	}
	s.values++
	if s.l.Values > 0 && s.values > s.l.Values {
		return s.limit(CauseValues, s.l.Values)
	}
	return nil
}

func (s *scanner) push(object bool) error {
	s.pos++
	s.stack = append(s.stack, frame{object: object})
	if s.l.Depth > 0 && len(s.stack) > s.l.Depth {
		return s.limit(CauseDepth, s.l.Depth)
	}
	return nil
}

// open reads the start of an object or array up to its first value, or
// its end when it is empty.
func (s *scanner) open(object bool) (empty bool, err error) {
	if err := s.push(object); err != nil {
		return false, err
	}
	s.skipSpace()
	end := byte(']')
	if object {
		end = '}'
	}
	if s.pos < len(s.data) && s.data[s.pos] == end {
		s.pos++
		s.stack = s.stack[:len(s.stack)-1]
		return true, nil
	}
	if object {
		return false, s.member()
	}
	return false, s.count()
}

func (s *scanner) run() error {
	// Each turn of the loop reads a value (wantValue), or what follows one.
	wantValue := true
	for {
		if wantValue {
			s.skipSpace()
			if s.pos >= len(s.data) {
				return s.syntax("")
			}
			switch c := s.data[s.pos]; {
			case c == '{' || c == '[':
				empty, err := s.open(c == '{')
				if err != nil {
					return err
				}
				if !empty {
					continue // to its first value
				}
			case c == '"':
				if err := s.str(); err != nil {
					return err
				}
			case c == '-' || (c >= '0' && c <= '9'):
				if err := s.number(); err != nil {
					return err
				}
			case c == 't':
				if err := s.literal("true"); err != nil {
					return err
				}
			case c == 'f':
				if err := s.literal("false"); err != nil {
					return err
				}
			case c == 'n':
				if err := s.literal("null"); err != nil {
					return err
				}
			default:
				return s.syntax("want a value")
			}
			wantValue = false
		}
		// a value has ended
		if len(s.stack) == 0 {
			s.skipSpace()
			if s.pos < len(s.data) {
				return s.syntax("want the end of the document after the value")
			}
			return nil
		}
		if err := s.fragmentEnded(); err != nil {
			return err
		}
		s.skipSpace()
		if s.pos >= len(s.data) {
			return s.syntax("")
		}
		top := &s.stack[len(s.stack)-1]
		switch c := s.data[s.pos]; {
		case c == ',':
			s.pos++
			if top.object {
				s.skipSpace()
				if err := s.member(); err != nil {
					return err
				}
			} else if err := s.count(); err != nil {
				return err
			}
			wantValue = true
		case c == '}' && top.object, c == ']' && !top.object:
			s.pos++
			s.stack = s.stack[:len(s.stack)-1]
		case top.object:
			return s.syntax("want ',' or '}' after a member")
		default:
			return s.syntax("want ',' or ']' after an element")
		}
	}
}

// member reads a member's name and colon; its value follows.
func (s *scanner) member() error {
	if s.pos >= len(s.data) || s.data[s.pos] != '"' {
		return s.syntax("want a member name")
	}
	start := s.pos
	if err := s.str(); err != nil {
		return err
	}
	top := &s.stack[len(s.stack)-1]
	top.keyStart, top.keyEnd = start, s.pos
	if err := s.count(); err != nil {
		return err
	}
	if s.l.Name != nil {
		name := decodeName(s.data[start:s.pos])
		if err := s.l.Name(name); err != nil {
			return &NameError{Name: name, Path: s.path(), Err: err}
		}
	}
	s.skipSpace()
	if s.pos >= len(s.data) || s.data[s.pos] != ':' {
		return s.syntax("want ':' after a member name")
	}
	s.pos++
	if len(s.stack) == 1 {
		s.skipSpace()
		s.fragStart = s.pos
	}
	return nil
}

// fragmentEnded checks the size of a top-level member's value that has
// just been read.
func (s *scanner) fragmentEnded() error {
	if len(s.stack) != 1 || s.fragStart < 0 {
		return nil
	}
	size := s.pos - s.fragStart
	s.fragStart = -1
	if s.l.Fragment > 0 && size > s.l.Fragment {
		return s.limit(CauseFragment, s.l.Fragment)
	}
	return nil
}

func (s *scanner) str() error {
	s.pos++ // the opening quote
	for s.pos < len(s.data) {
		c := s.data[s.pos]
		switch {
		case c == '"':
			s.pos++
			return nil
		case c == '\\':
			s.pos++
			if s.pos >= len(s.data) {
				return s.syntax("")
			}
			switch s.data[s.pos] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.pos++
			case 'u':
				s.pos++
				for range 4 {
					if s.pos >= len(s.data) {
						return s.syntax("")
					}
					if !isHex(s.data[s.pos]) {
						return s.syntax("want a hexadecimal digit in a \\u escape")
					}
					s.pos++
				}
			default:
				return s.syntax("want an escape character after '\\'")
			}
		case c < 0x20:
			return s.syntax("want no control character in a string")
		default:
			s.pos++
		}
	}
	return s.syntax("")
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func (s *scanner) digits() int {
	n := 0
	for s.pos < len(s.data) && s.data[s.pos] >= '0' && s.data[s.pos] <= '9' {
		s.pos++
		n++
	}
	return n
}

func (s *scanner) number() error {
	if s.data[s.pos] == '-' {
		s.pos++
	}
	switch {
	case s.pos < len(s.data) && s.data[s.pos] == '0':
		s.pos++
	case s.digits() == 0:
		return s.syntax("want a digit")
	}
	if s.pos < len(s.data) && s.data[s.pos] == '.' {
		s.pos++
		if s.digits() == 0 {
			return s.syntax("want a digit after '.'")
		}
	}
	if s.pos < len(s.data) && (s.data[s.pos] == 'e' || s.data[s.pos] == 'E') {
		s.pos++
		if s.pos < len(s.data) && (s.data[s.pos] == '+' || s.data[s.pos] == '-') {
			s.pos++
		}
		if s.digits() == 0 {
			return s.syntax("want a digit in the exponent")
		}
	}
	return nil
}

func (s *scanner) literal(word string) error {
	for i := range len(word) {
		if s.pos >= len(s.data) || s.data[s.pos] != word[i] {
			return s.syntax("want " + word)
		}
		s.pos++
	}
	return nil
}
