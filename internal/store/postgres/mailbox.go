package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync/atomic"

	"github.com/jackc/pgx/v5"

	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/backend"
)

var errAccountClosed = errors.New("account is closed")

// account implements store.Account for one user (users.id).
type account struct {
	s      *Store
	id     int64
	name   string
	closed atomic.Bool
	// keywords is what this account's committed writes taught it about
	// the user's keywords (kwcache.go).
	keywords keywordCache
}

var _ store.Account = (*account)(nil)

func (a *account) User() string { return a.name }

// Close releases the account (it holds no connection).
func (a *account) Close() error {
	a.closed.Store(true)
	return nil
}

// wtx is one write inside a write transaction (groupcommit.go), and what
// to announce once that commits.
type wtx struct {
	ctx     context.Context
	tx      dbtx
	a       *account
	changed map[int64]uint64 // mailbox id -> modseq
	list    bool             // the mailbox list changed
	dropped []int64          // contents whose messages were deleted: drop if unused
	// unverified are new bodies whose blob store object must be checked
	// before the commit, retired those whose bytes go in their rows
	// (queueSaveBody, settleBlobs).
	unverified, retired []*prepared
	deltas              backend.Deltas // by mailbox id (delta.go)
	// kwSeen is what this write found out about keywords, taught to the
	// account's cache once it committed (kwcache.go).
	kwSeen keywordsSeen
	// tail holds the statements queued by atCommit.
	tail pgx.Batch
	// aclNamed are the identifiers whose ACL entries this write added or
	// removed along with a mailbox (copyACL, dropACL), which no ACL
	// signal tells: the head check takes their entries afresh after the
	// commit (the mailbox list's change tells the sessions).
	aclNamed []string
}

// atCommit queues a statement whose result the write needs only as
// success or failure: it travels with the commit (runTx) or, in a group,
// with the write's savepoint release (runInSavepoint), a round trip
// fewer. Statements the write sends afterwards run before it, so none of
// them may depend on it. Its failure rolls the transaction (or the
// write's savepoint) back and fails the write. (A write may also move
// queued statements with result callbacks into w.tail, as insertNew
// does: the callbacks run, in order, before COMMIT's result is read.)
func (w *wtx) atCommit(sql string, args ...any) {
	w.tail.Queue(sql, args...)
}

