package sqlite

import (
	"context"
	"testing"

	"github.com/tern-imap/tern/internal/store"
)

// A mail.db of schema version 8 (no acl table) gets the table, its index
// and trigger when opened, records the current version, and its ACLs work.
func TestMigrateToACL(t *testing.T) {
	ctx := context.Background()
	s, a := reopenedAfter(t, `DROP TRIGGER mailboxes_acl`, `DROP TABLE acl`, `PRAGMA user_version = 8`)
	if err := a.CreateMailbox(ctx, "X", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := a.SetACL(ctx, "X", "v", store.FlagsReplace, "lr"); err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteMailbox(ctx, "X"); err != nil {
		t.Fatal(err)
	}
	var rows int
	if err := s.users[1].db.QueryRowContext(ctx, `SELECT COUNT(*) FROM acl`).Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("%d acl rows after DELETE (%v); the trigger should have removed them", rows, err)
	}
}
