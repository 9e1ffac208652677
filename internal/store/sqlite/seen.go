package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/backend"
)

// privateSeenSchema keeps the \Seen of users other than the owner
// (store.PrivateSeenStore), added in schema version 11: one row per
// (message, user) that user ever changed, with its state and the modseq
// of that change. A row goes with its message (the foreign key), so
// expunge and mailbox deletion need no work of their own.
const privateSeenSchema = `
CREATE TABLE IF NOT EXISTS private_seen(
	mailbox_id INTEGER NOT NULL,
	uid INTEGER NOT NULL,
	user TEXT NOT NULL,
	seen INTEGER NOT NULL,
	modseq INTEGER NOT NULL,
	PRIMARY KEY(mailbox_id, uid, user),
	FOREIGN KEY(mailbox_id, uid) REFERENCES messages(mailbox_id, uid) ON DELETE CASCADE ON UPDATE CASCADE
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS private_seen_modseq ON private_seen(mailbox_id, user, modseq, seen);
`

// seenStates reads user's rows of a mailbox among rs (nil: all) with a
// modseq above since, ascending by UID.
func seenStates(ctx context.Context, q querier, mailboxID int64, user string, rs []uidRange, since uint64) ([]store.SeenState, error) {
	from, cond, args := "", "1", []any{mailboxID}
	if rs != nil {
		if len(rs) == 0 {
			return nil, nil
		}
		from, cond, args = uidMatch(rs)
		args = append([]any{mailboxID}, args...)
	}
	n := len(args)
	rows, err := q.QueryContext(ctx, fmt.Sprintf(`SELECT m.uid, m.seen, m.modseq FROM %sprivate_seen m
		WHERE m.mailbox_id = ?1 AND %s AND m.user = ?%d AND m.modseq > ?%d ORDER BY m.uid`, from, cond, n+1, n+2),
		append(args, user, int64(since))...)
	if err != nil {
		return nil, fmt.Errorf("read private \\Seen: %w", err)
	}
	defer rows.Close()
	var out []store.SeenState
	for rows.Next() {
		var s store.SeenState
		if err := rows.Scan(&s.UID, &s.Seen, &s.ModSeq); err != nil {
			return nil, fmt.Errorf("read private \\Seen: %w", err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read private \\Seen: %w", err)
	}
	return out, nil
}

func (a *account) PrivateSeen(ctx context.Context, mailboxID int64, user string, uids []uint32, sinceModSeq uint64) ([]store.SeenState, error) {
	var rs []uidRange
	if uids != nil {
		rs = toRanges(uids)
		if rs == nil {
			rs = []uidRange{}
		}
	}
	var out []store.SeenState
	err := a.read(ctx, "private seen", func(tx *sqlTx) error {
		if _, err := selectableByID(ctx, tx, mailboxID); err != nil {
			return err
		}
		var err error
		out, err = seenStates(ctx, tx, mailboxID, user, rs, sinceModSeq)
		return err
	})
	return out, err
}

func (a *account) SetPrivateSeen(ctx context.Context, mailboxID int64, user string, uids []uint32, seen bool) ([]store.SeenState, error) {
	if user == a.u.name {
		return nil, fmt.Errorf("set private \\Seen of the owner: %w", store.ErrNotAllowed)
	}
	rs := toRanges(uids)
	var out []store.SeenState
	err := a.lazyWrite(ctx, "set private seen", func(w *wtx) error {
		out = nil
		m, err := selectableByID(ctx, w.tx, mailboxID)
		if err != nil {
			return err
		}
		msgs, err := w.flagRows(m.id, rs)
		if err != nil || len(msgs) == 0 {
			return err
		}
		old, err := seenStates(ctx, w.tx, m.id, user, rs, 0)
		if err != nil {
			return err
		}
		uids := make([]uint32, len(msgs))
		for i, msg := range msgs {
			uids[i] = msg.uid
		}
		modseq := m.highest + 1
		var changed []uint32
		out, changed = backend.SetSeen(uids, old, seen, modseq)
		if len(changed) == 0 {
			return nil
		}
		cond, uargs := uidIn("uid", toRanges(changed), 5)
		if _, err := w.tx.ExecContext(ctx, `INSERT INTO private_seen(mailbox_id, uid, user, seen, modseq)
			SELECT ?1, uid, ?2, ?3, ?4 FROM messages WHERE mailbox_id = ?1 AND `+cond+`
			ON CONFLICT(mailbox_id, uid, user) DO UPDATE SET seen = excluded.seen, modseq = excluded.modseq`,
			append([]any{m.id, user, seen, int64(modseq)}, uargs...)...); err != nil {
			return fmt.Errorf("write private \\Seen: %w", err)
		}
		if _, err := w.tx.ExecContext(ctx, setModSeq, modseq, m.id); err != nil {
			return err
		}
		w.changed[m.id] = modseq
		return nil
	})
	return out, err
}

func (a *account) PrivateSeenCount(ctx context.Context, mailboxID int64, user string) (seen, firstUnseen uint32, err error) {
	err = a.read(ctx, "private seen count", func(tx *sqlTx) error {
		if _, err := selectableByID(ctx, tx, mailboxID); err != nil {
			return err
		}
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM private_seen WHERE mailbox_id = ? AND user = ? AND seen = 1`,
			mailboxID, user).Scan(&seen); err != nil {
			return fmt.Errorf("count private \\Seen: %w", err)
		}
		var n uint32
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM messages WHERE mailbox_id = ?`, mailboxID).Scan(&n); err != nil {
			return fmt.Errorf("count messages: %w", err)
		}
		if seen >= n {
			return nil // all seen: no scan
		}
		err := tx.QueryRowContext(ctx, `SELECT m.uid FROM messages m WHERE m.mailbox_id = ?1 AND NOT EXISTS
			(SELECT 1 FROM private_seen p WHERE p.mailbox_id = ?1 AND p.uid = m.uid AND p.user = ?2 AND p.seen = 1)
			ORDER BY m.uid LIMIT 1`, mailboxID, user).Scan(&firstUnseen)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("first unseen: %w", err)
		}
		return nil
	})
	return seen, firstUnseen, err
}
