package search

import (
	"bytes"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/tern-imap/tern/internal/message"
	"github.com/tern-imap/tern/internal/store"
)

// Doc is the searchable text of one message: exactly the folded, decoded
// text the scan in this package matches SEARCH keys against, split the
// way the keys read it. A full-text index built from Docs and a needle
// folded by Fold give the same answers as Match, byte for byte.
type Doc struct {
	// Header is the top-level header, one folded, decoded "name: value\n"
	// line per field (SUBJECT, HEADER, FROM..BCC and TEXT read it).
	Header []byte
	// Fields holds lines "name: text\n" (name lower case): for each
	// From, To, Cc and Bcc field two, the field's value as Header has it
	// and its addresses in normalized form (message.AddressSearchText),
	// folded; for each Subject field one, its value. A line break inside
	// a text is kept as a NUL byte. These are exactly the texts FROM..BCC
	// and SUBJECT match against, one per line, so a store can decide
	// those keys field by field from Fields alone (FieldHolds) for any
	// needle without a line break or NUL (ExactFieldNeedle). Besides,
	// the normalized addresses are the second text FROM..BCC match.
	Fields []byte
	// Body is the decoded text of every text part (HTML twice: as
	// written and as rendered text), parts separated by NUL bytes (BODY
	// and TEXT read it).
	Body []byte
	// MIME is the decoded MIME headers of the body parts, attachment
	// file names included (TEXT reads it).
	MIME []byte
}

// Len is the number of bytes of text in d.
func (d *Doc) Len() int { return len(d.Header) + len(d.Fields) + len(d.Body) + len(d.MIME) }

// Extract returns the searchable text of a message: r holds its raw
// bytes, root its part tree, header the stored top-level header block
// (store.WantHeader) or nil to read it from r, as the scan does.
func Extract(r io.ReaderAt, root *message.Part, header []byte) (Doc, error) {
	c := &Candidate{
		Msg:  &store.Message{Header: header},
		Open: func() (io.ReaderAt, *message.Part, error) { return r, root, nil },
	}
	if err := c.loadHeader(); err != nil {
		return Doc{}, err
	}
	if err := c.loadBody(); err != nil {
		return Doc{}, err
	}
	return Doc{Header: c.hdrText, Fields: c.appendFieldLines(nil), Body: c.bodyText, MIME: c.mimeText}, nil
}

// FieldLines returns Doc.Fields for a message whose raw top-level header
// block is header (what Extract gives, without reading the body).
func FieldLines(header []byte) []byte {
	if header == nil {
		header = []byte{}
	}
	c := &Candidate{Msg: &store.Message{Header: header}}
	if c.loadHeader() != nil {
		return nil
	}
	return c.appendFieldLines(nil)
}

// appendFieldLines appends Doc.Fields of the loaded header to dst.
func (c *Candidate) appendFieldLines(dst []byte) []byte {
	for _, f := range c.fields {
		name := c.hdrRaw[f.nameStart:f.nameEnd]
		if asciiEqualFold(name, "Subject") {
			dst = appendFieldLine(dst, name, c.hdrText[f.valStart:f.valEnd])
			continue
		}
		if !isAddressField(name) {
			continue
		}
		var ok bool
		if c.scratch2, ok = appendNormalized(c.scratch2[:0], c.hdrRaw[f.nameEnd:min(f.rawEnd, len(c.hdrRaw))]); !ok {
			continue
		}
		dst = appendFieldLine(dst, name, c.hdrText[f.valStart:f.valEnd])
		dst = appendFieldLine(dst, name, c.scratch2)
	}
	return dst
}

// appendFieldLine appends "name: text\n" to dst, name folded and line
// breaks in text made NUL bytes.
func appendFieldLine(dst, name, text []byte) []byte {
	dst = foldAppend(dst, name)
	dst = append(dst, ':', ' ')
	start := len(dst)
	dst = append(dst, text...)
	for i := start; i < len(dst); i++ {
		if dst[i] == '\n' {
			dst[i] = 0
		}
	}
	return append(dst, '\n')
}

// ExactFieldNeedle reports whether FieldHolds on Doc.Fields decides a
// FROM..BCC or SUBJECT key with this (folded) needle exactly as Match
// does: a needle with a line break or a NUL byte could match across what
// Fields changed.
func ExactFieldNeedle(needle []byte) bool {
	return bytes.IndexByte(needle, '\n') < 0 && bytes.IndexByte(needle, 0) < 0
}

