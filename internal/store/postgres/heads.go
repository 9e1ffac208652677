package postgres

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
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
// NOTIFY's subscriptions to all of a user's mailboxes and to the
// mailbox list (store.UserWatchLister) are checked too: every mailbox of
// those users, from the check after the node started watching the user
// on; a mailbox created or deleted since the last check is reported as
// a change of the list. Not covered: a rename (same mailbox ids), a
// change of subscriptions, other owners' mailbox lists that NOTIFY
// watches (Hub.WatchOwners), and ACL signals: those wait for the next
// signal.

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
	known := &s.headsSeen
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

// headsSeen is what earlier checks found: each checked mailbox's head,
// raised by the changes the node hears of meanwhile (saw), and each
// watched user's mailbox ids (ascending).
type headsSeen struct {
	mu        sync.Mutex
	mailboxes map[int64]uint64
	lists     map[string][]int64
}

// saw raises the known heads of the checked mailboxes among changed (a
// change of user's the node made or heard of), and forgets user's
// mailbox ids when the list changed (the next check takes them as they
// are), so that the next check does not report either again.
func (k *headsSeen) saw(user string, changed map[int64]uint64, list bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if list {
		delete(k.lists, user)
	}
	for id, ms := range changed {
		if cur, ok := k.mailboxes[id]; ok && ms > cur {
			k.mailboxes[id] = ms
		}
	}
}

// headReport is a mailbox the database has ahead of the node.
type headReport struct {
	user string
	id   int64
	head uint64
}

// checkHeads reports (to the notifier) each watched mailbox whose
// HIGHESTMODSEQ in the database is above what the node has seen: the
// modseq the notifier lists for it, or the head an earlier check found
// or the node heard of since (known). Without known, a mailbox the
// notifier knows no modseq for (its index was evicted while a session
// waits on it) would be reported at every check, waking its sessions
// and reloading its index each time. Then the watched users' mailboxes
// (compare).
func (s *Store) checkHeads(ctx context.Context, known *headsSeen) error {
	var watched []store.WatchedMailbox
	if wl, ok := s.opts.Notifier.(store.WatchLister); ok {
		watched = wl.WatchedMailboxes()
	}
	var users []string
	if ul, ok := s.opts.Notifier.(store.UserWatchLister); ok {
		users = ul.WatchedUsers()
	}
	ids := make([]int64, len(watched))
	for i, w := range watched {
		ids[i] = w.MailboxID
	}
	heads, err := s.mailboxHeads(ctx, ids)
	if err != nil {
		return err
	}
	boxes, err := s.userMailboxHeads(ctx, users)
	if err != nil {
		return err
	}
	reports, lists := known.compare(watched, users, heads, boxes)
	for _, r := range reports {
		changed := map[int64]uint64{r.id: r.head}
		s.raiseFloor(changed)
		s.notifyLocal(r.user, changed, false)
	}
	for _, user := range lists {
		// Not notifyLocal: the check has the new list already (saw
		// would make the next check take it again, missing a change
		// lost in between).
		s.tellListChanged(user)
	}
	return nil
}

// compare records the heads just read (of the watched mailboxes, and of
// the mailboxes of the watched users, by user) and returns the
// mailboxes whose head is above what was known, and the users whose
// mailbox ids changed (a user without mailboxes has none). A watched
// user's mailbox is reported only from its second check on.
func (k *headsSeen) compare(watched []store.WatchedMailbox, users []string, heads map[int64]uint64, boxes map[string][]mailboxHead) ([]headReport, []string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.mailboxes == nil {
		k.mailboxes, k.lists = map[int64]uint64{}, map[string][]int64{}
	}
	k.forgetExcept(heads, users, boxes)
	var reports []headReport
	for _, w := range watched {
		h, ok := heads[w.MailboxID]
		if !ok {
			continue
		}
		if h > max(w.ModSeq, k.mailboxes[w.MailboxID]) {
			reports = append(reports, headReport{w.User, w.MailboxID, h})
		}
		k.mailboxes[w.MailboxID] = max(k.mailboxes[w.MailboxID], h)
	}
	var lists []string
	for _, user := range users {
		bs := boxes[user]
		ids := make([]int64, len(bs))
		for i, b := range bs {
			ids[i] = b.id
			if prev, ok := k.mailboxes[b.id]; ok && b.head > prev {
				reports = append(reports, headReport{user, b.id, b.head})
			}
			k.mailboxes[b.id] = max(k.mailboxes[b.id], b.head)
		}
		if prev, ok := k.lists[user]; ok && !slices.Equal(prev, ids) {
			lists = append(lists, user)
		}
		k.lists[user] = ids
	}
	return reports, lists
}

// forgetExcept drops what is known of mailboxes and users no longer
// checked (or deleted). Callers hold mu.
func (k *headsSeen) forgetExcept(heads map[int64]uint64, users []string, boxes map[string][]mailboxHead) {
	checked := make(map[int64]bool, len(heads))
	for id := range heads {
		checked[id] = true
	}
	for _, bs := range boxes {
		for _, b := range bs {
			checked[b.id] = true
		}
	}
	maps.DeleteFunc(k.mailboxes, func(id int64, _ uint64) bool { return !checked[id] })
	maps.DeleteFunc(k.lists, func(user string, _ []int64) bool { return !slices.Contains(users, user) })
}

// mailboxHead is one mailbox's id and HIGHESTMODSEQ.
type mailboxHead struct {
	id   int64
	head uint64
}

// userHeadsSQL reads the id and HIGHESTMODSEQ of every mailbox of the
// users $1, by user and ascending id.
const userHeadsSQL = `SELECT u.name, m.id, m.highestmodseq FROM users u JOIN mailboxes m ON m.user_id = u.id
	WHERE u.name = ANY($1::text[]) ORDER BY u.name, m.id`

// userMailboxHeads reads the mailboxes of users (by user name; a user
// without mailboxes, or deleted, is absent).
func (s *Store) userMailboxHeads(ctx context.Context, users []string) (map[string][]mailboxHead, error) {
	out := map[string][]mailboxHead{}
	if len(users) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, userHeadsSQL, users)
	if err != nil {
		return nil, fmt.Errorf("read users' mailbox heads: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var user string
		var b mailboxHead
		if err := rows.Scan(&user, &b.id, &b.head); err != nil {
			return nil, fmt.Errorf("read users' mailbox heads: %w", err)
		}
		out[user] = append(out[user], b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read users' mailbox heads: %w", err)
	}
	return out, nil
}

// mailboxHeads reads the HIGHESTMODSEQ of the mailboxes ids (absent:
// deleted).
func (s *Store) mailboxHeads(ctx context.Context, ids []int64) (map[int64]uint64, error) {
	if len(ids) == 0 {
		return map[int64]uint64{}, nil
	}
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
