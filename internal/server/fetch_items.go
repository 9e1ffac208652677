package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/tern-imap/tern/imap"
	"github.com/tern-imap/tern/internal/message"
	"github.com/tern-imap/tern/internal/store"
)

// fetchItem is how one kind of FETCH item is answered.
type fetchItem struct {
	want    store.Want // what store.Fetch must fill for it
	content bool       // it reads the message: open the body first
	seen    bool       // it sets \Seen, unless it is a .PEEK
	// prepare, if set, runs before any of the response is written, so
	// what it finds wrong is answered with a clean tagged response.
	prepare func(m *fetchMsg, it *imap.FetchItem) error
	// write writes the item, starting with m.begin.
	write func(c *conn, m *fetchMsg, it *imap.FetchItem) error
}

// contentWant is what items that read the message need from Fetch: the
// part tree comes with the opened body (store.Body.Parts).
const contentWant = store.WantSize

// fetchItems answers every kind of FETCH item; a new kind is one entry.
var fetchItems = [...]fetchItem{
	imap.FetchUID:           valueItem(0, "UID ", func(c *conn, m *fetchMsg) { c.w.Number32(m.UID) }),
	imap.FetchFlags:         valueItem(store.WantFlags, "FLAGS ", func(c *conn, m *fetchMsg) { c.writeMsgFlags(m.UID, m.Flags) }),
	imap.FetchInternalDate:  valueItem(store.WantDates, "INTERNALDATE ", func(c *conn, m *fetchMsg) { c.w.Date(m.InternalDate) }),
	imap.FetchSaveDate:      valueItem(store.WantDates, "SAVEDATE ", writeSaveDate),
	imap.FetchRFC822Size:    valueItem(store.WantSize, "RFC822.SIZE ", func(c *conn, m *fetchMsg) { c.w.Number(uint64(m.Size)) }),
	imap.FetchEnvelope:      valueItem(store.WantEnvelope, "ENVELOPE ", func(c *conn, m *fetchMsg) { c.w.Write(m.Envelope) }),
	imap.FetchBody:          valueItem(store.WantBody, "BODY ", func(c *conn, m *fetchMsg) { c.w.Write(m.Body) }),
	imap.FetchBodyStructure: valueItem(store.WantBodyStructure, "BODYSTRUCTURE ", func(c *conn, m *fetchMsg) { c.w.Write(m.BodyStructure) }),
	imap.FetchModSeq:        valueItem(store.WantFlags, "MODSEQ ", writeModSeq),
	imap.FetchEmailID:       valueItem(store.WantIDs, "EMAILID ", func(c *conn, m *fetchMsg) { writeParenthesized(c.w, m.EmailID) }),
	imap.FetchThreadID:      valueItem(store.WantIDs, "THREADID ", writeThreadID),
	imap.FetchPreview:       valueItem(store.WantPreview, "PREVIEW ", writePreview),
	imap.FetchRFC822:        sectionItem("RFC822", "", true),
	imap.FetchRFC822Header:  sectionItem("RFC822.HEADER", "HEADER", false),
	imap.FetchRFC822Text:    sectionItem("RFC822.TEXT", "TEXT", true),
	imap.FetchBodySection:   sectionItem("", "", true),
	imap.FetchBinarySection: {want: contentWant, content: true, seen: true, prepare: decodeBinary, write: writeBinary},
	imap.FetchBinarySize:    {want: contentWant, content: true, prepare: decodeBinary, write: writeBinarySize},
}

// fetchMsg is one message being answered: what Fetch returned and, for
// items that read the message, its opened body and part tree.
type fetchMsg struct {
	*store.Message
	content  store.Body
	root     *message.Part
	binaries [][]byte // decoded BINARY items not yet written, in item order
	items    int      // items written so far
}

// openContent opens m's body and decodes its part tree.
func (c *conn) openContent(ctx context.Context, m *fetchMsg) error {
	b, err := c.sel.acct.OpenBody(ctx, c.sel.info.ID, m.UID)
	if err != nil {
		return fmt.Errorf("open body of uid %d: %w", m.UID, err)
	}
	m.content = b
	m.root, err = message.DecodeParts(b.Parts())
	if err != nil {
		return fmt.Errorf("decode parts of uid %d: %w", m.UID, err)
	}
	return nil
}

// useHeader answers m's top-level header sections from its stored header
// block (store.Message.Header, the bytes of section HEADER) instead of
// opening the message: one batched query for the whole command rather
// than a lookup and an open per message.
func (m *fetchMsg) useHeader(h []byte) {
	m.content = store.NewMemBody(h, nil)
	m.root = &message.Part{HeaderEnd: int64(len(h)), BodyStart: int64(len(h)), BodyEnd: int64(len(h)),
		HeaderNUL: bytes.IndexByte(h, 0) >= 0}
}

func (m *fetchMsg) close() {
	if m.content != nil {
		m.content.Close()
	}
}

// begin starts an item: a space unless it is the first, then name.
func (m *fetchMsg) begin(w *imap.Writer, name string) {
	if m.items > 0 {
		w.SP()
	}
	m.items++
	w.WriteString(name)
}