// FieldLineNames are the Doc.Fields line names of the one-field store
// queries (store.TextOneField), which FieldHolds takes.
var FieldLineNames = map[store.TextField]string{store.TextFrom: "from", store.TextTo: "to", store.TextCc: "cc",
	store.TextBcc: "bcc", store.TextSubject: "subject"}

// FieldHolds reports whether lines, a Doc.Fields, has a line of the
// field name (FieldLineNames) whose text contains needle; an empty
// needle asks whether the field is there at all. It is Match's answer
// for FROM..BCC and SUBJECT when ExactFieldNeedle(needle).
func FieldHolds(lines []byte, name string, needle []byte) bool {
	for len(lines) > 0 {
		line := lines
		if i := bytes.IndexByte(lines, '\n'); i >= 0 {
			line, lines = lines[:i], lines[i+1:]
		} else {
			lines = nil
		}
		if len(line) > len(name)+1 && string(line[:len(name)]) == name && line[len(name)] == ':' && line[len(name)+1] == ' ' &&
			bytes.Contains(line[len(name)+2:], needle) {
			return true
		}
	}
	return false
}

// isAddressField reports whether a header field name is one the address
// keys (FROM, TO, CC, BCC) read.
func isAddressField(name []byte) bool {
	for _, n := range [...]string{"From", "To", "Cc", "Bcc"} {
		if asciiEqualFold(name, n) {
			return true
		}
	}
	return false
}

// Fold returns s case-folded the way the scan folds needles and text.
func Fold(s string) []byte { return foldAppendString(nil, s) }

// PreviewMax is the most characters Preview returns (RFC 8970 allows 256).
const PreviewMax = 200

// previewRead is how much of a text part Preview decodes.
const previewRead = 16 << 10

// Preview returns the start of a message's text for FETCH PREVIEW (RFC
// 8970): the first text/plain part (or, if there is none, the first
// text/html part as rendered text), decoded, white space collapsed to
// single spaces, at most PreviewMax characters. Empty if the message has
// no text. It reads at most previewRead bytes of one part.
func Preview(r io.ReaderAt, root *message.Part) string {
	p := firstText(root, "plain", 0)
	if p == nil {
		p = firstText(root, "html", 0)
	}
	if p == nil {
		return ""
	}
	c := &Candidate{Msg: &store.Message{}, r: r}
	end := min(p.BodyEnd, p.BodyStart+previewRead)
	raw, err := c.readRange(nil, p.BodyStart, end)
	if err != nil {
		return ""
	}
	text := decodeText(raw, p, &c.scratch)
	if strings.EqualFold(p.Subtype, "html") {
		text = appendUnescape(nil, stripTags(nil, text))
	}
	return collapseSpace(text, PreviewMax)
}

// firstText finds the first leaf of type text/subtype, depth first, not
// looking into attachments or embedded messages.
func firstText(p *message.Part, subtype string, depth int) *message.Part {
	if p == nil || depth > maxDepth || p.Message {
		return nil
	}
	if len(p.Children) > 0 {
		for _, ch := range p.Children {
			if f := firstText(ch, subtype, depth+1); f != nil {
				return f
			}
		}
		return nil
	}
	if (p.Type == "" || strings.EqualFold(p.Type, "text")) && (p.Subtype == "" && subtype == "plain" || strings.EqualFold(p.Subtype, subtype)) {
		return p
	}
	return nil
}

// collapseSpace returns text (UTF-8; invalid bytes dropped) with every
// run of white space and control characters made one space, trimmed, cut
// to at most max characters.
func collapseSpace(text []byte, max int) string {
	var b strings.Builder
	n, space := 0, false
	for len(text) > 0 && n < max {
		r, size := utf8.DecodeRune(text)
		text = text[size:]
		switch {
		case r == utf8.RuneError && size <= 1:
			continue
		case unicode.IsSpace(r) || unicode.IsControl(r):
			space = b.Len() > 0
			continue
		}
		if space {
			b.WriteByte(' ')
			n++
			space = false
			if n == max {
				break
			}
		}
		b.WriteRune(r)
		n++
	}
	return strings.TrimSuffix(b.String(), " ")
}
