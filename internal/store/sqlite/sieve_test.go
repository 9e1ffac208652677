package sqlite

import (
	"context"
	"testing"
)

// A mail.db of schema version 5 (no sieve_scripts table) gets the table
// when opened, records the current version, and stores scripts.
func TestMigrateToSieve(t *testing.T) {
	ctx := context.Background()
	_, a := reopenedAfter(t, `DROP INDEX sieve_scripts_active`, `DROP TABLE sieve_scripts`, `PRAGMA user_version = 5`)
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
