package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/backend"
)

var errAccountClosed = errors.New("account is closed")

// account implements store.Account on one user's database.
type account struct {
	s      *Store
	u      *userDB
	closed atomic.Bool
}

var _ store.Account = (*account)(nil)

func (a *account) User() string { return a.u.name }

// Close releases the account; the database stays cached for a while.
func (a *account) Close() error {
	if a.closed.Swap(true) {
		return nil
	}
	a.s.release(a.u)
	return nil
}

// wtx is one write transaction and what to do after it commits.
type wtx struct {
	ctx     context.Context
	tx      *sqlTx
	changed map[int64]uint64 // mailbox id -> modseq to notify
	gc      bool             // messages were deleted: drop unreferenced contents
	dead    []string         // blobs to remove after commit
	list    bool             // the mailbox list changed (store.MailboxListNotifier)
	deltas  backend.Deltas
	// lazy: the write only changes flags, expunges, claims \Recent or
	// indexes text, and need not wait for an fsync under
	// FsyncOptimized.
	lazy bool
	// kw is the user's keyword cache; kwSeen what this write found of
	// keywords, added to kw once it committed (kwcache.go).
	kw     *keywordCache
	kwSeen keywordsSeen
}

// write runs fn in a write transaction under the user's write lock, then
// removes dead blobs and notifies. It returns nil only once the
// transaction is durably committed; writes of the user that arrive while
// another commits share the next commit (see userDB.commit).
func (a *account) write(ctx context.Context, what string, fn func(w *wtx) error) error {
	return a.writeTx(ctx, what, false, fn)
}

// lazyWrite is write for changes that FsyncOptimized does not fsync.
func (a *account) lazyWrite(ctx context.Context, what string, fn func(w *wtx) error) error {
	return a.writeTx(ctx, what, true, fn)
}

func (a *account) writeTx(ctx context.Context, what string, lazy bool, fn func(w *wtx) error) error {
	if a.closed.Load() {
		return fmt.Errorf("%s: %w", what, errAccountClosed)
	}
	w := &wtx{ctx: ctx, changed: map[int64]uint64{}, lazy: lazy, kw: &a.u.keywords}
	if err := a.u.commit(w, fn); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	a.u.keywords.learn(&w.kwSeen)
	if len(w.dead) > 0 && a.u.fsync == FsyncOptimized {
		// The commit that freed these bodies may not be on disk yet: a
		// power failure could undo it, and its messages would come back
		// without their bodies.
		if err := a.u.syncLog(); err != nil {
			a.s.log.Warn("sync log before removing message blobs; they stay until tern check --repair", "user", a.u.name, "err", err)
			w.dead = nil
		}
	}
	for _, err := range a.u.removeBlobs(w.dead) {
		a.s.log.Warn("remove message blob", "user", a.u.name, "err", err)
	}
	if w.gc {
		// Contents may have gone: the indexer removes their text
		// (fts_gone), gathering the expunges of the next moment into one
		// commit.
		a.s.lastMailWrite.Store(time.Now().UnixNano())
		a.s.indexer.kick(a.u.id, a.u.name, 0)
	}
	w.deltas.Send(a.s.opts.Notifier, a.u.name, a.u.id, nil)
	a.s.notify(a.u.name, w.changed)
	if w.list {
		a.s.notifyList(a.u.name)
	}
	return nil
}

