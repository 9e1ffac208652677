package sqlite

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/sqlite/sqldb"
)

// TestInlineBodySplit: a small body is kept without its header (the
// header is contents.header), so it is stored once; OpenBody gives the
// whole message back. A mail.db of schema version 5, whose bodies table
// holds whole messages, is migrated: its old rows are read whole, new
// ones are split, and tern check finds nothing wrong with either.
func TestInlineBodySplit(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openInline(t, dir, nil)
	if err := s.CreateUser(ctx, "u", "h"); err != nil {
		t.Fatal(err)
	}
	a, err := s.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	old := []byte("Subject: stored whole\r\nFrom: a@example.org\r\n\r\nold body\r\n")
	if _, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: old}}); err != nil {
		t.Fatal(err)
	}
	a.Close()
	s.Close()

	// Make it a version 5 database whose body row holds the whole message.
	db, err := sqldb.Open(dsn(filepath.Join(dir, "users", "1", "mail.db")))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE TABLE bodies_v5(content_id INTEGER PRIMARY KEY REFERENCES contents(id) ON DELETE CASCADE, data BLOB NOT NULL)`,
		`INSERT INTO bodies_v5(content_id, data) SELECT content_id, CASE WHEN split THEN (SELECT header FROM contents WHERE id = content_id) || data ELSE data END FROM bodies`,
		`DROP TABLE bodies`,
		`ALTER TABLE bodies_v5 RENAME TO bodies`,
		`PRAGMA user_version = 5`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	s = openInline(t, dir, nil)
	defer s.Close()
	a, err = s.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	fresh := []byte("Subject: stored split\r\nFrom: b@example.org\r\n\r\nnew body\r\n")
	res, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: fresh}})
	if err != nil {
		t.Fatal(err)
	}
	u := s.users[1]
	var version int
	if err := u.db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&version); err != nil || version != userSchemaVersion {
		t.Fatalf("user_version = %d, %v; want %d", version, err, userSchemaVersion)
	}
	var stored []byte
	var split int
	if err := u.db.QueryRowContext(ctx, `SELECT b.data, b.split FROM bodies b JOIN messages m ON m.content_id = b.content_id WHERE m.uid = ?`,
		res.UIDs[0]).Scan(&stored, &split); err != nil {
		t.Fatal(err)
	}
	if split != 1 || !bytes.Equal(stored, []byte("new body\r\n")) {
		t.Fatalf("new body stored as %q (split %d), want the text after the header", stored, split)
	}
	for uid, want := range map[uint32][]byte{1: old, res.UIDs[0]: fresh} {
		b, err := a.OpenBody(ctx, res.MailboxID, uid)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, b.Size())
		if _, err := b.ReadAt(got, 0); err != nil || !bytes.Equal(got, want) {
			t.Errorf("UID %d: body %q, %v; want %q", uid, got, err, want)
		}
		b.Close()
	}
	if problems, err := u.check(ctx, false); err != nil || len(problems) != 0 {
		t.Fatalf("tern check: %v, %v", problems, err)
	}
}
