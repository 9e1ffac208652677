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
