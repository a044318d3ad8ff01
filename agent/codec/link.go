package codec

import (
	"bytes"
	"strings"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// Link is one link of a CoRE link-format document (RFC 6690), as LwM2M
// Register and Update payloads and Discover answers carry them:
// </3/0>;ver=1.1.
type Link struct {
	// Target is the URI reference between < and >, as written.
	Target string
	// Attrs are the link parameters in the order they appeared.
	Attrs []LinkAttr
}

// LinkAttr is one link parameter. An attribute may have no value (";obs").
type LinkAttr struct {
	Key      string
	Value    string
	HasValue bool
	// Quoted records that the value was a quoted string, or holds
	// characters that need quotes, so that writing it back keeps quotes
	// that peers may expect (rt="oma.lwm2m").
	Quoted bool
}

// Attr returns the value of the first attribute named key.
func (l Link) Attr(key string) (string, bool) {
	for _, a := range l.Attrs {
		if a.Key == key {
			return a.Value, true
		}
	}
	return "", false
}

// Path parses the target as an LwM2M path below root, the alternate path
// a device may declare (</lwm2m>;rt="oma.lwm2m"); pass "" or "/" for none.
func (l Link) Path(root string) (node.Path, error) {
	t := l.Target
	if r := strings.TrimSuffix(root, "/"); r != "" {
		if !strings.HasPrefix(t, r+"/") && t != r {
			return node.Path{}, malformed("link %q lies outside root %q", t, root)
		}
		t = t[len(r):]
		if t == "" {
			t = "/"
		}
	}
	return node.ParsePath(t)
}

// maxLinks bounds the links of one document.
const maxLinks = MaxRecords

// ParseLinks parses a link-format document. It is liberal in what it
// accepts: whitespace around tokens, empty entries and trailing commas,
// quoted values holding commas and semicolons, attributes without values,
// and empty parameters (";;") which it drops.
func ParseLinks(b []byte) ([]Link, error) {
	p := linkParser{b: b}
	var links []Link
	for {
		p.skipSpaceAnd(',')
		if p.i >= len(p.b) {
			return links, nil
		}
		if len(links) >= maxLinks {
			return nil, malformed("link format: more than %d links", maxLinks)
		}
		l, err := p.link()
		if err != nil {
			return nil, err
		}
		links = append(links, l)
	}
}

type linkParser struct {
	b []byte
	i int
}

func isLinkSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func (p *linkParser) skipSpace() {
	for p.i < len(p.b) && isLinkSpace(p.b[p.i]) {
		p.i++
	}
}

func (p *linkParser) skipSpaceAnd(sep byte) {
	for p.i < len(p.b) && (isLinkSpace(p.b[p.i]) || p.b[p.i] == sep) {
		p.i++
	}
}

func (p *linkParser) link() (Link, error) {
	if p.b[p.i] != '<' {
		return Link{}, malformed("link format: expected '<' at offset %d", p.i)
	}
	end := bytes.IndexByte(p.b[p.i+1:], '>')
	if end < 0 {
		return Link{}, malformed("link format: unterminated '<' at offset %d", p.i)
	}
	l := Link{Target: strings.TrimSpace(string(p.b[p.i+1 : p.i+1+end]))}
	p.i += end + 2
	for {
		p.skipSpace()
		if p.i >= len(p.b) || p.b[p.i] == ',' {
			return l, nil
		}
		if p.b[p.i] != ';' {
			return Link{}, malformed("link format: expected ';' or ',' at offset %d", p.i)
		}
		p.i++
		p.skipSpace()
		start := p.i
		for p.i < len(p.b) && !isLinkSpace(p.b[p.i]) && p.b[p.i] != '=' && p.b[p.i] != ';' && p.b[p.i] != ',' {
			p.i++
		}
		a := LinkAttr{Key: string(p.b[start:p.i])}
		p.skipSpace()
		if p.i < len(p.b) && p.b[p.i] == '=' {
			p.i++
			p.skipSpace()
			a.HasValue = true
			if p.i < len(p.b) && p.b[p.i] == '"' {
				v, err := p.quoted()
				if err != nil {
					return Link{}, err
				}
				a.Value, a.Quoted = v, true
			} else {
				start := p.i
				for p.i < len(p.b) && !isLinkSpace(p.b[p.i]) && p.b[p.i] != ';' && p.b[p.i] != ',' {
					p.i++
				}
				a.Value = string(p.b[start:p.i])
				a.Quoted = needsQuotes(a.Value)
			}
		}
		if a.Key == "" {
			if a.HasValue {
				return Link{}, malformed("link format: value without a name at offset %d", start)
			}
			continue
		}
		l.Attrs = append(l.Attrs, a)
	}
}

// quoted reads a quoted-string with backslash escapes.
func (p *linkParser) quoted() (string, error) {
	start := p.i
	p.i++
	var sb strings.Builder
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch c {
		case '"':
			p.i++
			return sb.String(), nil
		case '\\':
			if p.i+1 >= len(p.b) {
				return "", malformed("link format: unterminated quoted string at offset %d", start)
			}
			sb.WriteByte(p.b[p.i+1])
			p.i += 2
		default:
			sb.WriteByte(c)
			p.i++
		}
	}
	return "", malformed("link format: unterminated quoted string at offset %d", start)
}

