package message

import (
	"bytes"
	"strings"
)

// Limits that keep hostile input cheap. Deeper or further parts are not
// split: they become opaque text/plain leaves.
const (
	MaxDepth = 100   // nesting of multipart and message/rfc822 parts
	MaxParts = 10000 // parts per message
)

// node is a Part plus what the IMAP encodings need; it only lives during
// Parse.
type node struct {
	p        *Part
	hdr      []field
	typ, sub string // as sent, or the defaults
	params   []param
	enc      string // as sent, trimmed
	children []*node
}

func (n *node) multipart() bool { return n.p.Type == "multipart" }

type parser struct {
	raw   []byte
	parts int
}

// entity parses the MIME entity (header and body) in raw[start:end].
// digest selects the multipart/digest default content type.
func (ps *parser) entity(start, end, depth int, digest bool) *node {
	ps.parts++
	fields, hdrEnd := scanHeader(ps.raw, start, end, nil)
	p := &Part{
		HeaderStart: int64(start), HeaderEnd: int64(hdrEnd),
		BodyStart: int64(hdrEnd), BodyEnd: int64(end),
	}
	n := &node{p: p, hdr: fields}
	if v, ok := getString(fields, "content-type"); ok {
		if t, s, params, ok := parseContentType(v); ok {
			n.typ, n.sub, n.params = t, s, params
		}
	} else if digest {
		n.typ, n.sub = "message", "rfc822" // RFC 2046 §5.1.5
	}
	if n.typ == "" {
		// Absent or invalid: RFC 2045 §5.2 default.
		n.typ, n.sub = "text", "plain"
	}
	if v, ok := getString(fields, "content-transfer-encoding"); ok {
		n.enc = v
	}
	p.Type, p.Subtype = strings.ToLower(n.typ), strings.ToLower(n.sub)
	p.Encoding = strings.ToLower(n.enc)
	switch {
	case p.Type == "multipart":
		boundary, _ := getParam(n.params, "boundary")
		if boundary == "" || depth >= MaxDepth || ps.parts >= MaxParts {
			// RFC 2046 §5.1.1 makes the boundary mandatory; without it
			// (or past our limits) the body is opaque: text/plain.
			n.opaque()
			break
		}
		ps.multipart(n, boundary, depth)
	case p.Type == "message" && (p.Subtype == "rfc822" || p.Subtype == "global"):
		if depth >= MaxDepth || ps.parts >= MaxParts {
			n.opaque()
			break
		}
		p.Message = true
		n.children = []*node{ps.entity(hdrEnd, end, depth+1, false)}
		p.Children = []*Part{n.children[0].p}
	}
	if p.Type == "text" {
		if cs, ok := getParam(n.params, "charset"); ok {
			p.Charset = strings.ToLower(cs)
		}
	}
	return n
}

// opaque turns n into a text/plain leaf.
func (n *node) opaque() {
	n.typ, n.sub, n.params = "text", "plain", nil
	n.p.Type, n.p.Subtype = "text", "plain"
}

// multipart splits the body of n at the delimiter lines of boundary
// (RFC 2046 §5.1.1). The line break before a delimiter belongs to the
// delimiter. A missing close delimiter ends the last part at the end of
// the body; trailing white space after a delimiter is allowed.
func (ps *parser) multipart(n *node, boundary string, depth int) {
	raw := ps.raw
	bodyStart, end := int(n.p.BodyStart), int(n.p.BodyEnd)
	digest := strings.EqualFold(n.sub, "digest")
	delim := make([]byte, 0, len(boundary)+2)
	delim = append(append(delim, "--"...), boundary...)
	partStart := -1
	pos := bodyStart
	for pos < end {
		i := bytes.Index(raw[pos:end], delim)
		if i < 0 {
			break
		}
		d := pos + i
		pos = d + 1
		if d > bodyStart && raw[d-1] != '\n' {
			continue // not at the start of a line
		}
		rest := d + len(delim)
		closing := false
		if rest+1 < end && raw[rest] == '-' && raw[rest+1] == '-' {
			closing = true
			rest += 2
		}
		for rest < end && (raw[rest] == ' ' || raw[rest] == '\t') {
			rest++
		}
		if rest < end && raw[rest] == '\r' {
			rest++
		}
		if rest < end && raw[rest] != '\n' {
			continue // the boundary is only a prefix of this line
		}
		lineEnd := rest
		if rest < end {
			lineEnd++
		}
		if partStart >= 0 {
			pe := d
			if pe > bodyStart && raw[pe-1] == '\n' {
				pe--
				if pe > bodyStart && raw[pe-1] == '\r' {
					pe--
				}
			}
			pe = max(pe, partStart)
			ps.addChild(n, partStart, pe, depth, digest)
		}
		if closing || ps.parts >= MaxParts {
			partStart = -1
			break
		}
		partStart = lineEnd
		pos = lineEnd
	}
	if partStart >= 0 {
		ps.addChild(n, partStart, end, depth, digest)
	}
	if len(n.children) == 0 {
		// No delimiter at all: one header-less text/plain part holding
		// the whole body, so the structure stays valid (1*body).
		ps.parts++
		p := &Part{
			HeaderStart: int64(bodyStart), HeaderEnd: int64(bodyStart),
			BodyStart: int64(bodyStart), BodyEnd: int64(end),
			Type: "text", Subtype: "plain",
		}
		n.children = []*node{{p: p, typ: "text", sub: "plain"}}
		n.p.Children = []*Part{p}
	}
}

func (ps *parser) addChild(n *node, start, end, depth int, digest bool) {
	c := ps.entity(start, end, depth+1, digest)
	n.children = append(n.children, c)
	n.p.Children = append(n.p.Children, c.p)
}

// countLines counts the line breaks (LF) of b, as Dovecot does: a last
// line without a line break is not counted. (In a multipart the line
// break before a delimiter belongs to the delimiter, so a part's last
// line usually has none.)
func countLines(b []byte) int64 {
	return int64(bytes.Count(b, []byte{'\n'}))
}

// markNUL sets HeaderNUL and BodyNUL in the tree under p. Each byte of raw
// is looked at once: a part's body is its children plus the bytes between
// them (preamble, delimiter lines, epilogue).
func markNUL(raw []byte, p *Part) {
	hasNUL := func(from, to int64) bool {
		return from < to && bytes.IndexByte(raw[from:to], 0) >= 0
	}
	p.HeaderNUL = hasNUL(p.HeaderStart, p.HeaderEnd)
	pos := p.BodyStart
	for _, c := range p.Children {
		markNUL(raw, c)
		if c.HeaderNUL || c.BodyNUL || hasNUL(pos, c.HeaderStart) {
			p.BodyNUL = true
		}
		pos = max(pos, c.BodyEnd)
	}
	if hasNUL(pos, p.BodyEnd) {
		p.BodyNUL = true
	}
}