// readBatch sends b's statements in one round trip, inside a read-only
// REPEATABLE READ transaction (one snapshot for all), and lets fn read
// their results in order.
func (a *account) readBatch(ctx context.Context, what string, b *pgx.Batch, fn func(br pgx.BatchResults) error) error {
	if a.closed.Load() {
		return fmt.Errorf("%s: %w", what, errAccountClosed)
	}
	all := &pgx.Batch{}
	all.Queue(`BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY`)
	all.QueuedQueries = append(all.QueuedQueries, b.QueuedQueries...)
	all.Queue(`COMMIT`)
	br := a.s.pool.SendBatch(ctx, all)
	_, err := br.Exec()
	if err == nil {
		err = fn(br)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// read runs fn in a read-only REPEATABLE READ transaction: one snapshot
// for all its statements.
func (a *account) read(ctx context.Context, what string, fn func(tx pgx.Tx) error) error {
	if a.closed.Load() {
		return fmt.Errorf("%s: %w", what, errAccountClosed)
	}
	err := pgx.BeginTxFunc(ctx, a.s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, fn)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
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

func scanMbox(row pgx.Row) (mbox, error) {
	var m mbox
	err := row.Scan(&m.id, &m.name, &m.uidValidity, &m.uidNext, &m.highest, &m.recentMark, &m.specialUse, &m.noSelect)
	return m, err
}

func (m mbox) info() store.MailboxInfo {
	return store.MailboxInfo{ID: m.id, Name: m.name, UIDValidity: m.uidValidity, SpecialUse: m.specialUse, NoSelect: m.noSelect}
}

func (m mbox) head() store.MailboxHead {
	return store.MailboxHead{MailboxInfo: m.info(), UIDNext: m.uidNext, HighestModSeq: m.highest, RecentMark: m.recentMark}
}

// mboxByID reads one of the account's mailboxes by id.
func (a *account) mboxByID(ctx context.Context, q querier, id int64) (mbox, error) {
	return mboxFound(q.QueryRow(ctx, mboxByIDSQL, id, a.id), id)
}

// mboxByIDSQL reads mailbox $1 of user $2.
const mboxByIDSQL = `SELECT ` + mboxCols + ` FROM mailboxes WHERE id = $1 AND user_id = $2`

// mboxFound scans the row of mboxByIDSQL for mailbox id.
func mboxFound(row pgx.Row, id int64) (mbox, error) {
	m, err := scanMbox(row)
	if errors.Is(err, pgx.ErrNoRows) {
		return m, fmt.Errorf("mailbox %d: %w", id, store.ErrNoSuchMailbox)
	}
	if err != nil {
		return m, fmt.Errorf("mailbox %d: %w", id, err)
	}
	return m, nil
}

// selectableByID returns a mailbox that may hold messages.
func (a *account) selectableByID(ctx context.Context, q querier, id int64) (mbox, error) {
	return selectable(a.mboxByID(ctx, q, id))
}

// selectable passes on a mailbox that may hold messages.
func selectable(m mbox, err error) (mbox, error) {
	if err == nil && m.noSelect {
		err = fmt.Errorf("mailbox %q: %w", m.name, store.ErrNoSelect)
	}
	return m, err
}

func (a *account) mboxByName(ctx context.Context, q querier, name string) (mbox, error) {
	return mboxNamed(q.QueryRow(ctx, mboxByNameSQL, a.id, name), name)
}

// mboxByNameSQL reads user $1's mailbox named $2.
const mboxByNameSQL = `SELECT ` + mboxCols + ` FROM mailboxes WHERE user_id = $1 AND name = $2`

// mboxNamed scans the row of mboxByNameSQL for the mailbox called name.
func mboxNamed(row pgx.Row, name string) (mbox, error) {
	m, err := scanMbox(row)
	if errors.Is(err, pgx.ErrNoRows) {
		return m, fmt.Errorf("mailbox %q: %w", name, store.ErrNoSuchMailbox)
	}
	if err != nil {
		return m, fmt.Errorf("mailbox %q: %w", name, err)
	}
	return m, nil
}

func (a *account) selectableByName(ctx context.Context, q querier, name string) (mbox, error) {
	m, err := a.mboxByName(ctx, q, name)
	if err == nil && m.noSelect {
		err = fmt.Errorf("mailbox %q: %w", m.name, store.ErrNoSelect)
	}
	return m, err
}

func (a *account) mailboxExists(ctx context.Context, q querier, name string) (bool, error) {
	var ok bool
	if err := q.QueryRow(ctx, `SELECT EXISTS(SELECT 1 FROM mailboxes WHERE user_id = $1 AND name = $2)`, a.id, name).Scan(&ok); err != nil {
		return false, fmt.Errorf("look up mailbox %q: %w", name, err)
	}
	return ok, nil
}

// insertMailbox creates a mailbox of user with the next value of the
// user's UIDVALIDITY counter (strictly increasing, seeded by the clock).
func insertMailbox(ctx context.Context, tx querier, user int64, name, specialUse string) (int64, error) {
	var v int64
	err := tx.QueryRow(ctx, `UPDATE users SET uidvalidity = GREATEST(uidvalidity + 1, $2) WHERE id = $1 RETURNING uidvalidity`,
		user, now()).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("next uidvalidity: %w", err)
	}
	if v > math.MaxUint32 {
		return 0, errors.New("uidvalidity counter exhausted")
	}
	var id int64
	err = tx.QueryRow(ctx, `INSERT INTO mailboxes(user_id, name, uidvalidity, special_use) VALUES($1, $2, $3, $4) RETURNING id`,
		user, name, v, specialUse).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("insert mailbox %q: %w", name, err)
	}
	return id, nil
}

// createParents creates the missing superior names of name.
func (w *wtx) createParents(name string) error {
	parts := strings.Split(name, store.Separator)
	for i := 1; i < len(parts); i++ {
		p := strings.Join(parts[:i], store.Separator)
		ok, err := w.a.mailboxExists(w.ctx, w.tx, p)
		if err != nil {
			return err
		}
		if !ok {
			if _, err := insertMailbox(w.ctx, w.tx, w.a.id, p, ""); err != nil {
				return err
			}
		}
	}
	return nil
}

// --- mailbox operations ---

func (a *account) Mailboxes(ctx context.Context) ([]store.MailboxInfo, error) {
	if a.closed.Load() {
		return nil, fmt.Errorf("list mailboxes: %w", errAccountClosed)
	}
	rows, err := a.s.pool.Query(ctx, `SELECT `+mboxCols+` FROM mailboxes WHERE user_id = $1 ORDER BY name`, a.id)
	if err != nil {
		return nil, fmt.Errorf("list mailboxes: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.MailboxInfo, error) {
		m, err := scanMbox(r)
		return m.info(), err
	})
	if err != nil {
		return nil, fmt.Errorf("list mailboxes: %w", err)
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
	m, err := a.mboxByName(ctx, a.s.pool, n)
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
		ctx := w.ctx // the commit's context, not the caller's (see groupcommit.go)
		m, err := a.mboxByName(ctx, w.tx, n)
		switch {
		case err == nil && !m.noSelect:
			return fmt.Errorf("mailbox %q: %w", n, store.ErrMailboxExists)
		case err == nil:
			// A \Noselect placeholder becomes a real mailbox again, with a
			// new id and UIDVALIDITY.
			if err := w.deleteMailboxRow(m.id); err != nil {
				return err
			}
		case !errors.Is(err, store.ErrNoSuchMailbox):
			return err
		}
		parent, err := w.nearestParent(n)
		if err != nil {
			return err
		}
		if err := w.createParents(n); err != nil {
			return err
		}
		w.list = true
		id, err := insertMailbox(ctx, w.tx, a.id, n, specialUse)
		if err != nil {
			return err
		}
		return w.copyACL(parent, id)
	})
}

