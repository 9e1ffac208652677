package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"time"

	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/backend"
)

var _ store.IndexSource = (*account)(nil)

// AccountID is the user's row id in tern.db (AUTOINCREMENT: never reused).
func (a *account) AccountID() int64 { return a.u.id }

func (a *account) MailboxHead(ctx context.Context, id int64, name string) (store.MailboxHead, error) {
	if a.closed.Load() {
		return store.MailboxHead{}, errAccountClosed
	}
	var m mbox
	var err error
	if id != 0 {
		m, err = mboxByID(ctx, a.u.db, id)
	} else {
		var n string
		if n, err = backend.LookupName(name); err == nil {
			m, err = mboxByName(ctx, a.u.db, n)
		}
	}
	if err != nil {
		return store.MailboxHead{}, err
	}
	return m.head(), nil
}

func (m mbox) head() store.MailboxHead {
	return store.MailboxHead{MailboxInfo: m.info(), UIDNext: m.uidNext, HighestModSeq: m.highest, RecentMark: m.recentMark}
}

// The index's catch-up queries: messages changed since a modseq (through
// the modseq index) and messages above a UID, each with every column the
// mailbox index keeps.
const (
	indexCols = `SELECT m.uid, m.modseq, m.sysflags, m.keywords, m.size, m.internal_date, m.internal_tz, m.save_date,
	c.sent_date, c.sent_tz, c.email_id, c.thread_id`
	indexChanged = indexCols + ` FROM messages m INDEXED BY messages_modseq JOIN contents c ON c.id = m.content_id
	WHERE m.mailbox_id = ? AND m.modseq > ? AND m.uid <= ? ORDER BY m.uid`
	indexNew = indexCols + ` FROM messages m JOIN contents c ON c.id = m.content_id
	WHERE m.mailbox_id = ? AND m.uid > ? ORDER BY m.uid`
)

func (a *account) IndexDelta(ctx context.Context, id int64, sinceModSeq uint64, sinceUID uint32) (store.IndexDelta, error) {
	var d store.IndexDelta
	err := a.read(ctx, "index delta", func(tx *sqlTx) error {
		m, err := selectableByID(ctx, tx, id)
		if err != nil {
			return err
		}
		d.Head = m.head()
		fl := backend.FlagInterner{}
		if sinceModSeq > 0 {
			// Changed messages first: they all have lower UIDs than the new ones.
			if d.Rows, err = indexRows(ctx, tx, &fl, d.Rows, indexChanged, id, sinceModSeq, sinceUID); err != nil {
				return err
			}
			if d.Expunged, err = expungedWithModSeq(ctx, tx, id, sinceModSeq); err != nil {
				return err
			}
		}
		if sinceModSeq == 0 && sinceUID == 0 {
			// A whole mailbox: its rows in one allocation (growing the
			// slice row by row was a quarter of loading 100,000).
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM messages WHERE mailbox_id = ?`, id).Scan(&n); err != nil {
				return fmt.Errorf("count messages: %w", err)
			}
			d.Rows = make([]store.IndexRow, 0, n)
		}
		if d.Rows, err = indexRows(ctx, tx, &fl, d.Rows, indexNew, id, sinceUID); err != nil {
			return err
		}
		d.Keywords, err = mailboxKeywords(ctx, tx, id)
		return err
	})
	return d, err
}

func indexRows(ctx context.Context, tx querier, fl *backend.FlagInterner, out []store.IndexRow, query string, args ...any) ([]store.IndexRow, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return out, fmt.Errorf("read index rows: %w", err)
	}
	defer rows.Close()
	var (
		sys, idate, itz, sdate int64
		kws                    string
		sent, sentTZ           sql.NullInt64
	)
	for rows.Next() {
		var r store.IndexRow
		if err := rows.Scan(&r.UID, &r.ModSeq, &sys, &kws, &r.Size, &idate, &itz, &sdate, &sent, &sentTZ, &r.EmailID, &r.ThreadID); err != nil {
			return out, fmt.Errorf("read index rows: %w", err)
		}
		r.Flags = fl.Flags(sys, kws)
		r.InternalDate = backend.JoinTime(idate, itz)
		r.SaveDate = time.Unix(sdate, 0).UTC()
		if sent.Valid {
			r.SentDate = backend.JoinTime(sent.Int64, sentTZ.Int64)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// expungedWithModSeq expands the expunge ranges above since into UIDs with
// their modseqs, ascending by UID.
func expungedWithModSeq(ctx context.Context, tx querier, id int64, since uint64) ([]store.ExpungedUID, error) {
	rows, err := tx.QueryContext(ctx, `SELECT uid_lo, uid_hi, modseq FROM expunged INDEXED BY expunged_modseq WHERE mailbox_id = ? AND modseq > ? ORDER BY uid_lo`, id, since)
	if err != nil {
		return nil, fmt.Errorf("read expunged: %w", err)
	}
	defer rows.Close()
	var out []store.ExpungedUID
	for rows.Next() {
		var lo, hi uint32
		var ms uint64
		if err := rows.Scan(&lo, &hi, &ms); err != nil {
			return nil, fmt.Errorf("read expunged: %w", err)
		}
		for u := lo; u <= hi; u++ {
			out = append(out, store.ExpungedUID{UID: u, ModSeq: ms})
			if u == math.MaxUint32 {
				break
			}
		}
	}
	return out, rows.Err()
}
