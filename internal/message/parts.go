package message

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"
)

const partsVersion = 1

// EncodeParts encodes a part tree compactly (uvarints; Info.Parts).
func EncodeParts(p *Part) []byte {
	b := []byte{partsVersion}
	return appendPart(b, p)
}

func appendPart(b []byte, p *Part) []byte {
	b = binary.AppendUvarint(b, uint64(p.HeaderStart))
	b = binary.AppendUvarint(b, uint64(p.HeaderEnd-p.HeaderStart))
	b = binary.AppendUvarint(b, uint64(p.BodyStart-p.HeaderEnd))
	b = binary.AppendUvarint(b, uint64(p.BodyEnd-p.BodyStart))
	var flags byte
	if p.Message {
		flags |= 1
	}
	if p.HeaderNUL {
		flags |= 2
	}
	if p.BodyNUL {
		flags |= 4
	}
	b = append(b, flags)
	for _, s := range [...]string{p.Type, p.Subtype, p.Encoding, p.Charset} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendUvarint(b, uint64(len(p.Children)))
	for _, c := range p.Children {
		b = appendPart(b, c)
	}
	return b
}

var errBadParts = errors.New("corrupt part tree")

// DecodeParts decodes Info.Parts.
func DecodeParts(b []byte) (*Part, error) {
	if len(b) == 0 || b[0] != partsVersion {
		return nil, fmt.Errorf("decode parts: %w: bad version", errBadParts)
	}
	d := &partDecoder{b: b[1:]}
	p := d.part(0)
	if d.err != nil {
		return nil, fmt.Errorf("decode parts: %w", d.err)
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("decode parts: %w: trailing bytes", errBadParts)
	}
	return p, nil
}

type partDecoder struct {
	b   []byte
	err error
}

func (d *partDecoder) uvarint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 || v > 1<<60 {
		d.err = errBadParts
		return 0
	}
	d.b = d.b[n:]
	return int64(v)
}

func (d *partDecoder) str() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > int64(len(d.b)) {
		d.err = errBadParts
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *partDecoder) part(depth int) *Part {
	if depth > 2*MaxDepth+2 {
		d.err = errBadParts
		return nil
	}
	p := &Part{}
	p.HeaderStart = d.uvarint()
	p.HeaderEnd = p.HeaderStart + d.uvarint()
	p.BodyStart = p.HeaderEnd + d.uvarint()
	p.BodyEnd = p.BodyStart + d.uvarint()
	if d.err != nil || len(d.b) == 0 {
		d.err = errBadParts
		return nil
	}
	p.Message = d.b[0]&1 != 0
	p.HeaderNUL = d.b[0]&2 != 0
	p.BodyNUL = d.b[0]&4 != 0
	d.b = d.b[1:]
	p.Type, p.Subtype, p.Encoding, p.Charset = d.str(), d.str(), d.str(), d.str()
	n := d.uvarint()
	if n > int64(len(d.b)) || (p.Message && n != 1) {
		d.err = errBadParts
		return nil
	}
	for i := int64(0); i < n && d.err == nil; i++ {
		p.Children = append(p.Children, d.part(depth+1))
	}
	if d.err != nil {
		return nil
	}
	return p
}

// rfc5322Date is the Date: form nearly all mail has. net/mail.ParseDate
// tries two dozen layouts in an order that puts it late, and every
// failed try allocates its error (a sixth of an APPEND's garbage).
const rfc5322Date = "Mon, 2 Jan 2006 15:04:05 -0700"

// parseDate parses a Date: value leniently; zero when it cannot.
func parseDate(v string) time.Time {
	if t, err := time.Parse(rfc5322Date, v); err == nil {
		return t
	}
	if t, err := mail.ParseDate(v); err == nil {
		return t
	}
	// Drop a trailing comment, "(UTC)", and retry with common variants.
	if i := strings.IndexByte(v, '('); i > 0 {
		v = strings.TrimSpace(v[:i])
		if t, err := mail.ParseDate(v); err == nil {
			return t
		}
	}
	v = strings.Join(strings.Fields(v), " ")
	for _, layout := range []string{
		"Mon, 2 Jan 2006 15:04:05 -0700 MST",
		"Mon, 2 Jan 2006 15:04:05 MST",
		"2 Jan 2006 15:04:05 MST",
		"Mon, 2 Jan 06 15:04:05 -0700",
		"Mon, 2 Jan 2006 15:04 -0700",
		"Mon Jan 2 15:04:05 2006",
		"Mon Jan 2 15:04:05 -0700 2006",
		"2006-01-02 15:04:05 -0700",
		time.RFC3339,
	} {
		if t, err := time.Parse(layout, v); err == nil {
			return t
		}
	}
	return time.Time{}
}

// msgIDs extracts the message ids (without angle brackets) of an
// In-Reply-To/References/Message-ID value; a value without brackets is
// split into words.
func msgIDs(v string) []string {
	var ids []string
	rest := v
	for {
		i := strings.IndexByte(rest, '<')
		if i < 0 {
			break
		}
		j := strings.IndexByte(rest[i:], '>')
		if j < 0 {
			break
		}
		if id := strings.TrimSpace(rest[i+1 : i+j]); id != "" {
			ids = append(ids, id)
		}
		rest = rest[i+j+1:]
	}
	if len(ids) == 0 {
		ids = strings.Fields(v)
	}
	return ids
}