// deleteMailboxRow deletes a mailbox row (its messages, tombstones and
// keywords go with it), its annotations and its ACL (dropACL, which
// records whom the entries named).
func (w *wtx) deleteMailboxRow(id int64) error {
	if _, err := w.tx.Exec(w.ctx, `DELETE FROM metadata WHERE user_id = $1 AND mailbox_id = $2`, w.a.id, id); err != nil {
		return err
	}
	if err := w.dropACL(id); err != nil {
		return err
	}
	_, err := w.tx.Exec(w.ctx, `DELETE FROM mailboxes WHERE id = $1`, id)
	return err
}

// deleteAllMessages deletes every message of mailbox id, counting them
// off the usage and leaving their contents to be dropped if unused.
func (w *wtx) deleteAllMessages(id int64) error {
	var n, size int64
	var contents []int64
	err := w.tx.QueryRow(w.ctx, `WITH d AS (DELETE FROM messages WHERE mailbox_id = $1 RETURNING content_id, size)
		SELECT count(*), COALESCE(sum(size), 0), COALESCE(array_agg(DISTINCT content_id), '{}') FROM d`, id).Scan(&n, &size, &contents)
	if err != nil {
		return fmt.Errorf("delete messages: %w", err)
	}
	w.dropped = append(w.dropped, contents...)
	return w.addUsage(-n, -size)
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
		ctx := w.ctx // the commit's context, not the caller's (see groupcommit.go)
		m, err := a.mboxByName(ctx, w.tx, n)
		if err != nil {
			return err
		}
		lo, hi := backend.ChildRange(n)
		var children bool
		if err := w.tx.QueryRow(ctx, `SELECT EXISTS(SELECT 1 FROM mailboxes WHERE user_id = $1 AND name >= $2 AND name < $3)`,
			a.id, lo, hi).Scan(&children); err != nil {
			return err
		}
		if children && m.noSelect {
			return fmt.Errorf("mailbox %q: %w", n, store.ErrHasChildren)
		}
		if err := w.deleteAllMessages(m.id); err != nil {
			return err
		}
		w.list = true
		w.changed[m.id] = m.highest + 1
		if children {
			// It stays only as a parent, without its annotations.
			if _, err := w.tx.Exec(ctx, `DELETE FROM metadata WHERE user_id = $1 AND mailbox_id = $2`, a.id, m.id); err != nil {
				return err
			}
			if err := w.dropACL(m.id); err != nil {
				return err
			}
			_, err = w.tx.Exec(ctx, `UPDATE mailboxes SET noselect = true, highestmodseq = $2 WHERE id = $1`, m.id, m.highest+1)
			return err
		}
		return w.deleteMailboxRow(m.id)
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
		ctx := w.ctx // the commit's context, not the caller's (see groupcommit.go)
		src, err := a.mboxByName(ctx, w.tx, from)
		if err != nil {
			return err
		}
		w.list = true
		if ok, err := a.mailboxExists(ctx, w.tx, to); err != nil {
			return err
		} else if ok {
			return fmt.Errorf("mailbox %q: %w", to, store.ErrMailboxExists)
		}
		if from == "INBOX" {
			return w.renameInbox(&src, to)
		}
		if strings.HasPrefix(to, from+store.Separator) {
			return fmt.Errorf("rename %q to its own child %q: %w", from, to, store.ErrNotAllowed)
		}
		lo, hi := backend.ChildRange(from)
		rows, err := w.tx.Query(ctx, `SELECT id, name FROM mailboxes WHERE user_id = $1 AND (name = $2 OR (name >= $3 AND name < $4))`,
			a.id, from, lo, hi)
		if err != nil {
			return err
		}
		type ren struct {
			id      int64
			newName string
		}
		rens, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ren, error) {
			var x ren
			var old string
			err := r.Scan(&x.id, &old)
			x.newName = to + old[len(from):]
			return x, err
		})
		if err != nil {
			return err
		}
		ids := make([]int64, len(rens))
		names := make([]string, len(rens))
		for i, r := range rens {
			if _, err := backend.NormName(r.newName); err != nil {
				return err
			}
			if ok, err := a.mailboxExists(ctx, w.tx, r.newName); err != nil {
				return err
			} else if ok {
				return fmt.Errorf("mailbox %q: %w", r.newName, store.ErrMailboxExists)
			}
			ids[i], names[i] = r.id, r.newName
		}
		// The new names are all under to, the old ones under from, and
		// neither is below the other: no row takes a name another frees.
		if _, err := w.tx.Exec(ctx, `UPDATE mailboxes m SET name = r.name FROM unnest($1::bigint[], $2::text[]) AS r(id, name)
			WHERE m.id = r.id`, ids, names); err != nil {
			return err
		}
		return w.createParents(to)
	})
}

