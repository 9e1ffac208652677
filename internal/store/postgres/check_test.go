package postgres

import (
	"context"
	"strings"
	"testing"

	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/storetest"
)

// TestCheck: a consistent database checks clean; broken counters are
// found, repaired, and the data is served right afterwards.
func TestCheck(t *testing.T) {
	ctx := context.Background()
	s, a := openUser(t)
	res, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: storetest.Msg(1)}, {Body: storetest.Msg(2)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.SetMetadata(ctx, "INBOX", []store.MetadataEntry{{Name: "/private/x", Value: []byte("v")}}); err != nil {
		t.Fatal(err)
	}
	if p, err := s.Check(ctx, false); err != nil || len(p) != 0 {
		t.Fatalf("check of a consistent database: %q %v", p, err)
	}
	for _, q := range []string{
		`UPDATE users SET used_messages = 7, used_storage = 1`,
		`UPDATE bodies SET refs = 5`,
		`UPDATE mailboxes SET uidnext = 1, highestmodseq = 1 WHERE name = 'INBOX'`,
		`INSERT INTO metadata(user_id, mailbox_id, entry, value) SELECT id, 999999, '/private/y', 'z' FROM users`,
		`DELETE FROM text_queue WHERE hash = (SELECT hash FROM bodies ORDER BY hash LIMIT 1)`,
	} {
		if _, err := s.pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	p, err := s.Check(ctx, false)
	if err != nil || len(p) != 6 {
		t.Fatalf("check found %d problems, want 6 (usage, 2 bodies, counters, annotations, text): %q %v", len(p), p, err)
	}
	for _, want := range []string{"quota usage", "references counted", "UIDNEXT", "annotations", "searchable text"} {
		if !strings.Contains(strings.Join(p, "\n"), want) {
			t.Fatalf("no %q problem in %q", want, p)
		}
	}
	if _, err := s.Check(ctx, true); err != nil {
		t.Fatal(err)
	}
	if p, err := s.Check(ctx, false); err != nil || len(p) != 0 {
		t.Fatalf("after repair: %q %v", p, err)
	}
	q, err := a.Quota(ctx)
	if err != nil || q.MessagesUsed != 2 {
		t.Fatalf("usage after repair: %+v %v", q, err)
	}
	// A new message gets a UID above the repaired UIDNEXT.
	r2, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: storetest.Msg(3)}})
	if err != nil || r2.UIDs[0] != res.UIDs[1]+1 {
		t.Fatalf("append after repair: %+v %v", r2, err)
	}
}

// TestCheckStoredText: tern check extracts every stored text again and
// finds one that differs from its body's; --repair queues it, and the
// next extraction makes it right.
func TestCheckStoredText(t *testing.T) {
	ctx := context.Background()
	s, a := openUser(t)
	if _, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: []byte("Subject: a\r\n\r\nfirst words\r\n")},
		{Body: []byte("Subject: b\r\n\r\nsecond words\r\n")}}); err != nil {
		t.Fatal(err)
	}
	if err := s.IndexText(ctx, a.User(), false, nil); err != nil {
		t.Fatal(err)
	}
	if p, err := s.Check(ctx, false); err != nil || len(p) != 0 {
		t.Fatalf("check after indexing: %q %v", p, err)
	}
	if _, err := s.pool.Exec(ctx, `UPDATE body_text SET body = '\x6e6f' WHERE hash = (SELECT hash FROM body_text ORDER BY hash LIMIT 1)`); err != nil {
		t.Fatal(err)
	}
	if p, err := s.Check(ctx, true); err != nil || len(p) != 1 || !strings.Contains(p[0], "stored searchable text differs") {
		t.Fatalf("check of a damaged text: %q %v", p, err)
	}
	if err := s.IndexText(ctx, a.User(), false, nil); err != nil {
		t.Fatal(err)
	}
	if p, err := s.Check(ctx, false); err != nil || len(p) != 0 {
		t.Fatalf("check after the repair's extraction: %q %v", p, err)
	}
}
