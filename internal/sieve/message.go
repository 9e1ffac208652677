package sieve

import (
	"bytes"
	"strings"
	"sync"

	"github.com/tern-imap/tern/internal/message"
)

// Message is the message a script examines, built once from its raw
// bytes by NewMessage. It is read-only and may be shared by several
// executions (editheader works on a per-execution copy of the header).
type Message struct {
	raw       []byte
	fields    []headerField
	bodyStart int

	partsOnce sync.Once
	parts     *message.Part
}

// headerField is one header field: its name as written and its raw value
// (after the colon, folding kept, without the final line break).
type headerField struct {
	name  string
	value string
}

// NewMessage parses the header of raw (an RFC 5322 message); the body
// structure is parsed only if a body test asks for it.
func NewMessage(raw []byte) *Message {
	m := &Message{raw: raw}
	m.fields, m.bodyStart = scanFields(raw)
	return m
}

// Size is the message size in octets (the size test).
func (m *Message) Size() int { return len(m.raw) }

// scanFields splits the header of raw into fields and returns where the
// body starts. Lines that are not fields are skipped.
func scanFields(raw []byte) ([]headerField, int) {
	var out []headerField
	i := 0
	for i < len(raw) {
		next := len(raw)
		if j := bytes.IndexByte(raw[i:], '\n'); j >= 0 {
			next = i + j + 1
		}
		line := bytes.TrimRight(raw[i:next], "\r\n")
		if len(line) == 0 {
			return out, next
		}
		if line[0] == ' ' || line[0] == '\t' {
			if len(out) > 0 {
				out[len(out)-1].value += "\r\n" + string(line)
			}
			i = next
			continue
		}
		if c := bytes.IndexByte(line, ':'); c > 0 {
			name := strings.TrimRight(string(line[:c]), " \t")
			if validFieldName(name) {
				out = append(out, headerField{name: name, value: string(line[c+1:])})
			}
		}
		i = next
	}
	return out, len(raw)
}

// unfoldValue removes folding line breaks and trims surrounding blanks.
func unfoldValue(v string) string {
	if strings.Contains(v, "\n") {
		v = strings.ReplaceAll(strings.ReplaceAll(v, "\r\n", ""), "\n", "")
	}
	return strings.Trim(v, " \t")
}

// headerBytes renders fields as a header block with CRLF line endings,
// ending with the empty line.
func headerBytes(fields []headerField) []byte {
	var b bytes.Buffer
	for _, f := range fields {
		b.WriteString(f.name)
		b.WriteByte(':')
		b.WriteString(f.value)
		b.WriteString("\r\n")
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

// Body returns the raw body (after the header).
func (m *Message) Body() []byte { return m.raw[m.bodyStart:] }

// part returns the parsed MIME structure.
func (m *Message) part() *message.Part {
	m.partsOnce.Do(func() {
		info, err := message.Parse(m.raw)
		if err == nil {
			m.parts, _ = message.DecodeParts(info.Parts)
		}
		if m.parts == nil {
			m.parts = &message.Part{Type: "text", Subtype: "plain", BodyStart: int64(m.bodyStart), BodyEnd: int64(len(m.raw))}
		}
	})
	return m.parts
}

// headerView is an execution's view of the header: the message's fields,
// copied on the first edit.
type headerView struct {
	fields []headerField
	edited bool
	// decoded caches decoded values by lower-case field name; an edit
	// clears it.
	decoded map[string][]string
	addrs   map[string][][]string
}

// addressValues returns the addresses of each field called name.
func (h *headerView) addressValues(name string) [][]string {
	key := strings.ToLower(name)
	if v, ok := h.addrs[key]; ok {
		return v
	}
	vals := h.decodedValues(name)
	out := make([][]string, len(vals))
	for i, v := range vals {
		out[i] = addressesOf(v)
	}
	if h.addrs == nil {
		h.addrs = map[string][][]string{}
	}
	if len(h.addrs) < 256 {
		h.addrs[key] = out
	}
	return out
}

// decodedValues returns the unfolded, RFC 2047 decoded values of the
// fields called name.
func (h *headerView) decodedValues(name string) []string {
	key := strings.ToLower(name)
	if v, ok := h.decoded[key]; ok {
		return v
	}
	raw := h.values(name)
	out := make([]string, len(raw))
	for i, v := range raw {
		out[i] = decodedValue(v)
	}
	if h.decoded == nil {
		h.decoded = map[string][]string{}
	}
	if len(h.decoded) < 256 {
		h.decoded[key] = out
	}
	return out
}

func (h *headerView) values(name string) []string {
	var out []string
	for _, f := range h.fields {
		if strings.EqualFold(f.name, name) {
			out = append(out, f.value)
		}
	}
	return out
}

func (h *headerView) edit() {
	h.decoded, h.addrs = nil, nil
	if !h.edited {
		h.fields = append([]headerField(nil), h.fields...)
		h.edited = true
	}
}

// decodedValue is a header value as tests see it: unfolded and RFC 2047
// decoded (RFC 5228 §2.7.2).
func decodedValue(raw string) string {
	return message.DecodeHeaderValue(unfoldValue(raw))
}