// renameInbox moves all of INBOX's messages into a new mailbox to;
// INBOX's children stay.
func (w *wtx) renameInbox(src *mbox, to string) error {
	if err := w.createParents(to); err != nil {
		return err
	}
	id, err := insertMailbox(w.ctx, w.tx, w.a.id, to, "")
	if err != nil {
		return err
	}
	rows, err := w.msgRows(src.id, uidRanges{}, true, false)
	if err != nil || len(rows) == 0 {
		return err
	}
	d, err := w.a.mboxByID(w.ctx, w.tx, id)
	if err != nil {
		return err
	}
	if _, err := w.insertCopies(&d, rows, true); err != nil {
		return err
	}
	w.expungeRows(src, rows, true)
	return nil
}

func (a *account) Subscriptions(ctx context.Context) ([]string, error) {
	if a.closed.Load() {
		return nil, fmt.Errorf("list subscriptions: %w", errAccountClosed)
	}
	rows, err := a.s.pool.Query(ctx, `SELECT name FROM subscriptions WHERE user_id = $1 ORDER BY name`, a.id)
	if err != nil {
		return nil, fmt.Errorf("list subscriptions: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list subscriptions: %w", err)
	}
	return out, nil
}

func (a *account) SetSubscribed(ctx context.Context, name string, subscribed bool) error {
	n, err := backend.NormName(name)
	if err != nil {
		return err
	}
	return a.write(ctx, "subscribe", func(w *wtx) error {
		ctx := w.ctx // the commit's context, not the caller's (see groupcommit.go)
		w.list = true
		var err error
		if subscribed {
			_, err = w.tx.Exec(ctx, `INSERT INTO subscriptions(user_id, name) VALUES($1, $2) ON CONFLICT DO NOTHING`, a.id, n)
		} else {
			_, err = w.tx.Exec(ctx, `DELETE FROM subscriptions WHERE user_id = $1 AND name = $2`, a.id, n)
		}
		return err
	})
}

