// Package message parses a message once, at delivery, into what FETCH and
// SEARCH need: the IMAP-encoded ENVELOPE, BODY and BODYSTRUCTURE, and a part
// tree with byte offsets so body sections are served without re-parsing.
package message

import (
	"bytes"
	"errors"
	"io"
	"time"
)

// Info is the result of Parse.
type Info struct {
	Envelope      []byte    // IMAP-encoded ENVELOPE, e.g. `("date" "subject" ((...)) ...)`
	Body          []byte    // IMAP-encoded BODY (no extension data)
	BodyStructure []byte    // IMAP-encoded BODYSTRUCTURE (with extension data)
	Parts         []byte    // encoded part tree; decode with DecodeParts
	SentDate      time.Time // parsed Date: header; zero if absent or unparseable
	MessageID     string    // Message-ID without the angle brackets
	InReplyTo     []string  // message ids in In-Reply-To, without angle brackets
	References    []string  // message ids in References, without angle brackets
	Subject       string    // decoded (RFC 2047) subject
}

// Part is one node of the part tree. Offsets are into the raw message.
type Part struct {
	HeaderStart, HeaderEnd int64 // header incl. the blank line that ends it
	BodyStart, BodyEnd     int64
	Type, Subtype          string // lower case, e.g. "text","plain"
	Encoding               string // Content-Transfer-Encoding, lower case
	Charset                string
	Children               []*Part // multipart children, or one child: the embedded message of message/rfc822 (whose own part tree follows)
	Message                bool    // message/rfc822 (or global): Children[0] is the embedded message
	// HeaderNUL and BodyNUL record that the header or the body contains a
	// NUL octet, which an IMAP literal cannot carry (see SectionNUL).
	// Part trees stored before these were recorded have them false.
	HeaderNUL, BodyNUL bool
}

// Parse parses raw message bytes. It never fails on malformed input: it
// returns a best-effort structure (a message that is not MIME is text/plain).
func Parse(raw []byte) (*Info, error) {
	ps := &parser{raw: raw}
	root := ps.entity(0, len(raw), 0, false)
	if bytes.IndexByte(raw, 0) >= 0 {
		markNUL(raw, root.p)
	}
	info := &Info{
		Envelope:      appendEnvelope(nil, root.hdr),
		Body:          appendBody(nil, raw, root, false),
		BodyStructure: appendBody(nil, raw, root, true),
		Parts:         EncodeParts(root.p),
	}
	if v, ok := getString(root.hdr, "date"); ok {
		info.SentDate = parseDate(v)
	}
	if v, ok := getString(root.hdr, "message-id"); ok {
		if ids := msgIDs(v); len(ids) > 0 {
			info.MessageID = ids[0]
		}
	}
	if v, ok := getString(root.hdr, "in-reply-to"); ok {
		info.InReplyTo = msgIDs(v)
	}
	if v, ok := getString(root.hdr, "references"); ok {
		info.References = msgIDs(v)
	}
	if v, ok := getString(root.hdr, "subject"); ok {
		info.Subject = DecodeHeaderValue(v)
	}
	return info, nil
}

// Section returns a body section of the message read from r, as a reader
// and its exact length. part is the 1-based part path (empty = the whole
// message); specifier is "", "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT",
// "TEXT" or "MIME" (upper case); fields are the header names for
// HEADER.FIELDS[.NOT]. A nonexistent part yields an empty section
// (RFC 9051 §6.4.5). Plain byte ranges are served as io.SectionReader
// without copying.
func Section(r io.ReaderAt, root *Part, part []int, specifier string, fields []string) (io.Reader, int64, error) {
	return section(r, root, part, specifier, fields)
}

// Binary returns the content of a part with its Content-Transfer-Encoding
// removed (RFC 3516 BINARY[part]). ErrUnknownEncoding means the server must
// answer NO [UNKNOWN-CTE].
func Binary(r io.ReaderAt, root *Part, part []int) ([]byte, error) {
	return binaryPart(r, root, part)
}

// ErrUnknownEncoding is returned by Binary for a transfer encoding it cannot decode.
var ErrUnknownEncoding = errors.New("unknown content-transfer-encoding")
