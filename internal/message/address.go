package message

import "strings"

// address is one IMAP address structure (name adl mailbox host); a nil
// pointer is NIL. Group start: only mailbox (the group name) set; group
// end: all NIL (RFC 9051 §7.5.2 ENVELOPE).
type address struct {
	name, adl, mailbox, host *string
}

// Placeholders for the parts of a malformed address that are missing, so
// that it is not mistaken for group syntax (host NIL). Same as Dovecot.
const (
	missingMailbox = "MISSING_MAILBOX"
	missingDomain  = "MISSING_DOMAIN"
)

func sp(s string) *string { return &s }

// parseAddressList parses an unfolded RFC 5322 address-list leniently,
// keeping display names raw (encoded words stay encoded, quoted strings
// are unquoted) and using a comment as the name when there is no display
// name.
func parseAddressList(s string) []address {
	p := &addrParser{s: s}
	var out []address
	for {
		p.skipCFWS()
		if p.i >= len(p.s) || len(out) > 10000 {
			return out
		}
		if c := p.s[p.i]; c == ',' || c == ';' {
			p.i++
			continue
		}
		out = p.address(out, false)
	}
}

type addrParser struct {
	s          string
	i          int
	comment    string
	hasComment bool
}

func (p *addrParser) skipCFWS() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\r', '\n':
			p.i++
		case '(':
			p.readComment()
		default:
			return
		}
	}
}

func (p *addrParser) readComment() {
	depth := 0
	var b []byte
	for p.i < len(p.s) {
		c := p.s[p.i]
		p.i++
		switch c {
		case '\\':
			if p.i < len(p.s) {
				b = append(b, p.s[p.i])
				p.i++
			}
			continue
		case '(':
			depth++
			if depth == 1 {
				continue
			}
		case ')':
			depth--
			if depth == 0 {
				p.comment, p.hasComment = strings.TrimSpace(string(b)), true
				return
			}
		}
		b = append(b, c)
	}
	p.comment, p.hasComment = strings.TrimSpace(string(b)), true
}

func isAtext(c byte) bool {
	return c > ' ' && c != 0x7f && strings.IndexByte(`()<>[]:;@\,"`, c) < 0
}

// word reads an atom (dots allowed) or a quoted string (unquoted).
func (p *addrParser) word() (string, bool) {
	if p.i >= len(p.s) {
		return "", false
	}
	if p.s[p.i] == '"' {
		p.i++
		var b []byte
		for p.i < len(p.s) && p.s[p.i] != '"' {
			if p.s[p.i] == '\\' && p.i+1 < len(p.s) {
				p.i++
			}
			b = append(b, p.s[p.i])
			p.i++
		}
		if p.i < len(p.s) {
			p.i++ // closing quote
		}
		return string(b), true
	}
	start := p.i
	for p.i < len(p.s) && isAtext(p.s[p.i]) {
		p.i++
	}
	return p.s[start:p.i], p.i > start
}

func (p *addrParser) words() []string {
	var ws []string
	for {
		p.skipCFWS()
		w, ok := p.word()
		if !ok {
			return ws
		}
		ws = append(ws, w)
	}
}

// address parses one mailbox or group and appends it to out.
func (p *addrParser) address(out []address, inGroup bool) []address {
	p.hasComment = false
	start := p.i
	ws := p.words()
	p.skipCFWS()
	if p.i >= len(p.s) || p.s[p.i] == ',' || p.s[p.i] == ';' {
		if len(ws) > 0 { // a bare word: a mailbox without domain
			out = append(out, address{mailbox: sp(strings.Join(ws, "")), host: sp(missingDomain)})
		}
		return out
	}
	switch p.s[p.i] {
	case ':':
		p.i++
		if inGroup {
			return out // groups do not nest: ignore
		}
		out = append(out, address{mailbox: sp(strings.Join(ws, " "))})
		for {
			p.skipCFWS()
			if p.i >= len(p.s) {
				break
			}
			if p.s[p.i] == ';' {
				p.i++
				break
			}
			if p.s[p.i] == ',' {
				p.i++
				continue
			}
			out = p.address(out, true)
		}
		return append(out, address{})
	case '<':
		p.i++
		a := p.angleAddr()
		if len(ws) > 0 {
			a.name = sp(strings.Join(ws, " "))
		} else if p.hasComment {
			a.name = sp(p.comment)
		}
		return append(out, a)
	case '@':
		p.i++
		a := address{mailbox: sp(strings.Join(ws, ""))}
		a.host = sp(p.domain())
		if p.hasComment {
			a.name = sp(p.comment)
		}
		return append(out, a)
	}
	if p.i == start || len(ws) == 0 {
		p.i++ // stray special character: skip it
		return out
	}
	return out
}

