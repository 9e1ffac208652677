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
// mailbox list, and to the lists of the owners who share mailboxes with
// the user (store.UserWatchLister; Hub.WatchOwners), are checked too:
// every mailbox of those users, from the check after the node started
// watching the user on; a mailbox created, deleted or renamed since the
// last check, or a change of the user's subscriptions, is reported as a
// change of the list; a change of the ACL entries that name the user, as
// an ACL signal for the user, and one of the entries for anyone, as one
// for anyone. ACL signals lost while the listener reconnected are also
// made up for by the reconnection itself (listen: every NOTIFY session
// looks at what is shared with it afresh).

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
// watched user's mailbox list.
type headsSeen struct {
	mu        sync.Mutex
	mailboxes map[int64]uint64
	lists     map[string]listSeen
	acls      map[string]string // digest of the ACL entries naming the user
	// anyone is the digest of the ACL entries for anyone, if anyoneSeen.
	anyone     string
	anyoneSeen bool
	// gen counts what saw and sawACL forgot: a check whose reads began
	// before that takes no list and no ACL digest (it could put back
	// what was forgotten, and the change would be told twice).
	gen uint64
	// resets counts forgetHeads: a check whose reads began before one
	// may have read a server that lost commits since, and takes and
	// reports nothing.
	resets uint64
}

// checkStart is what a check notes before it reads (compare).
type checkStart struct{ gen, resets uint64 }

// listSeen is what a check found of a user's mailbox list: the
// mailboxes' ids and names (ascending id) and a digest of the user's
// subscriptions.
type listSeen struct {
	boxes []mailboxName
	subs  string
}

// mailboxName is one mailbox's id and name.
type mailboxName struct {
	id   int64
	name string
}

// equal reports whether two checks found the same list.
func (l listSeen) equal(o listSeen) bool {
	return l.subs == o.subs && slices.Equal(l.boxes, o.boxes)
}

// saw raises the known heads of the checked mailboxes among changed (a
// change of user's the node made or heard of), and forgets user's
// mailbox list when it changed (the next check takes it as it is), so
// that the next check does not report either again.
func (k *headsSeen) saw(user string, changed map[int64]uint64, list bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if list {
		delete(k.lists, user)
		k.gen++
	}
	for id, ms := range changed {
		if cur, ok := k.mailboxes[id]; ok && ms > cur {
			k.mailboxes[id] = ms
		}
	}
}

// sawACL forgets the ACL digests an ACL change for identifier (one the
// node made or heard of) touches, every one for anyone (the notifier
// tells every user of such a change), so that the next check takes them
// as they are and does not report the change again.
func (k *headsSeen) sawACL(identifier string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.gen++
	if identifier == store.Anyone {
		clear(k.acls)
		k.anyoneSeen = false
		return
	}
	delete(k.acls, identifier)
}

// start is gen and resets now, for a check about to read.
func (k *headsSeen) start() checkStart {
	k.mu.Lock()
	defer k.mu.Unlock()
	return checkStart{k.gen, k.resets}
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
	at := known.start()
	heads, err := s.mailboxHeads(ctx, ids)
	if err != nil {
		return err
	}
	boxes, err := s.userMailboxHeads(ctx, users)
	if err != nil {
		return err
	}
	reports, lists, acls, anyone := known.compare(watched, users, heads, boxes, at)
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
	if anyone {
		acls = []string{store.Anyone} // every user's
	}
	for _, user := range acls {
		s.tellACLChanged("", user) // not aclChanged: the check has the entries already
	}
	return nil
}

// forgetHeads forgets the heads seen (a reset: the database may have
// given a lost modseq again, which the next check must not take for one
// already known); the next check reports every watched mailbox above
// what its index holds.
func (k *headsSeen) forgetHeads() {
	k.mu.Lock()
	defer k.mu.Unlock()
	clear(k.mailboxes)
	k.resets++
}

