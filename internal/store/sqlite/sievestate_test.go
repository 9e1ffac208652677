package sqlite

import (
	"context"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/store"
)

// A mail.db of schema version 9 (no sieve_state table) gets the table
// when opened, records the current version, and the state works.
func TestMigrateToSieveState(t *testing.T) {
	ctx := context.Background()
	_, a := reopenedAfter(t, `DROP TABLE sieve_state`, `PRAGMA user_version = 9`)
	if err := a.MarkSieveState(ctx, store.SieveVacation, "k", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if seen, err := a.SieveStateSeen(ctx, store.SieveVacation, "k"); err != nil || !seen {
		t.Fatalf("SieveStateSeen = %v, %v; want true", seen, err)
	}
}