// isPtoken reports whether c may appear in an unquoted value (RFC 6690
// ptoken).
func isPtoken(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'()*+-./:<=>?@[]^_`{|}~", c) >= 0
}

func needsQuotes(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isPtoken(s[i]) {
			return true
		}
	}
	return false
}

// FormatLinks writes links in link format, comma separated without spaces.
func FormatLinks(links []Link) []byte {
	var b []byte
	for i, l := range links {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '<')
		b = append(b, l.Target...)
		b = append(b, '>')
		for _, a := range l.Attrs {
			b = append(b, ';')
			b = append(b, a.Key...)
			if !a.HasValue {
				continue
			}
			b = append(b, '=')
			if !a.Quoted && !needsQuotes(a.Value) {
				b = append(b, a.Value...)
				continue
			}
			b = append(b, '"')
			for j := 0; j < len(a.Value); j++ {
				if c := a.Value[j]; c == '"' || c == '\\' {
					b = append(b, '\\')
				}
				b = append(b, a.Value[j])
			}
			b = append(b, '"')
		}
	}
	return b
}

// decodeLinkValue reads a link-format payload as the value of a CORELNK
// resource. Register payloads and Discover answers are not values: parse
// those with ParseLinks.
func decodeLinkValue(base node.Path, payload []byte) ([]node.Record, error) {
	if base.Depth < 3 {
		return nil, unsupported(LinkFmt)
	}
	if _, err := ParseLinks(payload); err != nil {
		return nil, err
	}
	return []node.Record{{Path: base, Value: node.CoreLink(string(payload))}}, nil
}

func encodeLinkValue(base node.Path, recs []node.Record) ([]byte, error) {
	r, ok, err := single(base, recs, LinkFmt)
	if err != nil || !ok {
		return nil, err
	}
	if r.Value.Type != node.TypeCorelnk && r.Value.Type != node.TypeString {
		return nil, unsupported(LinkFmt)
	}
	return []byte(r.Value.Str), nil
}

// single returns the one record at base that single-value formats carry;
// ok is false for no records, which encode as an empty payload, as an
// empty payload decodes to none.
func single(base node.Path, recs []node.Record, f Format) (r node.Record, ok bool, err error) {
	if len(recs) == 0 {
		return node.Record{}, false, nil
	}
	if base.Depth < 3 || len(recs) != 1 || recs[0].Path != base {
		return node.Record{}, false, fmtUnsupported(f, "carries exactly one value, at the path written")
	}
	return recs[0], true, nil
}
