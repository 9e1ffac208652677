package message

import (
	"bytes"
	"io"
	"mime"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"
)

// field is one header field: its name and its raw value (everything after
// the colon up to and including the line ending of its last line, folding
// included). Both alias the raw message.
type field struct {
	name, value []byte
	start, end  int // the whole field in raw, from its name to its last line break
}

// typicalFields is room for the fields of most top-level headers (a few
// dozen): one allocation instead of six doublings when a whole header is
// scanned for a FETCH of header fields.
const typicalFields = 32

// scanHeader reads the header that starts at raw[start:end]. It returns the
// fields and the offset where the header ends, which is also where the body
// starts: after the first empty line (CRLF or bare LF), which it includes,
// or at end when there is none. Lines that are not header fields (no
// colon, bad name) are skipped with their continuation lines but stay
// part of the header, as Dovecot does; this keeps a message with one broken
// line in its header intact.
func scanHeader(raw []byte, start, end int, fields []field) ([]field, int) {
	i := start
	skipping := true // continuation lines of a skipped line (or of nothing)
	for i < end {
		next := end
		if j := bytes.IndexByte(raw[i:end], '\n'); j >= 0 {
			next = i + j + 1
		}
		content := trimEOL(raw[i:next])
		if len(content) == 0 {
			return fields, next
		}
		if content[0] == ' ' || content[0] == '\t' {
			if !skipping {
				f := &fields[len(fields)-1]
				f.value = f.value[:len(f.value)+(next-i)]
				f.end = next
			}
			i = next
			continue
		}
		colon := bytes.IndexByte(content, ':')
		var name []byte
		if colon > 0 {
			name = bytes.TrimRight(content[:colon], " \t")
		}
		if !validFieldName(name) {
			skipping = true
			i = next
			continue
		}
		skipping = false
		v := raw[i+colon+1 : next]
		fields = append(fields, field{name: name, value: v[: len(v) : len(v)+end-next], start: i, end: next})
		i = next
	}
	return fields, end
}

// validFieldName reports whether b is a RFC 5322 field name (printable
// US-ASCII except colon and space).
func validFieldName(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c <= ' ' || c >= 0x7f || c == ':' {
			return false
		}
	}
	return true
}

func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return b
}

// get returns the raw value of the first field called name, and whether
// there is one.
func get(fields []field, name string) ([]byte, bool) {
	for _, f := range fields {
		if len(f.name) == len(name) && strings.EqualFold(string(f.name), name) {
			return f.value, true
		}
	}
	return nil, false
}

// unfold removes the line breaks of a folded value (RFC 5322 §2.2.3) and
// trims surrounding white space. The rest stays raw: encoded words are not
// decoded, 8-bit bytes are kept.
func unfold(v []byte) string {
	v = bytes.Trim(v, " \t\r\n")
	if bytes.IndexAny(v, "\r\n") < 0 {
		return string(v)
	}
	out := make([]byte, 0, len(v))
	for _, c := range v {
		if c != '\r' && c != '\n' {
			out = append(out, c)
		}
	}
	return string(out)
}

// getString returns the unfolded raw value of the first field called name.
func getString(fields []field, name string) (string, bool) {
	v, ok := get(fields, name)
	if !ok {
		return "", false
	}
	return unfold(v), true
}

var wordDecoder = &mime.WordDecoder{CharsetReader: charset.Reader}

