package notify

import (
	"maps"
	"slices"
	"testing"
)

func TestHubSignalsSubscribersOfThatMailboxOnly(t *testing.T) {
	h := New()
	a := h.Subscribe("alice", 1)
	b := h.Subscribe("alice", 2)
	c := h.Subscribe("bob", 1)
	defer a.Close()
	defer b.Close()
	defer c.Close()

	h.MailboxChanged("alice", 1, 5)
	h.MailboxChanged("alice", 1, 6) // coalesces, must not block

	select {
	case <-a.C:
	default:
		t.Fatal("subscriber of alice/1 not signalled")
	}
	select {
	case <-a.C:
		t.Fatal("signals did not coalesce")
	default:
	}
	for name, s := range map[string]*Subscription{"alice/2": b, "bob/1": c} {
		select {
		case <-s.C:
			t.Fatalf("%s signalled for another mailbox", name)
		default:
		}
	}
	a.Close()
	a.Close()
	h.MailboxChanged("alice", 1, 7)
	if len(h.subs[key{"alice", 1}]) != 0 {
		t.Fatal("closed subscription still registered")
	}
}

func TestWakeOnlyForOwnMailbox(t *testing.T) {
	h := New()
	s := h.Subscribe("u", 1)
	defer s.Close()
	woke := 0
	s.SetWake(func() { woke++ })
	h.MailboxChanged("u", 2, 1) // another mailbox
	h.MailboxChanged("v", 1, 1) // another user
	if woke != 0 {
		t.Fatalf("wake called %d times for other mailboxes", woke)
	}
	h.MailboxChanged("u", 1, 2)
	if woke != 1 {
		t.Fatalf("wake called %d times", woke)
	}
}

func TestUserSubscription(t *testing.T) {
	h := New()
	s := h.SubscribeUser("u")
	other := h.SubscribeUser("v")
	defer other.Close()
	woke := 0
	s.SetWake(func() { woke++ })
	h.MailboxChanged("u", 3, 1)
	h.MailboxChanged("u", 4, 1)
	h.MailboxChanged("u", 3, 2)
	if !s.Pending() {
		t.Fatal("no signal pending")
	}
	ids, all, list := s.Take()
	if len(ids) != 2 || all || list || woke != 3 {
		t.Fatalf("Take = %v %v %v (woke %d), want 2 ids", ids, all, list, woke)
	}
	if s.Pending() || other.Pending() {
		t.Fatal("signal left after Take, or another user signalled")
	}
	h.MailboxListChanged("u")
	if _, _, list := s.Take(); !list {
		t.Fatal("list change not reported")
	}
	for i := range maxDirty + 1 {
		h.MailboxChanged("u", int64(i), 1)
	}
	if ids, all, _ := s.Take(); !all || ids != nil {
		t.Fatalf("overflow: ids %d all %v", len(ids), all)
	}
	s.Close()
	s.Close()
	h.MailboxChanged("u", 1, 1)
	if s.Pending() {
		t.Fatal("closed subscription signalled")
	}
}

// A user subscription watching another user's mailbox hears its changes
// (and only those it watches), until Watch replaces the set or Close.
func TestUserSubscriptionWatch(t *testing.T) {
	h := New()
	s := h.SubscribeUser("bob")
	s.Watch([]Mailbox{{"alice", 7}})
	h.MailboxChanged("alice", 8, 2)
	if s.Pending() || len(s.TakeOthers()) != 0 {
		t.Fatal("an unwatched mailbox signalled")
	}
	h.MailboxChanged("alice", 7, 3)
	if !s.Pending() {
		t.Fatal("a watched mailbox did not signal")
	}
	if got := s.TakeOthers(); len(got) != 1 || got[0] != (Mailbox{"alice", 7}) {
		t.Fatalf("TakeOthers = %v", got)
	}
	if got := s.TakeOthers(); len(got) != 0 {
		t.Fatalf("TakeOthers again = %v", got)
	}
	if mbs, _, _ := s.Take(); len(mbs) != 0 {
		t.Fatalf("another user's change among the user's own: %v", mbs)
	}
	s.Watch(nil)
	h.MailboxChanged("alice", 7, 4)
	if len(s.TakeOthers()) != 0 {
		t.Fatal("signalled after Watch(nil)")
	}
	s.Watch([]Mailbox{{"alice", 7}})
	s.Close()
	h.MailboxChanged("alice", 7, 5)
	if len(h.watchers) != 0 {
		t.Fatalf("watchers left after Close: %v", h.watchers)
	}
}

// A change pending when the watch list is replaced (NOTIFY re-reads what
// is shared after an ACL change, while mail keeps arriving) is kept for
// the boxes still watched and dropped for the others.
func TestUserSubscriptionWatchKeepsPending(t *testing.T) {
	h := New()
	s := h.SubscribeUser("bob")
	s.Watch([]Mailbox{{"alice", 7}, {"carol", 2}})
	h.MailboxChanged("alice", 7, 3)
	h.MailboxChanged("carol", 2, 9)
	s.Watch([]Mailbox{{"alice", 7}})
	if got := s.TakeOthers(); len(got) != 1 || got[0] != (Mailbox{"alice", 7}) {
		t.Fatalf("TakeOthers after rewatch = %v", got)
	}
}

// WatchedMailboxes lists each mailbox a session waits on once: those of
// Subscribe and those user subscriptions watch, and none after Close.
func TestWatchedMailboxes(t *testing.T) {
	h := New()
	a := h.Subscribe("alice", 1)
	b := h.Subscribe("alice", 1)
	c := h.Subscribe("bob", 2)
	u := h.SubscribeUser("carol")
	u.Watch([]Mailbox{{"alice", 1}, {"alice", 3}})
	got := map[Mailbox]int{}
	for _, w := range h.WatchedMailboxes() {
		got[Mailbox{w.User, w.MailboxID}]++
		if w.ModSeq != 0 {
			t.Errorf("%v: modseq %d from a hub", w, w.ModSeq)
		}
	}
	want := map[Mailbox]int{{"alice", 1}: 1, {"bob", 2}: 1, {"alice", 3}: 1}
	if !maps.Equal(got, want) {
		t.Fatalf("watched %v, want %v", got, want)
	}
	for _, s := range []*Subscription{a, b, c} {
		s.Close()
	}
	u.Close()
	if w := h.WatchedMailboxes(); len(w) != 0 {
		t.Fatalf("watched after Close: %v", w)
	}
}

// WatchedUsers lists the users with a user subscription (NOTIFY) and
// the owners whose lists such a subscription watches, each once, until
// it is closed.
func TestWatchedUsers(t *testing.T) {
	h := New()
	u := h.SubscribeUser("carol")
	h.Subscribe("alice", 1).Close()
	if got := h.WatchedUsers(); len(got) != 1 || got[0] != "carol" {
		t.Fatalf("watched users %v, want carol", got)
	}
	dave := h.SubscribeUser("dave")
	u.WatchOwners([]string{"alice", "dave"})
	if got := slices.Sorted(slices.Values(h.WatchedUsers())); !slices.Equal(got, []string{"alice", "carol", "dave"}) {
		t.Fatalf("watched users %v, want alice, carol and dave", got)
	}
	u.Close()
	if got := h.WatchedUsers(); !slices.Equal(got, []string{"dave"}) {
		t.Fatalf("watched users after Close: %v, want dave", got)
	}
	dave.Close()
	if got := h.WatchedUsers(); len(got) != 0 {
		t.Fatalf("watched users after Close: %v", got)
	}
}
