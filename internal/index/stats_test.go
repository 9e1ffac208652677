package index_test

import (
	"context"
	"testing"

	"github.com/tern-imap/tern/internal/index"
	"github.com/tern-imap/tern/internal/store"
)

// Stats count loaded mailboxes and their memory, reads answered from
// memory (hits) and passed to the store (misses), and loads.
func TestStats(t *testing.T) {
	ctx := context.Background()
	a, x := indexedAccount(t, index.Options{})
	res, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: []byte("Subject: a\r\n\r\nx\r\n")}})
	if err != nil {
		t.Fatal(err)
	}
	if s := x.Stats(); s != (index.Stats{}) {
		t.Fatalf("before any read: %+v", s)
	}
	if _, _, err := a.Snapshot(ctx, res.MailboxID); err != nil {
		t.Fatal(err)
	}
	noop := func(*store.Message) error { return nil }
	if err := a.Fetch(ctx, res.MailboxID, res.UIDs, store.WantFlags, noop); err != nil {
		t.Fatal(err)
	}
	if err := a.Fetch(ctx, res.MailboxID, res.UIDs, store.WantEnvelope, noop); err != nil { // not in the index yet
		t.Fatal(err)
	}
	s := x.Stats()
	if s.Mailboxes != 1 || s.Bytes <= 0 || s.Hits != 2 || s.Misses != 1 || s.Loads != 1 {
		t.Fatalf("after a snapshot and two fetches: %+v", s)
	}
	if err := a.Fetch(ctx, res.MailboxID, res.UIDs, store.WantEnvelope, noop); err != nil { // from the content cache
		t.Fatal(err)
	}
	if s2 := x.Stats(); s2.Hits != 3 || s2.Misses != 1 {
		t.Fatalf("after the same FETCH of ENVELOPE again: %+v (before %+v)", s2, s)
	}
}
