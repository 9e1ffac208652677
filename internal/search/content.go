package search

import (
	"bytes"
	"errors"
	"fmt"
	"html"
	"io"
	"mime"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/htmlindex"
	"golang.org/x/text/encoding/ianaindex"

	"github.com/tern-imap/tern/internal/message"
)

// maxPartRead caps how much of one part is read for text matching, so a
// hostile message cannot make a search allocate without bound.
const maxPartRead = 64 << 20

// open calls c.Open once.
func (c *Candidate) open() error {
	if c.opened {
		return c.openErr
	}
	c.opened = true
	if c.Open == nil {
		c.openErr = errors.New("search: message content not available (no Open)")
		return c.openErr
	}
	r, root, err := c.Open()
	if err != nil {
		c.openErr = fmt.Errorf("search: open message uid %d: %w", c.Msg.UID, err)
		return c.openErr
	}
	if r == nil || root == nil {
		c.openErr = fmt.Errorf("search: open message uid %d: no content", c.Msg.UID)
		return c.openErr
	}
	c.r, c.root = r, root
	return nil
}

// readRange reads [start,end) of the message into buf[:0].
func (c *Candidate) readRange(buf []byte, start, end int64) ([]byte, error) {
	n := end - start
	if n <= 0 {
		return buf[:0], nil
	}
	if n > maxPartRead {
		n = maxPartRead
	}
	buf = grow(buf[:0], int(n))
	got, err := c.r.ReadAt(buf, start)
	if err != nil && !(errors.Is(err, io.EOF) && got > 0) {
		return buf[:0], fmt.Errorf("search: read message uid %d at %d: %w", c.Msg.UID, start, err)
	}
	return buf[:got], nil
}

func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}

// loadRawHeader reads the top-level header block into c.hdrRaw.
func (c *Candidate) loadRawHeader() error {
	if c.rawDone {
		return c.rawErr
	}
	c.rawDone = true
	if h := c.Msg.Header; h != nil {
		// Stored at delivery: no need to open the message.
		c.hdrRaw = append(c.hdrRaw[:0], h...)
		return nil
	}
	if err := c.open(); err != nil {
		c.rawErr = err
		return err
	}
	raw, err := c.readRange(c.hdrRaw, c.root.HeaderStart, c.root.HeaderEnd)
	c.hdrRaw = raw
	c.rawErr = err
	return err
}

// loadHeader reads, unfolds, decodes and folds the whole top-level
// header (TEXT, fuzzy keys and Extract need all of it; the keys on one
// field use eachNamed instead).
func (c *Candidate) loadHeader() error {
	if c.hdrDone {
		return c.hdrErr
	}
	c.hdrDone = true
	if err := c.loadRawHeader(); err != nil {
		c.hdrErr = err
		return err
	}
	c.fields = c.fields[:0]
	c.hdrText, c.scratch = appendHeader(c.hdrText[:0], c.scratch, c.hdrRaw, func(f field) {
		c.fields = append(c.fields, f)
	})
	return nil
}

// eachNamed calls fn, until it returns false, for each top-level header
// field named name (ASCII case-insensitive), with the field's raw text
// after its name (the colon, the value and its continuation lines) and
// its value unfolded, decoded and folded as appendHeader gives it (valid
// during the call only). Only these fields are decoded.
func (c *Candidate) eachNamed(name string, fn func(raw, value []byte) bool) error {
	if err := c.loadRawHeader(); err != nil {
		return err
	}
	raw := c.hdrRaw
	named := func(n []byte) bool { return asciiEqualFold(n, name) }
	c.scratch = eachField(raw, c.scratch, named, func(_, nameEnd, rawEnd int, value []byte) bool {
		c.fieldText = appendValue(c.fieldText[:0], value)
		return fn(raw[nameEnd:min(rawEnd, len(raw))], c.fieldText)
	})
	return nil
}

// appendHeader parses the raw header block, appends one folded, decoded
// "name: value\n" line per field to dst and reports each field's ranges
// (name in raw, value in dst) to fn if fn is non-nil.
func appendHeader(dst, scratch, raw []byte, fn func(field)) ([]byte, []byte) {
	scratch = eachField(raw, scratch, nil, func(nameStart, nameEnd, rawEnd int, value []byte) bool {
		dst = foldAppend(dst, raw[nameStart:nameEnd])
		dst = append(dst, ':', ' ')
		valStart := len(dst)
		dst = appendValue(dst, value)
		if fn != nil {
			fn(field{nameStart: nameStart, nameEnd: nameEnd, rawEnd: rawEnd, valStart: valStart, valEnd: len(dst)})
		}
		dst = append(dst, '\n')
		return true
	})
	return dst, scratch
}

