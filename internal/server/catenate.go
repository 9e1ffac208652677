package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/tern-imap/tern/imap"
	"github.com/tern-imap/tern/internal/message"
	"github.com/tern-imap/tern/internal/store"
)

// CATENATE (RFC 4469): APPEND builds a message from literal text and IMAP
// URLs (RFC 5092) that name messages or body parts in this user's
// mailboxes.

// imapURL is the part of an RFC 5092 URL that CATENATE can use.
type imapURL struct {
	mailbox     string // internal (UTF-8) name
	uidValidity uint32 // 0 if absent
	uid         uint32
	section     imap.Section
	hasPartial  bool
	offset      uint64
	length      uint64 // valid when hasLength
	hasLength   bool
}

// catenate assembles the message described by parts. A URL that cannot be
// resolved yields NO [BADURL url]; a result above the APPEND limit NO [TOOBIG].
func (c *conn) catenate(ctx context.Context, parts []imap.CatenatePart) ([]byte, error) {
	var buf bytes.Buffer
	limit := c.srv.cfg.MaxLiteralSize
	for _, p := range parts {
		switch {
		case !p.IsURL:
			buf.Write(p.Text)
		case hasURLAuth(p.URL):
			if err := c.authURLData(ctx, p.URL, &buf, limit-int64(buf.Len())); err != nil {
				return nil, err
			}
		default:
			u, ok := c.parseIMAPURL(p.URL)
			if !ok {
				return nil, badURL(p.URL)
			}
			if err := c.urlData(ctx, u, p.URL, &buf, limit-int64(buf.Len())); err != nil {
				return nil, err
			}
		}
		if int64(buf.Len()) > limit {
			return nil, no("TOOBIG", "Message exceeds APPENDLIMIT")
		}
	}
	return buf.Bytes(), nil
}

func badURL(raw string) error {
	// url-resp-text excludes "]", CR and LF.
	clean := strings.Map(func(r rune) rune {
		if r == ']' || r == '\r' || r == '\n' || r == 0 {
			return -1
		}
		return r
	}, raw)
	return no("BADURL "+clean, "Bad or unresolvable URL")
}

// authURLData appends the data a URLAUTH URL names (possibly in another
// user's mailbox: RFC 4467 URLs carry their own authorization) to buf.
func (c *conn) authURLData(ctx context.Context, raw string, buf *bytes.Buffer, limit int64) error {
	part, err := c.openAuthURL(ctx, raw)
	if err != nil {
		return fmt.Errorf("catenate: %w", err)
	}
	if part == nil {
		return badURL(raw)
	}
	defer part.Close()
	r, n, _, err := urlSection(part)
	if err != nil {
		return fmt.Errorf("catenate: %w", err)
	}
	if n > limit {
		return no("TOOBIG", "Message exceeds APPENDLIMIT")
	}
	if _, err := io.CopyN(buf, r, n); err != nil {
		return fmt.Errorf("catenate: read uid %d: %w", part.u.uid, err)
	}
	return nil
}

// urlData appends the data u names to buf (at most limit bytes).
func (c *conn) urlData(ctx context.Context, u imapURL, raw string, buf *bytes.Buffer, limit int64) error {
	m, info, err := c.resolveExisting(ctx, u.mailbox)
	if err != nil {
		if isNoMailbox(err) {
			return badURL(raw)
		}
		return fmt.Errorf("catenate: mailbox %q: %w", u.mailbox, err)
	}
	if !m.has('r') || info.NoSelect || (u.uidValidity != 0 && u.uidValidity != info.UIDValidity) {
		return badURL(raw)
	}
	body, err := m.acct.OpenBody(ctx, info.ID, u.uid)
	if err != nil {
		if errors.Is(err, store.ErrNoSuchMessage) {
			return badURL(raw)
		}
		return fmt.Errorf("catenate: open uid %d in %q: %w", u.uid, u.mailbox, err)
	}
	defer body.Close()
	root, err := message.DecodeParts(body.Parts())
	if err != nil {
		return fmt.Errorf("catenate: decode parts of uid %d: %w", u.uid, err)
	}
	r, n, err := message.Section(body, root, u.section.Part, u.section.Specifier, u.section.Fields)
	if err != nil {
		return fmt.Errorf("catenate: section of uid %d: %w", u.uid, err)
	}
	if u.hasPartial {
		if u.offset >= uint64(n) {
			return nil
		}
		if _, err := io.CopyN(io.Discard, r, int64(u.offset)); err != nil {
			return fmt.Errorf("catenate: read uid %d: %w", u.uid, err)
		}
		n -= int64(u.offset)
		if u.hasLength && u.length < uint64(n) {
			n = int64(u.length)
		}
	}
	if n > limit {
		return no("TOOBIG", "Message exceeds APPENDLIMIT")
	}
	if _, err := io.CopyN(buf, r, n); err != nil {
		return fmt.Errorf("catenate: read uid %d: %w", u.uid, err)
	}
	return nil
}

