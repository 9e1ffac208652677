package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/tern-imap/tern/internal/store"
)

// A mail.db of schema version 8 (no acl table) gets the table, its index
// and trigger when opened, records version 7, and its ACLs work.
func TestMigrateToACL(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := openTest(t, dir, nil)
	if err := s.CreateUser(ctx, "u", "h"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := sql.Open("sqlite", dsn(filepath.Join(dir, "users", "1", "mail.db")))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`DROP TRIGGER mailboxes_acl`, `DROP TABLE acl`, `PRAGMA user_version = 8`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	s = openTest(t, dir, nil)
	defer s.Close()
	a, err := s.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	var version int
	if err := s.users[1].db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&version); err != nil || version != userSchemaVersion {
		t.Fatalf("user_version = %d, %v; want %d", version, err, userSchemaVersion)
	}
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
