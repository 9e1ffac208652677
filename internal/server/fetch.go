package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"

	"github.com/tern-imap/tern/imap"
	"github.com/tern-imap/tern/internal/message"
	"github.com/tern-imap/tern/internal/store"
)

// resolveSet turns a sequence set (or UID set) into the ascending UIDs of
// messages in view it names. For message sequence numbers outside the view
// it returns a BAD error.
func (c *conn) resolveSet(set imap.NumSet, uidMode bool) ([]uint32, error) {
	sel := c.sel
	if set.Saved {
		// "$": the saved search result, still in view.
		out := make([]uint32, 0, len(sel.saved))
		for _, u := range sel.saved {
			if _, ok := slices.BinarySearch(sel.uids, u); ok {
				out = append(out, u)
			}
		}
		return out, nil
	}
	n := uint32(len(sel.uids))
	if uidMode {
		if n == 0 {
			return nil, nil
		}
		maxUID := sel.uids[n-1]
		var out []uint32
		for _, r := range set.Expand(maxUID) {
			lo, _ := slices.BinarySearch(sel.uids, r.Start)
			hi, _ := slices.BinarySearch(sel.uids, r.Stop)
			if hi < int(n) && sel.uids[hi] == r.Stop {
				hi++
			}
			out = append(out, sel.uids[lo:hi]...)
		}
		return out, nil
	}
	if n == 0 && set.Dynamic() {
		// "1:*" in an empty mailbox names nothing; answer OK with nothing.
		return nil, nil
	}
	for _, r := range set.Ranges {
		if (r.Start != 0 && r.Start > n) || (r.Stop != 0 && r.Stop > n) {
			return nil, bad("", "Invalid message sequence number")
		}
	}
	if n == 0 {
		return nil, nil
	}
	var out []uint32
	for _, r := range set.Expand(n) {
		out = append(out, sel.uids[r.Start-1:r.Stop]...)
	}
	return out, nil
}

// setsSeen reports whether the item implicitly sets \Seen.
func setsSeen(it *imap.FetchItem) bool {
	switch it.Kind {
	case imap.FetchBodySection, imap.FetchBinarySection:
		return !it.Peek
	case imap.FetchRFC822, imap.FetchRFC822Text:
		return true
	}
	return false
}

func fetchWant(items []imap.FetchItem) store.Want {
	var w store.Want
	for i := range items {
		switch items[i].Kind {
		case imap.FetchFlags:
			w |= store.WantFlags
		case imap.FetchInternalDate, imap.FetchSaveDate:
			w |= store.WantDates
		case imap.FetchRFC822Size:
			w |= store.WantSize
		case imap.FetchEnvelope:
			w |= store.WantEnvelope
		case imap.FetchBody:
			w |= store.WantBody
		case imap.FetchBodyStructure:
			w |= store.WantBodyStructure
		case imap.FetchModSeq:
			w |= store.WantFlags
		case imap.FetchEmailID, imap.FetchThreadID:
			w |= store.WantIDs
		case imap.FetchRFC822, imap.FetchRFC822Header, imap.FetchRFC822Text,
			imap.FetchBodySection, imap.FetchBinarySection, imap.FetchBinarySize:
			w |= store.WantParts | store.WantSize
		}
	}
	return w
}

