package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tern-imap/tern/internal/store"
)

// Sieve action state (store.SieveStateStore), one row per mark in
// sieve_state (schema version 4); expires is Unix milliseconds.

func (a *account) SieveStateSeen(ctx context.Context, kind store.SieveStateKind, key string) (bool, error) {
	if err := store.CheckSieveState(kind, key); err != nil {
		return false, fmt.Errorf("sieve state: %w", err)
	}
	seen := false
	err := a.read(ctx, "read sieve state", func(tx pgx.Tx) error {
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM sieve_state WHERE user_id = $1 AND kind = $2 AND key = $3 AND expires > $4`,
			a.id, string(kind), key, time.Now().UnixMilli()).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		seen = err == nil
		return err
	})
	return seen, err
}

func (a *account) ClaimSieveState(ctx context.Context, kind store.SieveStateKind, key string, expires time.Time) (bool, error) {
	if err := store.CheckSieveState(kind, key); err != nil {
		return false, fmt.Errorf("sieve state: %w", err)
	}
	claimed := false
	err := a.write(ctx, "claim sieve state", func(w *wtx) error {
		if err := a.pruneSieveState(w); err != nil {
			return err
		}
		// The unique key makes concurrent inserts from several nodes wait
		// for each other; the update applies only to an expired mark.
		tag, err := w.tx.Exec(w.ctx, `INSERT INTO sieve_state(user_id, kind, key, expires) VALUES($1, $2, $3, $4)
			ON CONFLICT(user_id, kind, key) DO UPDATE SET expires = excluded.expires WHERE sieve_state.expires <= $5`,
			a.id, string(kind), key, expires.UnixMilli(), time.Now().UnixMilli())
		claimed = err == nil && tag.RowsAffected() == 1
		return err
	})
	return claimed, err
}

func (a *account) MarkSieveState(ctx context.Context, kind store.SieveStateKind, key string, expires time.Time) error {
	if err := store.CheckSieveState(kind, key); err != nil {
		return fmt.Errorf("sieve state: %w", err)
	}
	return a.write(ctx, "mark sieve state", func(w *wtx) error {
		ctx := w.ctx
		if err := a.pruneSieveState(w); err != nil {
			return err
		}
		_, err := w.tx.Exec(ctx, `INSERT INTO sieve_state(user_id, kind, key, expires) VALUES($1, $2, $3, $4)
			ON CONFLICT(user_id, kind, key) DO UPDATE SET expires = excluded.expires`, a.id, string(kind), key, expires.UnixMilli())
		return err
	})
}

// pruneSieveState deletes the user's expired marks; every write of Sieve
// state does, so they cannot pile up (one per sender ever answered).
func (a *account) pruneSieveState(w *wtx) error {
	_, err := w.tx.Exec(w.ctx, `DELETE FROM sieve_state WHERE user_id = $1 AND expires <= $2`, a.id, time.Now().UnixMilli())
	return err
}
