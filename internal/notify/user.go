package notify

import "github.com/tern-imap/tern/internal/store"

// maxDirty bounds the mailbox IDs a user subscription remembers between
// two Take calls; past it the subscription reports "all changed".
const maxDirty = 256

// UserSubscription receives a signal on C whenever any mailbox of its user
// changed, or the user's mailbox list (names, subscriptions) changed. C has
// a buffer of one: signals coalesce; Take says what changed since the last
// Take. It is meant for sessions watching many mailboxes (IMAP NOTIFY).
type UserSubscription struct {
	C    chan struct{}
	hub  *Hub
	user string
	wake func()

	// Guarded by hub.mu.
	dirty map[int64]struct{}
	all   bool // more than maxDirty mailboxes changed
	list  bool // the mailbox list changed
	// Other users' mailboxes watched (Watch) and those changed since
	// the last TakeOthers.
	watching   []key
	dirtyOther map[key]struct{}
	// owners are the users whose mailbox lists are watched
	// (WatchOwners); shared says that what other users share with the
	// subscription's user may have changed since the last TakeShared.
	owners []string
	shared bool
}

// Mailbox names one mailbox of one user.
type Mailbox struct {
	User string
	ID   int64
}

// Watch makes the subscription watch exactly boxes, mailboxes of other
// users (shared with its user), besides its user's own: a change to one
// signals C and shows in TakeOthers. A change not yet taken of a box
// that stays watched stays pending: the caller may have read the
// mailboxes' state before that change landed.
func (s *UserSubscription) Watch(boxes []Mailbox) {
	if s == nil || s.hub == nil {
		return
	}
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	pending := s.dirtyOther
	s.unwatchLocked()
	for _, b := range boxes {
		if _, ok := pending[key{b.User, b.ID}]; ok {
			s.markOther(key{b.User, b.ID})
		}
	}
	if h.watchers == nil {
		h.watchers = make(map[key]map[*UserSubscription]struct{})
	}
	for _, b := range boxes {
		k := key{b.User, b.ID}
		m := h.watchers[k]
		if m == nil {
			m = make(map[*UserSubscription]struct{})
			h.watchers[k] = m
		}
		m[s] = struct{}{}
		s.watching = append(s.watching, k)
	}
}

// unwatchLocked drops the subscription's watches; called with hub.mu held.
func (s *UserSubscription) unwatchLocked() {
	h := s.hub
	for _, k := range s.watching {
		if m := h.watchers[k]; m != nil {
			delete(m, s)
			if len(m) == 0 {
				delete(h.watchers, k)
			}
		}
	}
	s.watching, s.dirtyOther = nil, nil
}

// WatchOwners makes the subscription watch exactly the mailbox lists of
// owners (users who share mailboxes with its user): a mailbox of theirs
// created, deleted or renamed signals C and shows in TakeShared.
func (s *UserSubscription) WatchOwners(owners []string) {
	if s == nil || s.hub == nil {
		return
	}
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	s.unwatchOwnersLocked()
	if h.ownerWatchers == nil {
		h.ownerWatchers = make(map[string]map[*UserSubscription]struct{})
	}
	for _, o := range owners {
		m := h.ownerWatchers[o]
		if m == nil {
			m = make(map[*UserSubscription]struct{})
			h.ownerWatchers[o] = m
		}
		m[s] = struct{}{}
		s.owners = append(s.owners, o)
	}
}

// unwatchOwnersLocked drops the owner watches; called with hub.mu held.
func (s *UserSubscription) unwatchOwnersLocked() {
	h := s.hub
	for _, o := range s.owners {
		if m := h.ownerWatchers[o]; m != nil {
			delete(m, s)
			if len(m) == 0 {
				delete(h.ownerWatchers, o)
			}
		}
	}
	s.owners = nil
}

// TakeShared reports and clears whether what other users share with the
// subscription's user may have changed (an ACL entry for the user or for
// anyone, or the mailbox list of a watched owner) since the last call.
func (s *UserSubscription) TakeShared() bool {
	if s.hub == nil {
		return false
	}
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	shared := s.shared
	s.shared = false
	return shared
}

// markShared records a possible change of what is shared with the
// subscription's user; called with hub.mu held.
func (s *UserSubscription) markShared() {
	s.shared = true
	s.signal()
}