// compare records the heads just read (of the watched mailboxes, and of
// the mailbox lists of the watched users, by user) and returns the
// mailboxes whose head is above what was known, and the users whose
// list changed (a user without mailboxes has an empty one), those whose
// ACL entries changed, and whether those for anyone did (boxes'
// anyoneACL). A watched user's mailbox is reported only from its second
// check on; lists and ACL entries only when nothing was forgotten since
// gen, read before the check's queries.
func (k *headsSeen) compare(watched []store.WatchedMailbox, users []string, heads map[int64]uint64, boxes map[string]userHeads, at checkStart) (reports []headReport, lists, acls []string, anyone bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.resets != at.resets {
		return nil, nil, nil, false
	}
	gen := at.gen
	if k.mailboxes == nil {
		k.mailboxes, k.lists, k.acls = map[int64]uint64{}, map[string]listSeen{}, map[string]string{}
	}
	k.forgetExcept(heads, users, boxes)
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
	fresh := k.gen == gen
	for _, user := range users {
		u := boxes[user]
		list := listSeen{boxes: make([]mailboxName, len(u.boxes)), subs: u.subs}
		for i, b := range u.boxes {
			list.boxes[i] = mailboxName{b.id, b.name}
			if prev, ok := k.mailboxes[b.id]; ok && b.head > prev {
				reports = append(reports, headReport{user, b.id, b.head})
			}
			k.mailboxes[b.id] = max(k.mailboxes[b.id], b.head)
		}
		if !fresh {
			continue
		}
		if prev, ok := k.lists[user]; ok && !prev.equal(list) {
			lists = append(lists, user)
		}
		k.lists[user] = list
		if prev, ok := k.acls[user]; ok && prev != u.acl {
			acls = append(acls, user)
		}
		k.acls[user] = u.acl
	}
	if fresh && len(users) > 0 {
		a := boxes[users[0]].anyoneACL // the same in every row
		anyone = k.anyoneSeen && k.anyone != a
		k.anyone, k.anyoneSeen = a, true
	}
	return reports, lists, acls, anyone
}

// forgetExcept drops what is known of mailboxes and users no longer
// checked (or deleted). Callers hold mu.
func (k *headsSeen) forgetExcept(heads map[int64]uint64, users []string, boxes map[string]userHeads) {
	checked := make(map[int64]bool, len(heads))
	for id := range heads {
		checked[id] = true
	}
	for _, u := range boxes {
		for _, b := range u.boxes {
			checked[b.id] = true
		}
	}
	maps.DeleteFunc(k.mailboxes, func(id int64, _ uint64) bool { return !checked[id] })
	maps.DeleteFunc(k.lists, func(user string, _ listSeen) bool { return !slices.Contains(users, user) })
	maps.DeleteFunc(k.acls, func(user string, _ string) bool { return !slices.Contains(users, user) })
	if len(users) == 0 {
		k.anyoneSeen = false
	}
}

// mailboxHead is one mailbox's id and HIGHESTMODSEQ (and its name, for
// a watched user's mailbox).
type mailboxHead struct {
	id   int64
	head uint64
	name string
}

// userHeads is what a check reads of a watched user: the mailboxes
// (ascending id), a digest of the subscriptions, one of the ACL entries
// that name the user and one of those for anyone (the same for all).
type userHeads struct {
	boxes     []mailboxHead
	subs      string
	acl       string
	anyoneACL string
}

// userHeadsSQL reads the id, HIGHESTMODSEQ and name of every mailbox of
// the users $1, by user and ascending id, each row with the SHA-256 of
// the user's subscriptions in order, that of the ACL entries naming the
// user (once per user) and that of the entries for anyone ($2; once); a
// user without mailboxes has one row with no mailbox.
var userHeadsSQL = `SELECT u.name, m.id, m.highestmodseq, m.name, s.digest, g.digest, (` + aclDigestSQL("$2") + `) FROM users u
	CROSS JOIN LATERAL (SELECT sha256(convert_to(COALESCE(array_agg(name ORDER BY name), '{}')::text, 'UTF8')) AS digest
		FROM subscriptions WHERE user_id = u.id) s
	CROSS JOIN LATERAL (` + aclDigestSQL("u.name") + `) g
	LEFT JOIN mailboxes m ON m.user_id = u.id
	WHERE u.name = ANY($1::text[]) ORDER BY u.name, m.id`

// aclDigestSQL selects the SHA-256 of the ACL entries for identifier
// (an expression), in order, as digest.
func aclDigestSQL(identifier string) string {
	return `SELECT sha256(convert_to(COALESCE(array_agg(a.mailbox_id || ' ' || a.rights ORDER BY a.mailbox_id), '{}')::text, 'UTF8')) AS digest
		FROM acl a WHERE a.identifier = ` + identifier
}

// userMailboxHeads reads the mailboxes and subscriptions of users (by
// user name; a deleted user is absent).
func (s *Store) userMailboxHeads(ctx context.Context, users []string) (map[string]userHeads, error) {
	out := map[string]userHeads{}
	if len(users) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, userHeadsSQL, users, store.Anyone)
	if err != nil {
		return nil, fmt.Errorf("read users' mailbox heads: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var user string
		var id, head *int64
		var name *string
		var digest, acl, anyone []byte
		if err := rows.Scan(&user, &id, &head, &name, &digest, &acl, &anyone); err != nil {
			return nil, fmt.Errorf("read users' mailbox heads: %w", err)
		}
		u := out[user]
		u.subs, u.acl, u.anyoneACL = string(digest), string(acl), string(anyone)
		if id != nil {
			u.boxes = append(u.boxes, mailboxHead{id: *id, head: uint64(*head), name: *name})
		}
		out[user] = u
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
