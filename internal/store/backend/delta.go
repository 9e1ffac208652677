package backend

import "github.com/tern-imap/tern/internal/store"

// OwnDelta is what one write did to one mailbox: the messages it added
// and expunged and the mailbox's state afterwards (D), handed to a
// store.DeltaNotifier after the commit so that this process's mailbox
// index applies it without a catch-up query. A write whose change it
// cannot describe (new mailbox keywords, copies whose content fields it
// did not read) marks it Unusable, and the index catches up through the
// store's IndexDelta as for changes of other processes.
type OwnDelta struct {
	From     uint64 // the mailbox's modseq when the write first touched it
	D        store.IndexDelta
	Unusable bool
}

// Deltas are one write's OwnDeltas by mailbox id.
type Deltas map[int64]*OwnDelta

// For returns the write's delta of mailbox id, started at highest, the
// mailbox's modseq as the write first found it.
func (ds *Deltas) For(id int64, highest uint64) *OwnDelta {
	if *ds == nil {
		*ds = make(Deltas)
	}
	od := (*ds)[id]
	if od == nil {
		od = &OwnDelta{From: highest}
		(*ds)[id] = od
	}
	return od
}

// AddExpunged records uid removed at modseq.
func (od *OwnDelta) AddExpunged(uid uint32, modseq uint64) {
	od.D.Expunged = append(od.D.Expunged, store.ExpungedUID{UID: uid, ModSeq: modseq})
}

// Send hands the usable deltas to n if it is a store.DeltaNotifier; final,
// if not nil, may hold a delta back (it missed a change the write made by
// another path).
func (ds Deltas) Send(n store.Notifier, user string, userID int64, final func(id int64, od *OwnDelta) bool) {
	dn, ok := n.(store.DeltaNotifier)
	if !ok {
		return
	}
	for id, od := range ds {
		if !od.Unusable && (final == nil || final(id, od)) {
			dn.MailboxDelta(user, userID, id, od.From, &od.D)
		}
	}
}
