package mapping

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// Condition is a parsed raiseWhen expression over a resource's value:
// comparisons of `value` with numbers or quoted strings (> < >= <= == !=),
// joined by && and ||, negated by !, grouped by parentheses. A bare
// `value` holds when the value is true or a non-zero number.
type Condition struct{ root cond }

type cond interface {
	eval(v Scalar) bool
}

// Scalar is a value as conditions see it: a number when it is one (or a
// string holding one), else text.
type Scalar struct {
	Num   float64
	IsNum bool
	Text  string
}

// maxCondition bounds an expression; operators' configurations are short.
const maxCondition = 512

// ParseCondition parses a raiseWhen expression.
func ParseCondition(s string) (*Condition, error) {
	if len(s) > maxCondition {
		return nil, fmt.Errorf("longer than %d characters", maxCondition)
	}
	p := &condParser{src: s}
	if err := p.lex(); err != nil {
		return nil, err
	}
	c, err := p.or(0)
	if err != nil {
		return nil, err
	}
	if p.pos < len(p.toks) {
		return nil, fmt.Errorf("unexpected %q at %d", p.toks[p.pos].text, p.toks[p.pos].at+1)
	}
	return &Condition{root: c}, nil
}

// Holds evaluates the condition for v.
func (c *Condition) Holds(v Scalar) bool { return c.root.eval(v) }

type token struct {
	kind byte // 'v' value, 'n' number, 's' string, 'o' operator, '(' ')' '!'
	text string
	num  float64
	at   int
}

type condParser struct {
	src  string
	toks []token
	pos  int
}

var errDepth = errors.New("nested too deeply")

func (p *condParser) lex() error {
	s := p.src
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			i++
		case c == '(' || c == ')':
			p.toks = append(p.toks, token{kind: c, text: string(c), at: i})
			i++
		case strings.HasPrefix(s[i:], "&&") || strings.HasPrefix(s[i:], "||") || strings.HasPrefix(s[i:], ">=") ||
			strings.HasPrefix(s[i:], "<=") || strings.HasPrefix(s[i:], "==") || strings.HasPrefix(s[i:], "!="):
			p.toks = append(p.toks, token{kind: 'o', text: s[i : i+2], at: i})
			i += 2
		case c == '>' || c == '<':
			p.toks = append(p.toks, token{kind: 'o', text: string(c), at: i})
			i++
		case c == '!':
			p.toks = append(p.toks, token{kind: '!', text: "!", at: i})
			i++
		case c == '"' || c == '\'':
			j := strings.IndexByte(s[i+1:], c)
			if j < 0 {
				return fmt.Errorf("unterminated string at %d", i+1)
			}
			p.toks = append(p.toks, token{kind: 's', text: s[i+1 : i+1+j], at: i})
			i += j + 2
		case c == '-' || c == '.' || (c >= '0' && c <= '9'):
			j := i + 1
			for j < len(s) && (s[j] == '.' || s[j] == 'e' || s[j] == 'E' || (s[j] >= '0' && s[j] <= '9') ||
				((s[j] == '-' || s[j] == '+') && (s[j-1] == 'e' || s[j-1] == 'E'))) {
				j++
			}
			f, err := strconv.ParseFloat(s[i:j], 64)
			if err != nil {
				return fmt.Errorf("%q at %d is not a number", s[i:j], i+1)
			}
			p.toks = append(p.toks, token{kind: 'n', text: s[i:j], num: f, at: i})
			i = j
		case unicode.IsLetter(rune(c)):
			j := i
			for j < len(s) && (unicode.IsLetter(rune(s[j])) || unicode.IsDigit(rune(s[j])) || s[j] == '_') {
				j++
			}
			switch w := s[i:j]; w {
			case "value":
				p.toks = append(p.toks, token{kind: 'v', text: w, at: i})
			case "true", "false":
				n := 0.0
				if w == "true" {
					n = 1
				}
				p.toks = append(p.toks, token{kind: 'n', text: w, num: n, at: i})
			default:
				return fmt.Errorf("unknown name %q at %d (only value, numbers, strings, true and false)", w, i+1)
			}
			i = j
		default:
			return fmt.Errorf("unexpected %q at %d", c, i+1)
		}
	}
	if len(p.toks) == 0 {
		return errors.New("empty expression")
	}
	return nil
}