// angleAddr parses the inside of <[route:]local@domain> after the '<'.
func (p *addrParser) angleAddr() address {
	var a address
	p.skipCFWS()
	if p.i < len(p.s) && p.s[p.i] == '@' {
		if j := strings.IndexAny(p.s[p.i:], ":>"); j >= 0 && p.s[p.i+j] == ':' {
			route := strings.Map(func(r rune) rune {
				if r == ' ' || r == '\t' {
					return -1
				}
				return r
			}, p.s[p.i:p.i+j])
			a.adl = &route
			p.i += j + 1
		}
	}
	ws := p.words()
	p.skipCFWS()
	local := strings.Join(ws, "")
	if p.i < len(p.s) && p.s[p.i] == '@' {
		p.i++
		a.host = sp(p.domain())
	}
	if local == "" {
		local = missingMailbox // also "<>", the null path
	}
	a.mailbox = &local
	if a.host == nil {
		a.host = sp(missingDomain)
	}
	if j := strings.IndexByte(p.s[p.i:], '>'); j >= 0 {
		p.i += j + 1
	} else {
		p.i = len(p.s)
	}
	p.skipCFWS()
	return a
}

// domain parses a dot-atom or a domain literal (kept with its brackets).
func (p *addrParser) domain() string {
	p.skipCFWS()
	var d string
	if p.i < len(p.s) && p.s[p.i] == '[' {
		j := strings.IndexByte(p.s[p.i:], ']')
		if j < 0 {
			d, p.i = p.s[p.i:], len(p.s)
		} else {
			d, p.i = p.s[p.i:p.i+j+1], p.i+j+1
		}
	} else {
		d = strings.Join(p.words(), "")
	}
	p.skipCFWS()
	if d == "" {
		d = missingDomain
	}
	return d
}

// AddressSearchText returns the address-list header value v (unfolded or
// not) in a normalized form for SEARCH FROM/TO/CC/BCC: every address as
// `name <local@domain>` (or `local@domain` without a name) with comments
// and white space inside the address removed, RFC 2047 encoded words in
// names decoded, group names as `group:` ... `;`, and the entries joined
// by ", ". Matching the search string against this text as well as
// against the decoded header finds `user@domain.org` in a header written
// `<user (comment)@ (comment) domain.org>`, as Dovecot does.
func AddressSearchText(v string) string {
	list := parseAddressList(unfold([]byte(v)))
	var b strings.Builder
	inGroup, first := false, true
	for _, a := range list {
		switch {
		case a.mailbox == nil && a.host == nil: // group end
			b.WriteByte(';')
			inGroup, first = false, false
			continue
		case a.host == nil: // group start
			if !first {
				b.WriteString(", ")
			}
			b.WriteString(DecodeHeaderValue(*a.mailbox))
			b.WriteByte(':')
			inGroup, first = true, true
			continue
		}
		if !first {
			b.WriteByte(',')
		}
		if !first || inGroup {
			b.WriteByte(' ')
		}
		first = false
		addr := ""
		if *a.mailbox != missingMailbox {
			addr = *a.mailbox
			if *a.host != missingDomain {
				addr += "@" + *a.host
			}
		}
		if a.name != nil && *a.name != "" {
			b.WriteString(DecodeHeaderValue(*a.name))
			if addr != "" {
				b.WriteString(" <" + addr + ">")
			}
		} else {
			b.WriteString(addr)
		}
	}
	return b.String()
}
