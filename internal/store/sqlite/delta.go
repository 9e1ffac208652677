package sqlite

import "github.com/tern-imap/tern/internal/store/backend"

// delta returns this write's backend.OwnDelta of mailbox m, started at
// m's modseq as the write first found it. The deltas go to the notifier
// after the commit (writeTx).
func (w *wtx) delta(m *mbox) *backend.OwnDelta { return w.deltas.For(m.id, m.highest) }
