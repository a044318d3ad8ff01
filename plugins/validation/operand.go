package validation

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// operand is one value as the rules of each type see it. A value that has
// no reading in a type (text that is not a number, for a NUMBER rule) has
// that view's Is flag false, and every rule of that type fails on it: a
// rule of a type applies only to values of that type.
type operand struct {
	Known  bool
	Text   string
	Num    float64
	IsNum  bool
	Date   time.Time
	IsDate bool
	Link   string
	IsLink bool
}

// views says which readings of a value a ruleset compares; computing
// only those keeps a STRING check from parsing dates.
type views uint8

const (
	viewText views = 1 << iota
	viewNum
	viewDate
	viewLink
)

func viewOf(ruleType string) views {
	switch ruleType {
	case store.RuleTypeNumber:
		return viewNum
	case store.RuleTypeDate:
		return viewDate
	case store.RuleTypeObjectLink:
		return viewLink
	}
	return viewText // STRING, REGEX
}

// newOperand reads v in the views asked for.
func newOperand(v node.Value, want views) operand {
	o := operand{Known: true}
	if want&viewText != 0 {
		o.Text = text(v)
	}
	if want&viewNum != 0 {
		o.Num, o.IsNum = number(v)
	}
	if want&viewDate != 0 {
		o.Date, o.IsDate = date(v)
	}
	if want&viewLink != 0 {
		o.Link, o.IsLink = link(v)
	}
	return o
}

// text is the value as a STRING or REGEX rule sees it: what the shell's
// write command would take to write it (a time as Unix seconds, opaque
// bytes as hex).
func text(v node.Value) string {
	if v.Type == node.TypeString || v.Type == node.TypeCorelnk {
		return v.Str
	}
	return v.Text()
}

// number reads a NUMBER: numbers as they are, booleans as 0 and 1, a time
// as Unix seconds, text holding a decimal number.
func number(v node.Value) (float64, bool) {
	switch v.Type {
	case node.TypeInteger:
		return float64(v.Int), true
	case node.TypeUnsignedInteger:
		return float64(v.Uint), true
	case node.TypeFloat:
		return v.Float, !math.IsNaN(v.Float)
	case node.TypeBoolean:
		if v.Bool {
			return 1, true
		}
		return 0, true
	case node.TypeTime:
		return float64(v.Time.Unix()) + float64(v.Time.Nanosecond())/1e9, true
	case node.TypeString, node.TypeCorelnk:
		f, err := strconv.ParseFloat(strings.TrimSpace(v.Str), 64)
		return f, err == nil && !math.IsNaN(f)
	}
	return 0, false
}

// date reads a DATE: a TIME value, a number of seconds since 1970 (the
// LwM2M time), or text holding either or an ISO 8601 date and time
// (RFC 3339, "2024-05-01T12:00:00Z").
func date(v node.Value) (time.Time, bool) {
	switch v.Type {
	case node.TypeTime:
		return v.Time, true
	case node.TypeInteger:
		return time.Unix(v.Int, 0), true
	case node.TypeUnsignedInteger:
		if v.Uint > math.MaxInt64 {
			return time.Time{}, false
		}
		return time.Unix(int64(v.Uint), 0), true
	case node.TypeFloat:
		return secondsTime(v.Float)
	case node.TypeString, node.TypeCorelnk:
		return parseDate(v.Str)
	}
	return time.Time{}, false
}

func parseDate(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(i, 0), true
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, true
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return secondsTime(f)
	}
	return time.Time{}, false
}

// secondsTime turns fractional seconds since 1970 into a time; beyond
// what int64 seconds hold there is no date.
func secondsTime(f float64) (time.Time, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) || f >= math.MaxInt64 || f <= math.MinInt64 {
		return time.Time{}, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}

