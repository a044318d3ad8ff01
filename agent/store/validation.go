package store

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// ValidationRules are the validation rules of a writable resource, in the
// shape of API.md: a list of groups, and a value is valid if every rule of
// at least one group holds (disjunctive normal form). The store checks
// their shape (Check); evaluating them against a value is the job of the
// layer that writes to devices.
type ValidationRules struct {
	Groups [][]ValidationRule `json:"groups" bson:"groups"`
}

// ValidationRule is one comparison. Exactly one of Value (a constant: a
// string or a number) and Resource (the path of another resource of the
// same device, whose last known value is compared) is set.
type ValidationRule struct {
	Type     string `json:"type" bson:"type"`
	Rule     string `json:"rule" bson:"rule"`
	Value    any    `json:"value,omitempty" bson:"value,omitempty"`
	Resource string `json:"resource,omitempty" bson:"resource,omitempty"`
}

// Validation rule types and comparisons (API.md).
const (
	RuleTypeString     = "STRING"
	RuleTypeNumber     = "NUMBER"
	RuleTypeDate       = "DATE"
	RuleTypeObjectLink = "OBJECTLINK"
	RuleTypeRegex      = "REGEX"

	RuleEquals          = "EQUALS"
	RuleEqualsNot       = "EQUALS_NOT"
	RuleGreaterThan     = "GREATER_THAN"
	RuleLowerThan       = "LOWER_THAN"
	RuleGreaterOrEquals = "GREATER_OR_EQUALS"
	RuleLowerOrEquals   = "LOWER_OR_EQUALS"
)

// Bounds of one resource's rules: enough for any real check, small enough
// that evaluating them per write stays cheap.
const (
	MaxValidationGroups = 32
	MaxValidationRules  = 32 // per group
	MaxRuleValueLen     = 1024
)

var (
	equality = []string{RuleEquals, RuleEqualsNot}
	ordering = []string{RuleEquals, RuleEqualsNot, RuleGreaterThan, RuleLowerThan, RuleGreaterOrEquals, RuleLowerOrEquals}

	// rulesOf lists the comparisons that make sense per type: strings,
	// object links and patterns are equal or not (REGEX EQUALS means
	// "matches"); numbers and dates are also ordered.
	rulesOf = map[string][]string{
		RuleTypeString:     equality,
		RuleTypeObjectLink: equality,
		RuleTypeRegex:      equality,
		RuleTypeNumber:     ordering,
		RuleTypeDate:       ordering,
	}
	ruleTypes = []string{RuleTypeString, RuleTypeNumber, RuleTypeDate, RuleTypeObjectLink, RuleTypeRegex}

	objectLinkRe = regexp.MustCompile(`^\d{1,5}:\d{1,5}$`)
)

// Empty reports whether there are no rules: storing them removes the
// resource's validation.
func (v ValidationRules) Empty() bool { return len(v.Groups) == 0 }

// Check reports every problem of the rules' shape together, each named by
// its place (groups[1][0].value), wrapping ErrInvalid. A REGEX must
// compile; a DATE constant must be an ISO 8601 date or a number of seconds
// since 1970; a NUMBER constant a number (or a string holding one); an
// OBJECTLINK constant "objectId:instanceId"; a resource a path
// /objectId/instanceId/resourceId.
func (v ValidationRules) Check() error {
	var errs []string
	if len(v.Groups) > MaxValidationGroups {
		errs = append(errs, fmt.Sprintf("%d groups, at most %d", len(v.Groups), MaxValidationGroups))
	}
	for g, group := range v.Groups {
		if len(group) == 0 {
			errs = append(errs, fmt.Sprintf("groups[%d] is empty; a group holds at least one rule", g))
		}
		if len(group) > MaxValidationRules {
			errs = append(errs, fmt.Sprintf("groups[%d] has %d rules, at most %d", g, len(group), MaxValidationRules))
			continue
		}
		for i, r := range group {
			if err := r.check(); err != nil {
				errs = append(errs, fmt.Sprintf("groups[%d][%d].%v", g, i, err))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: validation rules: %s", ErrInvalid, strings.Join(errs, "; "))
	}
	return nil
}

func (r ValidationRule) check() error {
	allowed, ok := rulesOf[r.Type]
	if !ok {
		return fmt.Errorf("type %q is not one of %s", r.Type, strings.Join(ruleTypes, ", "))
	}
	if !slices.Contains(allowed, r.Rule) {
		return fmt.Errorf("rule %q does not apply to type %s; use %s", r.Rule, r.Type, strings.Join(allowed, ", "))
	}
	if (r.Value == nil) == (r.Resource == "") {
		return errors.New("value: give either a constant value or a resource, not both or neither")
	}
	if r.Resource != "" {
		if r.Type == RuleTypeRegex {
			return errors.New("resource: a REGEX rule needs a constant pattern as value")
		}
		p, err := node.ParsePath(r.Resource)
		if err != nil || p.Depth < 3 {
			return fmt.Errorf("resource %q is not a resource path /objectId/instanceId/resourceId", r.Resource)
		}
		return nil
	}
	switch v := r.Value.(type) {
	case string:
		if len(v) > MaxRuleValueLen {
			return fmt.Errorf("value is longer than %d bytes", MaxRuleValueLen)
		}
		switch r.Type {
		case RuleTypeNumber:
			if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err != nil || math.IsNaN(f) {
				return fmt.Errorf("value %q is not a number", v)
			}
		case RuleTypeDate:
			if _, err := time.Parse(time.RFC3339Nano, v); err != nil {
				return fmt.Errorf("value %q is not an ISO 8601 date (2024-05-01T12:00:00Z)", v)
			}
		case RuleTypeObjectLink:
			if !validObjectLink(v) {
				return fmt.Errorf("value %q is not an object link objectId:instanceId", v)
			}
		case RuleTypeRegex:
			if _, err := regexp.Compile(v); err != nil {
				return fmt.Errorf("value %q does not compile: %v", v, err)
			}
		}
	case float64, int32, int64, int:
		if r.Type != RuleTypeNumber && r.Type != RuleTypeDate {
			return fmt.Errorf("value %v is a number; a %s rule compares with a string", v, r.Type)
		}
		if f, ok := v.(float64); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
			return fmt.Errorf("value %v is not a finite number", v)
		}
	default:
		return fmt.Errorf("value %v is neither a string nor a number", v)
	}
	return nil
}

func validObjectLink(s string) bool {
	if !objectLinkRe.MatchString(s) {
		return false
	}
	o, i, _ := strings.Cut(s, ":")
	on, _ := strconv.Atoi(o)
	in, _ := strconv.Atoi(i)
	return on <= 65535 && in <= 65535
}
