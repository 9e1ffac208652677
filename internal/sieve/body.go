package sieve

import (
	"strings"

	"github.com/tern-imap/tern/internal/message"
)

// body (RFC 5173): :raw is the undecoded body; :content "type" the
// decoded leaf parts of those types, the prologue and epilogue of
// multiparts and the embedded header of message/rfc822 parts of those
// types; :text (the default) the text parts, with HTML reduced to its
// text.

// maxBodyBytes bounds the text one body test examines.
const maxBodyBytes = 4 << 20

// bodyValues returns the texts a body test examines, computed once per
// transform in an execution.
func (r *runner) bodyValues(n *node) ([]string, error) {
	key := "text"
	var types []string
	if n.has("raw") {
		key = "raw"
	} else if a, ok := n.tags["content"]; ok {
		types = r.strs(a)
		key = "content\x00" + strings.Join(types, "\x00")
	}
	if v, ok := r.bodyCache[key]; ok {
		return v, nil
	}
	var out []string
	var err error
	if key == "raw" {
		out = []string{string(clip(r.msg.Body()))}
	} else if out, err = r.bodyParts(types, types == nil); err != nil {
		return nil, err
	}
	for _, v := range out {
		if err := r.spend(len(v) >> 12); err != nil {
			return nil, err
		}
	}
	if r.bodyCache == nil {
		r.bodyCache = map[string][]string{}
	}
	if len(r.bodyCache) < 16 {
		r.bodyCache[key] = out
	}
	return out, nil
}

// bodyParts returns the texts of the parts a :text (text) or :content
// (types) body test examines. The search descends into multipart and
// message/rfc822 parts; with :content, a multipart whose type matches
// contributes its prologue and its epilogue (two strings) and a
// message/rfc822 whose type matches the header of the embedded message
// (RFC 5173 §5.2); their nested parts count only if their own types
// match. :text looks at text leaf parts only.
func (r *runner) bodyParts(types []string, text bool) ([]string, error) {
	var out []string
	total := 0
	add := func(s string) {
		if total+len(s) > maxBodyBytes {
			s = truncateUTF8(s, maxBodyBytes-total)
		}
		total += len(s)
		out = append(out, s)
	}
	var walk func(p *message.Part) error
	walk = func(p *message.Part) error {
		if err := r.step(); err != nil {
			return err
		}
		if p.Type == "multipart" || p.Message {
			if !text && contentTypeMatches(types, p.Type, p.Subtype) {
				if p.Message {
					add(message.EmbeddedHeader(r.msg.raw, p))
				} else {
					prologue, epilogue := message.MultipartFrame(r.msg.raw, p)
					add(prologue)
					add(epilogue)
				}
			}
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
		add(s)
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