// fetchList is a command's items in answer order, each with its handler.
type fetchList []fetchEntry

type fetchEntry struct {
	item imap.FetchItem
	h    *fetchItem
}

func (l fetchList) add(it imap.FetchItem) fetchList {
	return append(l, fetchEntry{it, &fetchItems[it.Kind]})
}

func (l fetchList) has(k imap.FetchItemKind) bool {
	for i := range l {
		if l[i].item.Kind == k {
			return true
		}
	}
	return false
}

// withFlagChange is l plus what a FETCH that reports a flag change carries:
// FLAGS, and UID and MODSEQ once CONDSTORE is on (RFC 7162 §3.2.4).
func (l fetchList) withFlagChange(condstore bool) fetchList {
	out := l[:len(l):len(l)]
	if condstore && !l.has(imap.FetchUID) {
		out = out.add(imap.FetchItem{Kind: imap.FetchUID})
	}
	if !l.has(imap.FetchFlags) {
		out = out.add(imap.FetchItem{Kind: imap.FetchFlags})
	}
	if condstore && !l.has(imap.FetchModSeq) {
		out = out.add(imap.FetchItem{Kind: imap.FetchModSeq})
	}
	return out
}

func (l fetchList) want() store.Want {
	var w store.Want
	for i := range l {
		w |= l[i].h.want
	}
	if l.needsContent() && l.headerOnly() {
		w |= store.WantHeader
	}
	return w
}

// headerOnly reports whether every item of l that reads the message asks
// only for the top-level header (RFC822.HEADER, BODY[HEADER],
// BODY[HEADER.FIELDS ...], BODY[HEADER.FIELDS.NOT ...]), which the stored
// header block answers (fetchMsg.useHeader).
func (l fetchList) headerOnly() bool {
	for i := range l {
		if !l[i].h.content {
			continue
		}
		it := &l[i].item
		switch {
		case it.Kind == imap.FetchRFC822Header:
		case it.Kind == imap.FetchBodySection && len(it.Section.Part) == 0 &&
			(it.Section.Specifier == "HEADER" || it.Section.Specifier == "HEADER.FIELDS" || it.Section.Specifier == "HEADER.FIELDS.NOT"):
		default:
			return false
		}
	}
	return true
}

// eagerPreview reports whether l asks for PREVIEW without LAZY, which
// must be answered with the text even when none is stored yet.
func (l fetchList) eagerPreview() bool {
	for i := range l {
		if l[i].item.Kind == imap.FetchPreview && !l[i].item.Lazy {
			return true
		}
	}
	return false
}

func (l fetchList) needsContent() bool {
	for i := range l {
		if l[i].h.content {
			return true
		}
	}
	return false
}

func (l fetchList) setsSeen() bool {
	for i := range l {
		if l[i].h.seen && !l[i].item.Peek {
			return true
		}
	}
	return false
}

func (l fetchList) prepare(m *fetchMsg) error {
	for i := range l {
		if p := l[i].h.prepare; p != nil {
			if err := p(m, &l[i].item); err != nil {
				return err
			}
		}
	}
	return nil
}

func (l fetchList) write(c *conn, m *fetchMsg) error {
	for i := range l {
		if err := l[i].h.write(c, m, &l[i].item); err != nil {
			return err
		}
	}
	return nil
}

// --- the item writers ---

// valueItem answers an item that cannot fail: name, then what value
// writes of the fields want asks Fetch for.
func valueItem(want store.Want, name string, value func(c *conn, m *fetchMsg)) fetchItem {
	return fetchItem{want: want, write: func(c *conn, m *fetchMsg, _ *imap.FetchItem) error {
		m.begin(c.w, name)
		value(c, m)
		return nil
	}}
}

// writePreview writes the preview (RFC 8970): the stored one, or the one
// computed for this command (fetchCmd.computePreview); NIL only for
// PREVIEW (LAZY) of a message stored before previews were kept that the
// indexer has not reached yet.
func writePreview(c *conn, m *fetchMsg) {
	if m.Preview == nil {
		c.w.WriteString("NIL")
		return
	}
	c.w.String(*m.Preview)
}

func writeSaveDate(c *conn, m *fetchMsg) {
	if m.SaveDate.IsZero() {
		c.w.WriteString("NIL")
		return
	}
	c.w.Date(m.SaveDate)
}

func writeModSeq(c *conn, m *fetchMsg) {
	c.w.WriteByte('(')
	c.w.Number(m.ModSeq)
	c.w.WriteByte(')')
}

func writeThreadID(c *conn, m *fetchMsg) {
	if m.ThreadID == "" {
		c.w.WriteString("NIL")
		return
	}
	writeParenthesized(c.w, m.ThreadID)
}

// writeParenthesized writes "(s)", as for an RFC 8474 object id.
func writeParenthesized(w *imap.Writer, s string) {
	w.WriteByte('(')
	w.WriteString(s)
	w.WriteByte(')')
}

