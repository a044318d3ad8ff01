package simulator

import (
	"math"
	"strconv"
	"strings"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// attr names a notification attribute (Core TS 1.1, 5.1.2).
type attr uint8

const (
	attrPmin attr = iota
	attrPmax
	attrGt
	attrLt
	attrSt
	attrEpmin
	attrEpmax
	numAttrs
)

var attrNames = [numAttrs]string{"pmin", "pmax", "gt", "lt", "st", "epmin", "epmax"}

// attrs is the set of attributes attached to one path. Periods are whole
// seconds; gt, lt and st are numbers.
type attrs struct {
	set uint8 // bit per attr
	val [numAttrs]float64
}

func (a attrs) has(k attr) bool        { return a.set&(1<<k) != 0 }
func (a attrs) get(k attr) float64     { return a.val[k] }
func (a *attrs) put(k attr, v float64) { a.set |= 1 << k; a.val[k] = v }

// attrChange is what one Write-Attributes request asks for: attributes to
// set, attributes to remove (named without a value) and whether the
// request cancels observations (the LwM2M 1.0 "cancel" attribute).
type attrChange struct {
	set    attrs
	unset  uint8
	cancel bool
}

// parseAttrQueries parses the Uri-Query options of a Write-Attributes.
func parseAttrQueries(queries []string, p node.Path) (attrChange, error) {
	var c attrChange
	if len(queries) == 0 {
		return c, refuse(codes.BadRequest, "write-attributes without attributes")
	}
	for _, q := range queries {
		name, val, hasVal := strings.Cut(q, "=")
		if name == "cancel" {
			if hasVal {
				return c, refuse(codes.BadRequest, "cancel takes no value")
			}
			c.cancel = true
			continue
		}
		k := attr(0)
		for ; k < numAttrs; k++ {
			if attrNames[k] == name {
				break
			}
		}
		if k == numAttrs {
			return c, refuse(codes.BadRequest, "unknown attribute %q", name)
		}
		if !hasVal {
			c.unset |= 1 << k
			continue
		}
		switch k {
		case attrPmin, attrPmax, attrEpmin, attrEpmax:
			n, err := strconv.ParseUint(val, 10, 32)
			if err != nil {
				return c, refuse(codes.BadRequest, "%s=%q is not a number of seconds", name, val)
			}
			c.set.put(k, float64(n))
		default:
			if p.Depth < 3 {
				return c, refuse(codes.BadRequest, "%s applies to resources only, not %v", name, p)
			}
			f, err := strconv.ParseFloat(val, 64)
			if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				return c, refuse(codes.BadRequest, "%s=%q is not a number", name, val)
			}
			if k == attrSt && f < 0 {
				return c, refuse(codes.BadRequest, "st must not be negative")
			}
			c.set.put(k, f)
		}
	}
	return c, nil
}

// apply returns a with the change applied, checking the combination the
// specification requires (lt below gt, with room for 2*st between them).
func (c attrChange) apply(a attrs) (attrs, error) {
	a.set &^= c.unset
	for k := attr(0); k < numAttrs; k++ {
		if c.unset&(1<<k) != 0 {
			a.val[k] = 0
		}
		if c.set.has(k) {
			a.put(k, c.set.val[k])
		}
	}
	if a.has(attrLt) && a.has(attrGt) {
		st := 0.0
		if a.has(attrSt) {
			st = a.get(attrSt)
		}
		if a.get(attrLt)+2*st >= a.get(attrGt) {
			return a, refuse(codes.BadRequest, "lt + 2*st must be less than gt")
		}
	}
	return a, nil
}