// statusOf computes a mailbox's status.
func statusOf(ctx context.Context, q querier, m mbox) (store.MailboxStatus, error) {
	st := store.MailboxStatus{MailboxInfo: m.info(), UIDNext: m.uidNext, HighestModSeq: m.highest}
	err := q.QueryRow(ctx, `SELECT count(*),
		count(*) FILTER (WHERE sysflags & 1 = 0),
		count(*) FILTER (WHERE sysflags & 8 <> 0),
		count(*) FILTER (WHERE uid > $2),
		COALESCE(sum(size), 0),
		COALESCE(min(uid) FILTER (WHERE sysflags & 1 = 0), 0),
		COALESCE(sum(size) FILTER (WHERE sysflags & 8 <> 0), 0)
		FROM messages WHERE mailbox_id = $1`, m.id, m.recentMark).
		Scan(&st.Messages, &st.Unseen, &st.Deleted, &st.Recent, &st.Size, &st.FirstUnseen, &st.DeletedSize)
	if err != nil {
		return st, fmt.Errorf("count messages: %w", err)
	}
	st.Keywords, err = mailboxKeywords(ctx, q, m.id)
	return st, err
}

// mailboxKeywords lists the keywords in use in a mailbox, in their
// account-wide spelling, by folded form.
func mailboxKeywords(ctx context.Context, q querier, id int64) ([]string, error) {
	rows, err := q.Query(ctx, keywordsSQL, id)
	return keywordList(rows, err)
}

// keywordsSQL lists mailbox $1's keywords.
const keywordsSQL = `SELECT k.name FROM mailbox_keywords mk
	JOIN mailboxes mb ON mb.id = mk.mailbox_id
	JOIN keywords k ON k.user_id = mb.user_id AND k.folded = mk.folded
	WHERE mk.mailbox_id = $1 ORDER BY mk.folded`

// keywordList reads the rows of keywordsSQL.
func keywordList(rows pgx.Rows, err error) ([]string, error) {
	if err != nil {
		return nil, fmt.Errorf("list keywords: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list keywords: %w", err)
	}
	if out == nil {
		out = []string{}
	}
	return out, nil
}

