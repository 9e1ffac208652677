package sqlite

import (
	"context"
	"testing"

	"github.com/tern-imap/tern/internal/store"
)

// A mail.db of schema version 4 (no metadata table) gets the table and
// its trigger when opened, records the current version, and keeps working.
func TestMigrateToMetadata(t *testing.T) {
	ctx := context.Background()
	s, a := reopenedAfter(t, `DROP TRIGGER mailboxes_metadata`, `DROP TABLE metadata`, `PRAGMA user_version = 4`)
	if err := a.CreateMailbox(ctx, "X", ""); err != nil {
		t.Fatal(err)
	}
	if err := a.SetMetadata(ctx, "X", []store.MetadataEntry{{Name: "/private/comment", Value: []byte("c")}}); err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteMailbox(ctx, "X"); err != nil {
		t.Fatal(err)
	}
	var rows int
	if err := s.users[1].db.QueryRowContext(ctx, `SELECT COUNT(*) FROM metadata`).Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("%d metadata rows after DELETE (%v); the trigger should have removed them", rows, err)
	}
}

// tern check finds annotations whose mailbox is gone and, with repair,
// removes them; server annotations (mailbox id 0) are not orphans.
func TestCheckMetadata(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := openTest(t, dir, nil)
	defer s.Close()
	if err := s.CreateUser(ctx, "u", "h"); err != nil {
		t.Fatal(err)
	}
	a, err := s.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.SetMetadata(ctx, "", []store.MetadataEntry{{Name: "/shared/comment", Value: []byte("server")}}); err != nil {
		t.Fatal(err)
	}
	if p, err := s.Check(ctx, false); err != nil || len(p) != 0 {
		t.Fatalf("clean store: %q, %v", p, err)
	}
	if _, err := s.users[1].db.ExecContext(ctx, `INSERT INTO metadata(mailbox_id, entry, value) VALUES(999, '/private/x', 'v')`); err != nil {
		t.Fatal(err)
	}
	if p, err := s.Check(ctx, true); err != nil || len(p) != 1 || p[0] != `user "u": 1 annotations of deleted mailboxes` {
		t.Fatalf("orphan: %q, %v", p, err)
	}
	if p, err := s.Check(ctx, false); err != nil || len(p) != 0 {
		t.Fatalf("after repair: %q, %v", p, err)
	}
	got, err := a.GetMetadata(ctx, "", []string{"/shared/comment"}, store.MetadataDepth0)
	if err != nil || len(got) != 1 {
		t.Fatalf("server annotation after repair: %v, %v", got, err)
	}
}