// TakeOthers returns and clears the watched mailboxes of other users
// that changed since the last call (unordered).
func (s *UserSubscription) TakeOthers() []Mailbox {
	if s.hub == nil {
		return nil
	}
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	var out []Mailbox
	for k := range s.dirtyOther {
		out = append(out, Mailbox{k.user, k.mailbox})
	}
	s.dirtyOther = nil
	return out
}

// markOther records a change of a watched mailbox of another user;
// called with hub.mu held.
func (s *UserSubscription) markOther(k key) {
	if s.dirtyOther == nil {
		s.dirtyOther = make(map[key]struct{})
	}
	s.dirtyOther[k] = struct{}{}
	s.signal()
}

// SubscribeUser watches every mailbox of user and its mailbox list.
func (h *Hub) SubscribeUser(user string) *UserSubscription {
	s := &UserSubscription{C: make(chan struct{}, 1), hub: h, user: user}
	h.mu.Lock()
	if h.users == nil {
		h.users = make(map[string]map[*UserSubscription]struct{})
	}
	m := h.users[user]
	if m == nil {
		m = make(map[*UserSubscription]struct{})
		h.users[user] = m
	}
	m[s] = struct{}{}
	h.mu.Unlock()
	return s
}

// SetWake installs f to be called after every signal (see
// Subscription.SetWake). f runs under the hub's lock and must not block.
func (s *UserSubscription) SetWake(f func()) {
	if s == nil || s.hub == nil {
		return
	}
	s.hub.mu.Lock()
	s.wake = f
	s.hub.mu.Unlock()
}

// Pending reports whether a signal is waiting on C.
func (s *UserSubscription) Pending() bool { return len(s.C) > 0 }

// Take returns and clears what changed since the last Take: the changed
// mailbox IDs (unordered), whether more mailboxes changed than could be
// remembered (then every mailbox must be treated as changed), and whether
// the mailbox list changed. It also drains C.
func (s *UserSubscription) Take() (mailboxes []int64, all, list bool) {
	select {
	case <-s.C:
	default:
	}
	if s.hub == nil {
		return nil, false, false
	}
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	for id := range s.dirty {
		mailboxes = append(mailboxes, id)
	}
	all, list = s.all, s.list
	s.dirty, s.all, s.list = nil, false, false
	return mailboxes, all, list
}

// Close stops the subscription. It is safe to call more than once.
func (s *UserSubscription) Close() {
	if s == nil || s.hub == nil {
		return
	}
	h := s.hub
	h.mu.Lock()
	s.unwatchLocked()
	s.unwatchOwnersLocked()
	if m := h.users[s.user]; m != nil {
		delete(m, s)
		if len(m) == 0 {
			delete(h.users, s.user)
		}
	}
	h.mu.Unlock()
	s.hub = nil
}

// signal wakes the subscriber; called with hub.mu held.
func (s *UserSubscription) signal() {
	select {
	case s.C <- struct{}{}:
	default:
	}
	if s.wake != nil {
		s.wake()
	}
}

// markMailbox records a mailbox change; called with hub.mu held.
func (s *UserSubscription) markMailbox(id int64) {
	if !s.all {
		if s.dirty == nil {
			s.dirty = make(map[int64]struct{})
		}
		s.dirty[id] = struct{}{}
		if len(s.dirty) > maxDirty {
			s.all, s.dirty = true, nil
		}
	}
	s.signal()
}

// MailboxListChanged signals every user subscription of user that a
// mailbox was created, deleted or renamed, or a subscription changed
// (store.MailboxListNotifier).
func (h *Hub) MailboxListChanged(user string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.users[user] {
		s.list = true
		s.signal()
	}
	for s := range h.ownerWatchers[user] {
		s.markShared()
	}
}

// ACLChanged implements store.ACLNotifier: the user subscriptions of
// identifier (of every user but owner, for store.Anyone) hear that what
// is shared with them may have changed.
func (h *Hub) ACLChanged(owner, identifier string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if identifier != store.Anyone {
		if identifier == owner {
			return
		}
		for s := range h.users[identifier] {
			s.markShared()
		}
		return
	}
	for u, subs := range h.users {
		if u == owner {
			continue
		}
		for s := range subs {
			s.markShared()
		}
	}
}