// link reads an OBJECTLINK as "objectId:instanceId" without leading
// zeros, so that "03:00" equals the link 3:0.
func link(v node.Value) (string, bool) {
	switch v.Type {
	case node.TypeObjlnk:
		return v.Link.String(), true
	case node.TypeString, node.TypeCorelnk:
		o, i, ok := strings.Cut(strings.TrimSpace(v.Str), ":")
		if !ok {
			return "", false
		}
		on, err1 := strconv.ParseUint(o, 10, 16)
		in, err2 := strconv.ParseUint(i, 10, 16)
		if err1 != nil || err2 != nil {
			return "", false
		}
		return node.ObjLink{Object: uint16(on), Instance: uint16(in)}.String(), true
	}
	return "", false
}

// constant turns a rule's constant (a string or a number, as JSON or the
// store gives it) into a value.
func constant(c any) (node.Value, error) {
	switch t := c.(type) {
	case string:
		return node.String(t), nil
	case float64:
		return node.Float(t), nil
	case float32:
		return node.Float(float64(t)), nil
	case int:
		return node.Int(int64(t)), nil
	case int32:
		return node.Int(int64(t)), nil
	case int64:
		return node.Int(t), nil
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return node.Int(i), nil
		}
		f, err := t.Float64()
		if err != nil {
			return node.Value{}, fmt.Errorf("value %q is not a number", t.String())
		}
		return node.Float(f), nil
	}
	return node.Value{}, fmt.Errorf("value %v (%T) is neither a string nor a number", c, c)
}

// StoredValue turns a last known value as the store keeps it (a plain Go
// value with its type's name, store.ResourceValue) back into a typed
// value; false when it cannot.
func StoredValue(rv store.ResourceValue) (node.Value, bool) {
	t := storedType(rv.Type)
	switch v := rv.Value.(type) {
	case nil:
		return node.Value{}, false
	case string:
		switch t {
		case node.TypeString, node.TypeCorelnk:
			return node.Value{Type: t, Str: v}, true
		case node.TypeOpaque, node.TypeNone:
			if b, err := hex.DecodeString(v); err == nil {
				return node.Opaque(b), true
			}
			return node.String(v), true
		}
		// A FLOAT kept as "NaN", an OBJLNK as "3:0", a TIME as text.
		if pv, err := node.ParseText(t, v); err == nil {
			return pv, true
		}
		return node.String(v), true
	case bool:
		return node.Bool(v), true
	case int64:
		return typedInt(t, v), true
	case int32:
		return typedInt(t, int64(v)), true
	case int:
		return typedInt(t, int64(v)), true
	case uint64:
		return node.Uint(v), true
	case float64:
		switch t {
		case node.TypeInteger:
			if v == math.Trunc(v) && math.Abs(v) < 1<<63 {
				return node.Int(int64(v)), true
			}
		case node.TypeUnsignedInteger:
			if v == math.Trunc(v) && v >= 0 && v < 1<<64 {
				return node.Uint(uint64(v)), true
			}
		}
		return node.Float(v), true
	case time.Time:
		return node.TimeValue(v), true
	case []byte:
		return node.Opaque(v), true
	}
	return node.Value{}, false
}

// storedType reads the type name the store keeps (node.Type.String());
// node.ParseType also takes the DDF spellings, at a cost paid per value.
func storedType(s string) node.Type {
	for t := node.TypeNone; t <= node.TypeCorelnk; t++ {
		if t.String() == s {
			return t
		}
	}
	if t, err := node.ParseType(s); err == nil {
		return t
	}
	return node.TypeNone
}

func typedInt(t node.Type, i int64) node.Value {
	switch t {
	case node.TypeUnsignedInteger:
		if i >= 0 {
			return node.Uint(uint64(i))
		}
	case node.TypeFloat:
		return node.Float(float64(i))
	case node.TypeTime:
		return node.TimeValue(time.Unix(i, 0).UTC())
	case node.TypeBoolean:
		return node.Bool(i != 0)
	}
	return node.Int(i)
}
