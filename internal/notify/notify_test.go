package notify

import "testing"

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
