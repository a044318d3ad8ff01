// Package validation checks the values written to devices against the
// validation rules of their resources' device protocols (API.md,
// "LWM2M-specific resources"): a list of groups of rules, valid when every
// rule of at least one group holds (disjunctive normal form).
//
// A resource's rules are compiled once into expr programs (one for the
// whole ruleset, which decides, and one per rule, which explains a refusal)
// and kept in a bounded cache keyed by tenant, object, resource and a hash
// of the rules, so that changed rules are compiled again on their first
// use. Checking a value runs one program; only a refused value runs the
// per-rule ones, to name every rule that failed.
//
// It runs inside the agent, before an operation is stored: a write that
// fails validation is refused and never reaches the device.
package validation

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// env is what the programs see: V, the written value, and R, the last
// known values of the resources the rules name, in Ruleset.Refs order.
type env struct {
	V operand
	R []operand
}

// rule is one compiled rule.
type rule struct {
	src     store.ValidationRule
	desc    string // `STRING EQUALS_NOT "test"`
	view    views
	ref     int // index into env.R, or -1 for a constant
	refPath node.Path
	prog    *vm.Program
}

// Ruleset is the compiled validation rules of one resource. It is safe for
// concurrent use.
type Ruleset struct {
	groups [][]rule
	prog   *vm.Program
	refs   []node.Path
	want   views // readings of the written value the rules compare
	refWnt []views
}

// A run's VM and environment are reused: the VM keeps its stack between
// runs and the environment its slice of references, which saves the
// allocations that would otherwise cost more than the comparison.
type runState struct {
	vm  vm.VM
	env env
}

var states = sync.Pool{New: func() any { return &runState{} }}

// Compile compiles rules. Rules that pass store.ValidationRules.Check
// compile; an error names the rule at fault.
func Compile(rules store.ValidationRules) (*Ruleset, error) {
	if err := rules.Check(); err != nil {
		return nil, err
	}
	rs := &Ruleset{groups: make([][]rule, len(rules.Groups))}
	refIdx := map[node.Path]int{}
	var consts []ast.Node
	var dnf []string
	for g, group := range rules.Groups {
		var conj []string
		for i, src := range group {
			r := rule{src: src, view: viewOf(src.Type), ref: -1, desc: describe(src)}
			rs.want |= r.view
			var right string
			if src.Resource != "" {
				p, err := node.ParsePath(src.Resource)
				if err != nil {
					return nil, fmt.Errorf("groups[%d][%d].resource: %w", g, i, err)
				}
				k, ok := refIdx[p]
				if !ok {
					k = len(rs.refs)
					refIdx[p] = k
					rs.refs = append(rs.refs, p)
					rs.refWnt = append(rs.refWnt, 0)
				}
				rs.refWnt[k] |= r.view
				r.ref, r.refPath = k, p
				right = "R[" + strconv.Itoa(k) + "]"
			} else {
				c, err := constNode(src)
				if err != nil {
					return nil, fmt.Errorf("groups[%d][%d].value: %w", g, i, err)
				}
				right = "c" + strconv.Itoa(len(consts))
				consts = append(consts, c)
			}
			cond := condition(src, right)
			prog, err := compile(cond, consts)
			if err != nil {
				return nil, fmt.Errorf("groups[%d][%d]: %w", g, i, err)
			}
			r.prog = prog
			rs.groups[g] = append(rs.groups[g], r)
			conj = append(conj, "("+cond+")")
		}
		dnf = append(dnf, "("+strings.Join(conj, " && ")+")")
	}
	if len(dnf) == 0 {
		dnf = []string{"true"}
	}
	prog, err := compile(strings.Join(dnf, " || "), consts)
	if err != nil {
		return nil, err
	}
	rs.prog = prog
	return rs, nil
}