// eachField parses the raw header block and calls fn, until it returns
// false, for each field whose name want accepts (nil: every field): its name as raw[nameStart:nameEnd], the end of
// its last line (rawEnd, which may be len(raw)+1), and its value with the
// continuation lines joined and white space trimmed (in scratch: valid
// during the call only). Malformed lines and stray continuations are
// skipped; the blank line ends the header.
func eachField(raw, scratch []byte, want func(name []byte) bool, fn func(nameStart, nameEnd, rawEnd int, value []byte) bool) []byte {
	i := 0
	for i < len(raw) {
		// One field: a line with a colon plus its continuation lines.
		lineEnd := bytes.IndexByte(raw[i:], '\n')
		if lineEnd < 0 {
			lineEnd = len(raw)
		} else {
			lineEnd += i
		}
		line := trimCR(raw[i:lineEnd])
		next := lineEnd + 1
		if len(line) == 0 { // the blank line ending the header
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || line[0] == ' ' || line[0] == '\t' {
			i = next // malformed line or stray continuation: skip
			continue
		}
		nameStart, nameEnd := i, i+colon
		for nameEnd > nameStart && (raw[nameEnd-1] == ' ' || raw[nameEnd-1] == '\t') {
			nameEnd--
		}
		// Unfold: join continuation lines, dropping the line breaks (only
		// passing over them for a field not wanted).
		keep := want == nil || want(raw[nameStart:nameEnd])
		if keep {
			scratch = append(scratch[:0], line[colon+1:]...)
		}
		for next < len(raw) && (raw[next] == ' ' || raw[next] == '\t') {
			e := bytes.IndexByte(raw[next:], '\n')
			if e < 0 {
				e = len(raw)
			} else {
				e += next
			}
			if keep {
				scratch = append(scratch, trimCR(raw[next:e])...)
			}
			next = e + 1
		}
		i = next
		if !keep {
			continue
		}
		if !fn(nameStart, nameEnd, next, bytes.TrimSpace(scratch)) {
			break
		}
	}
	return scratch
}

// appendValue appends a field's unfolded value decoded (RFC 2047 words)
// and folded.
func appendValue(dst, value []byte) []byte {
	if bytes.Contains(value, encodedWordStart) {
		return foldAppendString(dst, decodeWords(value))
	}
	return foldAppend(dst, value)
}

var encodedWordStart = []byte("=?")

var wordDecoder = &mime.WordDecoder{CharsetReader: charsetReader}

// decodeWords decodes RFC 2047 encoded words; on failure the raw text is
// kept.
func decodeWords(v []byte) string {
	s, err := wordDecoder.DecodeHeader(string(v))
	if err != nil {
		return string(v)
	}
	return s
}

func charsetReader(charset string, input io.Reader) (io.Reader, error) {
	enc := lookupCharset(charset)
	if enc == nil {
		return nil, fmt.Errorf("unknown charset %q", charset)
	}
	return enc.NewDecoder().Reader(input), nil
}

// lookupCharset returns the decoder for a MIME charset name, nil for
// unknown charsets and for those that need no conversion (UTF-8, ASCII).
func lookupCharset(name string) encoding.Encoding {
	name = strings.TrimSpace(name)
	switch strings.ToLower(name) {
	case "", "utf-8", "utf8", "us-ascii", "ascii":
		return nil
	}
	if enc, err := htmlindex.Get(name); err == nil && enc != nil {
		return enc
	}
	if enc, err := ianaindex.MIME.Encoding(name); err == nil && enc != nil {
		return enc
	}
	return nil
}

func trimCR(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\r' {
		return b[:n-1]
	}
	return b
}

// matchHeader reports whether a top-level header field named name has a
// decoded value containing s. An empty s matches any message that has the
// field.
func (c *Candidate) matchHeader(name, s string) (bool, error) {
	c.needle = foldAppendString(c.needle[:0], s)
	found := false
	err := c.eachNamed(name, func(_, value []byte) bool {
		found = len(c.needle) == 0 || bytes.Contains(value, c.needle)
		return !found
	})
	return found, err
}

