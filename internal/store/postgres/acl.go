package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/backend"
)

// Access control lists (RFC 4314): the acl table (schema version 3), one
// row per (mailbox, identifier) with canonical rights. Rows go with their
// mailbox (ON DELETE CASCADE; a mailbox that stays as a \Noselect parent
// loses them in DeleteMailbox) and follow it through RENAME (keyed by
// id). All users share the database, so Sharers is one exact query: no
// index of grants is needed as in the sqlite backend.

// Sharers implements store.Store.
func (s *Store) Sharers(ctx context.Context, user string) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT u.name FROM acl a
		JOIN mailboxes m ON m.id = a.mailbox_id JOIN users u ON u.id = m.user_id
		WHERE a.identifier IN ($1, $2) AND u.name <> $1 ORDER BY u.name`, user, store.Anyone)
	if err != nil {
		return nil, fmt.Errorf("sharers of %q: %w", user, err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("sharers of %q: %w", user, err)
	}
	return names, nil
}

// ACL implements store.Account.
func (a *account) ACL(ctx context.Context, mailbox string) ([]store.ACLEntry, error) {
	n, err := backend.LookupName(mailbox)
	if err != nil {
		return nil, err
	}
	var out []store.ACLEntry
	err = a.read(ctx, "get acl", func(tx pgx.Tx) error {
		m, err := a.mboxByName(ctx, tx, n)
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT identifier, rights FROM acl WHERE mailbox_id = $1 ORDER BY identifier`, m.id)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.ACLEntry, error) {
			var e store.ACLEntry
			err := r.Scan(&e.Identifier, &e.Rights)
			return e, err
		})
		return err
	})
	return out, err
}

// SetACL implements store.Account.
func (a *account) SetACL(ctx context.Context, mailbox, identifier string, op store.FlagOp, rights string) (string, error) {
	if err := store.ValidIdentifier(identifier); err != nil {
		return "", err
	}
	if r, err := store.NormRights(rights); err != nil {
		return "", err
	} else if r != rights {
		return "", fmt.Errorf("rights %q are not canonical: %w", rights, store.ErrInvalidRights)
	}
	n, err := backend.LookupName(mailbox)
	if err != nil {
		return "", err
	}
	var result string
	err = a.write(ctx, "set acl", func(w *wtx) error {
		ctx := w.ctx // the commit's context, not the caller's (see groupcommit.go)
		m, err := a.mboxByName(ctx, w.tx, n)
		if err != nil {
			return err
		}
		var old string
		err = w.tx.QueryRow(ctx, `SELECT rights FROM acl WHERE mailbox_id = $1 AND identifier = $2 FOR UPDATE`, m.id, identifier).Scan(&old)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		result = store.ModifyRights(old, op, rights)
		if result == "" {
			_, err = w.tx.Exec(ctx, `DELETE FROM acl WHERE mailbox_id = $1 AND identifier = $2`, m.id, identifier)
		} else {
			_, err = w.tx.Exec(ctx, `INSERT INTO acl(mailbox_id, identifier, rights) VALUES($1, $2, $3)
				ON CONFLICT (mailbox_id, identifier) DO UPDATE SET rights = excluded.rights`, m.id, identifier, result)
		}
		return err
	})
	if err != nil {
		return "", err
	}
	a.s.signalACL(ctx, a.name, identifier)
	return result, nil
}

// SharedMailboxes implements store.Account.
func (a *account) SharedMailboxes(ctx context.Context, identifiers []string) ([]store.SharedMailbox, error) {
	if len(identifiers) == 0 {
		return nil, nil
	}
	var out []store.SharedMailbox
	err := a.read(ctx, "shared mailboxes", func(tx pgx.Tx) error {
		cols := "m." + strings.ReplaceAll(mboxCols, ", ", ", m.")
		rows, err := tx.Query(ctx, `SELECT `+cols+`, a.identifier, a.rights
			FROM acl a JOIN mailboxes m ON m.id = a.mailbox_id
			WHERE m.user_id = $1 AND a.identifier = ANY($2)
			ORDER BY m.name, a.identifier`, a.id, identifiers)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var m mbox
			var e store.ACLEntry
			if err := rows.Scan(&m.id, &m.name, &m.uidValidity, &m.uidNext, &m.highest, &m.recentMark,
				&m.specialUse, &m.noSelect, &e.Identifier, &e.Rights); err != nil {
				return err
			}
			if k := len(out); k > 0 && out[k-1].ID == m.id {
				out[k-1].ACL = append(out[k-1].ACL, e)
				continue
			}
			out = append(out, store.SharedMailbox{MailboxInfo: m.info(), ACL: []store.ACLEntry{e}})
		}
		return rows.Err()
	})
	return out, err
}

// nearestParent returns the id of name's nearest existing superior
// mailbox, 0 if none: a new mailbox inherits its ACL (copyACL).
func (w *wtx) nearestParent(name string) (int64, error) {
	for p := parentOf(name); p != ""; p = parentOf(p) {
		m, err := w.a.mboxByName(w.ctx, w.tx, p)
		if errors.Is(err, store.ErrNoSuchMailbox) {
			continue
		}
		if err != nil {
			return 0, err
		}
		return m.id, nil
	}
	return 0, nil
}

// copyACL gives mailbox to a copy of mailbox from's ACL (none if from is 0).
func (w *wtx) copyACL(from, to int64) error {
	if from == 0 {
		return nil
	}
	if _, err := w.tx.Exec(w.ctx, `INSERT INTO acl(mailbox_id, identifier, rights)
		SELECT $1, identifier, rights FROM acl WHERE mailbox_id = $2`, to, from); err != nil {
		return fmt.Errorf("inherit acl: %w", err)
	}
	return nil
}

// parentOf returns the superior name of a mailbox name, "" at the top.
func parentOf(name string) string {
	if i := strings.LastIndex(name, store.Separator); i >= 0 {
		return name[:i]
	}
	return ""
}
