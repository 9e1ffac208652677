// Package notify fans out mailbox changes to every session that watches the
// mailbox. A signal carries no data: a woken session asks the store what
// changed since its last look (store.Account.Changes), so a missed or
// coalesced signal never loses an update.
package notify

import (
	"sync"

	"github.com/tern-imap/tern/internal/store"
)

type key struct {
	user    string
	mailbox int64
}

// Hub implements store.Notifier. The zero value is not usable; use New.
type Hub struct {
	mu   sync.Mutex
	subs map[key]map[*Subscription]struct{}
	// users holds per-user subscriptions (NOTIFY): every mailbox of the
	// user plus mailbox-list changes.
	users map[string]map[*UserSubscription]struct{}
	// watchers holds the user subscriptions watching one mailbox of
	// another user (UserSubscription.Watch).
	watchers map[key]map[*UserSubscription]struct{}
	// ownerWatchers holds the user subscriptions watching the mailbox
	// list of another user (UserSubscription.WatchOwners).
	ownerWatchers map[string]map[*UserSubscription]struct{}
}

// New returns an empty hub.
func New() *Hub {
	return &Hub{subs: make(map[key]map[*Subscription]struct{})}
}

// Subscription receives a signal on C whenever its mailbox changed. C has
// a buffer of one: signals coalesce while the session is busy.
type Subscription struct {
	C    chan struct{}
	hub  *Hub
	key  key
	wake func() // called (under the hub's lock) after each signal; must not block
}

// SetWake installs f to be called after every signal, e.g. to interrupt a
// blocked read. f runs on the notifying goroutine and must not block.
func (s *Subscription) SetWake(f func()) {
	if s == nil || s.hub == nil {
		return
	}
	s.hub.mu.Lock()
	s.wake = f
	s.hub.mu.Unlock()
}

// Subscribe watches one mailbox of one user.
func (h *Hub) Subscribe(user string, mailboxID int64) *Subscription {
	s := &Subscription{C: make(chan struct{}, 1), hub: h, key: key{user, mailboxID}}
	h.mu.Lock()
	m := h.subs[s.key]
	if m == nil {
		m = make(map[*Subscription]struct{})
		h.subs[s.key] = m
	}
	m[s] = struct{}{}
	h.mu.Unlock()
	return s
}

// Close stops the subscription. It is safe to call more than once.
func (s *Subscription) Close() {
	if s == nil || s.hub == nil {
		return
	}
	h := s.hub
	h.mu.Lock()
	if m := h.subs[s.key]; m != nil {
		delete(m, s)
		if len(m) == 0 {
			delete(h.subs, s.key)
		}
	}
	h.mu.Unlock()
	s.hub = nil
}

// MailboxChanged signals every subscriber of the mailbox (store.Notifier).
func (h *Hub) MailboxChanged(user string, mailboxID int64, modSeq uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs[key{user, mailboxID}] {
		select {
		case s.C <- struct{}{}:
		default:
		}
		if s.wake != nil {
			s.wake()
		}
	}
	for u := range h.users[user] {
		u.markMailbox(mailboxID)
	}
	for u := range h.watchers[key{user, mailboxID}] {
		u.markOther(key{user, mailboxID})
	}
}

// WatchedMailboxes lists the mailboxes that subscriptions wait on
// (store.WatchLister): those of Subscribe, and those a UserSubscription
// watches in other users' accounts. A hub does not know modseqs; they
// are 0.
func (h *Hub) WatchedMailboxes() []store.WatchedMailbox {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]store.WatchedMailbox, 0, len(h.subs)+len(h.watchers))
	for k := range h.subs {
		out = append(out, store.WatchedMailbox{User: k.user, MailboxID: k.mailbox})
	}
	for k := range h.watchers {
		if _, dup := h.subs[k]; !dup {
			out = append(out, store.WatchedMailbox{User: k.user, MailboxID: k.mailbox})
		}
	}
	return out
}

// WatchedUsers lists the users that user subscriptions (NOTIFY) watch
// (store.UserWatchLister): their own users, and the owners whose mailbox
// lists they watch for what is shared with them (WatchOwners).
func (h *Hub) WatchedUsers() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]string, 0, len(h.users)+len(h.ownerWatchers))
	for u, subs := range h.users {
		if len(subs) > 0 {
			out = append(out, u)
		}
	}
	for o, subs := range h.ownerWatchers {
		if len(subs) > 0 && len(h.users[o]) == 0 { // else listed above
			out = append(out, o)
		}
	}
	return out
}
