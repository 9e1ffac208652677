package postgres

import (
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tern-imap/tern/internal/store"
)

// An EXPUNGE in one round trip, as a STORE (flagwrite.go): the general
// path (Expunge) reads the messages to remove in one round trip and
// removes them with the commit in a second. For the \Deleted messages of
// a whole mailbox (EXPUNGE, CLOSE) or of up to flagUpdateChunk UIDs (UID
// EXPUNGE), and for up to that many named UIDs whatever their flags, one
// statement finds and removes them, leaves their tombstones, moves the
// mailbox's HIGHESTMODSEQ and the user's usage, drops the contents no
// other message uses and releases their bodies (as
// queueDropUnusedContents does), and travels with BEGIN, the lock and
// COMMIT. Its result, read with COMMIT's, says what it removed.

// oneTripExpunge is an expunge for the one-statement path.
type oneTripExpunge struct {
	mailboxID   int64
	uids        []int64 // unless all
	all         bool
	onlyDeleted bool
}

// oneTripExpungeFor returns the one-statement form of an expunge, or
// false when it takes the general path (more UIDs, or every message of
// a mailbox whatever its flags).
func oneTripExpungeFor(mailboxID int64, uids []uint32, onlyDeleted bool) (oneTripExpunge, bool) {
	all := uids == nil
	if all && !onlyDeleted || !all && (len(uids) == 0 || len(uids) > flagUpdateChunk) {
		return oneTripExpunge{}, false
	}
	e := oneTripExpunge{mailboxID: mailboxID, all: all, onlyDeleted: onlyDeleted}
	for _, u := range uids {
		e.uids = append(e.uids, int64(u))
	}
	return e, true
}

// oneTripExpungeSQL is the statement of an expunge of mailbox $1 of user
// $2: of its \Deleted messages (onlyDeleted), all of them (all) or those
// of the n UIDs $3. Every part sees the rows as they were
// before the statement, so the contents still used are those a message
// the statement does not remove uses. The bodies are locked in hash order,
// as everywhere. One row per removed message, ascending, each with the
// mailbox as it was; a \Noselect mailbox gives one row with no message, a
// missing one none.
func oneTripExpungeSQL(all, onlyDeleted bool, n int) string {
	cond := `m.mailbox_id = $1`
	if onlyDeleted {
		cond += ` AND m.sysflags & 8 <> 0`
	}
	if !all {
		cond += ` AND m.uid ` + inArray("$3", n)
	}
	return `WITH mb AS (SELECT ` + mboxCols + ` FROM mailboxes WHERE id = $1 AND user_id = $2),
	del AS (DELETE FROM messages m USING mb WHERE NOT mb.noselect AND ` + cond + ` RETURNING m.uid, m.content_id, m.size),
	runs AS (SELECT min(uid) AS lo, max(uid) AS hi FROM (SELECT uid, uid - row_number() OVER (ORDER BY uid) AS run FROM del) r GROUP BY run),
	tomb AS (INSERT INTO expunged(mailbox_id, uid_lo, uid_hi, modseq)
		SELECT $1, lo, hi, mb.highestmodseq + 1 FROM runs, mb
		ON CONFLICT (mailbox_id, uid_lo) DO UPDATE SET uid_hi = excluded.uid_hi, modseq = excluded.modseq),
	usage AS (SELECT count(*) AS n, coalesce(sum(size), 0) AS size FROM del),
	used AS (UPDATE users SET used_messages = used_messages - usage.n, used_storage = used_storage - usage.size
		FROM usage WHERE id = $2 AND usage.n > 0),
	hms AS (UPDATE mailboxes SET highestmodseq = mb.highestmodseq + 1 FROM mb WHERE mailboxes.id = mb.id AND EXISTS (SELECT 1 FROM del)),
	ids AS (SELECT array_agg(uid) AS uids, array_agg(DISTINCT content_id) AS contents FROM del),
	gone AS (DELETE FROM contents c WHERE c.id = ANY((SELECT contents FROM ids)::bigint[])
		AND NOT EXISTS (SELECT 1 FROM messages o WHERE o.content_id = c.id
			AND NOT (o.mailbox_id = $1 AND o.uid = ANY((SELECT uids FROM ids)::bigint[])) OFFSET 0)
		RETURNING body_hash),
	freed AS (SELECT body_hash AS h, count(*) AS n FROM gone GROUP BY body_hash),
	lk AS (SELECT hash, refs - freed.n AS left_refs FROM bodies JOIN freed ON freed.h = bodies.hash
		ORDER BY hash FOR NO KEY UPDATE OF bodies),
	rel AS (UPDATE bodies b SET refs = lk.left_refs, released = CASE WHEN lk.left_refs <= 0 THEN now() END
		FROM lk WHERE b.hash = lk.hash)
	SELECT mb.*, d.uid FROM mb LEFT JOIN del d ON NOT mb.noselect ORDER BY d.uid`
}

// queue queues e's statement for the commit; reading its result sets
// *out to the UIDs removed, records the change and the index's delta, or
// sets *gone to why the mailbox cannot be expunged (nothing was written
// then).
func (e oneTripExpunge) queue(w *wtx, out *[]uint32, gone *error) {
	args := []any{e.mailboxID, w.a.id}
	if !e.all {
		args = append(args, e.uids)
	}
	w.lateChanges = true
	w.tail.Queue(oneTripExpungeSQL(e.all, e.onlyDeleted, len(e.uids)), args...).Query(func(rows pgx.Rows) error {
		return e.read(w, rows, out, gone)
	})
}

// read reads the rows of oneTripExpungeSQL.
func (e oneTripExpunge) read(w *wtx, rows pgx.Rows, out *[]uint32, gone *error) error {
	defer rows.Close()
	*out = nil
	*gone = fmt.Errorf("mailbox %d: %w", e.mailboxID, store.ErrNoSuchMailbox)
	var m mbox
	for rows.Next() {
		var uid *int64
		if err := rows.Scan(&m.id, &m.name, &m.uidValidity, &m.uidNext, &m.highest, &m.recentMark, &m.specialUse, &m.noSelect, &uid); err != nil {
			return fmt.Errorf("expunge: %w", err)
		}
		if *gone = nil; m.noSelect {
			*gone = fmt.Errorf("mailbox %q: %w", m.name, store.ErrNoSelect)
		}
		if uid != nil {
			*out = append(*out, uint32(*uid))
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("expunge: %w", err)
	}
	if len(*out) > 0 {
		od := w.delta(&m)
		m.highest++
		for _, uid := range *out {
			od.AddExpunged(uid, m.highest)
		}
		od.D.Head = m.head()
		w.changed[m.id] = m.highest
	}
	return nil
}
