package message

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
)

// Find returns the part at the 1-based path (RFC 9051 §6.4.5 part
// numbering), or nil when there is none. The empty path is the message
// itself. A message that is not multipart has a part 1: itself (its body,
// with the message header as MIME header). Inside a message/rfc822 part
// numbers continue in the embedded message.
func Find(root *Part, path []int) *Part {
	cur := root
	for i, n := range path {
		if cur == nil {
			return nil
		}
		if cur.Type == "multipart" {
			if n < 1 || n > len(cur.Children) {
				return nil
			}
			cur = cur.Children[n-1]
		} else if n != 1 {
			return nil
		}
		if i == len(path)-1 {
			break
		}
		switch {
		case cur.Message && len(cur.Children) == 1:
			cur = cur.Children[0]
		case cur.Type == "multipart":
		default:
			return nil
		}
	}
	return cur
}

func section(r io.ReaderAt, root *Part, part []int, spec string, fields []string) (io.Reader, int64, error) {
	if root == nil {
		return nil, 0, errors.New("section: no part tree")
	}
	p := Find(root, part)
	if p == nil {
		return bytes.NewReader(nil), 0, nil
	}
	rng := func(from, to int64) (io.Reader, int64, error) {
		return io.NewSectionReader(r, from, to-from), to - from, nil
	}
	switch spec {
	case "":
		if len(part) == 0 {
			return rng(p.HeaderStart, p.BodyEnd)
		}
		return rng(p.BodyStart, p.BodyEnd)
	case "MIME":
		if len(part) == 0 {
			return nil, 0, errors.New("section: MIME needs a part number")
		}
		return rng(p.HeaderStart, p.HeaderEnd)
	case "HEADER", "TEXT", "HEADER.FIELDS", "HEADER.FIELDS.NOT":
	default:
		return nil, 0, fmt.Errorf("section: unknown specifier %q", spec)
	}
	m := p
	if len(part) > 0 {
		// Only a message/rfc822 part has a HEADER and TEXT of its own.
		if !p.Message || len(p.Children) != 1 {
			return bytes.NewReader(nil), 0, nil
		}
		m = p.Children[0]
	}
	switch spec {
	case "HEADER":
		return rng(m.HeaderStart, m.HeaderEnd)
	case "TEXT":
		return rng(m.BodyStart, m.BodyEnd)
	}
	hdr, err := viewRange(r, m.HeaderStart, m.HeaderEnd)
	if err != nil {
		return nil, 0, fmt.Errorf("section %s: %w", spec, err)
	}
	out := filterHeader(hdr, fields, spec == "HEADER.FIELDS.NOT")
	return bytes.NewReader(out), int64(len(out)), nil
}

// fieldBufs recycles filterHeader's field lists (two KB for a header of
// typicalFields fields, made for every message of a FETCH of header
// fields).
var fieldBufs = sync.Pool{New: func() any {
	b := make([]field, 0, typicalFields)
	return &b
}}

// filterHeader keeps (or, with not, drops) the fields of hdr whose names
// are in names (case-insensitive), as they are written (folding included)
// and in their original order, and ends the result with a blank line.
func filterHeader(hdr []byte, names []string, not bool) []byte {
	buf := fieldBufs.Get().(*[]field)
	fields, _ := scanHeader(hdr, 0, len(hdr), (*buf)[:0])
	defer func() {
		clear(fields) // no hold on hdr's bytes
		*buf = fields[:0]
		fieldBufs.Put(buf)
	}()
	out := make([]byte, 0, 256)
	for _, f := range fields {
		match := false
		for _, n := range names {
			if strings.EqualFold(string(f.name), n) {
				match = true
				break
			}
		}
		if match == not {
			continue
		}
		line := hdr[f.start:f.end]
		out = append(out, line...)
		if !bytes.HasSuffix(line, []byte{'\n'}) {
			out = append(out, '\r', '\n')
		}
	}
	return append(out, '\r', '\n')
}