// parseIMAPURL parses an absolute ("imap://user@host/mailbox/;UID=n..."),
// host-relative ("/mailbox/;UID=n...") or, with a mailbox selected,
// mailbox-relative (";UID=n...") IMAP URL naming one message or part
// (RFC 5092, RFC 4469 §5) of this session's user. URLAUTH-authorized
// URLs go through parseAuthURL (urlauth.go) instead.
func (c *conn) parseIMAPURL(raw string) (imapURL, bool) {
	s := raw
	if hasIMAPScheme(s) {
		user, hasUser, path, ok := splitIMAPServer(s)
		if !ok || (hasUser && user != c.user) {
			return imapURL{}, false
		}
		s = path
	}
	selected := ""
	if c.sel != nil {
		selected = c.sel.info.Name
	}
	return parseURLPath(s, selected)
}

// hasIMAPScheme reports whether raw starts with "imap://".
func hasIMAPScheme(raw string) bool {
	return len(raw) >= 7 && strings.EqualFold(raw[:7], "imap://")
}

// splitIMAPServer splits an absolute IMAP URL into its decoded user
// (enc-user, without ";AUTH=..."; hasUser is false when there is no
// "user@") and the path from the "/" after the host on.
func splitIMAPServer(raw string) (user string, hasUser bool, path string, ok bool) {
	s := raw[7:]
	slash := strings.IndexByte(s, '/')
	if slash < 0 {
		return "", false, "", false
	}
	auth, path := s[:slash], s[slash:]
	at := strings.LastIndexByte(auth, '@')
	if at < 0 {
		return "", false, path, at+1 < len(auth)
	}
	if at+1 == len(auth) {
		return "", false, "", false // no host
	}
	user = auth[:at]
	if i := strings.IndexByte(user, ';'); i >= 0 {
		user = user[:i] // ;AUTH=...
	}
	user, ok = pctDecode(user)
	if !ok || user == "" {
		return "", false, "", false
	}
	return user, true, path, true
}

