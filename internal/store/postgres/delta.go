package postgres

import "github.com/tern-imap/tern/internal/store"

// ownDelta is what one write did to one mailbox: the messages it added
// and expunged and the mailbox's state afterwards, handed to a
// store.DeltaNotifier after the commit so that this process's mailbox
// index applies it without a catch-up query (IndexDelta: one round trip
// and five statements after every APPEND, EXPUNGE and MOVE). A write
// whose change it cannot describe (new mailbox keywords, copies whose
// content fields it did not read) marks it unusable, and the index
// catches up through IndexDelta. Other nodes hear of the change through
// NOTIFY and catch up as before.
type ownDelta struct {
	from     uint64 // the mailbox's modseq when this write first touched it
	d        store.IndexDelta
	unusable bool
}

// delta returns this write's ownDelta of mailbox m, started at m's modseq
// as the write first found it (under the user's row lock: the latest
// committed one).
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

// expunged records messages the write removed at modseq.
func (od *ownDelta) expunged(rows []msgRow, modseq uint64) {
	for _, r := range rows {
		od.d.Expunged = append(od.d.Expunged, store.ExpungedUID{UID: r.uid, ModSeq: modseq})
	}
}

// sendDeltas hands a committed write's deltas to the notifier, if it
// takes them. A delta whose final modseq is not the one the write
// announces for the mailbox missed a change the same write made by
// another path, and is not sent.
func (s *Store) sendDeltas(a *account, w *wtx) {
	dn, ok := s.opts.Notifier.(store.DeltaNotifier)
	if !ok {
		return
	}
	for id, od := range w.deltas {
		if !od.unusable && w.changed[id] == od.d.Head.HighestModSeq {
			dn.MailboxDelta(a.name, a.id, id, od.from, &od.d)
		}
	}
}
