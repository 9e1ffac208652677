package search

import (
	"bytes"
	"io"

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
	// Address holds, for each From, To, Cc and Bcc field, its addresses in
	// normalized form (message.AddressSearchText), folded, one line per
	// field: the second text FROM..BCC match against.
	Address []byte
	// Body is the decoded text of every text part (HTML twice: as
	// written and as rendered text), parts separated by NUL bytes (BODY
	// and TEXT read it).
	Body []byte
	// MIME is the decoded MIME headers of the body parts, attachment
	// file names included (TEXT reads it).
	MIME []byte
}

// Len is the number of bytes of text in d.
func (d *Doc) Len() int { return len(d.Header) + len(d.Address) + len(d.Body) + len(d.MIME) }

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
	var addr []byte
	for _, f := range c.fields {
		name := c.hdrRaw[f.nameStart:f.nameEnd]
		if !isAddressField(name) {
			continue
		}
		raw := c.hdrRaw[f.nameEnd:min(f.rawEnd, len(c.hdrRaw))]
		colon := bytes.IndexByte(raw, ':')
		if colon < 0 {
			continue
		}
		addr = foldAppend(addr, name)
		addr = append(addr, ':', ' ')
		addr = foldAppendString(addr, message.AddressSearchText(string(raw[colon+1:])))
		addr = append(addr, '\n')
	}
	return Doc{Header: c.hdrText, Address: addr, Body: c.bodyText, MIME: c.mimeText}, nil
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
