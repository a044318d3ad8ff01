// Package shell parses the operation shell: the one-line commands ("read
// /3/0/0", "write /1/0/1 300", "fwupdate fw;1.2;https://...") that users
// queue for a device through the operations API. It checks everything that
// can be checked without a device or an object definition (command names,
// path depths, numbers, JSON shapes, attribute rules) so that a malformed
// command is refused at once with a message naming the problem. Typing a
// value by its resource definition happens where the definition is known.
package shell

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"

	"github.com/lwm2m-agent/lwm2m-agent/agent/nearest"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// Kind is a shell command.
type Kind uint8

// The commands of the shell grammar (API.md, "Operations").
const (
	Read              Kind = iota + 1 // read PATH
	Observe                           // observe PATH
	CancelObservation                 // cancelobservation PATH... (several: a composite observation)
	Execute                           // execute PATH [args]
	Write                             // write PATH VALUE
	Delete                            // delete /O/I[/R[/RI]]
	Discover                          // discover PATH
	Create                            // create /O [JSON]
	WriteAttributes                   // writeattr PATH pmin=..&pmax=..
	CompositeRead                     // cread PATH...
	CompositeObserve                  // cobserve PATH...
	CompositeWrite                    // cwrite {"PATH": value, ...}
	WriteBinary                       // writeb PATH HEX | writeb PATH binary:ID
	Serialization                     // serialization FORMAT
	FirmwareUpdate                    // fwupdate name;version;url
)

var kindNames = [...]string{
	Read:              "read",
	Observe:           "observe",
	CancelObservation: "cancelobservation",
	Execute:           "execute",
	Write:             "write",
	Delete:            "delete",
	Discover:          "discover",
	Create:            "create",
	WriteAttributes:   "writeattr",
	CompositeRead:     "cread",
	CompositeObserve:  "cobserve",
	CompositeWrite:    "cwrite",
	WriteBinary:       "writeb",
	Serialization:     "serialization",
	FirmwareUpdate:    "fwupdate",
}

