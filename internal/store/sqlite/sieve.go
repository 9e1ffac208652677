package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/tern-imap/tern/internal/store"
)

// sieveSchema keeps the user's Sieve scripts (store.SieveStore), added in
// schema version 8. The partial unique index allows one active script.
// Names are compared as bytes (SQLite's BINARY collation), as RFC 5804
// compares script names octet by octet.
const sieveSchema = `
CREATE TABLE IF NOT EXISTS sieve_scripts(
	name TEXT NOT NULL PRIMARY KEY,
	content BLOB NOT NULL,
	active INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS sieve_scripts_active ON sieve_scripts(active) WHERE active = 1;
`

func (a *account) SieveScripts(ctx context.Context) ([]store.SieveScriptInfo, error) {
	var out []store.SieveScriptInfo
	err := a.read(ctx, "list sieve scripts", func(tx *sqlTx) error {
		rows, err := tx.QueryContext(ctx, `SELECT name, active, length(content) FROM sieve_scripts ORDER BY name`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var s store.SieveScriptInfo
			if err := rows.Scan(&s.Name, &s.Active, &s.Size); err != nil {
				return err
			}
			out = append(out, s)
		}
		return rows.Err()
	})
	return out, err
}

func (a *account) SieveScript(ctx context.Context, name string) ([]byte, error) {
	var content []byte
	err := a.read(ctx, "get sieve script", func(tx *sqlTx) error {
		err := tx.QueryRowContext(ctx, `SELECT content FROM sieve_scripts WHERE name = ?`, name).Scan(&content)
		if errors.Is(err, sql.ErrNoRows) {
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
		res, err := w.tx.ExecContext(ctx, `UPDATE sieve_scripts SET content = ? WHERE name = ?`, content, name)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n > 0 {
			return err
		}
		var count int
		if err := w.tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM sieve_scripts`).Scan(&count); err != nil {
			return err
		}
		if count >= store.SieveMaxScripts {
			return fmt.Errorf("%d scripts, limit %d: %w", count, store.SieveMaxScripts, store.ErrTooManyScripts)
		}
		_, err = w.tx.ExecContext(ctx, `INSERT INTO sieve_scripts(name, content) VALUES(?, ?)`, name, content)
		return err
	})
}

func (a *account) DeleteSieveScript(ctx context.Context, name string) error {
	return a.write(ctx, "delete sieve script", func(w *wtx) error {
		active, err := sieveScriptActive(ctx, w.tx, name)
		if err != nil {
			return err
		}
		if active {
			return fmt.Errorf("%q: %w", name, store.ErrScriptActive)
		}
		_, err = w.tx.ExecContext(ctx, `DELETE FROM sieve_scripts WHERE name = ?`, name)
		return err
	})
}

func (a *account) RenameSieveScript(ctx context.Context, oldName, newName string) error {
	if err := store.CheckSieveScriptName(newName); err != nil {
		return fmt.Errorf("rename sieve script: %w", err)
	}
	return a.write(ctx, "rename sieve script", func(w *wtx) error {
		if _, err := sieveScriptActive(ctx, w.tx, oldName); err != nil {
			return err
		}
		if oldName == newName {
			return nil
		}
		if _, err := sieveScriptActive(ctx, w.tx, newName); err == nil {
			return fmt.Errorf("%q: %w", newName, store.ErrScriptExists)
		} else if !errors.Is(err, store.ErrNoSuchScript) {
			return err
		}
		_, err := w.tx.ExecContext(ctx, `UPDATE sieve_scripts SET name = ? WHERE name = ?`, newName, oldName)
		return err
	})
}

func (a *account) SetActiveSieveScript(ctx context.Context, name string) error {
	return a.write(ctx, "activate sieve script", func(w *wtx) error {
		if name != "" {
			if _, err := sieveScriptActive(ctx, w.tx, name); err != nil {
				return err
			}
		}
		if _, err := w.tx.ExecContext(ctx, `UPDATE sieve_scripts SET active = 0 WHERE active = 1 AND name <> ?`, name); err != nil {
			return err
		}
		if name == "" {
			return nil
		}
		_, err := w.tx.ExecContext(ctx, `UPDATE sieve_scripts SET active = 1 WHERE name = ?`, name)
		return err
	})
}

func (a *account) ActiveSieveScript(ctx context.Context) ([]byte, string, error) {
	var content []byte
	var name string
	err := a.read(ctx, "get active sieve script", func(tx *sqlTx) error {
		err := tx.QueryRowContext(ctx, `SELECT name, content FROM sieve_scripts WHERE active = 1`).Scan(&name, &content)
		if errors.Is(err, sql.ErrNoRows) {
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
func sieveScriptActive(ctx context.Context, q querier, name string) (bool, error) {
	var active bool
	err := q.QueryRowContext(ctx, `SELECT active FROM sieve_scripts WHERE name = ?`, name).Scan(&active)
	if errors.Is(err, sql.ErrNoRows) {
		return false, fmt.Errorf("%q: %w", name, store.ErrNoSuchScript)
	}
	return active, err
}
