package shell

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// decodeObject decodes a JSON object, keeping numbers as json.Number.
func decodeObject(s string) (map[string]any, error) {
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, fmt.Errorf("not valid JSON: %w", jsonErr(err))
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("not valid JSON: text after the closing '}'")
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("a JSON object {...} is needed")
	}
	return m, nil
}

// jsonErr drops the "json: " prefix that would read oddly inside our
// messages.
func jsonErr(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return errors.New("unexpected end")
	}
	return errors.New(strings.TrimPrefix(err.Error(), "json: "))
}

// parseID parses a canonical decimal ID (no sign, no leading zero).
func parseID(s string) (uint16, bool) {
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n > node.MaxID {
		return 0, false
	}
	return uint16(n), true
}

// scalar reports whether v is a value a single resource can take.
func scalar(v any) bool {
	switch v.(type) {
	case string, json.Number, bool:
		return true
	}
	return false
}

func describe(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// parseCreate reads "create /O" or "create /O {"0": "x", "5": {"0": 1}}".
func (c *Command) parseCreate(rest string) *Error {
	js, err := c.parsePathThen(rest, 1, 1)
	if err != nil {
		return err
	}
	p := c.Paths[0]
	if js == "" {
		return nil
	}
	m, jerr := decodeObject(js)
	if jerr != nil {
		return errorf("create %s: %v", p, jerr)
	}
	for k, v := range m {
		if _, ok := parseID(k); !ok {
			return errorf("create %s: key %q is not a resource ID from 0 to %d", p, clip(k), node.MaxID)
		}
		if scalar(v) {
			continue
		}
		inst, ok := v.(map[string]any)
		if !ok {
			return errorf("create %s: resource %s: %s is not a value; give a string, number, boolean, or an object {\"<instanceId>\": value} for a multiple resource", p, k, describe(v))
		}
		if len(inst) == 0 {
			return errorf("create %s: resource %s: no resource instances in {}", p, k)
		}
		for ik, iv := range inst {
			if _, ok := parseID(ik); !ok {
				return errorf("create %s: resource %s: key %q is not a resource instance ID from 0 to %d", p, k, clip(ik), node.MaxID)
			}
			if !scalar(iv) {
				return errorf("create %s: resource %s/%s: %s is not a value; give a string, number or boolean", p, k, ik, describe(iv))
			}
		}
	}
	c.JSON = m
	return nil
}

// parseCompositeWrite reads `cwrite {"/3/0/14": "+02", "/1/0/1": 300}`.
func (c *Command) parseCompositeWrite(rest string) *Error {
	if rest == "" {
		return errorf(`cwrite: a JSON object of paths and values is needed, e.g. {"/3/0/14": "+02", "/1/0/1": 300}`)
	}
	m, jerr := decodeObject(rest)
	if jerr != nil {
		return errorf("cwrite: %v", jerr)
	}
	if len(m) == 0 {
		return errorf("cwrite: no paths in {}")
	}
	out := make(map[string]any, len(m))
	paths := make([]node.Path, 0, len(m))
	for k, v := range m {
		p, perr := node.ParsePath(k)
		if perr != nil {
			return &Error{Msg: fmt.Sprintf("cwrite: key %q is not a path: %v", clip(k), perr), Err: perr}
		}
		if p.Depth < 3 {
			return errorf("cwrite %s: %s", p, depthNeed(3, 4))
		}
		if !scalar(v) {
			return errorf("cwrite %s: %s is not a value; give a string, number or boolean", p, describe(v))
		}
		if _, dup := out[p.String()]; dup {
			return errorf("cwrite: path %s is given twice", p)
		}
		out[p.String()] = v
		paths = append(paths, p)
	}
	slices.SortFunc(paths, comparePaths)
	c.Paths, c.JSON = paths, out
	return nil
}

func comparePaths(a, b node.Path) int {
	x, y := a.IDs(), b.IDs()
	for i := 0; i < len(x) && i < len(y); i++ {
		if x[i] != y[i] {
			return int(x[i]) - int(y[i])
		}
	}
	return len(x) - len(y)
}

// encodeJSON writes m compactly with sorted keys (encoding/json sorts map
// keys) and without HTML escaping, so String is stable and readable.
func encodeJSON(m map[string]any) string {
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	if err := e.Encode(m); err != nil {
		// Values come from decodeObject, which yields only encodable ones.
		panic("shell: encode JSON: " + err.Error())
	}
	return strings.TrimSuffix(b.String(), "\n")
}