// condition is the expression of one rule; right is "cN" (a constant the
// patcher puts in) or "R[k]" (a referenced resource's operand).
func condition(r store.ValidationRule, right string) string {
	field, guard := "Text", ""
	switch r.Type {
	case store.RuleTypeNumber:
		field, guard = "Num", "IsNum"
	case store.RuleTypeDate:
		field, guard = "Date", "IsDate"
	case store.RuleTypeObjectLink:
		field, guard = "Link", "IsLink"
	}
	left := "V." + field
	rhs := right
	var guards []string
	if guard != "" {
		guards = append(guards, "V."+guard)
	}
	if strings.HasPrefix(right, "R[") {
		rhs = right + "." + field
		if guard != "" {
			guards = append(guards, right+"."+guard)
		} else {
			guards = append(guards, right+".Known")
		}
	}
	var cmp string
	if r.Type == store.RuleTypeRegex {
		cmp = left + " matches " + rhs
		if r.Rule == store.RuleEqualsNot {
			cmp = "not (" + cmp + ")"
		}
	} else {
		cmp = left + " " + operators[r.Rule] + " " + rhs
	}
	return strings.Join(append(guards, cmp), " && ")
}

var operators = map[string]string{
	store.RuleEquals:          "==",
	store.RuleEqualsNot:       "!=",
	store.RuleGreaterThan:     ">",
	store.RuleLowerThan:       "<",
	store.RuleGreaterOrEquals: ">=",
	store.RuleLowerOrEquals:   "<=",
}

// constNode is a rule's constant as a literal of the program, read as the
// rule's type reads it. Constants go into the tree, never into the source
// text, so no quoting can change an expression's meaning; a REGEX
// constant as a literal is compiled once, with the program.
func constNode(r store.ValidationRule) (ast.Node, error) {
	v, err := constant(r.Value)
	if err != nil {
		return nil, err
	}
	o := newOperand(v, viewOf(r.Type))
	switch r.Type {
	case store.RuleTypeNumber:
		if !o.IsNum {
			return nil, fmt.Errorf("%q is not a number", o.Text)
		}
		return &ast.FloatNode{Value: o.Num}, nil
	case store.RuleTypeDate:
		if !o.IsDate {
			return nil, fmt.Errorf("%q is not a date", text(v))
		}
		return &ast.ConstantNode{Value: o.Date}, nil
	case store.RuleTypeObjectLink:
		if !o.IsLink {
			return nil, fmt.Errorf("%q is not an object link objectId:instanceId", text(v))
		}
		return &ast.StringNode{Value: o.Link}, nil
	case store.RuleTypeRegex:
		// The pattern matches the whole value, as Java's String.matches
		// does for the same rules elsewhere: ".*asd$" and "asd" differ.
		pat := "^(?:" + o.Text + ")$"
		if _, err := regexp.Compile(pat); err != nil {
			return nil, fmt.Errorf("pattern %q: %w", o.Text, err)
		}
		return &ast.StringNode{Value: pat}, nil
	}
	return &ast.StringNode{Value: o.Text}, nil
}

// constants puts the rules' constants in place of the identifiers c0, c1,
// ... of the source.
type constants []ast.Node

func (c constants) Visit(n *ast.Node) {
	id, ok := (*n).(*ast.IdentifierNode)
	if !ok || len(id.Value) < 2 || id.Value[0] != 'c' {
		return
	}
	i, err := strconv.Atoi(id.Value[1:])
	if err != nil || i < 0 || i >= len(c) {
		return
	}
	ast.Patch(n, copyNode(c[i]))
}

// copyNode gives each use its own node: the checker annotates nodes in
// place, and a program's tree is not shared.
func copyNode(n ast.Node) ast.Node {
	switch t := n.(type) {
	case *ast.FloatNode:
		return &ast.FloatNode{Value: t.Value}
	case *ast.StringNode:
		return &ast.StringNode{Value: t.Value}
	case *ast.ConstantNode:
		return &ast.ConstantNode{Value: t.Value}
	}
	return n
}

func compile(src string, consts []ast.Node) (*vm.Program, error) {
	return expr.Compile(src, expr.Env(env{}), expr.AsBool(), expr.Patch(constants(consts)))
}

// describe writes a rule as error messages name it: TYPE RULE value, a
// string constant quoted, a resource as "resource /3/0/15".
func describe(r store.ValidationRule) string {
	var v string
	switch c := r.Value.(type) {
	case nil:
		v = "resource " + r.Resource
	case string:
		v = strconv.Quote(c)
	case float64:
		// as the user wrote it: 1700000000, not 1.7e+09
		if math.Abs(c) < 1e21 {
			v = strconv.FormatFloat(c, 'f', -1, 64)
		} else {
			v = strconv.FormatFloat(c, 'g', -1, 64)
		}
	default:
		v = fmt.Sprint(c)
	}
	return r.Type + " " + r.Rule + " " + v
}