// read runs fn in a read transaction: a consistent snapshot.
func (a *account) read(ctx context.Context, what string, fn func(tx *sqlTx) error) error {
	if a.closed.Load() {
		return fmt.Errorf("%s: %w", what, errAccountClosed)
	}
	tx, err := beginTx(ctx, a.u.db, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func (w *wtx) collectGarbage() error {
	rows, err := w.tx.QueryContext(w.ctx, `SELECT c.blob FROM content_refs r JOIN contents c ON c.id = r.content_id
		WHERE r.refs <= 0 AND NOT EXISTS (SELECT 1 FROM bodies b WHERE b.content_id = c.id)`)
	if err != nil {
		return fmt.Errorf("find unreferenced bodies: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var b string
		if err := rows.Scan(&b); err != nil {
			return err
		}
		w.dead = append(w.dead, b)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	rows.Close()
	// content_refs rows go with them (ON DELETE CASCADE).
	if _, err := w.tx.ExecContext(w.ctx, `DELETE FROM contents WHERE id IN (SELECT content_id FROM content_refs WHERE refs <= 0)`); err != nil {
		return fmt.Errorf("delete unreferenced bodies: %w", err)
	}
	return nil
}

// --- mailbox rows ---

type mbox struct {
	id          int64
	name        string
	uidValidity uint32
	uidNext     uint32
	highest     uint64
	recentMark  uint32
	specialUse  string
	noSelect    bool
}

const mboxCols = `id, name, uidvalidity, uidnext, highestmodseq, recent_mark, special_use, noselect`

type scanner interface{ Scan(...any) error }

func scanMbox(sc scanner) (mbox, error) {
	var m mbox
	err := sc.Scan(&m.id, &m.name, &m.uidValidity, &m.uidNext, &m.highest, &m.recentMark, &m.specialUse, &m.noSelect)
	return m, err
}

func mboxByID(ctx context.Context, q querier, id int64) (mbox, error) {
	m, err := scanMbox(q.QueryRowContext(ctx, `SELECT `+mboxCols+` FROM mailboxes WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return m, fmt.Errorf("mailbox %d: %w", id, store.ErrNoSuchMailbox)
	}
	if err != nil {
		return m, fmt.Errorf("mailbox %d: %w", id, err)
	}
	return m, nil
}

// selectableByID returns a mailbox that may hold messages.
func selectableByID(ctx context.Context, q querier, id int64) (mbox, error) {
	m, err := mboxByID(ctx, q, id)
	if err == nil && m.noSelect {
		err = fmt.Errorf("mailbox %q: %w", m.name, store.ErrNoSelect)
	}
	return m, err
}

func mboxByName(ctx context.Context, q querier, name string) (mbox, error) {
	m, err := scanMbox(q.QueryRowContext(ctx, `SELECT `+mboxCols+` FROM mailboxes WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return m, fmt.Errorf("mailbox %q: %w", name, store.ErrNoSuchMailbox)
	}
	if err != nil {
		return m, fmt.Errorf("mailbox %q: %w", name, err)
	}
	return m, nil
}

func selectableByName(ctx context.Context, q querier, name string) (mbox, error) {
	m, err := mboxByName(ctx, q, name)
	if err == nil && m.noSelect {
		err = fmt.Errorf("mailbox %q: %w", m.name, store.ErrNoSelect)
	}
	return m, err
}

func (m mbox) info() store.MailboxInfo {
	return store.MailboxInfo{ID: m.id, Name: m.name, UIDValidity: m.uidValidity, SpecialUse: m.specialUse, NoSelect: m.noSelect}
}

func mailboxExists(ctx context.Context, q querier, name string) (bool, error) {
	var n int
	if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM mailboxes WHERE name = ?`, name).Scan(&n); err != nil {
		return false, fmt.Errorf("look up mailbox %q: %w", name, err)
	}
	return n > 0, nil
}

// nextUIDValidity takes the next value of the user's UIDVALIDITY counter:
// strictly increasing, seeded by the clock.
func nextUIDValidity(ctx context.Context, tx querier) (uint32, error) {
	var last int64
	err := tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'uidvalidity'`).Scan(&last)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("read uidvalidity counter: %w", err)
	}
	v := max(last+1, time.Now().Unix())
	if v > math.MaxUint32 {
		return 0, errors.New("uidvalidity counter exhausted")
	}
	if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO meta(key, value) VALUES('uidvalidity', ?)`, v); err != nil {
		return 0, fmt.Errorf("write uidvalidity counter: %w", err)
	}
	return uint32(v), nil
}

func insertMailbox(ctx context.Context, tx querier, name, specialUse string) (int64, error) {
	v, err := nextUIDValidity(ctx, tx)
	if err != nil {
		return 0, err
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO mailboxes(name, uidvalidity, special_use) VALUES(?, ?, ?)`, name, v, specialUse)
	if err != nil {
		return 0, fmt.Errorf("insert mailbox %q: %w", name, err)
	}
	return res.LastInsertId()
}

// createParents creates the missing superior names of name.
func createParents(ctx context.Context, tx querier, name string) error {
	parts := strings.Split(name, store.Separator)
	for i := 1; i < len(parts); i++ {
		p := strings.Join(parts[:i], store.Separator)
		ok, err := mailboxExists(ctx, tx, p)
		if err != nil {
			return err
		}
		if !ok {
			if _, err := insertMailbox(ctx, tx, p, ""); err != nil {
				return err
			}
		}
	}
	return nil
}

func (u *userDB) ensureInbox(ctx context.Context) error {
	u.wmu.Lock()
	defer u.wmu.Unlock()
	tx, err := u.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("create INBOX: %w", err)
	}
	defer tx.Rollback()
	m, err := mboxByName(ctx, tx, "INBOX")
	switch {
	case errors.Is(err, store.ErrNoSuchMailbox):
		if _, err := insertMailbox(ctx, tx, "INBOX", ""); err != nil {
			return err
		}
	case err != nil:
		return err
	case m.noSelect:
		if _, err := tx.ExecContext(ctx, `UPDATE mailboxes SET noselect = 0 WHERE id = ?`, m.id); err != nil {
			return fmt.Errorf("repair INBOX: %w", err)
		}
	default:
		return nil
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("create INBOX: %w", err)
	}
	return nil
}

// --- mailbox operations ---

func (a *account) Mailboxes(ctx context.Context) ([]store.MailboxInfo, error) {
	var out []store.MailboxInfo
	err := a.read(ctx, "list mailboxes", func(tx *sqlTx) error {
		rows, err := tx.QueryContext(ctx, `SELECT `+mboxCols+` FROM mailboxes ORDER BY name`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			m, err := scanMbox(rows)
			if err != nil {
				return err
			}
			out = append(out, m.info())
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	backend.SortMailboxes(out)
	return out, nil
}

func (a *account) Mailbox(ctx context.Context, name string) (store.MailboxInfo, error) {
	n, err := backend.LookupName(name)
	if err != nil {
		return store.MailboxInfo{}, err
	}
	if a.closed.Load() {
		return store.MailboxInfo{}, errAccountClosed
	}
	m, err := mboxByName(ctx, a.u.db, n)
	if err != nil {
		return store.MailboxInfo{}, err
	}
	return m.info(), nil
}

func (a *account) CreateMailbox(ctx context.Context, name, specialUse string) error {
	n, err := backend.NormName(name)
	if err != nil {
		return err
	}
	return a.write(ctx, "create mailbox", func(w *wtx) error {
		m, err := mboxByName(ctx, w.tx, n)
		switch {
		case err == nil && !m.noSelect:
			return fmt.Errorf("mailbox %q: %w", n, store.ErrMailboxExists)
		case err == nil:
			// A \Noselect placeholder becomes a real mailbox again, with a
			// new id and UIDVALIDITY.
			if _, err := w.tx.ExecContext(ctx, `DELETE FROM mailboxes WHERE id = ?`, m.id); err != nil {
				return err
			}
		case !errors.Is(err, store.ErrNoSuchMailbox):
			return err
		}
		parent, err := nearestParent(ctx, w.tx, n)
		if err != nil {
			return err
		}
		if err := createParents(ctx, w.tx, n); err != nil {
			return err
		}
		w.list = true
		id, err := insertMailbox(ctx, w.tx, n, specialUse)
		if err != nil {
			return err
		}
		return copyACL(ctx, w.tx, parent, id)
	})
}

func (a *account) DeleteMailbox(ctx context.Context, name string) error {
	n, err := backend.LookupName(name)
	if err != nil {
		return err
	}
	if n == "INBOX" {
		return fmt.Errorf("delete INBOX: %w", store.ErrNotAllowed)
	}
	return a.write(ctx, "delete mailbox", func(w *wtx) error {
		m, err := mboxByName(ctx, w.tx, n)
		if err != nil {
			return err
		}
		lo, hi := backend.ChildRange(n)
		var children int
		if err := w.tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM mailboxes WHERE name >= ? AND name < ?`, lo, hi).Scan(&children); err != nil {
			return err
		}
		if children > 0 && m.noSelect {
			return fmt.Errorf("mailbox %q: %w", n, store.ErrHasChildren)
		}
		if _, err := w.tx.ExecContext(ctx, `DELETE FROM messages WHERE mailbox_id = ?`, m.id); err != nil {
			return err
		}
		w.gc = true
		w.list = true
		w.changed[m.id] = m.highest + 1
		if children > 0 {
			// It stays only as a parent: its annotations go as if it
			// were deleted (the trigger on mailboxes does not fire).
			if _, err := w.tx.ExecContext(ctx, `DELETE FROM metadata WHERE mailbox_id = ?`, m.id); err != nil {
				return err
			}
			if _, err := w.tx.ExecContext(ctx, `DELETE FROM acl WHERE mailbox_id = ?`, m.id); err != nil {
				return err
			}
			_, err = w.tx.ExecContext(ctx, `UPDATE mailboxes SET noselect = 1, highestmodseq = ? WHERE id = ?`, m.highest+1, m.id)
			return err
		}
		_, err = w.tx.ExecContext(ctx, `DELETE FROM mailboxes WHERE id = ?`, m.id)
		return err
	})
}

func (a *account) RenameMailbox(ctx context.Context, oldName, newName string) error {
	from, err := backend.LookupName(oldName)
	if err != nil {
		return err
	}
	to, err := backend.NormName(newName)
	if err != nil {
		return err
	}
	return a.write(ctx, "rename mailbox", func(w *wtx) error {
		src, err := mboxByName(ctx, w.tx, from)
		if err != nil {
			return err
		}
		w.list = true
		if ok, err := mailboxExists(ctx, w.tx, to); err != nil {
			return err
		} else if ok {
			return fmt.Errorf("mailbox %q: %w", to, store.ErrMailboxExists)
		}
		if from == "INBOX" {
			// Move all of INBOX's messages into a new mailbox; INBOX's
			// children are unaffected.
			if err := createParents(ctx, w.tx, to); err != nil {
				return err
			}
			id, err := insertMailbox(ctx, w.tx, to, "")
			if err != nil {
				return err
			}
			rows, err := w.msgRows(src.id, nil, true, false)
			if err != nil {
				return err
			}
			if len(rows) == 0 {
				return nil
			}
			d, err := mboxByID(ctx, w.tx, id)
			if err != nil {
				return err
			}
			if _, err := w.insertCopies(&d, rows, true); err != nil {
				return err
			}
			_, err = w.expungeRows(&src, rows)
			return err
		}
		if strings.HasPrefix(to, from+store.Separator) {
			return fmt.Errorf("rename %q to its own child %q: %w", from, to, store.ErrNotAllowed)
		}
		lo, hi := backend.ChildRange(from)
		rows, err := w.tx.QueryContext(ctx, `SELECT id, name FROM mailboxes WHERE name = ? OR (name >= ? AND name < ?)`, from, lo, hi)
		if err != nil {
			return err
		}
		type ren struct {
			id      int64
			newName string
		}
		var rens []ren
		for rows.Next() {
			var r ren
			var old string
			if err := rows.Scan(&r.id, &old); err != nil {
				rows.Close()
				return err
			}
			r.newName = to + old[len(from):]
			rens = append(rens, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, r := range rens {
			if _, err := backend.NormName(r.newName); err != nil {
				return err
			}
			if ok, err := mailboxExists(ctx, w.tx, r.newName); err != nil {
				return err
			} else if ok {
				return fmt.Errorf("mailbox %q: %w", r.newName, store.ErrMailboxExists)
			}
		}
		for _, r := range rens {
			if _, err := w.tx.ExecContext(ctx, `UPDATE mailboxes SET name = ? WHERE id = ?`, r.newName, r.id); err != nil {
				return err
			}
		}
		return createParents(ctx, w.tx, to)
	})
}

func (a *account) Subscriptions(ctx context.Context) ([]string, error) {
	var out []string
	err := a.read(ctx, "list subscriptions", func(tx *sqlTx) error {
		rows, err := tx.QueryContext(ctx, `SELECT name FROM subscriptions ORDER BY name`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var n string
			if err := rows.Scan(&n); err != nil {
				return err
			}
			out = append(out, n)
		}
		return rows.Err()
	})
	return out, err
}

func (a *account) SetSubscribed(ctx context.Context, name string, subscribed bool) error {
	n, err := backend.NormName(name)
	if err != nil {
		return err
	}
	return a.write(ctx, "subscribe", func(w *wtx) error {
		w.list = true
		var err error
		if subscribed {
			_, err = w.tx.ExecContext(ctx, `INSERT OR IGNORE INTO subscriptions(name) VALUES(?)`, n)
		} else {
			_, err = w.tx.ExecContext(ctx, `DELETE FROM subscriptions WHERE name = ?`, n)
		}
		return err
	})
}

// statusOf computes a mailbox's status with indexed queries.
func statusOf(ctx context.Context, q querier, m mbox) (store.MailboxStatus, error) {
	st := store.MailboxStatus{MailboxInfo: m.info(), UIDNext: m.uidNext, HighestModSeq: m.highest}
	err := q.QueryRowContext(ctx, `SELECT COUNT(*),
		COALESCE(SUM((sysflags & 1) = 0), 0),
		COALESCE(SUM((sysflags & 8) != 0), 0),
		COALESCE(SUM(uid > ?), 0),
		COALESCE(SUM(size), 0),
		COALESCE(MIN(CASE WHEN (sysflags & 1) = 0 THEN uid END), 0),
		COALESCE(SUM(CASE WHEN (sysflags & 8) != 0 THEN size ELSE 0 END), 0)
		FROM messages WHERE mailbox_id = ?`, m.recentMark, m.id).
		Scan(&st.Messages, &st.Unseen, &st.Deleted, &st.Recent, &st.Size, &st.FirstUnseen, &st.DeletedSize)
	if err != nil {
		return st, fmt.Errorf("count messages: %w", err)
	}
	st.Keywords, err = mailboxKeywords(ctx, q, m.id)
	return st, err
}

func mailboxKeywords(ctx context.Context, q querier, id int64) ([]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT k.name FROM mailbox_keywords mk JOIN keywords k ON k.folded = mk.folded
		WHERE mk.mailbox_id = ? ORDER BY mk.folded`, id)
	if err != nil {
		return nil, fmt.Errorf("list keywords: %w", err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

func (a *account) Status(ctx context.Context, name string) (store.MailboxStatus, error) {
	n, err := backend.LookupName(name)
	if err != nil {
		return store.MailboxStatus{}, err
	}
	var st store.MailboxStatus
	err = a.read(ctx, "status", func(tx *sqlTx) error {
		m, err := selectableByName(ctx, tx, n)
		if err != nil {
			return err
		}
		st, err = statusOf(ctx, tx, m)
		return err
	})
	return st, err
}

func (a *account) Snapshot(ctx context.Context, mailboxID int64) (store.MailboxStatus, []uint32, error) {
	var st store.MailboxStatus
	var uids []uint32
	err := a.read(ctx, "snapshot", func(tx *sqlTx) error {
		m, err := selectableByID(ctx, tx, mailboxID)
		if err != nil {
			return err
		}
		if st, err = statusOf(ctx, tx, m); err != nil {
			return err
		}
		uids = make([]uint32, 0, st.Messages)
		rows, err := tx.QueryContext(ctx, `SELECT uid FROM messages WHERE mailbox_id = ? ORDER BY uid`, m.id)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var u uint32
			if err := rows.Scan(&u); err != nil {
				return err
			}
			uids = append(uids, u)
		}
		return rows.Err()
	})
	return st, uids, err
}

func (a *account) ClaimRecent(ctx context.Context, mailboxID int64, upTo uint32) (uint32, error) {
	var first uint32
	err := a.lazyWrite(ctx, "claim recent", func(w *wtx) error {
		m, err := selectableByID(ctx, w.tx, mailboxID)
		if err != nil {
			return err
		}
		first = m.recentMark + 1
		upTo = min(upTo, m.uidNext-1)
		if upTo > m.recentMark {
			_, err = w.tx.ExecContext(ctx, `UPDATE mailboxes SET recent_mark = ? WHERE id = ?`, upTo, m.id)
		}
		return err
	})
	return first, err
}
