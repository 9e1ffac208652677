package postgres

import "github.com/tern-imap/tern/internal/store/backend"

// delta returns this write's backend.OwnDelta of mailbox m, started at
// m's modseq as the write first found it (under the user's row lock: the
// latest committed one). It spares this process's mailbox index the
// catch-up query (IndexDelta: one round trip and five statements after
// every APPEND, EXPUNGE and MOVE); other nodes hear of the change
// through NOTIFY and catch up as before.
func (w *wtx) delta(m *mbox) *backend.OwnDelta { return w.deltas.For(m.id, m.highest) }

// sendDeltas hands a committed write's deltas to the notifier, if it
// takes them. A delta whose final modseq is not the one the write
// announces for the mailbox missed a change the same write made by
// another path, and is not sent.
func (s *Store) sendDeltas(a *account, w *wtx) {
	w.deltas.Send(s.opts.Notifier, a.name, a.id, func(id int64, od *backend.OwnDelta) bool {
		return w.changed[id] == od.D.Head.HighestModSeq
	})
}
