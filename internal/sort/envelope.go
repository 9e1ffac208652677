package sort

import (
	"errors"
	"strconv"
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

// value is one parsed IMAP value: a string (nil-able) or a list.
type value struct {
	str    string
	isNil  bool
	isList bool
	list   []value
}

type envParser struct {
	b []byte
	i int
}

func (p *envParser) skipSP() {
	for p.i < len(p.b) && p.b[p.i] == ' ' {
		p.i++
	}
}

func (p *envParser) value(depth int) (value, error) {
	p.skipSP()
	if p.i >= len(p.b) || depth > 8 {
		return value{}, errEnvelope
	}
	switch c := p.b[p.i]; {
	case c == '(':
		p.i++
		v := value{isList: true}
		for {
			p.skipSP()
			if p.i >= len(p.b) {
				return value{}, errEnvelope
			}
			if p.b[p.i] == ')' {
				p.i++
				return v, nil
			}
			e, err := p.value(depth + 1)
			if err != nil {
				return value{}, err
			}
			v.list = append(v.list, e)
		}
	case c == '"':
		p.i++
		var s []byte
		for p.i < len(p.b) {
			c := p.b[p.i]
			p.i++
			switch c {
			case '\\':
				if p.i < len(p.b) {
					s = append(s, p.b[p.i])
					p.i++
				}
			case '"':
				return value{str: string(s)}, nil
			default:
				s = append(s, c)
			}
		}
		return value{}, errEnvelope
	case c == '{':
		j := p.i + 1
		for j < len(p.b) && p.b[j] != '}' {
			j++
		}
		n, err := strconv.Atoi(string(p.b[p.i+1 : j]))
		if err != nil || n < 0 || j+3+n > len(p.b) {
			return value{}, errEnvelope
		}
		start := j + 3 // "}\r\n"
		p.i = start + n
		return value{str: string(p.b[start : start+n])}, nil
	case c == 'N' || c == 'n':
		if p.i+3 <= len(p.b) {
			p.i += 3
			return value{isNil: true}, nil
		}
	}
	return value{}, errEnvelope
}

// firstAddress returns the first address of an address list value.
func firstAddress(v value) (address, bool) {
	if !v.isList || len(v.list) == 0 || !v.list[0].isList || len(v.list[0].list) < 4 {
		return address{}, false
	}
	f := v.list[0].list
	return address{name: f[0].str, mailbox: f[2].str, host: f[3].str, hasHost: !f[3].isNil}, true
}

// parseEnvelope parses an IMAP ENVELOPE: (date subject from sender
// reply-to to cc bcc in-reply-to message-id).
func parseEnvelope(b []byte) (envelope, error) {
	var e envelope
	if len(b) == 0 {
		return e, nil
	}
	p := &envParser{b: b}
	v, err := p.value(0)
	if err != nil {
		return e, err
	}
	if !v.isList || len(v.list) < 10 {
		return e, errEnvelope
	}
	e.subject = v.list[1].str
	e.from, e.hasFrom = firstAddress(v.list[2])
	e.to, e.hasTo = firstAddress(v.list[5])
	e.cc, e.hasCc = firstAddress(v.list[6])
	return e, nil
}
