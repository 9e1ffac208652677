package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/store"
)

// A mail.db of schema version 9 (no sieve_state table) gets the table
// when opened, records the current version, and the state works.
func TestMigrateToSieveState(t *testing.T) {
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
	for _, q := range []string{`DROP TABLE sieve_state`, `PRAGMA user_version = 9`} {
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
	if err := a.MarkSieveState(ctx, store.SieveVacation, "k", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if seen, err := a.SieveStateSeen(ctx, store.SieveVacation, "k"); err != nil || !seen {
		t.Fatalf("SieveStateSeen = %v, %v; want true", seen, err)
	}
}
