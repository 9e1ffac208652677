package index_test

import (
	"context"
	"testing"

	"github.com/tern-imap/tern/internal/index"
	"github.com/tern-imap/tern/internal/notify"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/storetest"
)

// WatchedMailboxes lists the hub's watched mailboxes with the modseq
// their index has reached or been told of: 0 before the index loads,
// the mailbox's HIGHESTMODSEQ once loaded, and a signalled modseq the
// index has not caught up with yet.
func TestWatchedMailboxes(t *testing.T) {
	ctx := context.Background()
	hub := notify.New()
	st, x := openIndexed(t, t.TempDir(), hub, index.Options{})
	t.Cleanup(func() { st.Close() })
	if err := st.CreateUser(ctx, "u", ""); err != nil {
		t.Fatal(err)
	}
	a, err := st.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	res, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: storetest.Msg(1)}, {Body: storetest.Msg(2)}})
	if err != nil {
		t.Fatal(err)
	}
	sub := hub.Subscribe("u", res.MailboxID)
	defer sub.Close()
	watched := func() uint64 {
		t.Helper()
		w := x.WatchedMailboxes()
		if len(w) != 1 || w[0].User != "u" || w[0].MailboxID != res.MailboxID {
			t.Fatalf("watched %v, want INBOX of u", w)
		}
		return w[0].ModSeq
	}
	if m := watched(); m != 0 {
		t.Fatalf("modseq %d before the index loaded", m)
	}
	st0, _, err := a.Snapshot(ctx, res.MailboxID)
	if err != nil {
		t.Fatal(err)
	}
	if m := watched(); m != st0.HighestModSeq || m == 0 {
		t.Fatalf("modseq %d, the mailbox's is %d", m, st0.HighestModSeq)
	}
	x.MailboxChanged("u", res.MailboxID, st0.HighestModSeq+5)
	if m := watched(); m != st0.HighestModSeq+5 {
		t.Fatalf("modseq %d after a signal of %d", m, st0.HighestModSeq+5)
	}
}

// WatchedUsers passes on the hub's users with a user subscription.
func TestWatchedUsers(t *testing.T) {
	hub := notify.New()
	x := index.New(hub, index.Options{})
	u := hub.SubscribeUser("u")
	defer u.Close()
	if got := x.WatchedUsers(); len(got) != 1 || got[0] != "u" {
		t.Fatalf("watched users %v, want u", got)
	}
}
