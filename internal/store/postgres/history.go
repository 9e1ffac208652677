package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/tern-imap/tern/internal/store"
)

var _ store.HistorySource = (*account)(nil)

// MailboxHistory reads a mailbox's counters, \Recent mark, tombstones,
// UID log and other users' private \Seen in one snapshot: the source side of a store copy out of
// PostgreSQL (moving users to another database).
func (a *account) MailboxHistory(ctx context.Context, mailboxID int64) (store.MailboxHistory, error) {
	var h store.MailboxHistory
	b := &pgx.Batch{}
	b.Queue(mboxByIDSQL, mailboxID, a.id)
	b.Queue(`SELECT uid_lo, uid_hi, modseq FROM expunged WHERE mailbox_id = $1 ORDER BY uid_lo`, mailboxID)
	b.Queue(`SELECT modseq, uid_first FROM uid_log WHERE mailbox_id = $1 ORDER BY modseq`, mailboxID)
	b.Queue(`SELECT viewer, uid, seen, modseq FROM private_seen WHERE mailbox_id = $1 ORDER BY viewer, uid`, mailboxID)
	err := a.readBatch(ctx, "mailbox history", b, func(br pgx.BatchResults) error {
		m, err := mboxFound(br.QueryRow(), mailboxID)
		if err != nil {
			return err
		}
		h.UIDNext, h.HighestModSeq, h.RecentMark = m.uidNext, m.highest, m.recentMark
		var r store.ExpungedRange
		rows, _ := br.Query()
		if _, err := pgx.ForEachRow(rows, []any{&r.Lo, &r.Hi, &r.ModSeq}, func() error {
			h.Expunged = append(h.Expunged, r)
			return nil
		}); err != nil {
			return err
		}
		var e store.UIDLogEntry
		rows, _ = br.Query()
		if _, err := pgx.ForEachRow(rows, []any{&e.ModSeq, &e.FirstUID}, func() error {
			h.UIDLog = append(h.UIDLog, e)
			return nil
		}); err != nil {
			return err
		}
		var p store.PrivateSeenEntry
		rows, _ = br.Query()
		_, err = pgx.ForEachRow(rows, []any{&p.User, &p.UID, &p.Seen, &p.ModSeq}, func() error {
			h.PrivateSeen = append(h.PrivateSeen, p)
			return nil
		})
		return err
	})
	return h, err
}

// LastUIDValidity reads the account's UIDVALIDITY counter (mailboxes
// deleted since count too).
func (a *account) LastUIDValidity(ctx context.Context) (uint32, error) {
	var v uint32
	b := &pgx.Batch{}
	b.Queue(`SELECT uidvalidity FROM users WHERE id = $1`, a.id)
	err := a.readBatch(ctx, "uidvalidity counter", b, func(br pgx.BatchResults) error { return br.QueryRow().Scan(&v) })
	return v, err
}