// String returns the command word ("writeattr").
func (k Kind) String() string {
	if k > 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// ParseKind returns the command of a command word, ignoring letter case.
func ParseKind(word string) (Kind, bool) {
	w := strings.ToLower(word)
	for k := Read; k <= FirmwareUpdate; k++ {
		if kindNames[k] == w {
			return k, true
		}
	}
	return 0, false
}

// Formats are the values of the serialization command, in the order the
// API lists them.
var Formats = []string{"TLV", "JSON", "CBOR", "TEXT", "OPAQUE", "SENML_JSON", "SENML_CBOR", "DEFAULT"}

// Firmware is the target of a fwupdate command.
type Firmware struct {
	Name    string
	Version string
	URL     string
}

// Command is one parsed shell line. Which fields are set depends on Kind:
//
//   - Paths: the target path of every command that has one (one path, or
//     several for cread and cobserve; for cwrite the written paths, sorted).
//   - Value: write's value as typed, and writeb's bytes as lower-case hex.
//   - Args: execute's arguments as typed, "" when none.
//   - Attrs: writeattr's attributes.
//   - JSON: create's resources ({"<resourceId>": value}, nil when none were
//     given) and cwrite's values ({"<path>": value}, keys canonical
//     "/O/I/R"). Numbers are json.Number so that nothing is lost to float64;
//     a multiple resource in create is an object {"<instanceId>": value}.
//   - Binary: writeb's stored binary ID (binary:<id>).
//   - Format: serialization's format, one of Formats.
//   - Firmware: fwupdate's name, version and URL.
//   - Raw: the line as given, trimmed.
type Command struct {
	Kind     Kind
	Paths    []node.Path
	Value    string
	Args     string
	Attrs    Attributes
	JSON     map[string]any
	Binary   string
	Format   string
	Firmware Firmware
	Raw      string
}

// Path returns the first path, or the root if the command has none; most
// commands have exactly one.
func (c Command) Path() node.Path {
	if len(c.Paths) == 0 {
		return node.Root
	}
	return c.Paths[0]
}

// Error is a malformed command. Msg names the command, the part at fault
// and the problem, e.g. `write /3/0: a resource path /O/I/R is needed`.
type Error struct {
	Line int // the line in a ParseText text, from 1; 0 for Parse
	Msg  string
	Err  error // an underlying error such as node.ErrBadPath, or nil
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return "line " + strconv.Itoa(e.Line) + ": " + e.Msg
	}
	return e.Msg
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

func errorf(format string, args ...any) *Error {
	return &Error{Msg: fmt.Sprintf(format, args...)}
}

// ParseText parses a text of one command per line; blank lines are skipped.
// A text without any command is an error. On errors it returns every bad
// line's *Error, joined, each with its line number, so that a person can fix
// them all at once.
func ParseText(text string) ([]Command, error) {
	var cmds []Command
	var errs []error
	for i, line := range strings.Split(text, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		c, err := Parse(line)
		if err != nil {
			var se *Error
			if errors.As(err, &se) {
				se.Line = i + 1
			}
			errs = append(errs, err)
			continue
		}
		cmds = append(cmds, c)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(cmds) == 0 {
		return nil, errorf("no command: the text is empty")
	}
	return cmds, nil
}

// Parse parses one command line. Letter case of the command word does not
// matter; surrounding white space is ignored. Errors are *Error.
func Parse(line string) (Command, error) {
	s := strings.TrimSpace(line)
	if s == "" {
		return Command{}, errorf("empty command")
	}
	if strings.ContainsRune(s, '\n') {
		return Command{}, errorf("one command per line: the command spans several lines")
	}
	word, rest := cutSpace(s)
	kind, ok := ParseKind(word)
	if !ok {
		if len(word) > 40 {
			word = word[:40] + "..."
		}
		msg := fmt.Sprintf("unknown command %q", word)
		if near := nearestCommand(word); near != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", near)
		}
		return Command{}, errorf("%s; the commands are %s", msg, strings.Join(kindNames[1:], ", "))
	}
	c := Command{Kind: kind, Raw: s}
	var err *Error
	switch kind {
	case Read, Observe:
		err = c.parseSinglePath(rest, 1, 4)
	case CancelObservation:
		// one path, or the paths of a composite observation (cobserve)
		err = c.parsePaths(rest)
	case Discover:
		err = c.parseSinglePath(rest, 1, 3)
	case Delete:
		err = c.parseSinglePath(rest, 2, 4)
	case Execute:
		var args string
		if args, err = c.parsePathThen(rest, 3, 3); err == nil {
			c.Args = args
		}
	case Write:
		var v string
		if v, err = c.parsePathThen(rest, 3, 4); err == nil {
			if v == "" {
				err = errorf("write %s: a value is needed after the path", c.Paths[0])
			}
			c.Value = v
		}
	case Create:
		err = c.parseCreate(rest)
	case WriteAttributes:
		err = c.parseWriteAttr(rest)
	case CompositeRead, CompositeObserve:
		err = c.parsePaths(rest)
	case CompositeWrite:
		err = c.parseCompositeWrite(rest)
	case WriteBinary:
		err = c.parseWriteBinary(rest)
	case Serialization:
		err = c.parseSerialization(rest)
	case FirmwareUpdate:
		err = c.parseFirmware(rest)
	}
	if err != nil {
		return Command{}, err
	}
	return c, nil
}

// cutSpace splits s at its first run of white space.
func cutSpace(s string) (first, rest string) {
	i := strings.IndexFunc(s, unicode.IsSpace)
	if i < 0 {
		return s, ""
	}
	return s[:i], strings.TrimLeftFunc(s[i:], unicode.IsSpace)
}

// depthNeed says, for an error message, which paths a command takes.
func depthNeed(minD, maxD int) string {
	switch {
	case minD == 3 && maxD == 3:
		return "a resource path /O/I/R is needed"
	case minD == 3 && maxD == 4:
		return "a resource path /O/I/R is needed (or /O/I/R/RI for a resource instance)"
	case minD == 1 && maxD == 1:
		return "an object path /O is needed"
	case minD == 1 && maxD == 3:
		return "a path /O, /O/I or /O/I/R is needed"
	case minD == 2 && maxD == 4:
		return "an instance path /O/I (or /O/I/R, /O/I/R/RI) is needed"
	}
	return "a path /O, /O/I, /O/I/R or /O/I/R/RI is needed"
}

// parsePath parses one path token of a command and checks its depth.
func (c *Command) parsePath(tok string, minD, maxD int) (node.Path, *Error) {
	if tok == "" {
		return node.Path{}, errorf("%s: %s", c.Kind, depthNeed(minD, maxD))
	}
	p, err := node.ParsePath(tok)
	if err != nil {
		return node.Path{}, &Error{Msg: fmt.Sprintf("%s %s: not a path: %v", c.Kind, tok, err), Err: err}
	}
	if d := int(p.Depth); d < minD || d > maxD {
		return node.Path{}, errorf("%s %s: %s", c.Kind, tok, depthNeed(minD, maxD))
	}
	return p, nil
}

// parseSinglePath takes a command whose only argument is a path.
func (c *Command) parseSinglePath(rest string, minD, maxD int) *Error {
	tok, more := cutSpace(rest)
	p, err := c.parsePath(tok, minD, maxD)
	if err != nil {
		return err
	}
	if more != "" {
		return errorf("%s %s: unexpected %q after the path", c.Kind, p, clip(more))
	}
	c.Paths = []node.Path{p}
	return nil
}

// parsePathThen takes a path and returns the rest of the line after it.
func (c *Command) parsePathThen(rest string, minD, maxD int) (string, *Error) {
	tok, more := cutSpace(rest)
	p, err := c.parsePath(tok, minD, maxD)
	if err != nil {
		return "", err
	}
	c.Paths = []node.Path{p}
	return more, nil
}

// parsePaths takes one or more paths (cread, cobserve).
func (c *Command) parsePaths(rest string) *Error {
	toks := strings.Fields(rest)
	if len(toks) == 0 {
		return errorf("%s: at least one path is needed", c.Kind)
	}
	seen := make(map[node.Path]bool, len(toks))
	for _, t := range toks {
		p, err := c.parsePath(t, 1, 4)
		if err != nil {
			return err
		}
		if seen[p] {
			return errorf("%s: path %s is given twice", c.Kind, p)
		}
		seen[p] = true
		c.Paths = append(c.Paths, p)
	}
	return nil
}

func (c *Command) parseWriteBinary(rest string) *Error {
	v, err := c.parsePathThen(rest, 3, 4)
	if err != nil {
		return err
	}
	p := c.Paths[0]
	if v == "" {
		return errorf("writeb %s: the bytes are needed as hex, or binary:<id>", p)
	}
	if strings.IndexFunc(v, unicode.IsSpace) >= 0 {
		return errorf("writeb %s: one value is expected, hex without spaces or binary:<id>", p)
	}
	if id, ok := cutPrefixFold(v, "binary:"); ok {
		if id == "" {
			return errorf("writeb %s: binary: needs the ID of a stored binary", p)
		}
		c.Binary = id
		return nil
	}
	if len(v)%2 != 0 {
		return errorf("writeb %s: %q is not hex: odd number of digits", p, clip(v))
	}
	for i := 0; i < len(v); i++ {
		if !isHex(v[i]) {
			return errorf("writeb %s: %q is not hex: %q at position %d", p, clip(v), v[i], i+1)
		}
	}
	c.Value = strings.ToLower(v)
	return nil
}

func isHex(b byte) bool {
	return '0' <= b && b <= '9' || 'a' <= b && b <= 'f' || 'A' <= b && b <= 'F'
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

func (c *Command) parseSerialization(rest string) *Error {
	if rest == "" {
		return errorf("serialization: a format is needed: %s", strings.Join(Formats, ", "))
	}
	f := strings.ToUpper(strings.ReplaceAll(rest, "-", "_"))
	for _, known := range Formats {
		if f == known {
			c.Format = known
			return nil
		}
	}
	return errorf("serialization: unknown format %q; the formats are %s", clip(rest), strings.Join(Formats, ", "))
}

// clip shortens user text quoted back in a message.
func clip(s string) string {
	const max = 60
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}

// nearestCommand returns the command word within two edits of w, if any.
func nearestCommand(w string) string { return nearest.Word(w, kindNames[1:]) }