// parseURLPath parses the path of an IMAP URL naming one message or part:
// "/mailbox[;UIDVALIDITY=n]/;UID=n[/;SECTION=x][/;PARTIAL=o[.l]]", or,
// when selected is not "", the mailbox-relative ";UID=n..." form.
func parseURLPath(s, selected string) (imapURL, bool) {
	var u imapURL
	var segs []string
	switch {
	case strings.HasPrefix(s, "/"):
		// The mailbox name may contain the hierarchy separator: it ends
		// at the "/;" that starts ";UID=".
		end := strings.Index(s, "/;")
		if end < 1 {
			return u, false // no ";UID=", or no mailbox name
		}
		mb, uv, ok := mailboxSeg(s[1:end])
		if !ok {
			return u, false
		}
		u.mailbox, u.uidValidity = mb, uv
		segs = strings.Split(s[end+1:], "/")
	case strings.HasPrefix(s, ";") && selected != "":
		u.mailbox = selected
		segs = strings.Split(s, "/")
	default:
		return u, false
	}
	// ;UID=n [/;SECTION=x] [/;PARTIAL=o[.l]]
	if len(segs) == 0 {
		return u, false
	}
	v, ok := urlParam(segs[0], "UID")
	if !ok {
		return u, false
	}
	uid, err := strconv.ParseUint(v, 10, 32)
	if err != nil || uid == 0 {
		return u, false
	}
	u.uid = uint32(uid)
	segs = segs[1:]
	if len(segs) > 0 {
		if v, ok := urlParam(segs[0], "SECTION"); ok {
			dec, ok := pctDecode(v)
			if !ok {
				return u, false
			}
			if u.section, ok = parseURLSection(dec); !ok {
				return u, false
			}
			segs = segs[1:]
		}
	}
	if len(segs) > 0 {
		if v, ok := urlParam(segs[0], "PARTIAL"); ok {
			off, l, hasLen := v, "", false
			if i := strings.IndexByte(v, '.'); i >= 0 {
				off, l, hasLen = v[:i], v[i+1:], true
			}
			o, err := strconv.ParseUint(off, 10, 32)
			if err != nil {
				return u, false
			}
			u.hasPartial, u.offset = true, o
			if hasLen {
				n, err := strconv.ParseUint(l, 10, 32)
				if err != nil || n == 0 {
					return u, false
				}
				u.length, u.hasLength = n, true
			}
			segs = segs[1:]
		}
	}
	if len(segs) > 0 {
		return u, false // URLAUTH, trailing garbage
	}
	return u, true
}

// mailboxSeg decodes enc-mailbox [";UIDVALIDITY=" nz-number].
func mailboxSeg(seg string) (string, uint32, bool) {
	var uv uint32
	if i := strings.IndexByte(seg, ';'); i >= 0 {
		v, ok := urlParam(seg[i:], "UIDVALIDITY")
		if !ok {
			return "", 0, false
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || n == 0 {
			return "", 0, false
		}
		uv = uint32(n)
		seg = seg[:i]
	}
	name, ok := pctDecode(seg)
	if !ok || name == "" {
		return "", 0, false
	}
	if strings.EqualFold(name, "INBOX") {
		name = "INBOX"
	} else if len(name) > 5 && strings.EqualFold(name[:6], "INBOX/") {
		name = "INBOX" + name[5:]
	}
	return name, uv, true
}

// urlParam matches ";NAME=value" case-insensitively and returns value.
func urlParam(seg, name string) (string, bool) {
	p := ";" + name + "="
	if len(seg) < len(p) || !strings.EqualFold(seg[:len(p)], p) {
		return "", false
	}
	return seg[len(p):], true
}

// pctDecode undoes URL %-encoding.
func pctDecode(s string) (string, bool) {
	if !strings.Contains(s, "%") {
		return s, true
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", false
		}
		v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", false
		}
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), true
}

// parseURLSection parses an RFC 3501 section-spec as used in URLs:
// part numbers, then HEADER, HEADER.FIELDS[.NOT] (fields), TEXT or MIME.
func parseURLSection(s string) (imap.Section, bool) {
	var sec imap.Section
	for s != "" && s[0] >= '0' && s[0] <= '9' {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		n, err := strconv.Atoi(s[:i])
		if err != nil || n == 0 {
			return sec, false
		}
		sec.Part = append(sec.Part, n)
		s = s[i:]
		if s == "" {
			return sec, true
		}
		if s[0] != '.' {
			return sec, false
		}
		s = s[1:]
		if s == "" {
			return sec, false
		}
	}
	if s == "" {
		return sec, true
	}
	name, rest, _ := strings.Cut(s, " ")
	name = strings.ToUpper(name)
	switch name {
	case "HEADER", "TEXT":
		if rest != "" {
			return sec, false
		}
	case "MIME":
		if rest != "" || len(sec.Part) == 0 {
			return sec, false
		}
	case "HEADER.FIELDS", "HEADER.FIELDS.NOT":
		if len(rest) < 2 || rest[0] != '(' || rest[len(rest)-1] != ')' {
			return sec, false
		}
		sec.Fields = strings.Fields(rest[1 : len(rest)-1])
		if len(sec.Fields) == 0 {
			return sec, false
		}
	default:
		return sec, false
	}
	sec.Specifier = name
	return sec, true
}
