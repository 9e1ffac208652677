package imap

// CatenatePart is one part of APPEND ... CATENATE (...) (RFC 4469): either
// an IMAP URL (IsURL, URL as sent) or literal text.
type CatenatePart struct {
	IsURL bool
	URL   string
	Text  []byte
}

// catenateParts parses "(" cat-part *(SP cat-part) ")" after CATENATE SP,
// where cat-part is URL SP astring, TEXT SP literal (or literal8 with
// BINARY) or, per RFC 6855, UTF8 SP "(" literal8 ")".
func (r *Reader) catenateParts() []CatenatePart {
	r.expect('(', "(")
	var parts []CatenatePart
	for {
		switch string(r.word(cAtom, "URL or TEXT")) {
		case "URL":
			r.sp()
			parts = append(parts, CatenatePart{IsURL: true, URL: r.astring()})
		case "TEXT":
			r.sp()
			b, _ := r.literal(r.opts.MaxLiteral, true)
			parts = append(parts, CatenatePart{Text: b})
		case "UTF8":
			r.sp()
			r.expect('(', "(")
			if r.peek() != '~' {
				r.fail("expected literal8")
			}
			b, _ := r.literal(r.opts.MaxLiteral, true)
			r.expect(')', ")")
			parts = append(parts, CatenatePart{Text: b})
		default:
			r.fail("expected URL or TEXT in CATENATE")
		}
		if r.peek() == ')' {
			r.next()
			return parts
		}
		r.sp()
	}
}