// Refs lists the resources whose last known values the rules compare;
// Check's lookup is asked for these.
func (rs *Ruleset) Refs() []node.Path { return rs.refs }

// Lookup answers the last known value of another resource of the same
// device; false when there is none.
type Lookup func(node.Path) (node.Value, bool)

// Check checks a value written to path p. It returns nil when the value
// is valid, a *Failure naming every rule that failed in every group when
// it is not, and another error only when a program cannot run (a defect).
// lookup may be nil when Refs is empty.
func (rs *Ruleset) Check(p node.Path, v node.Value, lookup Lookup) error {
	st := states.Get().(*runState)
	defer states.Put(st)
	e := &st.env
	e.V = newOperand(v, rs.want)
	e.R = e.R[:0]
	for k, rp := range rs.refs {
		var o operand
		if lookup != nil {
			if rv, ok := lookup(rp); ok {
				o = newOperand(rv, rs.refWnt[k])
			}
		}
		e.R = append(e.R, o)
	}
	ok, err := run(&st.vm, rs.prog, e)
	if err != nil {
		return fmt.Errorf("validation of %s: %w", p, err)
	}
	if ok {
		return nil
	}
	f := &Failure{Path: p, Value: v}
	for g, group := range rs.groups {
		var failed []string
		for _, r := range group {
			ok, err := run(&st.vm, r.prog, e)
			if err != nil {
				return fmt.Errorf("validation of %s: %s: %w", p, r.desc, err)
			}
			if !ok {
				failed = append(failed, r.desc+r.reason(v, e))
			}
		}
		f.Groups = append(f.Groups, GroupFailure{Group: g + 1, Rules: failed})
	}
	return f
}

func run(m *vm.VM, prog *vm.Program, e *env) (bool, error) {
	out, err := m.Run(prog, e)
	if err != nil {
		return false, err
	}
	b, ok := out.(bool)
	if !ok {
		return false, fmt.Errorf("program answered %T, not bool", out)
	}
	return b, nil
}

// reason says why a rule could not compare at all, "" when it compared
// and the comparison was false.
func (r rule) reason(v node.Value, e *env) string {
	name := map[views]string{viewNum: "a number", viewDate: "a date", viewLink: "an object link"}[r.view]
	if name != "" && !readable(e.V, r.view) {
		return fmt.Sprintf(" (%q is not %s)", text(v), name)
	}
	if r.ref < 0 {
		return ""
	}
	ro := e.R[r.ref]
	if !ro.Known {
		return fmt.Sprintf(" (no last known value of %s)", r.refPath)
	}
	if name != "" && !readable(ro, r.view) {
		return fmt.Sprintf(" (the last known value of %s is not %s)", r.refPath, name)
	}
	return ""
}

func readable(o operand, v views) bool {
	switch v {
	case viewNum:
		return o.IsNum
	case viewDate:
		return o.IsDate
	case viewLink:
		return o.IsLink
	}
	return true
}

// Failure is a value that failed validation: every group had a rule that
// did not hold.
type Failure struct {
	Path   node.Path
	Value  node.Value
	Groups []GroupFailure
}

// GroupFailure lists the rules of one group (numbered from 1) that did not
// hold, as "TYPE RULE value", with the reason where a rule could not
// compare at all.
type GroupFailure struct {
	Group int
	Rules []string
}

// Error reads `validation of /3/0/15 failed: group 1: STRING EQUALS_NOT
// "test"; group 2: REGEX EQUALS ".*asd$"`.
func (f *Failure) Error() string {
	var b strings.Builder
	b.WriteString("validation of " + f.Path.String() + " failed: ")
	for i, g := range f.Groups {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString("group " + strconv.Itoa(g.Group) + ": " + strings.Join(g.Rules, ", "))
	}
	return b.String()
}

// IsFailure reports whether err is (or wraps) a validation failure, which
// the API answers with 422.
func IsFailure(err error) bool {
	var f *Failure
	return errors.As(err, &f)
}
