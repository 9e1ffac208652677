package message

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"
)

func binaryPart(r io.ReaderAt, root *Part, part []int) ([]byte, error) {
	if root == nil {
		return nil, fmt.Errorf("binary: no part tree")
	}
	p := Find(root, part)
	if p == nil {
		return nil, nil
	}
	if len(part) == 0 {
		return readRange(r, p.HeaderStart, p.BodyEnd)
	}
	body, err := readRange(r, p.BodyStart, p.BodyEnd)
	if err != nil {
		return nil, fmt.Errorf("binary: %w", err)
	}
	return decodeCTE(body, p.Encoding)
}

// BinarySize returns the length of Binary's result (RFC 3516 BINARY.SIZE).
func BinarySize(r io.ReaderAt, root *Part, part []int) (int64, error) {
	b, err := Binary(r, root, part)
	return int64(len(b)), err
}

// decodeCTE removes a Content-Transfer-Encoding (lower case).
func decodeCTE(b []byte, enc string) ([]byte, error) {
	switch enc {
	case "", "7bit", "8bit", "binary":
		return b, nil
	case "base64":
		return decodeBase64(b), nil
	case "quoted-printable":
		return decodeQP(b), nil
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownEncoding, enc)
}

func b64val(c byte) int {
	switch {
	case c >= 'A' && c <= 'Z':
		return int(c - 'A')
	case c >= 'a' && c <= 'z':
		return int(c-'a') + 26
	case c >= '0' && c <= '9':
		return int(c-'0') + 52
	case c == '+':
		return 62
	case c == '/':
		return 63
	}
	return -1
}

// decodeBase64 decodes leniently: characters outside the alphabet are
// ignored (RFC 2045 §6.8), decoding stops at padding, and a trailing
// incomplete group yields the bytes it completes.
func decodeBase64(b []byte) []byte {
	out := make([]byte, 0, len(b)*3/4)
	var acc uint32
	n := 0
	for _, c := range b {
		if c == '=' {
			break
		}
		v := b64val(c)
		if v < 0 {
			continue
		}
		acc = acc<<6 | uint32(v)
		n++
		if n == 4 {
			out = append(out, byte(acc>>16), byte(acc>>8), byte(acc))
			acc, n = 0, 0
		}
	}
	switch n {
	case 2:
		out = append(out, byte(acc>>4))
	case 3:
		out = append(out, byte(acc>>10), byte(acc>>2))
	}
	return out
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	}
	return -1
}

// decodeQP decodes quoted-printable leniently (RFC 2045 §6.7): =XX,
// soft line breaks (= followed by optional white space and a line break),
// trailing white space removed; a malformed = is kept as is.
func decodeQP(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for len(b) > 0 {
		line := b
		var eol []byte
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
			eol = []byte{'\n'}
			if len(line) > 0 && line[len(line)-1] == '\r' {
				line = line[:len(line)-1]
				eol = []byte{'\r', '\n'}
			}
		} else {
			b = nil
		}
		line = bytes.TrimRight(line, " \t")
		if len(line) > 0 && line[len(line)-1] == '=' {
			line, eol = line[:len(line)-1], nil // soft line break
		}
		for i := 0; i < len(line); i++ {
			c := line[i]
			if c == '=' && i+2 < len(line) && unhex(line[i+1]) >= 0 && unhex(line[i+2]) >= 0 {
				out = append(out, byte(unhex(line[i+1])<<4|unhex(line[i+2])))
				i += 2
				continue
			}
			out = append(out, c)
		}
		out = append(out, eol...)
	}
	return out
}

// TextParts calls fn with the text of every text/* part under root (also
// inside embedded messages), in order, until fn returns false. The text is
// transfer-decoded and converted from its charset to UTF-8; an unknown
// encoding or charset leaves the bytes as they are (invalid UTF-8 becomes
// U+FFFD). Headers are not included. It is meant for SEARCH BODY/TEXT.
func TextParts(r io.ReaderAt, root *Part, fn func(text string) bool) error {
	_, err := textParts(r, root, fn)
	return err
}

