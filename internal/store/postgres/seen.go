package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/backend"
)

// The \Seen of users other than the owner (store.PrivateSeenStore) is
// the private_seen table (schema step 7): one row per (message, user)
// that user ever changed, with its state and the modseq of that change,
// removed with its message by the foreign key.

// seenStatesSQL is seenStates's statement: mailbox $1's rows of viewer
// $2 with a modseq above $3, all or in the UID ranges ($4, $5; n of
// them).
func seenStatesSQL(all bool, n int) string {
	from := `private_seen m`
	if !all {
		from = rowsInRanges("private_seen", "m.mailbox_id = $1", "$4", "$5", n)
	}
	return `SELECT m.uid, m.seen, m.modseq FROM ` + from + ` WHERE m.mailbox_id = $1 AND m.viewer = $2 AND m.modseq > $3 ORDER BY m.uid`
}

// seenStates reads viewer's rows of a mailbox among rs (all when all)
// with a modseq above since, ascending by UID.
func seenStates(ctx context.Context, q querier, mailboxID int64, viewer string, rs uidRanges, all bool, since uint64) ([]store.SeenState, error) {
	if !all && rs.empty() {
		return nil, nil
	}
	args := []any{mailboxID, viewer, int64(since)}
	if !all {
		args = append(args, rs.lo, rs.hi)
	}
	rows, err := q.Query(ctx, seenStatesSQL(all, len(rs.lo)), args...)
	if err != nil {
		return nil, fmt.Errorf("read private \\Seen: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.SeenState, error) {
		var s store.SeenState
		err := row.Scan(&s.UID, &s.Seen, &s.ModSeq)
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("read private \\Seen: %w", err)
	}
	return out, nil
}

func (a *account) PrivateSeen(ctx context.Context, mailboxID int64, user string, uids []uint32, sinceModSeq uint64) ([]store.SeenState, error) {
	var out []store.SeenState
	err := a.read(ctx, "private seen", func(tx pgx.Tx) error {
		if _, err := a.selectableByID(ctx, tx, mailboxID); err != nil {
			return err
		}
		var err error
		out, err = seenStates(ctx, tx, mailboxID, user, toRanges(uids), uids == nil, sinceModSeq)
		return err
	})
	return out, err
}

func (a *account) SetPrivateSeen(ctx context.Context, mailboxID int64, user string, uids []uint32, seen bool) ([]store.SeenState, error) {
	if user == a.name {
		return nil, fmt.Errorf("set private \\Seen of the owner: %w", store.ErrNotAllowed)
	}
	rs := toRanges(uids)
	var out []store.SeenState
	err := a.lazyWrite(ctx, "set private seen", func(w *wtx) error {
		ctx := w.ctx // the commit's context, not the caller's (see groupcommit.go)
		out = nil
		m, err := a.selectableByID(ctx, w.tx, mailboxID)
		if err != nil {
			return err
		}
		msgs, err := w.msgRows(m.id, rs, false, false)
		if err != nil || len(msgs) == 0 {
			return err
		}
		old, err := seenStates(ctx, w.tx, m.id, user, rs, false, 0)
		if err != nil {
			return err
		}
		modseq := m.highest + 1
		var changed []uint32
		out, changed = backend.SetSeen(uidsOfRows(msgs), old, seen, modseq)
		if len(changed) == 0 {
			return nil
		}
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO private_seen(mailbox_id, uid, viewer, seen, modseq) SELECT $1, u, $2, $3, $4 FROM unnest($5::bigint[]) AS u
			ON CONFLICT(mailbox_id, uid, viewer) DO UPDATE SET seen = excluded.seen, modseq = excluded.modseq`,
			m.id, user, seen, int64(modseq), toInt64s(changed))
		b.Queue(setHighestModSeqSQL, m.id, modseq)
		if err := w.tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("write private \\Seen: %w", err)
		}
		w.changed[m.id] = modseq
		return nil
	})
	return out, err
}

func (a *account) PrivateSeenCount(ctx context.Context, mailboxID int64, user string) (seen, firstUnseen uint32, err error) {
	err = a.read(ctx, "private seen count", func(tx pgx.Tx) error {
		if _, err := a.selectableByID(ctx, tx, mailboxID); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM private_seen WHERE mailbox_id = $1 AND viewer = $2 AND seen`,
			mailboxID, user).Scan(&seen); err != nil {
			return fmt.Errorf("count private \\Seen: %w", err)
		}
		var n uint32
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM messages WHERE mailbox_id = $1`, mailboxID).Scan(&n); err != nil {
			return fmt.Errorf("count messages: %w", err)
		}
		if seen >= n {
			return nil // all seen: no scan
		}
		err := tx.QueryRow(ctx, `SELECT m.uid FROM messages m WHERE m.mailbox_id = $1 AND NOT EXISTS
			(SELECT 1 FROM private_seen p WHERE p.mailbox_id = $1 AND p.uid = m.uid AND p.viewer = $2 AND p.seen)
			ORDER BY m.uid LIMIT 1`, mailboxID, user).Scan(&firstUnseen)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("first unseen: %w", err)
		}
		return nil
	})
	return seen, firstUnseen, err
}

// toInt64s converts UIDs for a bigint[] parameter.
func toInt64s(uids []uint32) []int64 {
	out := make([]int64, len(uids))
	for i, u := range uids {
		out[i] = int64(u)
	}
	return out
}
