package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/tern-imap/tern/internal/store"
)

var _ store.HistorySource = (*account)(nil)

// MailboxHistory reads a mailbox's counters, \Recent mark, tombstones,
// UID log and other users' private \Seen in one read transaction (store
// copy's source side).
func (a *account) MailboxHistory(ctx context.Context, mailboxID int64) (store.MailboxHistory, error) {
	var h store.MailboxHistory
	err := a.read(ctx, "mailbox history", func(tx *sqlTx) error {
		m, err := mboxByID(ctx, tx, mailboxID)
		if err != nil {
			return err
		}
		h.UIDNext, h.HighestModSeq, h.RecentMark = m.uidNext, m.highest, m.recentMark
		if h.Expunged, err = readTombstones(ctx, tx, mailboxID); err != nil {
			return err
		}
		if h.UIDLog, err = readUIDLog(ctx, tx, mailboxID); err != nil {
			return err
		}
		h.PrivateSeen, err = readAllPrivateSeen(ctx, tx, mailboxID)
		return err
	})
	return h, err
}

func readTombstones(ctx context.Context, q querier, mailboxID int64) ([]store.ExpungedRange, error) {
	rows, err := q.QueryContext(ctx, `SELECT uid_lo, uid_hi, modseq FROM expunged WHERE mailbox_id = ? ORDER BY uid_lo`, mailboxID)
	if err != nil {
		return nil, fmt.Errorf("read tombstones: %w", err)
	}
	defer rows.Close()
	var out []store.ExpungedRange
	for rows.Next() {
		var r store.ExpungedRange
		if err := rows.Scan(&r.Lo, &r.Hi, &r.ModSeq); err != nil {
			return nil, fmt.Errorf("read tombstones: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read tombstones: %w", err)
	}
	return out, nil
}

func readUIDLog(ctx context.Context, q querier, mailboxID int64) ([]store.UIDLogEntry, error) {
	rows, err := q.QueryContext(ctx, `SELECT modseq, uid_first FROM uid_log WHERE mailbox_id = ? ORDER BY modseq`, mailboxID)
	if err != nil {
		return nil, fmt.Errorf("read uid log: %w", err)
	}
	defer rows.Close()
	var out []store.UIDLogEntry
	for rows.Next() {
		var e store.UIDLogEntry
		if err := rows.Scan(&e.ModSeq, &e.FirstUID); err != nil {
			return nil, fmt.Errorf("read uid log: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read uid log: %w", err)
	}
	return out, nil
}

// readAllPrivateSeen reads every user's private \Seen rows of a mailbox.
func readAllPrivateSeen(ctx context.Context, q querier, mailboxID int64) ([]store.PrivateSeenEntry, error) {
	rows, err := q.QueryContext(ctx, `SELECT user, uid, seen, modseq FROM private_seen WHERE mailbox_id = ? ORDER BY user, uid`, mailboxID)
	if err != nil {
		return nil, fmt.Errorf("read private \\Seen: %w", err)
	}
	defer rows.Close()
	var out []store.PrivateSeenEntry
	for rows.Next() {
		var e store.PrivateSeenEntry
		if err := rows.Scan(&e.User, &e.UID, &e.Seen, &e.ModSeq); err != nil {
			return nil, fmt.Errorf("read private \\Seen: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read private \\Seen: %w", err)
	}
	return out, nil
}

// LastUIDValidity reads the account's UIDVALIDITY counter.
func (a *account) LastUIDValidity(ctx context.Context) (uint32, error) {
	var v uint32
	err := a.read(ctx, "uidvalidity counter", func(tx *sqlTx) error {
		err := tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'uidvalidity'`).Scan(&v)
		if errors.Is(err, sql.ErrNoRows) {
			err = tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(uidvalidity), 0) FROM mailboxes`).Scan(&v)
		}
		return err
	})
	return v, err
}