// sectionItem answers BODY[section] (name "") and the RFC822 forms, which
// are named sections: name with specifier spec ("" keeps the item's).
func sectionItem(name, spec string, seen bool) fetchItem {
	return fetchItem{want: contentWant, content: true, seen: seen,
		write: func(c *conn, m *fetchMsg, it *imap.FetchItem) error {
			sec := it.Section
			if spec != "" {
				sec = imap.Section{Specifier: spec}
			}
			return writeBodySection(c.w, m, name, &sec, it.Partial)
		}}
}

// writeBodySection writes a body section as a literal, cut to the partial
// range if one is given.
func writeBodySection(w *imap.Writer, m *fetchMsg, name string, sec *imap.Section, p *imap.Partial) error {
	r, n, err := message.Section(m.content, m.root, sec.Part, sec.Specifier, sec.Fields)
	if err != nil {
		return fmt.Errorf("section of uid %d: %w", m.UID, err)
	}
	// A literal cannot carry NUL: a single part's body goes out
	// base64-encoded, anything else as a literal8.
	nul, leaf := message.SectionNUL(m.root, sec.Part, sec.Specifier)
	if nul && leaf != nil {
		b, err := message.Base64Body(m.content, leaf)
		if err != nil {
			return fmt.Errorf("section of uid %d: %w", m.UID, err)
		}
		r, n, nul = bytes.NewReader(b), int64(len(b)), false
	}
	if name != "" {
		m.begin(w, name)
	} else {
		m.begin(w, "BODY")
		writeSection(w, sec)
	}
	return writePartial(w, p, r, n, nul)
}

// decodeBinary decodes a BINARY item's part before anything is written,
// so a part we cannot decode is answered with a clean NO [UNKNOWN-CTE].
func decodeBinary(m *fetchMsg, it *imap.FetchItem) error {
	data, err := message.Binary(m.content, m.root, it.Section.Part)
	if errors.Is(err, message.ErrUnknownEncoding) {
		return no("UNKNOWN-CTE", "Cannot decode this part's content-transfer-encoding")
	}
	if err != nil {
		return fmt.Errorf("binary of uid %d: %w", m.UID, err)
	}
	m.binaries = append(m.binaries, data)
	return nil
}

// nextBinary takes the next part decodeBinary decoded.
func (m *fetchMsg) nextBinary() []byte {
	data := m.binaries[0]
	m.binaries = m.binaries[1:]
	return data
}

func writeBinarySize(c *conn, m *fetchMsg, it *imap.FetchItem) error {
	data := m.nextBinary()
	m.begin(c.w, "BINARY.SIZE")
	writeSection(c.w, &it.Section)
	c.w.SP()
	c.w.Number(uint64(len(data)))
	return nil
}

func writeBinary(c *conn, m *fetchMsg, it *imap.FetchItem) error {
	data := m.nextBinary()
	m.begin(c.w, "BINARY")
	writeSection(c.w, &it.Section)
	if p := it.Partial; p != nil {
		off := min(int(p.Offset), len(data))
		end := min(off+int(p.Count), len(data))
		data = data[off:end]
		c.w.WriteByte('<')
		c.w.Number32(p.Offset)
		c.w.WriteByte('>')
	}
	c.w.SP()
	c.w.LiteralHeader(int64(len(data)), bytes.IndexByte(data, 0) >= 0)
	c.w.Write(data)
	return nil
}

// writeSection writes "[1.2.HEADER.FIELDS (A B)]".
func writeSection(w *imap.Writer, s *imap.Section) {
	w.WriteByte('[')
	for i, p := range s.Part {
		if i > 0 {
			w.WriteByte('.')
		}
		w.WriteString(strconv.Itoa(p))
	}
	if s.Specifier != "" {
		if len(s.Part) > 0 {
			w.WriteByte('.')
		}
		w.WriteString(s.Specifier)
	}
	if s.Specifier == "HEADER.FIELDS" || s.Specifier == "HEADER.FIELDS.NOT" {
		w.WriteString(" (")
		for i, f := range s.Fields {
			if i > 0 {
				w.SP()
			}
			w.AString(f)
		}
		w.WriteByte(')')
	}
	w.WriteByte(']')
}

// writePartial writes " {n}\r\n<data>" (" ~{n}\r\n<data>" if binary) for a
// section, cut to <offset.count> when asked ("<offset>" goes before the
// literal).
func writePartial(w *imap.Writer, p *imap.Partial, r io.Reader, n int64, binary bool) error {
	if p != nil {
		w.WriteByte('<')
		w.Number32(p.Offset)
		w.WriteByte('>')
		off := min(int64(p.Offset), n)
		if off > 0 {
			if s, ok := r.(io.Seeker); ok {
				if _, err := s.Seek(off, io.SeekStart); err != nil {
					return fmt.Errorf("seek in section: %w", err)
				}
			} else if _, err := io.CopyN(io.Discard, r, off); err != nil {
				return fmt.Errorf("skip in section: %w", err)
			}
		}
		n = min(n-off, int64(p.Count))
	}
	w.SP()
	return w.Literal(r, n, binary)
}
