package search

// TEMPORARY: a minimal part-tree builder used only while message.Parse is
// still a stub on this branch. Remove once the message package lands.

import (
	"bytes"
	"mime"
	"net/mail"
	"strings"

	"github.com/tern-imap/tern/internal/message"
)

func fallbackParse(raw []byte) parsed {
	root := fallbackPart(raw, 0, int64(len(raw)), "text/plain")
	var info message.Info
	if m, err := mail.ReadMessage(bytes.NewReader(raw)); err == nil {
		if d, err := m.Header.Date(); err == nil {
			info.SentDate = d
		}
	}
	return parsed{raw: raw, root: root, info: &info}
}

func fallbackPart(raw []byte, start, end int64, defType string) *message.Part {
	p := &message.Part{HeaderStart: start}
	seg := raw[start:end]
	var hdrEnd int64
	if bytes.HasPrefix(seg, []byte("\r\n")) {
		hdrEnd = 2
	} else if i := bytes.Index(seg, []byte("\r\n\r\n")); i >= 0 {
		hdrEnd = int64(i) + 4
	} else {
		hdrEnd = int64(len(seg))
	}
	p.HeaderEnd, p.BodyStart, p.BodyEnd = start+hdrEnd, start+hdrEnd, end
	ct := defType
	var params map[string]string
	if m, err := mail.ReadMessage(bytes.NewReader(seg[:hdrEnd])); err == nil {
		if v := m.Header.Get("Content-Type"); v != "" {
			if t, ps, err := mime.ParseMediaType(v); err == nil {
				ct, params = t, ps
			}
		}
		p.Encoding = strings.ToLower(m.Header.Get("Content-Transfer-Encoding"))
	}
	p.Type, p.Subtype, _ = strings.Cut(ct, "/")
	p.Charset = params["charset"]
	switch {
	case ct == "message/rfc822":
		p.Message = true
		p.Children = []*message.Part{fallbackPart(raw, p.BodyStart, end, "text/plain")}
	case p.Type == "multipart":
		delim := []byte("\r\n--" + params["boundary"])
		body := raw[p.BodyStart:end]
		// A delimiter may also open the body without a preceding CRLF.
		pos := int64(-1)
		if bytes.HasPrefix(body, delim[2:]) {
			pos = 0
		} else if i := bytes.Index(body, delim); i >= 0 {
			pos = int64(i) + 2
		}
		child := "text/plain"
		if p.Subtype == "digest" {
			child = "message/rfc822"
		}
		for pos >= 0 {
			lineEnd := bytes.Index(body[pos:], []byte("\r\n"))
			if lineEnd < 0 || bytes.HasPrefix(body[pos+int64(len(delim))-2:], []byte("--")) {
				break
			}
			partStart := pos + int64(lineEnd) + 2
			next := bytes.Index(body[partStart:], delim)
			if next < 0 {
				break
			}
			p.Children = append(p.Children, fallbackPart(raw, p.BodyStart+partStart, p.BodyStart+partStart+int64(next), child))
			pos = partStart + int64(next) + 2
		}
	}
	return p
}
