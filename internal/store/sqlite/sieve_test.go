package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
)

// A mail.db of schema version 5 (no sieve_scripts table) gets the table
// when opened, records the current version, and stores scripts.
func TestMigrateToSieve(t *testing.T) {
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
	for _, q := range []string{`DROP INDEX sieve_scripts_active`, `DROP TABLE sieve_scripts`, `PRAGMA user_version = 5`} {
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
	if err := a.PutSieveScript(ctx, "s", []byte("keep;")); err != nil {
		t.Fatal(err)
	}
	if err := a.SetActiveSieveScript(ctx, "s"); err != nil {
		t.Fatal(err)
	}
	if got, name, err := a.ActiveSieveScript(ctx); err != nil || name != "s" || string(got) != "keep;" {
		t.Fatalf("ActiveSieveScript = %q, %q, %v", got, name, err)
	}
}
