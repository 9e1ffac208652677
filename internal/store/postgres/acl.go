package postgres

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

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

// Sharers implements store.Store. Answers are kept for a while
// (sharersCache): every LIST asks, and grants change rarely.
func (s *Store) Sharers(ctx context.Context, user string) ([]string, error) {
	names, gen, ok := s.sharers.get(user)
	if ok {
		return names, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT u.name FROM acl a
		JOIN mailboxes m ON m.id = a.mailbox_id JOIN users u ON u.id = m.user_id
		WHERE a.identifier IN ($1, $2) AND u.name <> $1 ORDER BY u.name`, user, store.Anyone)
	if err != nil {
		return nil, fmt.Errorf("sharers of %q: %w", user, err)
	}
	names, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("sharers of %q: %w", user, err)
	}
	s.sharers.put(user, gen, names)
	return slices.Clone(names), nil
}

// sharersTTL bounds how long a node answers Sharers from memory. An ACL
// change clears the answers it may change when its signal arrives
// (signalACL on this node, serveNotifications from the others), and a
// break of the listening connection clears them all; the bound covers
// a signal lost with a node that died between its commit and the send,
// for a user no NOTIFY session watches (for the others the head check
// finds the entries changed and clears the answer: heads.go).
// (Every ACL row that can add a sharer is written by SetACL, tern store
// copy's included; a new mailbox's copy of its parent's entries adds
// none.)
const sharersTTL = time.Minute

// maxSharersCached bounds the users whose answers are kept; past it the
// expired answers are dropped, and if that is not enough the cache
// starts again empty.
const maxSharersCached = 10000

// sharersCache keeps Sharers' answers by user. gen counts the clearings:
// an answer read from the database is kept only if no clearing happened
// since before its query, so a query that raced with a grant cannot
// keep the old answer.
type sharersCache struct {
	// enabled is set for a Store that listens for other nodes' signals
	// (Options.Notifier): without them (a command-line tool) only the
	// TTL would clear an answer.
	enabled bool
	mu      sync.Mutex
	gen     uint64
	ttl     time.Duration // sharersTTL; tests shorten it
	m       map[string]sharersEntry
}

type sharersEntry struct {
	names []string
	until time.Time
}

// get returns user's kept answer (a copy) and ok, or the generation to
// hand put with the answer read instead.
func (c *sharersCache) get(user string) ([]string, uint64, bool) {
	if !c.enabled {
		return nil, 0, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[user]
	if !ok || time.Now().After(e.until) {
		return nil, c.gen, false
	}
	return slices.Clone(e.names), c.gen, true
}

// put keeps user's answer names, read at generation gen.
func (c *sharersCache) put(user string, gen uint64, names []string) {
	if !c.enabled {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if len(c.m) >= maxSharersCached {
		now := time.Now()
		maps.DeleteFunc(c.m, func(_ string, e sharersEntry) bool { return now.After(e.until) })
	}
	if c.m == nil || len(c.m) >= maxSharersCached {
		c.m = make(map[string]sharersEntry)
	}
	ttl := c.ttl
	if ttl <= 0 {
		ttl = sharersTTL
	}
	c.m[user] = sharersEntry{names: names, until: time.Now().Add(ttl)}
}

// forget clears the answers an ACL entry for identifier can change:
// identifier's own, or every one for Anyone.
func (c *sharersCache) forget(identifier string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if identifier == store.Anyone {
		clear(c.m)
		return
	}
	delete(c.m, identifier)
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
	return w.aclNaming(`INSERT INTO acl(mailbox_id, identifier, rights)
		SELECT $1, identifier, rights FROM acl WHERE mailbox_id = $2 RETURNING identifier`, "inherit acl", to, from)
}

// dropACL removes mailbox id's ACL.
func (w *wtx) dropACL(id int64) error {
	return w.aclNaming(`DELETE FROM acl WHERE mailbox_id = $1 RETURNING identifier`, "drop acl", id)
}

// aclNaming runs a statement that adds or removes ACL entries and returns
// their identifiers, and records those in w.aclNamed.
func (w *wtx) aclNaming(sql, what string, args ...any) error {
	rows, err := w.tx.Query(w.ctx, sql, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	w.aclNamed = append(w.aclNamed, ids...)
	return nil
}

// parentOf returns the superior name of a mailbox name, "" at the top.
func parentOf(name string) string {
	if i := strings.LastIndex(name, store.Separator); i >= 0 {
		return name[:i]
	}
	return ""
}
