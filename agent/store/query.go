package store

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Query is a parsed inventory query.
type Query struct {
	Filter bson.D // nil matches everything
	Sort   bson.D
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
		sort, err := parseOrderBy(s[i+len("$orderby="):])
		if err != nil {
			return Query{}, err
		}
		q.Sort = sort
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
	q.Filter = f
	return q, nil
}

func parseOrderBy(s string) (bson.D, error) {
	var d bson.D
	for part := range strings.SplitSeq(s, ",") {
		fs := strings.Fields(part)
		if len(fs) == 0 || len(fs) > 2 || !validField(fs[0]) {
			return nil, fmt.Errorf("%w: query: $orderby %q: want FIELD [asc|desc]", ErrInvalid, strings.TrimSpace(part))
		}
		dir := 1
		if len(fs) == 2 {
			switch strings.ToLower(fs[1]) {
			case "asc":
			case "desc":
				dir = -1
			default:
				return nil, fmt.Errorf("%w: query: $orderby %q: direction is asc or desc", ErrInvalid, strings.TrimSpace(part))
			}
		}
		d = append(d, bson.E{Key: fieldName(fs[0]), Value: dir})
	}
	return d, nil
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

func (p *qparser) expr() (bson.D, error) {
	first, err := p.term()
	if err != nil {
		return nil, err
	}
	alts := bson.A{first}
	for p.keyword("or") {
		p.next()
		t, err := p.term()
		if err != nil {
			return nil, err
		}
		alts = append(alts, t)
	}
	if len(alts) == 1 {
		return first, nil
	}
	return bson.D{{Key: "$or", Value: alts}}, nil
}

func (p *qparser) term() (bson.D, error) {
	first, err := p.factor()
	if err != nil {
		return nil, err
	}
	all := bson.A{first}
	for p.keyword("and") {
		p.next()
		f, err := p.factor()
		if err != nil {
			return nil, err
		}
		all = append(all, f)
	}
	if len(all) == 1 {
		return first, nil
	}
	return bson.D{{Key: "$and", Value: all}}, nil
}

func (p *qparser) paren() (bson.D, error) {
	if p.tok.kind != tLParen {
		return nil, p.errf("expected '('")
	}
	p.next()
	e, err := p.expr()
	if err != nil {
		return nil, err
	}
	if p.err != nil {
		return nil, p.err
	}
	if p.tok.kind != tRParen {
		return nil, p.errf("expected ')'")
	}
	p.next()
	return e, nil
}

func (p *qparser) factor() (bson.D, error) {
	if p.err != nil {
		return nil, p.err
	}
	switch {
	case p.tok.kind == tLParen:
		return p.paren()
	case p.keyword("not"):
		p.next()
		e, err := p.paren()
		if err != nil {
			return nil, err
		}
		return bson.D{{Key: "$nor", Value: bson.A{e}}}, nil
	case p.keyword("has"):
		p.next()
		if p.tok.kind != tLParen {
			return nil, p.errf("expected '(' after has")
		}
		p.next()
		if p.tok.kind != tIdent || !validField(p.tok.text) {
			return nil, p.errf("has() needs a fragment name")
		}
		f := p.tok.text
		p.next()
		if p.tok.kind != tRParen {
			return nil, p.errf("expected ')'")
		}
		p.next()
		return bson.D{{Key: fieldName(f), Value: bson.D{{Key: "$exists", Value: true}}}}, nil
	case p.tok.kind == tIdent:
		if !validField(p.tok.text) {
			return nil, p.errf("%q is not a field name", p.tok.text)
		}
		field := fieldName(p.tok.text)
		p.next()
		if p.tok.kind != tIdent {
			return nil, p.errf("expected an operator (eq, ne, gt, ge, lt, le) after %s", field)
		}
		op := strings.ToLower(p.tok.text)
		mop, ok := map[string]string{"eq": "$eq", "ne": "$ne", "gt": "$gt", "ge": "$gte", "lt": "$lt", "le": "$lte"}[op]
		if !ok {
			return nil, p.errf("unknown operator %q (eq, ne, gt, ge, lt, le)", p.tok.text)
		}
		p.next()
		if p.err != nil {
			return nil, p.err
		}
		var v any
		switch {
		case p.tok.kind == tString:
			v = p.tok.text
			if field == "seq" { // ids are compared as numbers
				n, err := strconv.ParseInt(p.tok.text, 10, 64)
				if err != nil {
					return nil, p.errf("id %q is not a number", p.tok.text)
				}
				v = n
			} else if strings.Contains(p.tok.text, "*") && (op == "eq" || op == "ne") {
				parts := strings.Split(p.tok.text, "*")
				for i := range parts {
					parts[i] = regexp.QuoteMeta(parts[i])
				}
				v = bson.Regex{Pattern: "^" + strings.Join(parts, ".*") + "$"}
				if op == "ne" {
					mop = "$not"
				} else {
					mop = "$regex"
					v = v.(bson.Regex).Pattern
				}
			}
		case p.tok.kind == tNumber:
			if n, err := strconv.ParseInt(p.tok.text, 10, 64); err == nil {
				v = n
			} else {
				f, _ := strconv.ParseFloat(p.tok.text, 64)
				v = f
			}
		case p.keyword("true"):
			v = true
		case p.keyword("false"):
			v = false
		case p.keyword("null"):
			v = nil
		default:
			return nil, p.errf("expected a value ('text', number, true, false or null) after %s %s", field, op)
		}
		p.next()
		return bson.D{{Key: field, Value: bson.D{{Key: mop, Value: v}}}}, nil
	case p.tok.kind == tEOF:
		return nil, p.errf("unexpected end")
	}
	return nil, p.errf("unexpected %q", p.tok.text)
}