func (p *condParser) peek() (token, bool) {
	if p.pos < len(p.toks) {
		return p.toks[p.pos], true
	}
	return token{}, false
}

func (p *condParser) or(depth int) (cond, error) {
	l, err := p.and(depth)
	if err != nil {
		return nil, err
	}
	for t, ok := p.peek(); ok && t.text == "||"; t, ok = p.peek() {
		p.pos++
		r, err := p.and(depth)
		if err != nil {
			return nil, err
		}
		l = orCond{l, r}
	}
	return l, nil
}

func (p *condParser) and(depth int) (cond, error) {
	l, err := p.unary(depth)
	if err != nil {
		return nil, err
	}
	for t, ok := p.peek(); ok && t.text == "&&"; t, ok = p.peek() {
		p.pos++
		r, err := p.unary(depth)
		if err != nil {
			return nil, err
		}
		l = andCond{l, r}
	}
	return l, nil
}

func (p *condParser) unary(depth int) (cond, error) {
	if depth > 32 {
		return nil, errDepth
	}
	t, ok := p.peek()
	if !ok {
		return nil, errors.New("expression ends too early")
	}
	switch t.kind {
	case '!':
		p.pos++
		c, err := p.unary(depth + 1)
		if err != nil {
			return nil, err
		}
		return notCond{c}, nil
	case '(':
		p.pos++
		c, err := p.or(depth + 1)
		if err != nil {
			return nil, err
		}
		if t, ok := p.peek(); !ok || t.kind != ')' {
			return nil, fmt.Errorf("missing ) for ( at %d", t.at+1)
		}
		p.pos++
		return c, nil
	}
	l, err := p.operand()
	if err != nil {
		return nil, err
	}
	if op, ok := p.peek(); ok && op.kind == 'o' && op.text != "&&" && op.text != "||" {
		p.pos++
		r, err := p.operand()
		if err != nil {
			return nil, err
		}
		if l.kind != 'v' && r.kind != 'v' {
			return nil, fmt.Errorf("comparison at %d does not involve value", op.at+1)
		}
		return cmpCond{l: l, op: op.text, r: r}, nil
	}
	if l.kind != 'v' {
		return nil, fmt.Errorf("%q at %d is not a condition", l.text, l.at+1)
	}
	return truthCond{}, nil
}

func (p *condParser) operand() (token, error) {
	t, ok := p.peek()
	if !ok {
		return token{}, errors.New("expression ends too early")
	}
	if t.kind != 'v' && t.kind != 'n' && t.kind != 's' {
		return token{}, fmt.Errorf("unexpected %q at %d", t.text, t.at+1)
	}
	p.pos++
	return t, nil
}

type orCond struct{ l, r cond }
type andCond struct{ l, r cond }
type notCond struct{ c cond }
type truthCond struct{}
type cmpCond struct {
	l, r token
	op   string
}

func (c orCond) eval(v Scalar) bool  { return c.l.eval(v) || c.r.eval(v) }
func (c andCond) eval(v Scalar) bool { return c.l.eval(v) && c.r.eval(v) }
func (c notCond) eval(v Scalar) bool { return !c.c.eval(v) }
func (truthCond) eval(v Scalar) bool {
	if v.IsNum {
		return v.Num != 0
	}
	return v.Text == "true"
}

func (c cmpCond) eval(v Scalar) bool {
	side := func(t token) Scalar {
		switch t.kind {
		case 'v':
			return v
		case 'n':
			return Scalar{Num: t.num, IsNum: true, Text: t.text}
		}
		if f, err := strconv.ParseFloat(t.text, 64); err == nil {
			return Scalar{Num: f, IsNum: true, Text: t.text}
		}
		return Scalar{Text: t.text}
	}
	a, b := side(c.l), side(c.r)
	if a.IsNum && b.IsNum {
		return compare(a.Num, b.Num, c.op)
	}
	// text compares as text; a number against a word is never ordered
	if c.op == "==" || c.op == "!=" {
		return (a.Text == b.Text) == (c.op == "==")
	}
	if a.IsNum || b.IsNum {
		return false
	}
	return compare(float64(strings.Compare(a.Text, b.Text)), 0, c.op)
}

func compare(a, b float64, op string) bool {
	switch op {
	case ">":
		return a > b
	case "<":
		return a < b
	case ">=":
		return a >= b
	case "<=":
		return a <= b
	case "==":
		return a == b
	case "!=":
		return a != b
	}
	return false
}
