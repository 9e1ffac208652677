package imap

import "strconv"

// PartialRange is the PARTIAL return option (RFC 5267 §4.4, RFC 9394):
// result positions Lo..Hi (1-based, Lo <= Hi), counted from the end of
// the result when FromEnd (the wire form -Lo:-Hi, -1 being the last).
type PartialRange struct {
	Lo, Hi  uint32
	FromEnd bool
}

// String is the wire form, e.g. "2:4" or "-1:-10".
func (p PartialRange) String() string {
	lo, hi := strconv.FormatUint(uint64(p.Lo), 10), strconv.FormatUint(uint64(p.Hi), 10)
	if p.FromEnd {
		return "-" + lo + ":-" + hi
	}
	return lo + ":" + hi
}

// CancelUpdateArgs is CANCELUPDATE tag... (RFC 5267 §4.3.5).
type CancelUpdateArgs struct {
	Tags []string
}

// returnOptions parses the ESEARCH/ESORT return option list: MIN MAX COUNT
// ALL SAVE, from RFC 5267 UPDATE, CONTEXT and PARTIAL range, and from
// RFC 6203 RELEVANCY. The
// options are upper case; PARTIAL is listed and its range returned.
func (r *Reader) returnOptions(what string) ([]string, *PartialRange) {
	r.expect('(', "(")
	opts := []string{}
	var p *PartialRange
	for r.peek() != ')' {
		if len(opts) > 0 {
			r.sp()
		}
		w := string(r.word(cAtom, "return option"))
		switch w {
		case "MIN", "MAX", "COUNT", "ALL", "SAVE", "UPDATE", "CONTEXT", "RELEVANCY":
		case "PARTIAL":
			r.sp()
			p = r.partialRange()
		default:
			r.fail("unknown %s return option", what)
		}
		opts = append(opts, w)
	}
	r.next()
	return opts, p
}

// partialRange parses nz-number ":" nz-number or "-" nz-number ":" "-" nz-number.
func (r *Reader) partialRange() *PartialRange {
	neg := r.peek() == '-'
	if neg {
		r.next()
	}
	a := r.nzNumber32()
	r.expect(':', ":")
	if neg {
		r.expect('-', "-")
	}
	b := r.nzNumber32()
	if a > b {
		a, b = b, a
	}
	return &PartialRange{Lo: a, Hi: b, FromEnd: neg}
}

// cancelUpdateArgs parses SP tag-string *(SP tag-string).
func (r *Reader) cancelUpdateArgs() *CancelUpdateArgs {
	a := &CancelUpdateArgs{}
	for {
		r.sp()
		a.Tags = append(a.Tags, string(r.stringBytes()))
		if r.atEOL() {
			return a
		}
	}
}
