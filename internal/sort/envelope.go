package sort

import (
	"errors"
)

// envelope holds the ENVELOPE fields sorting and threading use, taken from
// the IMAP-encoded ENVELOPE stored at delivery (message.Info.Envelope), so
// a SORT never re-parses a message.
type envelope struct {
	subject string // raw (RFC 2047 words still encoded)
	from    address
	to      address
	cc      address
	hasFrom bool
	hasTo   bool
	hasCc   bool
}

// address is the first address of an address list. A group start has
// only mailbox (the group name) set.
type address struct {
	name, mailbox, host string
	hasHost             bool
}

var errEnvelope = errors.New("malformed envelope")

// envParser scans an ENVELOPE in place, without building a tree: the
// fields it does not need are skipped.
type envParser struct {
	b   []byte
	i   int
	err bool
	// noCopy makes nstring check and skip strings without building them
	// (it returns ""): threading needs the subject alone, yet must accept
	// and reject exactly the envelopes a full parse does.
	noCopy bool
}

func (p *envParser) skipSP() {
	for p.i < len(p.b) && p.b[p.i] == ' ' {
		p.i++
	}
}

// nstring reads a quoted string, literal or NIL.
func (p *envParser) nstring() (s string, isNil bool) {
	p.skipSP()
	if p.i >= len(p.b) {
		p.err = true
		return "", true
	}
	switch p.b[p.i] {
	case '"':
		p.i++
		start := p.i
		escaped := false
		for p.i < len(p.b) {
			switch p.b[p.i] {
			case '\\':
				escaped = true
				p.i += 2
				continue
			case '"':
				raw := p.b[start:p.i]
				p.i++
				if p.noCopy {
					return "", false
				}
				if !escaped {
					return string(raw), false
				}
				out := make([]byte, 0, len(raw))
				for j := 0; j < len(raw); j++ {
					if raw[j] == '\\' && j+1 < len(raw) {
						j++
					}
					out = append(out, raw[j])
				}
				return string(out), false
			}
			p.i++
		}
	case '{':
		n, j := 0, p.i+1
		for ; j < len(p.b) && '0' <= p.b[j] && p.b[j] <= '9' && n < 1<<24; j++ {
			n = n*10 + int(p.b[j]-'0')
		}
		if j+3+n <= len(p.b) && p.b[j] == '}' {
			start := j + 3 // "}\r\n"
			p.i = start + n
			if p.noCopy {
				return "", false
			}
			return string(p.b[start:p.i]), false
		}
	case 'N', 'n':
		if p.i+3 <= len(p.b) {
			p.i += 3
			return "", true
		}
	}
	p.err = true
	return "", true
}

// skip skips one value (string, NIL or list).
func (p *envParser) skip(depth int) {
	p.skipSP()
	if p.i >= len(p.b) || depth > 8 {
		p.err = true
		return
	}
	if p.b[p.i] != '(' {
		p.nstring()
		return
	}
	p.i++
	for !p.err {
		p.skipSP()
		if p.i >= len(p.b) {
			p.err = true
			return
		}
		if p.b[p.i] == ')' {
			p.i++
			return
		}
		p.skip(depth + 1)
	}
}

// firstAddress reads an address list and returns its first address.
func (p *envParser) firstAddress() (a address, ok bool) {
	p.skipSP()
	if p.i >= len(p.b) || p.b[p.i] != '(' {
		p.nstring() // NIL
		return a, false
	}
	p.i++
	p.skipSP()
	if p.i < len(p.b) && p.b[p.i] == '(' {
		p.i++
		a.name, _ = p.nstring()
		p.nstring() // adl
		a.mailbox, _ = p.nstring()
		var isNil bool
		a.host, isNil = p.nstring()
		a.hasHost = !isNil
		p.skipSP()
		if p.i >= len(p.b) || p.b[p.i] != ')' {
			p.err = true
			return a, false
		}
		p.i++
		ok = true
	}
	for !p.err { // the rest of the list
		p.skipSP()
		if p.i >= len(p.b) {
			p.err = true
			break
		}
		if p.b[p.i] == ')' {
			p.i++
			break
		}
		p.skip(1)
	}
	return a, ok && !p.err
}

// parseEnvelope parses an IMAP ENVELOPE: (date subject from sender
// reply-to to cc bcc in-reply-to message-id).
func parseEnvelope(b []byte) (envelope, error) { return parseEnvelopeFields(b, true) }

// parseEnvelopeFields is parseEnvelope; with addresses false it leaves the
// addresses empty without building their strings (threading needs only
// the subject), accepting exactly the same envelopes.
func parseEnvelopeFields(b []byte, addresses bool) (envelope, error) {
	var e envelope
	if len(b) == 0 {
		return e, nil
	}
	p := &envParser{b: b}
	if b[0] != '(' {
		return e, errEnvelope
	}
	p.i = 1
	p.skip(1) // date
	e.subject, _ = p.nstring()
	p.noCopy = !addresses
	e.from, e.hasFrom = p.firstAddress()
	p.skip(1) // sender
	p.skip(1) // reply-to
	e.to, e.hasTo = p.firstAddress()
	e.cc, e.hasCc = p.firstAddress()
	for range 3 { // bcc, in-reply-to, message-id
		p.skip(1)
	}
	p.skipSP()
	if p.err || p.i >= len(p.b) || p.b[p.i] != ')' {
		return envelope{}, errEnvelope
	}
	return e, nil
}