// matchAddress is matchHeader for an address field (FROM, TO, CC, BCC):
// s may also match the field's addresses in normalized form (comments and
// white space removed, `name <local@domain>`; message.AddressSearchText),
// so that user@domain.org finds `<user (comment)@ (comment) domain.org>`.
func (c *Candidate) matchAddress(name, s string) (bool, error) {
	if ok, err := c.matchHeader(name, s); ok || err != nil {
		return ok, err
	}
	// c.needle is s folded (matchHeader set it).
	found := false
	err := c.eachNamed(name, func(raw, _ []byte) bool {
		var ok bool
		if c.scratch2, ok = appendNormalized(c.scratch2[:0], raw); !ok {
			return true
		}
		found = bytes.Contains(c.scratch2, c.needle)
		return !found
	})
	return found, err
}

// appendNormalized appends to dst the addresses of an address field in
// normalized form (message.AddressSearchText), folded; raw is the field's
// text after its name (colon, value, continuation lines). false when raw
// has no colon.
func appendNormalized(dst, raw []byte) ([]byte, bool) {
	colon := bytes.IndexByte(raw, ':')
	if colon < 0 {
		return dst, false
	}
	return foldAppendString(dst, message.AddressSearchText(string(raw[colon+1:]))), true
}

// matchBody reports whether the body text contains s.
func (c *Candidate) matchBody(s string) (bool, error) {
	if err := c.loadBody(); err != nil {
		return false, err
	}
	c.needle = foldAppendString(c.needle[:0], s)
	return bytes.Contains(c.bodyText, c.needle), nil
}

// matchText reports whether the header (top-level or of any body part) or
// the body text contains s.
func (c *Candidate) matchText(s string) (bool, error) {
	if err := c.loadHeader(); err != nil {
		return false, err
	}
	c.needle = foldAppendString(c.needle[:0], s)
	if bytes.Contains(c.hdrText, c.needle) {
		return true, nil
	}
	if err := c.loadBody(); err != nil {
		return false, err
	}
	return bytes.Contains(c.bodyText, c.needle) || bytes.Contains(c.mimeText, c.needle), nil
}

// loadBody collects the decoded, folded text of every text part.
func (c *Candidate) loadBody() error {
	if c.bodyDone {
		return c.bodyErr
	}
	c.bodyDone = true
	if err := c.open(); err != nil {
		c.bodyErr = err
		return err
	}
	c.bodyText = c.bodyText[:0]
	c.mimeText = c.mimeText[:0]
	c.bodyErr = c.walk(c.root, partRoot, 0)
	return c.bodyErr
}

// maxDepth bounds the part nesting walked.
const maxDepth = 64

// Kinds of part for walk.
const (
	partRoot     = iota // the message itself: its header is searched separately
	partBody            // a body part: its MIME header counts for TEXT only
	partEmbedded        // an embedded message/rfc822: its header is body text
)

