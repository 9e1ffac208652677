package imap

import (
	"bufio"
	"io"
	"strconv"
	"time"
)

// Writer encodes responses onto a buffered connection. It does not flush
// on its own; callers Flush at the end of a response batch.
type Writer struct {
	*bufio.Writer
	// UTF8 allows 8-bit UTF-8 in quoted strings (IMAP4rev2 / UTF8=ACCEPT).
	UTF8 bool
	// Bulk, when set, may send a literal's content of more than BulkMin
	// bytes itself instead of copying it through the buffer (the server
	// lets the kernel copy a body file to a plaintext socket). It is
	// called with the literal's header still buffered and reports whether
	// it took r; when it takes r it flushes the buffer first, when it does
	// not it has written nothing (and the header goes out with the
	// content, in one write, not alone).
	Bulk func(r io.Reader, n int64) (bool, error)
}

// BulkMin is the smallest literal offered to Writer.Bulk: below it, one
// buffered write of header, content and what follows costs less than a
// flush and a separate copy (with the server's 64 KiB write buffer, a
// FETCH of a random body cost 113 and 107 µs of server CPU with BulkMin
// at 64 KiB, 115 and 121 µs at 16 KiB: fewer writes).
const BulkMin = 64 << 10

// NewWriter wraps w.
func NewWriter(w *bufio.Writer) *Writer { return &Writer{Writer: w} }

// Atom writes s as is.
func (w *Writer) Atom(s string) { w.WriteString(s) }

// SP writes one space.
func (w *Writer) SP() { w.WriteByte(' ') }

// CRLF ends a response line.
func (w *Writer) CRLF() { w.WriteString("\r\n") }

// Number writes an unsigned decimal number. It formats into the
// buffer's free space (AvailableBuffer): a local array would escape to
// the heap through Write, one allocation per number written.
func (w *Writer) Number(n uint64) {
	w.Write(strconv.AppendUint(w.AvailableBuffer(), n, 10))
}

// Number32 writes an unsigned decimal number.
func (w *Writer) Number32(n uint32) { w.Number(uint64(n)) }

// String writes s as a quoted string when it can be, otherwise as a literal.
func (w *Writer) String(s string) {
	if quotable(s, w.UTF8) {
		w.WriteByte('"')
		for i := 0; i < len(s); i++ {
			if s[i] == '"' || s[i] == '\\' {
				w.WriteByte('\\')
			}
			w.WriteByte(s[i])
		}
		w.WriteByte('"')
		return
	}
	w.LiteralHeader(int64(len(s)), false)
	w.WriteString(s)
}

// AString writes s as an atom when it is a valid atom, else as String.
func (w *Writer) AString(s string) {
	if isAtom(s) {
		w.WriteString(s)
		return
	}
	w.String(s)
}

// NString writes NIL for nil, else String.
func (w *Writer) NString(s *string) {
	if s == nil {
		w.WriteString("NIL")
		return
	}
	w.String(*s)
}

// LiteralHeader writes {n}CRLF (or ~{n}CRLF for a literal8).
func (w *Writer) LiteralHeader(n int64, binary bool) {
	if binary {
		w.WriteByte('~')
	}
	w.WriteByte('{')
	w.Number(uint64(n))
	w.WriteString("}\r\n")
}

// Literal writes a literal of exactly n bytes copied from r.
func (w *Writer) Literal(r io.Reader, n int64, binary bool) error {
	w.LiteralHeader(n, binary)
	if w.Bulk != nil && n > BulkMin {
		if took, err := w.Bulk(r, n); took || err != nil {
			return err
		}
	}
	_, err := io.CopyN(w.Writer, r, n)
	return err
}

// Date writes an IMAP date-time in quotes: "02-Jan-2006 15:04:05 -0700".
func (w *Writer) Date(t time.Time) {
	b := append(w.AvailableBuffer(), '"')
	b = t.AppendFormat(b, "02-Jan-2006 15:04:05 -0700")
	b = append(b, '"')
	w.Write(b)
}

// Flags writes a parenthesised flag list.
func (w *Writer) Flags(flags []string) {
	w.WriteByte('(')
	for i, f := range flags {
		if i > 0 {
			w.WriteByte(' ')
		}
		w.WriteString(f)
	}
	w.WriteByte(')')
}

func quotable(s string, utf8 bool) bool {
	if len(s) > 1024 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\r' || c == '\n' || c == 0 {
			return false
		}
		if c >= 0x80 && !utf8 {
			return false
		}
	}
	return true
}

// isAtom reports whether s can be sent as an atom (RFC 9051 ATOM-CHAR, plus
// "]" which astring allows).
func isAtom(s string) bool {
	if s == "" || s == "NIL" || len(s) > 1024 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= 0x20 || c >= 0x7f {
			return false
		}
		switch c {
		case '(', ')', '{', '%', '*', '"', '\\':
			return false
		}
	}
	return true
}