func textParts(r io.ReaderAt, p *Part, fn func(string) bool) (bool, error) {
	if p.Type == "multipart" || p.Message {
		for _, c := range p.Children {
			if more, err := textParts(r, c, fn); !more || err != nil {
				return more, err
			}
		}
		return true, nil
	}
	if p.Type != "text" {
		return true, nil
	}
	body, err := readRange(r, p.BodyStart, p.BodyEnd)
	if err != nil {
		return false, fmt.Errorf("text parts: %w", err)
	}
	if d, err := decodeCTE(body, p.Encoding); err == nil {
		body = d
	}
	return fn(toUTF8(body, p.Charset)), nil
}

// toUTF8 converts b from charset cs to UTF-8 (best effort).
func toUTF8(b []byte, cs string) string {
	switch cs {
	case "", "us-ascii", "utf-8", "utf8":
	default:
		if cr, err := charset.Reader(cs, bytes.NewReader(b)); err == nil {
			if d, err := io.ReadAll(cr); err == nil {
				b = d
			}
		}
	}
	if !utf8.Valid(b) {
		return strings.ToValidUTF8(string(b), "\uFFFD")
	}
	return string(b)
}

// PartText returns the content of the leaf part p of raw with its
// transfer encoding removed (left as is when unknown) and, for text/*
// parts, converted from its charset to UTF-8 (Sieve's body test).
func PartText(raw []byte, p *Part) string {
	start, end := min(p.BodyStart, int64(len(raw))), min(p.BodyEnd, int64(len(raw)))
	body := raw[start:max(start, end)]
	if d, err := decodeCTE(body, p.Encoding); err == nil {
		body = d
	}
	if p.Type != "text" {
		return string(body)
	}
	return toUTF8(body, p.Charset)
}

// MultipartFrame returns the preamble (prologue) and epilogue of the
// multipart part p of raw (RFC 2046 §5.1.1), without the delimiter lines
// and without the line break before a delimiter, which belongs to it.
// A part whose delimiters were not found (the parser's stand-in child)
// has neither; nor has a multipart cut short before its close-delimiter.
func MultipartFrame(raw []byte, p *Part) (prologue, epilogue string) {
	if p.Type != "multipart" || len(p.Children) == 0 {
		return "", ""
	}
	n := int64(len(raw))
	start, end := min(p.BodyStart, n), min(p.BodyEnd, n)
	if first := min(p.Children[0].HeaderStart, end); first > start {
		// raw[start:first] is the preamble, its line break and the
		// first delimiter line.
		if i := bytes.LastIndexByte(raw[start:first-1], '\n'); i >= 0 {
			prologue = string(bytes.TrimSuffix(raw[start:start+int64(i)], []byte("\r")))
		}
	}
	pos := min(p.Children[len(p.Children)-1].BodyEnd, end)
	rest := raw[pos:end]
	rest = bytes.TrimPrefix(bytes.TrimPrefix(rest, []byte("\r")), []byte("\n"))
	line, after, ok := bytes.Cut(rest, []byte("\n"))
	if !ok {
		line, after = rest, nil
	}
	if line = bytes.TrimRight(line, " \t\r"); bytes.HasPrefix(line, []byte("--")) && bytes.HasSuffix(line, []byte("--")) && len(line) >= 4 {
		epilogue = string(after)
	}
	return prologue, epilogue
}

// EmbeddedHeader returns the header of the message embedded in the
// message/rfc822 part p of raw, without the blank line ending it.
func EmbeddedHeader(raw []byte, p *Part) string {
	if !p.Message || len(p.Children) == 0 {
		return ""
	}
	n := int64(len(raw))
	m := p.Children[0]
	h := raw[min(m.HeaderStart, n):min(max(m.HeaderStart, m.HeaderEnd), n)]
	if bytes.HasSuffix(h, []byte("\r\n\r\n")) || bytes.HasSuffix(h, []byte("\n\n")) {
		h = bytes.TrimSuffix(bytes.TrimSuffix(h, []byte("\n")), []byte("\r"))
	}
	return string(h)
}
