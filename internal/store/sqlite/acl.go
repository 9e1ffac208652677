package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/backend"
)

// aclSchema keeps mailbox access control lists (RFC 4314), added in
// schema version 9: one row per (mailbox, identifier) with canonical
// rights (store.NormRights). Keyed by mailbox id, an ACL follows its
// mailbox through RENAME; the trigger drops it with the mailbox row (a
// mailbox that stays as a \Noselect parent loses it in DeleteMailbox).
const aclSchema = `
CREATE TABLE IF NOT EXISTS acl(
	mailbox_id INTEGER NOT NULL,
	identifier TEXT NOT NULL,
	rights TEXT NOT NULL,
	PRIMARY KEY(mailbox_id, identifier)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS acl_identifier ON acl(identifier);
CREATE TRIGGER IF NOT EXISTS mailboxes_acl AFTER DELETE ON mailboxes BEGIN
	DELETE FROM acl WHERE mailbox_id = OLD.id;
END;
`

// aclGrantsSchema is in tern.db: which owners have (or had) an ACL entry
// for which identifier, so that a session finds what was shared with its
// user without opening every user's database. It is a hint, a superset
// of the truth: SetACL records a grant before the entry commits and
// forgets it only once the owner has no entry left for the identifier;
// a mailbox deleted with its ACL leaves its grants behind. Readers
// always check the owner's ACL itself.
const aclGrantsSchema = `
CREATE TABLE IF NOT EXISTS acl_grants(
	grantee TEXT NOT NULL,
	owner_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	PRIMARY KEY(grantee, owner_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS acl_grants_owner ON acl_grants(owner_id);
`

