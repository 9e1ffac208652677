package sqlite

import (
	"context"
	"slices"
	"testing"

	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/storetest"
)

// TestExpungeFindsDeletedByIndex: EXPUNGE finds the \Deleted messages
// through the partial index messages_deleted, in a mail.db made now and
// in one of schema version 20 (before the index), and removes exactly
// them.
func TestExpungeFindsDeletedByIndex(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openInline(t, dir, nil)
	a := newUser(t, s)
	msgs := make([]store.NewMessage, 40)
	for i := range msgs {
		msgs[i] = store.NewMessage{Body: storetest.Msg(i)}
	}
	res, err := a.Append(ctx, "INBOX", msgs)
	if err != nil {
		t.Fatal(err)
	}
	expunge := func(a store.Account, deleted []uint32) {
		t.Helper()
		if _, err := a.StoreFlags(ctx, res.MailboxID, deleted, store.FlagsAdd, []string{`\Deleted`}, 0, false); err != nil {
			t.Fatal(err)
		}
		got, err := a.Expunge(ctx, res.MailboxID, nil, true)
		if err != nil || !slices.Equal(got, deleted) {
			t.Fatalf("expunged %v, %v; want %v", got, err, deleted)
		}
	}
	expunge(a, []uint32{3, 17, 18})
	if _, err := s.users[1].db.ExecContext(ctx, `DROP INDEX messages_deleted`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	setUserVersion(t, dir, 1, 20)
	s = openInline(t, dir, nil)
	defer s.Close()
	b, err := s.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var n int
	if err := s.users[1].db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE name = 'messages_deleted'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("messages_deleted after the upgrade: %d, %v", n, err)
	}
	expunge(b, []uint32{1, 40})
}
