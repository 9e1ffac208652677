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

// TestClaimSieveStatePrunes: a claim, like a mark, deletes the user's
// expired marks (vacation now only claims: without it a row per sender
// ever answered would stay).
func TestClaimSieveStatePrunes(t *testing.T) {
	ctx := context.Background()
	s, a := reopenedAfter(t)
	if err := a.MarkSieveState(ctx, store.SieveVacation, "old", time.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if ok, err := a.ClaimSieveState(ctx, store.SieveVacation, "new", time.Now().Add(time.Hour)); err != nil || !ok {
		t.Fatalf("ClaimSieveState = %v, %v", ok, err)
	}
	var n int
	if err := s.users[1].db.QueryRowContext(ctx, `SELECT COUNT(*) FROM sieve_state`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d sieve_state rows, %v; want 1 (the expired one pruned)", n, err)
	}
}
