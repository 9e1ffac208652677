package sqlite

import "github.com/tern-imap/tern/internal/store"

// ownDelta is what one write did to one mailbox: the messages it added
// and expunged and the mailbox's state afterwards, handed to a
// store.DeltaNotifier after the commit so the in-memory index applies it
// without a catch-up query. A write whose change it cannot describe (new
// mailbox keywords, copies whose content fields it did not read) marks it
// unusable, and the index catches up through IndexDelta as before.
type ownDelta struct {
	from     uint64 // the mailbox's modseq when this write first touched it
	d        store.IndexDelta
	unusable bool
}

// delta returns this write's ownDelta of mailbox m, started at m's modseq
// as the write first found it.
func (w *wtx) delta(m *mbox) *ownDelta {
	if w.deltas == nil {
		w.deltas = make(map[int64]*ownDelta)
	}
	od := w.deltas[m.id]
	if od == nil {
		od = &ownDelta{from: m.highest}
		w.deltas[m.id] = od
	}
	return od
}

// added records a message the write inserted.
func (od *ownDelta) added(r store.IndexRow) { od.d.Rows = append(od.d.Rows, r) }

// expunged records messages the write removed at modseq.
func (od *ownDelta) expunged(rows []msgRow, modseq uint64) {
	for _, r := range rows {
		od.d.Expunged = append(od.d.Expunged, store.ExpungedUID{UID: r.uid, ModSeq: modseq})
	}
}

// sendDeltas hands a committed write's deltas to the notifier, if it
// takes them; each carries the mailbox's final state m.
func (s *Store) sendDeltas(u *userDB, deltas map[int64]*ownDelta) {
	dn, ok := s.opts.Notifier.(store.DeltaNotifier)
	if !ok {
		return
	}
	for id, od := range deltas {
		if !od.unusable {
			dn.MailboxDelta(u.name, u.id, id, od.from, &od.d)
		}
	}
}
