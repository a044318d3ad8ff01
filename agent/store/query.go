package store

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode"
)

// Query is a parsed inventory query: an engine-neutral tree that each
// engine renders in its own terms.
type Query struct {
	Where   *QueryNode // nil matches everything
	OrderBy []QueryOrder
}

// QueryKind is what a QueryNode says.
type QueryKind int

// The kinds of QueryNode, one per construct of the grammar.
const (
	QueryAnd     QueryKind = iota + 1 // every one of Nodes
	QueryOr                           // any one of Nodes
	QueryNot                          // not Nodes[0]
	QueryHas                          // Field exists (has())
	QueryCompare                      // Field Op Value
)

// QueryNode is one construct of a parsed filter. Field is the stored
// name, dotted into fragments: "id" is "seq", the object's number, which
// compares as one (ids are numbers; a string Value of an id is parsed).
type QueryNode struct {
	Kind  QueryKind
	Nodes []QueryNode
	Field string
	// Op is eq, ne, gt, ge, lt or le.
	Op string
	// Value is a string, int64, float64, bool or nil (null).
	Value any
	// Wildcard says that Value, a string, holds '*' wildcards, each
	// matching any run of characters but a newline (eq and ne only).
	Wildcard bool
}

// QueryOrder is one key of $orderby.
type QueryOrder struct {
	Field string // as QueryNode.Field
	Desc  bool
}

// WildcardPattern is the regular expression of a wildcard Value, as the
// MongoDB engine matches it ($regex): anchored, with every character
// but '*' literal.
func WildcardPattern(v string) string {
	parts := strings.Split(v, "*")
	for i := range parts {
		parts[i] = regexp.QuoteMeta(parts[i])
	}
	return "^" + strings.Join(parts, ".*") + "$"
}

// ParseQuery parses the supported subset of the Cumulocity inventory query
// language:
//
//	[$filter=](EXPR) [$orderby=FIELD [asc|desc][, ...]]
//	EXPR   = TERM {or TERM}
//	TERM   = FACTOR {and FACTOR}
//	FACTOR = (EXPR) | not(EXPR) | has(FIELD) | FIELD OP VALUE
//	OP     = eq | ne | gt | ge | lt | le
//	VALUE  = 'text' ('' is a quote; * in eq/ne is a wildcard) | number | true | false | null
//
// FIELD is a top-level member or a dotted path into a fragment
// (c8y_Availability.status). Keywords are case-insensitive. Errors wrap
// ErrInvalid and name the position.
func ParseQuery(s string) (Query, error) {
	s = strings.TrimSpace(s)
	var q Query
	filterPart := s
	if i := strings.Index(s, "$orderby="); i >= 0 {
		filterPart = strings.TrimSpace(s[:i])
		order, err := parseOrderBy(s[i+len("$orderby="):])
		if err != nil {
			return Query{}, err
		}
		q.OrderBy = order
	}
	filterPart = strings.TrimSpace(strings.TrimPrefix(filterPart, "$filter="))
	if filterPart == "" {
		return q, nil
	}
	p := &qparser{src: filterPart}
	p.next()
	f, err := p.expr()
	if err != nil {
		return Query{}, err
	}
	if p.tok.kind != tEOF {
		return Query{}, p.errf("unexpected %q", p.tok.text)
	}
	q.Where = &f
	return q, nil
}

func parseOrderBy(s string) ([]QueryOrder, error) {
	var order []QueryOrder
	for part := range strings.SplitSeq(s, ",") {
		fs := strings.Fields(part)
		if len(fs) == 0 || len(fs) > 2 || !validField(fs[0]) {
			return nil, fmt.Errorf("%w: query: $orderby %q: want FIELD [asc|desc]", ErrInvalid, strings.TrimSpace(part))
		}
		o := QueryOrder{Field: fieldName(fs[0])}
		if len(fs) == 2 {
			switch strings.ToLower(fs[1]) {
			case "asc":
			case "desc":
				o.Desc = true
			default:
				return nil, fmt.Errorf("%w: query: $orderby %q: direction is asc or desc", ErrInvalid, strings.TrimSpace(part))
			}
		}
		order = append(order, o)
	}
	return order, nil
}

var fieldRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$`)

// maxFieldSegment bounds each name of a field path, as the API bounds
// the fragment names it takes elsewhere: a longer one names nothing
// stored and only makes the filter larger.
const maxFieldSegment = 256

func validField(s string) bool {
	if !fieldRe.MatchString(s) {
		return false
	}
	for seg := range strings.SplitSeq(s, ".") {
		if len(seg) > maxFieldSegment {
			return false
		}
	}
	return true
}

// fieldName maps API names to stored ones.
func fieldName(s string) string {
	if s == "id" {
		return "seq"
	}
	return s
}

type tokKind int

const (
	tEOF tokKind = iota
	tIdent
	tString
	tNumber
	tLParen
	tRParen
)

type token struct {
	kind tokKind
	text string
	pos  int
}

type qparser struct {
	src string
	pos int
	tok token
	err error
}

func (p *qparser) errf(format string, a ...any) error {
	return fmt.Errorf("%w: query at %d: %s", ErrInvalid, p.tok.pos+1, fmt.Sprintf(format, a...))
}

func (p *qparser) next() {
	for p.pos < len(p.src) && p.src[p.pos] == ' ' {
		p.pos++
	}
	start := p.pos
	if p.pos >= len(p.src) {
		p.tok = token{kind: tEOF, pos: start}
		return
	}
	c := p.src[p.pos]
	switch {
	case c == '(':
		p.pos++
		p.tok = token{tLParen, "(", start}
	case c == ')':
		p.pos++
		p.tok = token{tRParen, ")", start}
	case c == '\'':
		var b strings.Builder
		p.pos++
		for {
			if p.pos >= len(p.src) {
				p.tok = token{kind: tEOF, pos: start}
				p.err = fmt.Errorf("%w: query at %d: unterminated string", ErrInvalid, start+1)
				return
			}
			if p.src[p.pos] == '\'' {
				if p.pos+1 < len(p.src) && p.src[p.pos+1] == '\'' {
					b.WriteByte('\'')
					p.pos += 2
					continue
				}
				p.pos++
				break
			}
			b.WriteByte(p.src[p.pos])
			p.pos++
		}
		p.tok = token{tString, b.String(), start}
	default:
		for p.pos < len(p.src) {
			r := rune(p.src[p.pos])
			if r == ' ' || r == '(' || r == ')' || r == '\'' || unicode.IsControl(r) {
				break
			}
			p.pos++
		}
		text := p.src[start:p.pos]
		kind := tIdent
		if _, err := strconv.ParseFloat(text, 64); err == nil {
			kind = tNumber
		}
		p.tok = token{kind, text, start}
	}
}

func (p *qparser) keyword(k string) bool {
	return p.tok.kind == tIdent && strings.EqualFold(p.tok.text, k)
}

func (p *qparser) expr() (QueryNode, error) {
	first, err := p.term()
	if err != nil {
		return QueryNode{}, err
	}
	alts := []QueryNode{first}
	for p.keyword("or") {
		p.next()
		t, err := p.term()
		if err != nil {
			return QueryNode{}, err
		}
		alts = append(alts, t)
	}
	if len(alts) == 1 {
		return first, nil
	}
	return QueryNode{Kind: QueryOr, Nodes: alts}, nil
}

func (p *qparser) term() (QueryNode, error) {
	first, err := p.factor()
	if err != nil {
		return QueryNode{}, err
	}
	all := []QueryNode{first}
	for p.keyword("and") {
		p.next()
		f, err := p.factor()
		if err != nil {
			return QueryNode{}, err
		}
		all = append(all, f)
	}
	if len(all) == 1 {
		return first, nil
	}
	return QueryNode{Kind: QueryAnd, Nodes: all}, nil
}

func (p *qparser) paren() (QueryNode, error) {
	if p.tok.kind != tLParen {
		return QueryNode{}, p.errf("expected '('")
	}
	p.next()
	e, err := p.expr()
	if err != nil {
		return QueryNode{}, err
	}
	if p.err != nil {
		return QueryNode{}, p.err
	}
	if p.tok.kind != tRParen {
		return QueryNode{}, p.errf("expected ')'")
	}
	p.next()
	return e, nil
}

func (p *qparser) factor() (QueryNode, error) {
	if p.err != nil {
		return QueryNode{}, p.err
	}
	switch {
	case p.tok.kind == tLParen:
		return p.paren()
	case p.keyword("not"):
		p.next()
		e, err := p.paren()
		if err != nil {
			return QueryNode{}, err
		}
		return QueryNode{Kind: QueryNot, Nodes: []QueryNode{e}}, nil
	case p.keyword("has"):
		p.next()
		if p.tok.kind != tLParen {
			return QueryNode{}, p.errf("expected '(' after has")
		}
		p.next()
		if p.tok.kind != tIdent || !validField(p.tok.text) {
			return QueryNode{}, p.errf("has() needs a fragment name")
		}
		f := p.tok.text
		p.next()
		if p.tok.kind != tRParen {
			return QueryNode{}, p.errf("expected ')'")
		}
		p.next()
		return QueryNode{Kind: QueryHas, Field: fieldName(f)}, nil
	case p.tok.kind == tIdent:
		if !validField(p.tok.text) {
			return QueryNode{}, p.errf("%q is not a field name", p.tok.text)
		}
		n := QueryNode{Kind: QueryCompare, Field: fieldName(p.tok.text)}
		p.next()
		if p.tok.kind != tIdent {
			return QueryNode{}, p.errf("expected an operator (eq, ne, gt, ge, lt, le) after %s", n.Field)
		}
		n.Op = strings.ToLower(p.tok.text)
		switch n.Op {
		case "eq", "ne", "gt", "ge", "lt", "le":
		default:
			return QueryNode{}, p.errf("unknown operator %q (eq, ne, gt, ge, lt, le)", p.tok.text)
		}
		p.next()
		if p.err != nil {
			return QueryNode{}, p.err
		}
		switch {
		case p.tok.kind == tString:
			n.Value = p.tok.text
			if n.Field == "seq" { // ids are compared as numbers
				id, err := strconv.ParseInt(p.tok.text, 10, 64)
				if err != nil {
					return QueryNode{}, p.errf("id %q is not a number", p.tok.text)
				}
				n.Value = id
			} else if strings.Contains(p.tok.text, "*") && (n.Op == "eq" || n.Op == "ne") {
				n.Wildcard = true
			}
		case p.tok.kind == tNumber:
			if i, err := strconv.ParseInt(p.tok.text, 10, 64); err == nil {
				n.Value = i
			} else {
				f, _ := strconv.ParseFloat(p.tok.text, 64)
				n.Value = f
			}
		case p.keyword("true"):
			n.Value = true
		case p.keyword("false"):
			n.Value = false
		case p.keyword("null"):
			n.Value = nil
		default:
			return QueryNode{}, p.errf("expected a value ('text', number, true, false or null) after %s %s", n.Field, n.Op)
		}
		p.next()
		return n, nil
	case p.tok.kind == tEOF:
		return QueryNode{}, p.errf("unexpected end")
	}
	return QueryNode{}, p.errf("unexpected %q", p.tok.text)
}
