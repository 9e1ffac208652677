package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/tern-imap/tern/internal/store"
)

// sieveStateSchema keeps the user's Sieve action state
// (store.SieveStateStore): vacation replies sent and duplicate ids seen,
// each until expires (Unix milliseconds). Added in schema version 10.
const sieveStateSchema = `
CREATE TABLE IF NOT EXISTS sieve_state(
	kind TEXT NOT NULL,
	key TEXT NOT NULL,
	expires INTEGER NOT NULL,
	PRIMARY KEY(kind, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sieve_state_expires ON sieve_state(expires);
`

func (a *account) SieveStateSeen(ctx context.Context, kind store.SieveStateKind, key string) (bool, error) {
	if err := store.CheckSieveState(kind, key); err != nil {
		return false, fmt.Errorf("sieve state: %w", err)
	}
	seen := false
	err := a.read(ctx, "read sieve state", func(tx *sqlTx) error {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM sieve_state WHERE kind = ? AND key = ? AND expires > ?`,
			string(kind), key, time.Now().UnixMilli()).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
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
		if err := pruneSieveState(w); err != nil {
			return err
		}
		// The write lock (and BEGIN IMMEDIATE across processes) orders
		// claims; the update applies only to an expired mark.
		r, err := w.tx.ExecContext(ctx, `INSERT INTO sieve_state(kind, key, expires) VALUES(?, ?, ?)
			ON CONFLICT(kind, key) DO UPDATE SET expires = excluded.expires WHERE sieve_state.expires <= ?`,
			string(kind), key, expires.UnixMilli(), time.Now().UnixMilli())
		if err != nil {
			return err
		}
		n, err := r.RowsAffected()
		claimed = n == 1
		return err
	})
	return claimed, err
}

func (a *account) MarkSieveState(ctx context.Context, kind store.SieveStateKind, key string, expires time.Time) error {
	if err := store.CheckSieveState(kind, key); err != nil {
		return fmt.Errorf("sieve state: %w", err)
	}
	return a.write(ctx, "mark sieve state", func(w *wtx) error {
		if err := pruneSieveState(w); err != nil {
			return err
		}
		_, err := w.tx.ExecContext(ctx, `INSERT INTO sieve_state(kind, key, expires) VALUES(?, ?, ?)
			ON CONFLICT(kind, key) DO UPDATE SET expires = excluded.expires`, string(kind), key, expires.UnixMilli())
		return err
	})
}

// pruneSieveState deletes the user's expired marks; every write of Sieve
// state does, so they cannot pile up (one per sender ever answered).
func pruneSieveState(w *wtx) error {
	_, err := w.tx.ExecContext(w.ctx, `DELETE FROM sieve_state WHERE expires <= ?`, time.Now().UnixMilli())
	return err
}
