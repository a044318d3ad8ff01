package shell

import (
	"math"
	"slices"
	"strconv"
	"strings"
)

// Attributes are the notification attributes of a writeattr command
// (LwM2M Core 1.1, 5.1.2). A nil field was not given, which differs from a
// zero value. Unset lists the attributes given without a value ("pmin" or
// "pmin="), which tells the device to remove them.
type Attributes struct {
	PMin  *int64   // minimum period, seconds
	PMax  *int64   // maximum period, seconds
	GT    *float64 // greater than
	LT    *float64 // less than
	ST    *float64 // step
	EPMin *int64   // minimum evaluation period, seconds
	EPMax *int64   // maximum evaluation period, seconds
	// Cancel is the LwM2M 1.0 "cancel" attribute, which ends an observation.
	Cancel bool
	// Unset holds attribute names in the canonical order of AttributeNames.
	Unset []string
}

// AttributeNames are the attributes writeattr knows, in the order Query
// writes them.
var AttributeNames = []string{"pmin", "pmax", "gt", "lt", "st", "epmin", "epmax", "cancel"}

// IsZero reports whether no attribute is given.
func (a Attributes) IsZero() bool {
	return a.PMin == nil && a.PMax == nil && a.GT == nil && a.LT == nil && a.ST == nil &&
		a.EPMin == nil && a.EPMax == nil && !a.Cancel && len(a.Unset) == 0
}

// Query returns the attributes as CoAP Uri-Query options, one string each
// ("pmin=10", "gt=20.5", "st", "cancel"), in the order of AttributeNames.
func (a Attributes) Query() []string {
	var q []string
	for _, name := range AttributeNames {
		if name == "cancel" {
			if a.Cancel {
				q = append(q, "cancel")
			}
			continue
		}
		if v, ok := a.value(name); ok {
			q = append(q, name+"="+v)
		} else if slices.Contains(a.Unset, name) {
			q = append(q, name)
		}
	}
	return q
}

// value formats the named attribute if it is set.
func (a Attributes) value(name string) (string, bool) {
	if p := a.intField(name); p != nil && *p != nil {
		return strconv.FormatInt(**p, 10), true
	}
	if p := a.floatField(name); p != nil && *p != nil {
		return formatFloat(**p), true
	}
	return "", false
}

// formatFloat writes a float without an exponent, which some devices'
// query parsers do not accept.
func formatFloat(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

func (a *Attributes) intField(name string) **int64 {
	switch name {
	case "pmin":
		return &a.PMin
	case "pmax":
		return &a.PMax
	case "epmin":
		return &a.EPMin
	case "epmax":
		return &a.EPMax
	}
	return nil
}

func (a *Attributes) floatField(name string) **float64 {
	switch name {
	case "gt":
		return &a.GT
	case "lt":
		return &a.LT
	case "st":
		return &a.ST
	}
	return nil
}

// parseWriteAttr reads "writeattr PATH pmin=10&pmax=60".
func (c *Command) parseWriteAttr(rest string) *Error {
	q, err := c.parsePathThen(rest, 1, 4)
	if err != nil {
		return err
	}
	p := c.Paths[0]
	if q == "" {
		return errorf("writeattr %s: no attributes given; use %s, e.g. pmin=10&pmax=60", p, strings.Join(AttributeNames, ", "))
	}
	var a Attributes
	given := make(map[string]bool)
	for _, part := range strings.Split(q, "&") {
		part = strings.TrimSpace(part)
		if part == "" {
			return errorf("writeattr: empty attribute in %q (two '&' in a row, or one at an end)", clip(q))
		}
		name, val, hasVal := strings.Cut(part, "=")
		name, val = strings.ToLower(strings.TrimSpace(name)), strings.TrimSpace(val)
		if !slices.Contains(AttributeNames, name) {
			return errorf("writeattr: unknown attribute %q; the attributes are %s", clip(name), strings.Join(AttributeNames, ", "))
		}
		if given[name] {
			return errorf("writeattr: %s is given twice", name)
		}
		given[name] = true
		switch {
		case name == "cancel":
			if hasVal {
				return errorf("writeattr: cancel takes no value")
			}
			a.Cancel = true
		case val == "":
			a.Unset = append(a.Unset, name)
		case a.intField(name) != nil:
			n, perr := strconv.ParseInt(val, 10, 64)
			if perr != nil || n < 0 {
				return errorf("writeattr: %s %q is not a whole number of seconds from 0", name, clip(val))
			}
			*a.intField(name) = &n
		default:
			f, perr := strconv.ParseFloat(val, 64)
			if perr != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				return errorf("writeattr: %s %q is not a number", name, clip(val))
			}
			if name == "st" && f < 0 {
				return errorf("writeattr: st %s is negative; a step is 0 or more", val)
			}
			*a.floatField(name) = &f
		}
	}
	slices.SortFunc(a.Unset, func(x, y string) int {
		return slices.Index(AttributeNames, x) - slices.Index(AttributeNames, y)
	})
	if (a.GT != nil || a.LT != nil || a.ST != nil || slices.ContainsFunc(a.Unset, isValueAttr)) && p.Depth < 3 {
		return errorf("writeattr %s: gt, lt and st apply to a resource; %s", p, depthNeed(3, 4))
	}
	if a.PMin != nil && a.PMax != nil && *a.PMin > *a.PMax {
		return errorf("writeattr: pmin %d is above pmax %d", *a.PMin, *a.PMax)
	}
	if a.EPMin != nil && a.EPMax != nil && *a.EPMin > *a.EPMax {
		return errorf("writeattr: epmin %d is above epmax %d", *a.EPMin, *a.EPMax)
	}
	if a.LT != nil && a.GT != nil {
		if *a.LT >= *a.GT {
			return errorf("writeattr: lt %s must be below gt %s", formatFloat(*a.LT), formatFloat(*a.GT))
		}
		if a.ST != nil && *a.LT+2**a.ST >= *a.GT {
			return errorf("writeattr: lt + 2*st (%s + 2*%s) must be below gt %s", formatFloat(*a.LT), formatFloat(*a.ST), formatFloat(*a.GT))
		}
	}
	c.Attrs = a
	return nil
}

func isValueAttr(name string) bool { return name == "gt" || name == "lt" || name == "st" }