// DecodeHeaderValue decodes RFC 2047 encoded words in an (unfolded) header
// value and returns valid UTF-8. Undecodable words are left as they are;
// raw 8-bit bytes that are not UTF-8 are replaced with U+FFFD.
func DecodeHeaderValue(s string) string {
	if strings.Contains(s, "=?") {
		if d, err := wordDecoder.DecodeHeader(s); err == nil {
			s = d
		}
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return s
}

// HeaderValues returns the unfolded raw values of every field called name
// (case-insensitive) in header, in order.
func HeaderValues(header []byte, name string) []string {
	fields, _ := scanHeader(header, 0, len(header), make([]field, 0, typicalFields))
	var out []string
	for _, f := range fields {
		if strings.EqualFold(string(f.name), name) {
			out = append(out, unfold(f.value))
		}
	}
	return out
}

// DecodedHeader returns the values of every field called name
// (case-insensitive) in header, unfolded and RFC 2047 decoded to UTF-8, for
// SEARCH FROM/TO/CC/BCC/SUBJECT/HEADER. header is a raw header such as
// BODY[HEADER] (see Header).
func DecodedHeader(header []byte, name string) []string {
	vals := HeaderValues(header, name)
	for i, v := range vals {
		vals[i] = DecodeHeaderValue(v)
	}
	return vals
}

// Header returns the raw header of p (including its terminating blank
// line), read from r.
func Header(r io.ReaderAt, p *Part) ([]byte, error) {
	return readRange(r, p.HeaderStart, p.HeaderEnd)
}

// param is one MIME parameter.
type param struct{ name, value string }

// parseContentType parses a Content-Type value: it returns type, subtype
// and parameters, or ok=false when it is syntactically invalid.
func parseContentType(v string) (typ, sub string, params []param, ok bool) {
	v = strings.TrimSpace(v)
	semi := strings.IndexByte(v, ';')
	mt, rest := v, ""
	if semi >= 0 {
		mt, rest = v[:semi], v[semi+1:]
	}
	slash := strings.IndexByte(mt, '/')
	if slash < 0 {
		return "", "", nil, false
	}
	typ = strings.TrimSpace(mt[:slash])
	sub = strings.TrimSpace(mt[slash+1:])
	if !isToken(typ) || !isToken(sub) {
		return "", "", nil, false
	}
	return typ, sub, parseParams(rest), true
}

// parseDisposition parses a Content-Disposition value.
func parseDisposition(v string) (typ string, params []param) {
	v = strings.TrimSpace(v)
	semi := strings.IndexByte(v, ';')
	if semi < 0 {
		return v, nil
	}
	return strings.TrimSpace(v[:semi]), parseParams(v[semi+1:])
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?=`, c) >= 0 {
			return false
		}
	}
	return true
}

// parseParams parses `; name=value; name="quoted value"` leniently: names
// are lower-cased, quoted values unescaped, unquoted values run to the next
// semicolon. RFC 2231 continuations (name*0, name*1*, ...) are joined into
// one parameter, named name* when any section is extended (the value keeps
// its charset'lang' prefix and percent-encoding).
func parseParams(s string) []param {
	var out []param
	i := 0
	for i < len(s) {
		for i < len(s) && (s[i] == ';' || s[i] == ' ' || s[i] == '\t') {
			i++
		}
		start := i
		for i < len(s) && s[i] != '=' && s[i] != ';' {
			i++
		}
		name := strings.ToLower(strings.TrimSpace(s[start:i]))
		if i >= len(s) || s[i] == ';' {
			continue // no value: ignore
		}
		i++ // '='
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		var value string
		if i < len(s) && s[i] == '"' {
			i++
			var b []byte
			for i < len(s) && s[i] != '"' {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				b = append(b, s[i])
				i++
			}
			i++ // closing quote
			value = string(b)
			for i < len(s) && s[i] != ';' {
				i++ // junk after the quoted string
			}
		} else {
			start := i
			for i < len(s) && s[i] != ';' {
				i++
			}
			value = strings.TrimSpace(s[start:i])
		}
		if name != "" {
			out = append(out, param{name, value})
		}
	}
	return joinContinuations(out)
}

// joinContinuations merges RFC 2231 parameter sections.
func joinContinuations(ps []param) []param {
	has := false
	for _, p := range ps {
		if _, _, _, ok := splitSection(p.name); ok {
			has = true
			break
		}
	}
	if !has {
		return ps
	}
	type merged struct {
		parts    map[int]string
		extended bool
		idx      int
	}
	out := make([]param, 0, len(ps))
	groups := map[string]*merged{}
	for _, p := range ps {
		base, n, ext, ok := splitSection(p.name)
		if !ok {
			out = append(out, p)
			continue
		}
		g := groups[base]
		if g == nil {
			g = &merged{parts: map[int]string{}, idx: len(out)}
			groups[base] = g
			out = append(out, param{name: base})
		}
		if _, dup := g.parts[n]; !dup && len(g.parts) < 1000 {
			g.parts[n] = p.value
		}
		if n == 0 && ext {
			g.extended = true
		}
	}
	for base, g := range groups {
		var b strings.Builder
		for n := 0; ; n++ {
			v, ok := g.parts[n]
			if !ok {
				break
			}
			b.WriteString(v)
		}
		name := base
		if g.extended {
			name += "*"
		}
		out[g.idx] = param{name, b.String()}
	}
	return out
}

// splitSection splits an RFC 2231 section name "base*N" or "base*N*".
func splitSection(name string) (base string, n int, ext, ok bool) {
	if strings.HasSuffix(name, "*") {
		name, ext = name[:len(name)-1], true
	}
	star := strings.LastIndexByte(name, '*')
	if star <= 0 || star == len(name)-1 || len(name)-star > 5 {
		return "", 0, false, false
	}
	for _, c := range name[star+1:] {
		if c < '0' || c > '9' {
			return "", 0, false, false
		}
		n = n*10 + int(c-'0')
	}
	return name[:star], n, ext, true
}

func getParam(ps []param, name string) (string, bool) {
	for _, p := range ps {
		if p.name == name {
			return p.value, true
		}
	}
	return "", false
}
