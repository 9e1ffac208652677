package server

import "github.com/tern-imap/tern/imap"

// UIDONLY (RFC 9586): after ENABLE UIDONLY the session never uses message
// sequence numbers. Commands that carry them (the non-UID forms of FETCH,
// STORE, SEARCH, COPY, MOVE, SORT, THREAD and REPLACE, a sequence-set
// search key, QRESYNC's known-sequence-set) are answered BAD [UIDREQUIRED]
// by dispatch; FETCH data goes out as "* uid UIDFETCH (...)"
// (writeFetchHead), expunges as VANISHED (reportExpunges), and SELECT
// leaves out the rev1 [UNSEEN n] code.

// usesSeqNumbers reports whether cmd names messages by sequence number.
func usesSeqNumbers(cmd *imap.Command) bool {
	switch a := cmd.Args.(type) {
	case *imap.FetchArgs, *imap.StoreArgs, *imap.CopyArgs, *imap.ReplaceArgs:
		return !cmd.UID
	case *imap.SearchArgs:
		return !cmd.UID || keyUsesSeqNumbers(a.Key)
	case *imap.SortArgs:
		return !cmd.UID || keyUsesSeqNumbers(a.Key)
	case *imap.ThreadArgs:
		return !cmd.UID || keyUsesSeqNumbers(a.Key)
	case *imap.SelectArgs:
		return a.QResync != nil && a.QResync.SeqMatchSeq != nil
	}
	return false
}

// keyUsesSeqNumbers reports whether a search key holds a sequence set of
// message numbers ("$", the saved result, names UIDs and is allowed).
func keyUsesSeqNumbers(k *imap.SearchKey) bool {
	if k == nil {
		return false
	}
	if k.Op == imap.SearchSeqSet && !k.Set.Saved {
		return true
	}
	for _, ch := range k.Children {
		if keyUsesSeqNumbers(ch) {
			return true
		}
	}
	return false
}

// writeFetchHead starts a FETCH response: "* seq FETCH (", or under
// UIDONLY "* uid UIDFETCH (".
func (c *conn) writeFetchHead(seq, uid uint32) {
	c.w.WriteString("* ")
	if c.uidOnly {
		c.w.Number32(uid)
		c.w.WriteString(" UIDFETCH (")
		return
	}
	c.w.Number32(seq)
	c.w.WriteString(" FETCH (")
}
