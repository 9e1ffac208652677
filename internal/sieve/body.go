package sieve

import (
	"strings"

	"github.com/tern-imap/tern/internal/message"
)

// body (RFC 5173): :raw is the undecoded body; :content "type" the
// decoded parts of those types; :text (the default) the text parts, with
// HTML reduced to its text.

// maxBodyBytes bounds the text one body test examines.
const maxBodyBytes = 4 << 20

func (r *runner) bodyValues(n *node) ([]string, error) {
	if n.has("raw") {
		return []string{string(clip(r.msg.Body()))}, nil
	}
	var types []string
	text := true
	if a, ok := n.tags["content"]; ok {
		types, text = r.strs(a), false
	}
	var out []string
	total := 0
	var walk func(p *message.Part) error
	walk = func(p *message.Part) error {
		if err := r.step(); err != nil {
			return err
		}
		if p.Type == "multipart" || p.Message {
			for _, c := range p.Children {
				if err := walk(c); err != nil {
					return err
				}
			}
			return nil
		}
		if text && p.Type != "text" && p.Type != "" {
			return nil
		}
		if !text && !contentTypeMatches(types, p.Type, p.Subtype) {
			return nil
		}
		s := message.PartText(r.msg.raw, p)
		if text && p.Subtype == "html" {
			s = htmlText(s)
		}
		if total+len(s) > maxBodyBytes {
			s = truncateUTF8(s, maxBodyBytes-total)
		}
		total += len(s)
		out = append(out, s)
		return nil
	}
	if err := walk(r.msg.part()); err != nil {
		return nil, err
	}
	return out, nil
}

func clip(b []byte) []byte {
	if len(b) > maxBodyBytes {
		return b[:maxBodyBytes]
	}
	return b
}

// contentTypeMatches: "" matches every part, "type" every subtype,
// "type/subtype" exactly (case-insensitively).
func contentTypeMatches(types []string, typ, sub string) bool {
	if typ == "" {
		typ, sub = "text", "plain"
	}
	for _, t := range types {
		t = strings.ToLower(strings.TrimSpace(t))
		if t == "" {
			return true
		}
		tt, ts, hasSub := strings.Cut(t, "/")
		if tt == typ && (!hasSub || ts == sub) {
			return true
		}
	}
	return false
}

// htmlText drops tags, decodes the common entities and collapses white
// space: enough to match words and phrases in an HTML part.
func htmlText(s string) string {
	var b strings.Builder
	in := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '<':
			in = true
		case c == '>' && in:
			in = false
			b.WriteByte(' ')
		case !in:
			b.WriteByte(c)
		}
	}
	text := strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">", "&quot;", `"`, "&nbsp;", " ").Replace(b.String())
	return strings.Join(strings.Fields(text), " ")
}