func (a *account) Status(ctx context.Context, name string) (store.MailboxStatus, error) {
	n, err := backend.LookupName(name)
	if err != nil {
		return store.MailboxStatus{}, err
	}
	var st store.MailboxStatus
	err = a.read(ctx, "status", func(tx pgx.Tx) error {
		m, err := a.selectableByName(ctx, tx, n)
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
	err := a.read(ctx, "snapshot", func(tx pgx.Tx) error {
		m, err := a.selectableByID(ctx, tx, mailboxID)
		if err != nil {
			return err
		}
		if st, err = statusOf(ctx, tx, m); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT uid FROM messages WHERE mailbox_id = $1 ORDER BY uid`, m.id)
		if err != nil {
			return err
		}
		uids = make([]uint32, 0, st.Messages)
		var u uint32
		_, err = pgx.ForEachRow(rows, []any{&u}, func() error {
			uids = append(uids, u)
			return nil
		})
		return err
	})
	return st, uids, err
}

// claimRecentSQL moves mailbox $1's (of user $2) recent mark up to $3,
// at most to UIDNEXT-1, and returns the mailbox's name, \Noselect and
// the mark as it was: one statement instead of a read and an update. It
// runs after the user's row lock (lockUserSQL), in a statement of its
// own, so it reads the mark the last claim left: exactly one claim gets
// each UID.
const claimRecentSQL = `WITH old AS (SELECT name, noselect, recent_mark, uidnext FROM mailboxes WHERE id = $1 AND user_id = $2),
	claim AS (UPDATE mailboxes m SET recent_mark = LEAST($3::bigint, old.uidnext - 1) FROM old
		WHERE m.id = $1 AND NOT old.noselect AND LEAST($3::bigint, old.uidnext - 1) > old.recent_mark)
	SELECT name, noselect, recent_mark FROM old`

// A relaxed commit does not wait for the transaction's WAL to reach the
// disk (synchronous_commit = off for this transaction only, set by the
// user's row lock: lockUserRelaxedSQL). The \Recent claim always commits so, and under
// Options.RelaxedCommits the lazy writes too (groupcommit.go). A claim is
// visible to every other transaction at once, as any commit, so while
// the database runs each UID is still claimed by exactly one session
// cluster-wide; only a crash of the database server within a fraction of
// a second (wal_writer_delay, 3x at most) after the claim can lose it,
// and then the messages are \Recent again for the next session, which
// RFC 3501 allows (\Recent is a per-session hint, and a server that
// cannot keep it may show a message as recent to more than one session;
// RFC 9051 dropped it). Nothing acknowledged is lost: a later durable
// commit flushes the WAL up to itself, the claim's record included.

// ClaimRecent runs outside the write queue (groupcommit.go), in one
// round trip: the user's row lock with the relaxed commit setting (the
// lock every write takes first, so the claim serialises with them and
// with the other claims, in the same lock order) and the claim, in one batch, which
// PostgreSQL runs as one implicit transaction that commits at its end.
// The mailbox index (internal/index) calls it only when its own copy of
// the recent mark shows something to claim.
func (a *account) ClaimRecent(ctx context.Context, mailboxID int64, upTo uint32) (uint32, error) {
	if a.closed.Load() {
		return 0, fmt.Errorf("claim recent: %w", errAccountClosed)
	}
	var (
		name     string
		noSelect bool
		mark     int64
	)
	claim := func() error {
		b := &pgx.Batch{}
		b.Queue(lockUserRelaxedSQL, a.id).QueryRow(func(row pgx.Row) error {
			if err := row.Scan(nil); err != nil {
				return fmt.Errorf("lock user: %w", err)
			}
			return nil
		})
		b.Queue(claimRecentSQL, mailboxID, a.id, int64(upTo)).QueryRow(func(row pgx.Row) error {
			return row.Scan(&name, &noSelect, &mark)
		})
		return a.s.pool.SendBatch(ctx, b).Close()
	}
	// The user's lock first, then one mailbox row, as every write; a
	// deadlock or serialization failure is retried all the same.
	var err error
	for attempt := 0; ; attempt++ {
		err = claim()
		if err == nil || attempt >= maxRetries || !retryable(err) {
			break
		}
	}
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return 0, fmt.Errorf("claim recent: mailbox %d: %w", mailboxID, store.ErrNoSuchMailbox)
	case err != nil:
		return 0, fmt.Errorf("claim recent: %w", err)
	case noSelect:
		return 0, fmt.Errorf("claim recent: mailbox %q: %w", name, store.ErrNoSelect)
	}
	return uint32(mark) + 1, nil
}