// walk appends the text of part p (and its descendants).
func (c *Candidate) walk(p *message.Part, kind, depth int) error {
	if p == nil || depth > maxDepth {
		return nil
	}
	if kind != partRoot {
		// MIME header of a body part (or the header of an embedded
		// message): part of the "header" for TEXT.
		raw, err := c.readRange(c.scratch2, p.HeaderStart, p.HeaderEnd)
		c.scratch2 = raw
		if err != nil {
			return err
		}
		if kind == partEmbedded {
			// An embedded message's header is body text of the outer one.
			c.bodyText, c.scratch = appendHeader(c.bodyText, c.scratch, raw, nil)
			c.bodyText = append(c.bodyText, 0)
		} else {
			c.mimeText, c.scratch = appendHeader(c.mimeText, c.scratch, raw, nil)
		}
	}
	if p.Message {
		if len(p.Children) > 0 {
			return c.walk(p.Children[0], partEmbedded, depth+1)
		}
		return nil
	}
	if len(p.Children) > 0 {
		for _, ch := range p.Children {
			if err := c.walk(ch, partBody, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	if p.Type != "" && p.Type != "text" {
		return nil // non-text leaf: attachments are not searched
	}
	return c.appendText(p)
}

// appendText decodes one text leaf into bodyText.
func (c *Candidate) appendText(p *message.Part) error {
	raw, err := c.readRange(c.scratch2, p.BodyStart, p.BodyEnd)
	c.scratch2 = raw
	if err != nil {
		return err
	}
	text := decodeText(raw, p, &c.scratch)
	c.bodyText = foldAppend(c.bodyText, text)
	c.bodyText = append(c.bodyText, 0)
	if strings.EqualFold(p.Subtype, "html") {
		// Also the rendered text, so a phrase split by markup still matches.
		c.scratch3 = stripTags(c.scratch3[:0], text)
		c.scratch4 = appendUnescape(c.scratch4[:0], c.scratch3)
		c.bodyText = foldAppend(c.bodyText, c.scratch4)
		c.bodyText = append(c.bodyText, 0)
	}
	return nil
}

// decodeText undoes p's transfer encoding (into *scratch) and converts
// its charset to UTF-8 (unknown charsets stay as they are).
func decodeText(raw []byte, p *message.Part, scratch *[]byte) []byte {
	text := raw
	switch strings.ToLower(p.Encoding) {
	case "quoted-printable":
		*scratch = decodeQP((*scratch)[:0], raw)
		text = *scratch
	case "base64":
		*scratch = decodeBase64((*scratch)[:0], raw)
		text = *scratch
	}
	if enc := lookupCharset(p.Charset); enc != nil {
		if conv, err := enc.NewDecoder().Bytes(text); err == nil {
			text = conv
		}
	}
	return text
}

// stripTags appends the text of HTML src without tags, comments and the
// content of script and style elements.
func stripTags(dst, src []byte) []byte {
	for i := 0; i < len(src); {
		b := src[i]
		if b != '<' {
			dst = append(dst, b)
			i++
			continue
		}
		rest := src[i:]
		if bytes.HasPrefix(rest, []byte("<!--")) {
			end := bytes.Index(rest[4:], []byte("-->"))
			if end < 0 {
				return dst
			}
			i += 4 + end + 3
			continue
		}
		end := bytes.IndexByte(rest, '>')
		if end < 0 {
			return dst
		}
		tag := rest[1:end]
		i += end + 1
		for _, skip := range [...]string{"script", "style"} {
			if len(tag) >= len(skip) && asciiEqualFold(tag[:len(skip)], skip) &&
				(len(tag) == len(skip) || tag[len(skip)] == ' ' || tag[len(skip)] == '\t' || tag[len(skip)] == '\n' || tag[len(skip)] == '\r') {
				// Skip to the closing tag ("</script" or "</style").
				end := indexCloseTag(src[i:], skip)
				if end < 0 {
					return dst
				}
				i += end
			}
		}
		if isBlockTag(tag) {
			dst = append(dst, ' ')
		}
	}
	return dst
}

// appendUnescape appends src with HTML character references resolved to
// dst. Numeric references and the common named ones are resolved without
// allocating; other named references go through html.UnescapeString.
// dst must not overlap src.
func appendUnescape(dst, src []byte) []byte {
	for {
		amp := bytes.IndexByte(src, '&')
		if amp < 0 {
			return append(dst, src...)
		}
		dst = append(dst, src[:amp]...)
		src = src[amp:]
		// The reference: '&', a run of name characters, an optional ';'.
		n := 1
		for n < len(src) && n < 40 && isRefChar(src[n]) {
			n++
		}
		if n < len(src) && src[n] == ';' {
			ref := src[1:n]
			if r, ok := numericRef(ref); ok {
				dst = utf8.AppendRune(dst, r)
				src = src[n+1:]
				continue
			}
			if r, ok := commonEntities[string(ref)]; ok {
				dst = utf8.AppendRune(dst, r)
				src = src[n+1:]
				continue
			}
			n++
		}
		if n == 1 {
			dst = append(dst, '&')
		} else {
			dst = append(dst, html.UnescapeString(string(src[:n]))...)
		}
		src = src[n:]
	}
}

func isRefChar(b byte) bool {
	return b == '#' || 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9'
}

var commonEntities = func() map[string]rune {
	m := map[string]rune{
		"amp": '&', "lt": '<', "gt": '>', "quot": '"', "apos": '\'',
		"euro": '€', "hellip": '…', "mdash": '—', "ndash": '–', "lsquo": '‘',
		"rsquo": '’', "ldquo": '“', "rdquo": '”', "bull": '•', "trade": '™',
	}
	latin1 := strings.Fields(`nbsp iexcl cent pound curren yen brvbar sect uml copy
		ordf laquo not shy reg macr deg plusmn sup2 sup3 acute micro para middot
		cedil sup1 ordm raquo frac14 frac12 frac34 iquest Agrave Aacute Acirc
		Atilde Auml Aring AElig Ccedil Egrave Eacute Ecirc Euml Igrave Iacute
		Icirc Iuml ETH Ntilde Ograve Oacute Ocirc Otilde Ouml times Oslash Ugrave
		Uacute Ucirc Uuml Yacute THORN szlig agrave aacute acirc atilde auml aring
		aelig ccedil egrave eacute ecirc euml igrave iacute icirc iuml eth ntilde
		ograve oacute ocirc otilde ouml divide oslash ugrave uacute ucirc uuml
		yacute thorn yuml`)
	for i, name := range latin1 {
		m[name] = rune(0xa0 + i)
	}
	return m
}()

// numericRef decodes "#123" or "#x1F" (the part between & and ;).
func numericRef(ref []byte) (rune, bool) {
	if len(ref) < 2 || ref[0] != '#' {
		return 0, false
	}
	ref = ref[1:]
	base := rune(10)
	if ref[0] == 'x' || ref[0] == 'X' {
		base, ref = 16, ref[1:]
	}
	if len(ref) == 0 || len(ref) > 8 {
		return 0, false
	}
	var r rune
	for _, b := range ref {
		d, ok := unhex(b)
		if !ok || rune(d) >= base {
			return 0, false
		}
		r = r*base + rune(d)
	}
	if r == 0 || r > utf8.MaxRune || (r >= 0xd800 && r <= 0xdfff) {
		r = utf8.RuneError
	}
	return r, true
}

// isBlockTag reports whether a tag breaks words (paragraphs, line breaks,
// table cells): it is rendered as a space.
func isBlockTag(tag []byte) bool {
	if len(tag) > 0 && tag[0] == '/' {
		tag = tag[1:]
	}
	n := 0
	for n < len(tag) && (tag[n] >= 'a' && tag[n] <= 'z' || tag[n] >= 'A' && tag[n] <= 'Z' || tag[n] >= '0' && tag[n] <= '9') {
		n++
	}
	name := tag[:n]
	for _, b := range [...]string{"br", "p", "div", "li", "tr", "td", "th", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol", "hr", "blockquote", "pre", "title", "body", "head", "html"} {
		if asciiEqualFold(name, b) {
			return true
		}
	}
	return false
}

// indexCloseTag finds "</name" in s, ignoring ASCII case.
func indexCloseTag(s []byte, name string) int {
	for i := 0; i+2+len(name) <= len(s); i++ {
		if s[i] == '<' && s[i+1] == '/' && asciiEqualFold(s[i+2:i+2+len(name)], name) {
			return i
		}
	}
	return -1
}

// asciiEqualFold compares b and s ignoring ASCII case.
func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		x, y := b[i], s[i]
		if x == y {
			continue
		}
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// decodeQP appends the quoted-printable decoding of src to dst, leniently:
// malformed escapes are kept literally; soft line breaks are removed.
func decodeQP(dst, src []byte) []byte {
	for i := 0; i < len(src); i++ {
		b := src[i]
		if b != '=' {
			dst = append(dst, b)
			continue
		}
		// Soft line break: "=" followed by optional whitespace and a line end.
		j := i + 1
		for j < len(src) && (src[j] == ' ' || src[j] == '\t') {
			j++
		}
		if j < len(src) && src[j] == '\r' {
			j++
		}
		if j < len(src) && src[j] == '\n' {
			i = j
			continue
		}
		if j >= len(src) {
			return dst
		}
		if i+2 < len(src) {
			h, ok1 := unhex(src[i+1])
			l, ok2 := unhex(src[i+2])
			if ok1 && ok2 {
				dst = append(dst, h<<4|l)
				i += 2
				continue
			}
		}
		dst = append(dst, b)
	}
	return dst
}

func unhex(b byte) (byte, bool) {
	switch {
	case '0' <= b && b <= '9':
		return b - '0', true
	case 'A' <= b && b <= 'F':
		return b - 'A' + 10, true
	case 'a' <= b && b <= 'f':
		return b - 'a' + 10, true
	}
	return 0, false
}

// decodeBase64 appends the base64 decoding of src to dst, skipping
// characters outside the alphabet (line breaks, stray whitespace) and
// stopping at padding.
func decodeBase64(dst, src []byte) []byte {
	var acc uint32
	var n int
	for _, b := range src {
		var v byte
		switch {
		case 'A' <= b && b <= 'Z':
			v = b - 'A'
		case 'a' <= b && b <= 'z':
			v = b - 'a' + 26
		case '0' <= b && b <= '9':
			v = b - '0' + 52
		case b == '+':
			v = 62
		case b == '/':
			v = 63
		case b == '=':
			goto done
		default:
			continue
		}
		acc = acc<<6 | uint32(v)
		n++
		if n == 4 {
			dst = append(dst, byte(acc>>16), byte(acc>>8), byte(acc))
			acc, n = 0, 0
		}
	}
done:
	switch n {
	case 2:
		dst = append(dst, byte(acc>>4))
	case 3:
		dst = append(dst, byte(acc>>10), byte(acc>>2))
	}
	return dst
}