func cmdFetch(ctx context.Context, c *conn, cmd *imap.Command) error {
	args := cmd.Args.(*imap.FetchArgs)
	sel := c.sel
	uids, err := c.resolveSet(args.Set, cmd.UID)
	if err != nil {
		return err
	}
	items := args.Items
	if args.Vanished && !(cmd.UID && args.HasChangedSince && c.qresync) {
		return bad("", "VANISHED needs UID FETCH with CHANGEDSINCE after ENABLE QRESYNC")
	}
	hasModSeq := false
	for i := range items {
		if items[i].Kind == imap.FetchModSeq {
			hasModSeq = true
		}
	}
	if args.HasChangedSince && !hasModSeq {
		// CHANGEDSINCE implies MODSEQ (RFC 7162 §3.1.4.1).
		items = append(slices.Clip(items), imap.FetchItem{Kind: imap.FetchModSeq})
		hasModSeq = true
	}
	if hasModSeq {
		c.enableCondstore()
	}
	if args.Vanished {
		gone, err := c.acct.Vanished(ctx, sel.info.ID, args.ChangedSince)
		if err != nil {
			return fmt.Errorf("fetch vanished in %q: %w", sel.info.Name, err)
		}
		gone = slices.DeleteFunc(gone, func(u uint32) bool { return !args.Set.Contains(u, sel.maxUID) })
		if len(gone) > 0 {
			c.w.WriteString("* VANISHED (EARLIER) ")
			c.w.WriteString(imap.SetFromNums(gone).String())
			c.w.CRLF()
		}
	}
	want := fetchWant(items)
	markSeen := false
	if !sel.readOnly {
		for i := range items {
			if setsSeen(&items[i]) {
				markSeen = true
				break
			}
		}
	}
	// Messages whose \Seen we set: their FLAGS go out with the FETCH.
	var seenNow map[uint32]bool
	if markSeen && len(uids) > 0 {
		res, err := c.acct.StoreFlags(ctx, sel.info.ID, uids, store.FlagsAdd, []string{`\Seen`}, 0, false)
		if err != nil {
			return fmt.Errorf("fetch: set \\Seen: %w", err)
		}
		seenNow = make(map[uint32]bool)
		for _, m := range res.Updated {
			if m.ModSeq > sel.modSeq {
				seenNow[m.UID] = true
				c.noteOwnChange(m.UID, m.ModSeq)
			}
		}
		if len(seenNow) > 0 {
			want |= store.WantFlags
		}
	}
	started := false // a FETCH response is partly written
	err = c.acct.Fetch(ctx, sel.info.ID, uids, want, func(m *store.Message) error {
		seq, ok := sel.seqOf(m.UID)
		if !ok {
			return nil
		}
		if args.HasChangedSince && m.ModSeq <= args.ChangedSince {
			return nil
		}
		var body store.Body
		var root *message.Part
		defer func() {
			if body != nil {
				body.Close()
			}
		}()
		openBody := func() error {
			if body != nil {
				return nil
			}
			b, err := c.acct.OpenBody(ctx, sel.info.ID, m.UID)
			if err != nil {
				return fmt.Errorf("open body of uid %d: %w", m.UID, err)
			}
			body = b
			root, err = message.DecodeParts(m.Parts)
			if err != nil {
				return fmt.Errorf("decode parts of uid %d: %w", m.UID, err)
			}
			return nil
		}
		// Open the body before writing anything: a message another session
		// expunged since our view was taken is skipped cleanly (RFC 9051
		// lets the server omit it) instead of breaking the response.
		for i := range items {
			switch items[i].Kind {
			case imap.FetchRFC822, imap.FetchRFC822Header, imap.FetchRFC822Text, imap.FetchBodySection,
				imap.FetchBinarySection, imap.FetchBinarySize:
				if err := openBody(); err != nil {
					if errors.Is(err, store.ErrNoSuchMessage) {
						return nil
					}
					return err
				}
			}
		}
		// Decode BINARY items before writing anything, so a part we cannot
		// decode is answered with a clean NO [UNKNOWN-CTE].
		var binaries [][]byte
		for i := range items {
			if k := items[i].Kind; k == imap.FetchBinarySection || k == imap.FetchBinarySize {
				if err := openBody(); err != nil {
					return err
				}
				data, err := message.Binary(body, root, items[i].Section.Part)
				if errors.Is(err, message.ErrUnknownEncoding) {
					return no("UNKNOWN-CTE", "Cannot decode this part's content-transfer-encoding")
				}
				if err != nil {
					return fmt.Errorf("binary of uid %d: %w", m.UID, err)
				}
				binaries = append(binaries, data)
			}
		}
		started = true
		c.w.WriteString("* ")
		c.w.Number32(seq)
		c.w.WriteString(" FETCH (")
		first := true
		sp := func() {
			if !first {
				c.w.SP()
			}
			first = false
		}
		wroteUID, wroteFlags := false, false
		if cmd.UID {
			sp()
			c.w.WriteString("UID ")
			c.w.Number32(m.UID)
			wroteUID = true
		}
		for i := range items {
			it := &items[i]
			switch it.Kind {
			case imap.FetchUID:
				if wroteUID {
					continue
				}
				sp()
				c.w.WriteString("UID ")
				c.w.Number32(m.UID)
				wroteUID = true
			case imap.FetchFlags:
				if wroteFlags {
					continue
				}
				sp()
				c.w.WriteString("FLAGS ")
				c.writeMsgFlags(m.UID, m.Flags)
				wroteFlags = true
			case imap.FetchInternalDate:
				sp()
				c.w.WriteString("INTERNALDATE ")
				c.w.Date(m.InternalDate)
			case imap.FetchSaveDate:
				sp()
				c.w.WriteString("SAVEDATE ")
				if m.SaveDate.IsZero() {
					c.w.WriteString("NIL")
				} else {
					c.w.Date(m.SaveDate)
				}
			case imap.FetchRFC822Size:
				sp()
				c.w.WriteString("RFC822.SIZE ")
				c.w.Number(uint64(m.Size))
			case imap.FetchEnvelope:
				sp()
				c.w.WriteString("ENVELOPE ")
				c.w.Write(m.Envelope)
			case imap.FetchBody:
				sp()
				c.w.WriteString("BODY ")
				c.w.Write(m.Body)
			case imap.FetchBodyStructure:
				sp()
				c.w.WriteString("BODYSTRUCTURE ")
				c.w.Write(m.BodyStructure)
			case imap.FetchModSeq:
				sp()
				c.w.WriteString("MODSEQ (")
				c.w.Number(m.ModSeq)
				c.w.WriteByte(')')
			case imap.FetchEmailID:
				sp()
				c.w.WriteString("EMAILID (")
				c.w.WriteString(m.EmailID)
				c.w.WriteByte(')')
			case imap.FetchThreadID:
				sp()
				if m.ThreadID == "" {
					c.w.WriteString("THREADID NIL")
				} else {
					c.w.WriteString("THREADID (")
					c.w.WriteString(m.ThreadID)
					c.w.WriteByte(')')
				}
			case imap.FetchRFC822, imap.FetchRFC822Header, imap.FetchRFC822Text, imap.FetchBodySection:
				if err := openBody(); err != nil {
					return err
				}
				sec := it.Section
				name := ""
				switch it.Kind {
				case imap.FetchRFC822:
					name = "RFC822"
				case imap.FetchRFC822Header:
					name = "RFC822.HEADER"
					sec = imap.Section{Specifier: "HEADER"}
				case imap.FetchRFC822Text:
					name = "RFC822.TEXT"
					sec = imap.Section{Specifier: "TEXT"}
				}
				r, n, err := message.Section(body, root, sec.Part, sec.Specifier, sec.Fields)
				if err != nil {
					return fmt.Errorf("section of uid %d: %w", m.UID, err)
				}
				// A literal cannot carry NUL: a single part's body goes
				// out base64-encoded, anything else as a literal8.
				nul, leaf := message.SectionNUL(root, sec.Part, sec.Specifier)
				if nul && leaf != nil {
					b, err := message.Base64Body(body, leaf)
					if err != nil {
						return fmt.Errorf("section of uid %d: %w", m.UID, err)
					}
					r, n, nul = bytes.NewReader(b), int64(len(b)), false
				}
				sp()
				if name != "" {
					c.w.WriteString(name)
				} else {
					c.w.WriteString("BODY")
					writeSection(c.w, &sec)
				}
				if err := writePartial(c.w, it.Partial, r, n, nul); err != nil {
					return err
				}
			case imap.FetchBinarySection, imap.FetchBinarySize:
				data := binaries[0]
				binaries = binaries[1:]
				sp()
				if it.Kind == imap.FetchBinarySize {
					c.w.WriteString("BINARY.SIZE")
					writeSection(c.w, &it.Section)
					c.w.SP()
					c.w.Number(uint64(len(data)))
					continue
				}
				c.w.WriteString("BINARY")
				writeSection(c.w, &it.Section)
				if it.Partial != nil {
					off := min(int(it.Partial.Offset), len(data))
					end := min(off+int(it.Partial.Count), len(data))
					data = data[off:end]
					c.w.WriteByte('<')
					c.w.Number32(it.Partial.Offset)
					c.w.WriteByte('>')
				}
				c.w.SP()
				c.w.LiteralHeader(int64(len(data)), bytes.IndexByte(data, 0) >= 0)
				c.w.Write(data)
			}
		}
		if seenNow[m.UID] && c.condstore && !wroteUID {
			// RFC 7162 §3.2.4: UID and MODSEQ in every FETCH that reports
			// a flag change once CONDSTORE is on.
			sp()
			c.w.WriteString("UID ")
			c.w.Number32(m.UID)
		}
		if seenNow[m.UID] && !wroteFlags {
			sp()
			c.w.WriteString("FLAGS ")
			c.writeMsgFlags(m.UID, m.Flags)
		}
		if seenNow[m.UID] && c.condstore && !hasModSeq {
			sp()
			c.w.WriteString("MODSEQ (")
			c.w.Number(m.ModSeq)
			c.w.WriteByte(')')
		}
		c.w.WriteString(")\r\n")
		started = false
		return nil
	})
	if err != nil {
		var re *respError
		if errors.As(err, &re) {
			return err
		}
		if started {
			// A response is half written: the stream cannot be resynced.
			c.log.Error("fetch failed mid-response; closing connection", "mailbox", sel.info.Name, "err", err)
			return errClose
		}
		return fmt.Errorf("fetch in %q: %w", sel.info.Name, err)
	}
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
