package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tern-imap/tern/internal/store"
)

// Sieve scripts (store.SieveStore), one row per script in sieve_scripts
// (schema version 2). Writes go through the user's write queue, so the
// count limit and the one-active rule hold under concurrent writers.

func (a *account) SieveScripts(ctx context.Context) ([]store.SieveScriptInfo, error) {
	var out []store.SieveScriptInfo
	err := a.read(ctx, "list sieve scripts", func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT name, active, length(content) FROM sieve_scripts WHERE user_id = $1 ORDER BY name`, a.id)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var s store.SieveScriptInfo
			var size int32
			if err := rows.Scan(&s.Name, &s.Active, &size); err != nil {
				return err
			}
			s.Size = int64(size)
			out = append(out, s)
		}
		return rows.Err()
	})
	return out, err
}

func (a *account) SieveScript(ctx context.Context, name string) ([]byte, error) {
	var content []byte
	err := a.read(ctx, "get sieve script", func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `SELECT content FROM sieve_scripts WHERE user_id = $1 AND name = $2`, a.id, name).Scan(&content)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%q: %w", name, store.ErrNoSuchScript)
		}
		return err
	})
	if content == nil && err == nil {
		content = []byte{}
	}
	return content, err
}

func (a *account) PutSieveScript(ctx context.Context, name string, content []byte) error {
	if err := store.CheckSieveScriptName(name); err != nil {
		return fmt.Errorf("put sieve script: %w", err)
	}
	if len(content) > store.SieveMaxScriptSize {
		return fmt.Errorf("put sieve script %q: %d bytes, limit %d: %w", name, len(content), store.SieveMaxScriptSize, store.ErrScriptTooLarge)
	}
	if content == nil {
		content = []byte{}
	}
	return a.write(ctx, "put sieve script", func(w *wtx) error {
		ctx := w.ctx
		tag, err := w.tx.Exec(ctx, `UPDATE sieve_scripts SET content = $3 WHERE user_id = $1 AND name = $2`, a.id, name, content)
		if err != nil || tag.RowsAffected() > 0 {
			return err
		}
		var count int
		if err := w.tx.QueryRow(ctx, `SELECT COUNT(*) FROM sieve_scripts WHERE user_id = $1`, a.id).Scan(&count); err != nil {
			return err
		}
		if count >= store.SieveMaxScripts {
			return fmt.Errorf("%d scripts, limit %d: %w", count, store.SieveMaxScripts, store.ErrTooManyScripts)
		}
		_, err = w.tx.Exec(ctx, `INSERT INTO sieve_scripts(user_id, name, content) VALUES($1, $2, $3)`, a.id, name, content)
		return err
	})
}

func (a *account) DeleteSieveScript(ctx context.Context, name string) error {
	return a.write(ctx, "delete sieve script", func(w *wtx) error {
		active, err := a.sieveScriptActive(w.ctx, w.tx, name)
		if err != nil {
			return err
		}
		if active {
			return fmt.Errorf("%q: %w", name, store.ErrScriptActive)
		}
		_, err = w.tx.Exec(w.ctx, `DELETE FROM sieve_scripts WHERE user_id = $1 AND name = $2`, a.id, name)
		return err
	})
}

func (a *account) RenameSieveScript(ctx context.Context, oldName, newName string) error {
	if err := store.CheckSieveScriptName(newName); err != nil {
		return fmt.Errorf("rename sieve script: %w", err)
	}
	return a.write(ctx, "rename sieve script", func(w *wtx) error {
		ctx := w.ctx
		if _, err := a.sieveScriptActive(ctx, w.tx, oldName); err != nil {
			return err
		}
		if oldName == newName {
			return nil
		}
		if _, err := a.sieveScriptActive(ctx, w.tx, newName); err == nil {
			return fmt.Errorf("%q: %w", newName, store.ErrScriptExists)
		} else if !errors.Is(err, store.ErrNoSuchScript) {
			return err
		}
		_, err := w.tx.Exec(ctx, `UPDATE sieve_scripts SET name = $3 WHERE user_id = $1 AND name = $2`, a.id, oldName, newName)
		return err
	})
}

func (a *account) SetActiveSieveScript(ctx context.Context, name string) error {
	return a.write(ctx, "activate sieve script", func(w *wtx) error {
		ctx := w.ctx
		if name != "" {
			if _, err := a.sieveScriptActive(ctx, w.tx, name); err != nil {
				return err
			}
		}
		if _, err := w.tx.Exec(ctx, `UPDATE sieve_scripts SET active = false WHERE user_id = $1 AND active AND name <> $2`, a.id, name); err != nil {
			return err
		}
		if name == "" {
			return nil
		}
		_, err := w.tx.Exec(ctx, `UPDATE sieve_scripts SET active = true WHERE user_id = $1 AND name = $2`, a.id, name)
		return err
	})
}

func (a *account) ActiveSieveScript(ctx context.Context) ([]byte, string, error) {
	var content []byte
	var name string
	err := a.read(ctx, "get active sieve script", func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `SELECT name, content FROM sieve_scripts WHERE user_id = $1 AND active`, a.id).Scan(&name, &content)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err == nil && content == nil {
			content = []byte{}
		}
		return err
	})
	return content, name, err
}

// sieveScriptActive reports whether script name is the active one;
// store.ErrNoSuchScript when there is no such script.
func (a *account) sieveScriptActive(ctx context.Context, tx querier, name string) (bool, error) {
	var active bool
	err := tx.QueryRow(ctx, `SELECT active FROM sieve_scripts WHERE user_id = $1 AND name = $2`, a.id, name).Scan(&active)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, fmt.Errorf("%q: %w", name, store.ErrNoSuchScript)
	}
	return active, err
}