// Sharers implements store.Store.
func (s *Store) Sharers(ctx context.Context, user string) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT DISTINCT u.name FROM acl_grants g JOIN users u ON u.id = g.owner_id
		WHERE g.grantee IN (?, ?) AND u.name <> ? ORDER BY u.name`, user, store.Anyone, user)
	if err != nil {
		return nil, fmt.Errorf("sharers of %q: %w", user, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("sharers of %q: %w", user, err)
		}
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sharers of %q: %w", user, err)
	}
	return out, nil
}

// ACL implements store.Account.
func (a *account) ACL(ctx context.Context, mailbox string) ([]store.ACLEntry, error) {
	n, err := backend.LookupName(mailbox)
	if err != nil {
		return nil, err
	}
	var out []store.ACLEntry
	err = a.read(ctx, "get acl", func(tx *sqlTx) error {
		m, err := mboxByName(ctx, tx, n)
		if err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT identifier, rights FROM acl WHERE mailbox_id = ? ORDER BY identifier`, m.id)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var e store.ACLEntry
			if err := rows.Scan(&e.Identifier, &e.Rights); err != nil {
				return err
			}
			out = append(out, e)
		}
		return rows.Err()
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
	// One SetACL at a time per store, so that forgetting a grant (below)
	// cannot race with another SetACL recording the same one.
	a.s.aclMu.Lock()
	defer a.s.aclMu.Unlock()
	if op != store.FlagsRemove && rights != "" {
		if err := a.s.recordGrant(ctx, a.u.id, identifier); err != nil {
			return "", err
		}
	}
	var result string
	var left int
	err = a.write(ctx, "set acl", func(w *wtx) error {
		m, err := mboxByName(ctx, w.tx, n)
		if err != nil {
			return err
		}
		var old string
		err = w.tx.QueryRowContext(ctx, `SELECT rights FROM acl WHERE mailbox_id = ? AND identifier = ?`, m.id, identifier).Scan(&old)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		result = store.ModifyRights(old, op, rights)
		if result == "" {
			_, err = w.tx.ExecContext(ctx, `DELETE FROM acl WHERE mailbox_id = ? AND identifier = ?`, m.id, identifier)
		} else {
			_, err = w.tx.ExecContext(ctx, `INSERT INTO acl(mailbox_id, identifier, rights) VALUES(?, ?, ?)
				ON CONFLICT(mailbox_id, identifier) DO UPDATE SET rights = excluded.rights`, m.id, identifier, result)
		}
		if err != nil {
			return err
		}
		return w.tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM acl WHERE identifier = ?`, identifier).Scan(&left)
	})
	if err != nil {
		return "", err
	}
	if left == 0 {
		if err := a.s.forgetGrant(ctx, a.u.id, identifier); err != nil {
			return "", err
		}
	}
	if n, ok := a.s.opts.Notifier.(store.ACLNotifier); ok {
		n.ACLChanged(a.u.name, identifier)
	}
	return result, nil
}

// SharedMailboxes implements store.Account.
func (a *account) SharedMailboxes(ctx context.Context, identifiers []string) ([]store.SharedMailbox, error) {
	if len(identifiers) == 0 {
		return nil, nil
	}
	ids, err := json.Marshal(identifiers)
	if err != nil {
		return nil, fmt.Errorf("shared mailboxes: %w", err)
	}
	var out []store.SharedMailbox
	err = a.read(ctx, "shared mailboxes", func(tx *sqlTx) error {
		rows, err := tx.QueryContext(ctx, `SELECT m.id, m.name, m.uidvalidity, m.uidnext, m.highestmodseq, m.recent_mark,
			m.special_use, m.noselect, a.identifier, a.rights
			FROM acl a JOIN mailboxes m ON m.id = a.mailbox_id
			WHERE a.identifier IN (SELECT value FROM json_each(?))
			ORDER BY m.name, a.identifier`, string(ids))
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
// mailbox, 0 if none: a new mailbox inherits its ACL (copyACL; RFC 4314
// §4: a new mailbox SHOULD inherit its parent's ACL).
func nearestParent(ctx context.Context, q querier, name string) (int64, error) {
	for p := parentOf(name); p != ""; p = parentOf(p) {
		m, err := mboxByName(ctx, q, p)
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
func copyACL(ctx context.Context, q querier, from, to int64) error {
	if from == 0 {
		return nil
	}
	_, err := q.ExecContext(ctx, `INSERT INTO acl(mailbox_id, identifier, rights)
		SELECT ?, identifier, rights FROM acl WHERE mailbox_id = ?`, to, from)
	if err != nil {
		return fmt.Errorf("inherit acl: %w", err)
	}
	return nil
}

// parentOf returns the superior name of a mailbox name, "" at the top.
func parentOf(name string) string {
	for i := len(name) - 1; i >= 0; i-- {
		if name[i] == store.Separator[0] {
			return name[:i]
		}
	}
	return ""
}

func (s *Store) recordGrant(ctx context.Context, ownerID int64, grantee string) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if _, err := s.db.ExecContext(ctx, `INSERT OR IGNORE INTO acl_grants(grantee, owner_id) VALUES(?, ?)`, grantee, ownerID); err != nil {
		return fmt.Errorf("record acl grant to %q: %w", grantee, err)
	}
	return nil
}

func (s *Store) forgetGrant(ctx context.Context, ownerID int64, grantee string) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if _, err := s.db.ExecContext(ctx, `DELETE FROM acl_grants WHERE grantee = ? AND owner_id = ?`, grantee, ownerID); err != nil {
		return fmt.Errorf("forget acl grant to %q: %w", grantee, err)
	}
	return nil
}

// revokeGrantee removes the ACL entries naming user, and user's private
// \Seen states, from every other user's mailboxes shared with user or
// anyone (DeleteUser), so that a new user of the same name inherits
// nothing. The grants index says whose databases to open.
func (s *Store) revokeGrantee(ctx context.Context, user string) error {
	s.aclMu.Lock()
	defer s.aclMu.Unlock()
	type owner struct {
		id   int64
		name string
	}
	var owners []owner
	rows, err := s.db.QueryContext(ctx, `SELECT u.id, u.name FROM acl_grants g JOIN users u ON u.id = g.owner_id
		WHERE g.grantee IN (?, ?) GROUP BY u.id`, user, store.Anyone)
	if err != nil {
		return fmt.Errorf("revoke rights of %q: %w", user, err)
	}
	for rows.Next() {
		var o owner
		if err := rows.Scan(&o.id, &o.name); err != nil {
			rows.Close()
			return fmt.Errorf("revoke rights of %q: %w", user, err)
		}
		owners = append(owners, o)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("revoke rights of %q: %w", user, err)
	}
	for _, o := range owners {
		u, err := s.acquireID(ctx, o.id, o.name)
		if errors.Is(err, store.ErrNoSuchUser) {
			continue // deleted meanwhile, grants and all
		}
		if err != nil {
			return fmt.Errorf("revoke rights of %q from %q: %w", user, o.name, err)
		}
		a := &account{s: s, u: u}
		err = a.write(ctx, "revoke rights", func(w *wtx) error {
			if _, err := w.tx.ExecContext(ctx, `DELETE FROM acl WHERE identifier = ?`, user); err != nil {
				return err
			}
			_, err := w.tx.ExecContext(ctx, `DELETE FROM private_seen WHERE user = ?`, user)
			return err
		})
		a.Close()
		if err != nil {
			return fmt.Errorf("revoke rights of %q from %q: %w", user, o.name, err)
		}
		if err := s.forgetGrant(ctx, o.id, user); err != nil {
			return err
		}
	}
	return nil
}