// ByteRanger is a reader over bytes already in memory that can lend a
// range of them without copying (the server's stored header blocks).
type ByteRanger interface {
	// ByteRange returns bytes [from, to), or false if it cannot.
	ByteRange(from, to int64) ([]byte, bool)
}

// viewRange is readRange for a caller that only reads the bytes: from a
// ByteRanger it borrows them instead of copying (HEADER.FIELDS of a
// stored header made a copy of the whole header per message fetched).
func viewRange(r io.ReaderAt, from, to int64) ([]byte, error) {
	if br, ok := r.(ByteRanger); ok {
		if b, ok := br.ByteRange(from, to); ok {
			return b, nil
		}
	}
	return readRange(r, from, to)
}

// readRange reads raw[from:to] from r.
func readRange(r io.ReaderAt, from, to int64) ([]byte, error) {
	if to < from {
		return nil, fmt.Errorf("read range: bad range %d-%d", from, to)
	}
	b := make([]byte, to-from)
	if _, err := io.ReadFull(io.NewSectionReader(r, from, to-from), b); err != nil {
		return nil, fmt.Errorf("read range %d-%d: %w", from, to, err)
	}
	return b, nil
}

// Partial narrows a section of length n (as returned by Section) to the
// FETCH partial <offset.count> (RFC 9051 §6.4.5); count < 0 means to the
// end. Readers that support io.ReaderAt (Section's) are narrowed without
// reading; others are skipped ahead.
func Partial(r io.Reader, n, offset, count int64) (io.Reader, int64, error) {
	if offset < 0 {
		offset = 0
	}
	if offset >= n {
		return bytes.NewReader(nil), 0, nil
	}
	length := n - offset
	if count >= 0 && count < length {
		length = count
	}
	if ra, ok := r.(io.ReaderAt); ok {
		return io.NewSectionReader(ra, offset, length), length, nil
	}
	if _, err := io.CopyN(io.Discard, r, offset); err != nil {
		return nil, 0, fmt.Errorf("partial: %w", err)
	}
	return io.LimitReader(r, length), length, nil
}

// SectionNUL reports, from the flags Parse recorded and without reading
// the message, whether the section Section returns for the same arguments
// contains a NUL octet. Such a section cannot go out as an IMAP literal:
// when leaf is non-nil the section is the whole body of that single
// (neither multipart nor message) part, which FETCH BODY[part] serves
// base64-encoded instead (Base64Body), as Dovecot does; any other section
// with a NUL needs a literal8 (RFC 3516, RFC 9051).
func SectionNUL(root *Part, part []int, spec string) (nul bool, leaf *Part) {
	p := Find(root, part)
	if p == nil {
		return false, nil
	}
	switch spec {
	case "":
		if len(part) == 0 {
			return p.HeaderNUL || p.BodyNUL, nil
		}
		if p.BodyNUL && p.Type != "multipart" && !p.Message {
			return true, p
		}
		return p.BodyNUL, nil
	case "MIME":
		return p.HeaderNUL, nil
	}
	m := p
	if len(part) > 0 {
		if !p.Message || len(p.Children) != 1 {
			return false, nil
		}
		m = p.Children[0]
	}
	if spec == "TEXT" {
		return m.BodyNUL, nil
	}
	return m.HeaderNUL, nil
}

// Base64Body returns the body of p base64-encoded in lines of 76
// characters separated by CRLF (RFC 2045 §6.8), without a line break at
// the end (the one before a boundary belongs to the boundary).
func Base64Body(r io.ReaderAt, p *Part) ([]byte, error) {
	body, err := readRange(r, p.BodyStart, p.BodyEnd)
	if err != nil {
		return nil, fmt.Errorf("base64 body: %w", err)
	}
	enc := base64.StdEncoding.EncodeToString(body)
	out := make([]byte, 0, len(enc)+len(enc)/76*2)
	for len(enc) > 76 {
		out = append(out, enc[:76]...)
		out = append(out, '\r', '\n')
		enc = enc[76:]
	}
	return append(out, enc...), nil
}
