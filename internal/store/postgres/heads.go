package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/tern-imap/tern/internal/store"
)

// The safety net for lost change signals. A signal can be lost: one
// sent while this node's listening connection reconnects, or a batched
// one pending in a node that died (signals.go). Sessions that have a
// mailbox selected, or IDLE in it, would then see that change only at
// the mailbox's next signal. So every headCheckInterval, and at once
// after the listener reconnects, the node reads the heads of the
// mailboxes its sessions wait on (store.WatchLister, from the notifier)
// in one query and reports each one the database has ahead of what the
// node has seen, as if its signal had arrived. That bounds how stale a
// waiting session can stay to about the interval.
//
// Not covered: NOTIFY's per-user subscriptions to all of a user's
// mailboxes and to the mailbox list (they are not listed mailbox by
// mailbox), and ACL signals; those wait for the next signal.

// headCheckInterval is how often the heads of the watched mailboxes are
// compared with the database.
const headCheckInterval = 2 * time.Second

// headCheckTimeout bounds one check.
const headCheckTimeout = 10 * time.Second

// headsSQL reads the HIGHESTMODSEQ of the mailboxes $1.
const headsSQL = `SELECT id, highestmodseq FROM mailboxes WHERE id = ANY($1::bigint[])`

// watchHeads checks the watched mailboxes' heads every interval, and
// when recheck is signalled, until ctx ends.
func (s *Store) watchHeads(ctx context.Context, interval time.Duration, recheck <-chan struct{}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	known := map[int64]uint64{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-recheck:
		}
		cctx, cancel := context.WithTimeout(ctx, headCheckTimeout)
		err := s.checkHeads(cctx, known)
		cancel()
		if err != nil && ctx.Err() == nil {
			s.log.Warn("postgres store: checking watched mailboxes", "err", err)
		}
	}
}

// checkHeads reports (to the notifier) each watched mailbox whose
// HIGHESTMODSEQ in the database is above what the node has seen: the
// modseq the notifier lists for it, or the head an earlier check found
// (known, by mailbox id; updated here). Without known, a mailbox the
// notifier knows no modseq for (its index was evicted while a session
// waits on it) would be reported at every check, waking its sessions
// and reloading its index each time.
func (s *Store) checkHeads(ctx context.Context, known map[int64]uint64) error {
	wl, ok := s.opts.Notifier.(store.WatchLister)
	if !ok {
		return nil
	}
	watched := wl.WatchedMailboxes()
	if len(watched) == 0 {
		clear(known)
		return nil
	}
	ids := make([]int64, len(watched))
	for i, w := range watched {
		ids[i] = w.MailboxID
	}
	heads, err := s.mailboxHeads(ctx, ids)
	if err != nil {
		return err
	}
	for id := range known {
		if _, ok := heads[id]; !ok {
			delete(known, id) // no longer watched, or deleted
		}
	}
	for _, w := range watched {
		h, ok := heads[w.MailboxID]
		if !ok {
			continue
		}
		if h > max(w.ModSeq, known[w.MailboxID]) {
			changed := map[int64]uint64{w.MailboxID: h}
			s.raiseFloor(changed)
			s.notifyLocal(w.User, changed, false)
		}
		known[w.MailboxID] = max(known[w.MailboxID], h)
	}
	return nil
}

// mailboxHeads reads the HIGHESTMODSEQ of the mailboxes ids (absent:
// deleted).
func (s *Store) mailboxHeads(ctx context.Context, ids []int64) (map[int64]uint64, error) {
	rows, err := s.pool.Query(ctx, headsSQL, ids)
	if err != nil {
		return nil, fmt.Errorf("read mailbox heads: %w", err)
	}
	defer rows.Close()
	heads := make(map[int64]uint64, len(ids))
	for rows.Next() {
		var id int64
		var h uint64
		if err := rows.Scan(&id, &h); err != nil {
			return nil, fmt.Errorf("read mailbox heads: %w", err)
		}
		heads[id] = h
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read mailbox heads: %w", err)
	}
	return heads, nil
}
