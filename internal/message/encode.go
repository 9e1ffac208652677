package message

import (
	"strconv"
	"strings"
)

// appendString appends s as an IMAP quoted string when it can be one (no
// CR, LF or 8-bit bytes, at most 1024 bytes), otherwise as a literal
// {n}CRLF... . NUL bytes cannot be sent in either form (RFC 9051 CHAR8)
// and are dropped. The form is precomputed for any client, so 8-bit text
// always goes as a literal (only UTF8=ACCEPT clients may get it quoted).
func appendString(b []byte, s string) []byte {
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "")
	}
	quote := len(s) <= 1024
	for i := 0; quote && i < len(s); i++ {
		if c := s[i]; c == '\r' || c == '\n' || c >= 0x80 {
			quote = false
		}
	}
	if !quote {
		b = append(b, '{')
		b = strconv.AppendInt(b, int64(len(s)), 10)
		b = append(b, "}\r\n"...)
		return append(b, s...)
	}
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b = append(b, '\\')
		}
		b = append(b, s[i])
	}
	return append(b, '"')
}

func appendNString(b []byte, s *string) []byte {
	if s == nil {
		return append(b, "NIL"...)
	}
	return appendString(b, *s)
}

// appendField appends the unfolded raw value of the first field called
// name, or NIL.
func appendField(b []byte, fields []field, name string) []byte {
	if v, ok := getString(fields, name); ok {
		return appendString(b, v)
	}
	return append(b, "NIL"...)
}

// appendEnvelope appends the ENVELOPE of a message with header fields
// (RFC 9051 §7.5.2): date, subject, from, sender, reply-to, to, cc, bcc,
// in-reply-to, message-id. Values are the raw unfolded header values.
func appendEnvelope(b []byte, fields []field) []byte {
	b = append(b, '(')
	b = appendField(b, fields, "date")
	b = append(b, ' ')
	b = appendField(b, fields, "subject")
	from := addresses(fields, "from")
	b = append(b, ' ')
	b = appendAddresses(b, from)
	for _, name := range []string{"sender", "reply-to"} {
		// Absent or empty: the same as from (RFC 3501 §7.4.2).
		list := addresses(fields, name)
		if len(list) == 0 {
			list = from
		}
		b = append(b, ' ')
		b = appendAddresses(b, list)
	}
	for _, name := range []string{"to", "cc", "bcc"} {
		b = append(b, ' ')
		b = appendAddresses(b, addresses(fields, name))
	}
	b = append(b, ' ')
	b = appendField(b, fields, "in-reply-to")
	b = append(b, ' ')
	b = appendField(b, fields, "message-id")
	return append(b, ')')
}

func addresses(fields []field, name string) []address {
	v, ok := getString(fields, name)
	if !ok {
		return nil
	}
	return parseAddressList(v)
}

func appendAddresses(b []byte, list []address) []byte {
	if len(list) == 0 {
		return append(b, "NIL"...)
	}
	b = append(b, '(')
	for _, a := range list {
		b = append(b, '(')
		b = appendNString(b, a.name)
		b = append(b, ' ')
		b = appendNString(b, a.adl)
		b = append(b, ' ')
		b = appendNString(b, a.mailbox)
		b = append(b, ' ')
		b = appendNString(b, a.host)
		b = append(b, ')')
	}
	return append(b, ')')
}

func appendParams(b []byte, ps []param) []byte {
	if len(ps) == 0 {
		return append(b, "NIL"...)
	}
	b = append(b, '(')
	for i, p := range ps {
		if i > 0 {
			b = append(b, ' ')
		}
		b = appendString(b, p.name)
		b = append(b, ' ')
		b = appendString(b, p.value)
	}
	return append(b, ')')
}

// appendBody appends the BODY (ext=false) or BODYSTRUCTURE (ext=true) of
// n, following the body ABNF of RFC 9051 §9 / RFC 3501 §9. Types and
// subtypes are sent as written in the message.
func appendBody(b []byte, raw []byte, n *node, ext bool) []byte {
	b = append(b, '(')
	if n.multipart() {
		for _, c := range n.children {
			b = appendBody(b, raw, c, ext)
		}
		b = append(b, ' ')
		b = appendString(b, n.sub)
		if ext {
			b = append(b, ' ')
			b = appendParams(b, n.params)
			b = appendExt(b, n)
		}
		return append(b, ')')
	}
	p := n.p
	b = appendString(b, n.typ)
	b = append(b, ' ')
	b = appendString(b, n.sub)
	b = append(b, ' ')
	params := n.params
	if p.Type == "text" {
		if _, ok := getParam(params, "charset"); !ok {
			// RFC 2045 §5.2 default, made explicit
			params = append(params[:len(params):len(params)], param{"charset", "us-ascii"})
		}
	}
	b = appendParams(b, params)
	b = append(b, ' ')
	b = appendField(b, n.hdr, "content-id")
	b = append(b, ' ')
	b = appendField(b, n.hdr, "content-description")
	b = append(b, ' ')
	enc := n.enc
	if enc == "" {
		enc = "7bit"
	}
	b = appendString(b, enc)
	b = append(b, ' ')
	body := raw[p.BodyStart:p.BodyEnd]
	b = strconv.AppendInt(b, int64(len(body)), 10)
	switch {
	case p.Message:
		inner := n.children[0]
		b = append(b, ' ')
		b = appendEnvelope(b, inner.hdr)
		b = append(b, ' ')
		b = appendBody(b, raw, inner, ext)
		b = append(b, ' ')
		b = strconv.AppendInt(b, countLines(body), 10)
	case p.Type == "text":
		b = append(b, ' ')
		b = strconv.AppendInt(b, countLines(body), 10)
	}
	if ext {
		b = append(b, ' ')
		b = appendField(b, n.hdr, "content-md5")
		b = appendExt(b, n)
	}
	return append(b, ')')
}

// appendExt appends SP body-fld-dsp SP body-fld-lang SP body-fld-loc.
func appendExt(b []byte, n *node) []byte {
	b = append(b, ' ')
	if v, ok := getString(n.hdr, "content-disposition"); ok {
		if typ, ps := parseDisposition(v); typ != "" {
			b = append(b, '(')
			b = appendString(b, typ)
			b = append(b, ' ')
			b = appendParams(b, ps)
			b = append(b, ')')
		} else {
			b = append(b, "NIL"...)
		}
	} else {
		b = append(b, "NIL"...)
	}
	b = append(b, ' ')
	var langs []string
	if v, ok := getString(n.hdr, "content-language"); ok {
		langs = strings.FieldsFunc(v, func(r rune) bool {
			return r == ',' || r == ' ' || r == '\t'
		})
	}
	if len(langs) == 0 {
		b = append(b, "NIL"...)
	} else {
		b = append(b, '(')
		for i, l := range langs {
			if i > 0 {
				b = append(b, ' ')
			}
			b = appendString(b, l)
		}
		b = append(b, ')')
	}
	b = append(b, ' ')
	return appendField(b, n.hdr, "content-location")
}
