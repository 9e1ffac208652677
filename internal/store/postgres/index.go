package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/backend"
)

var _ store.IndexSource = (*account)(nil)

// AccountID is the user's row id (a sequence: never reused).
func (a *account) AccountID() int64 { return a.id }

func (a *account) MailboxHead(ctx context.Context, id int64, name string) (store.MailboxHead, error) {
	if a.closed.Load() {
		return store.MailboxHead{}, errAccountClosed
	}
	var m mbox
	var err error
	if id != 0 {
		m, err = a.mboxByID(ctx, a.s.pool, id)
	} else {
		var n string
		if n, err = backend.LookupName(name); err == nil {
			m, err = a.mboxByName(ctx, a.s.pool, n)
		}
	}
	if err != nil {
		return store.MailboxHead{}, err
	}
	return m.head(), nil
}

// The index's catch-up queries: messages changed since a modseq (through
// the modseq index) and messages above a UID, each with every column the
// mailbox index keeps.
const (
	indexCols = `SELECT m.uid, m.modseq, m.sysflags, m.keywords, m.size, m.internal_date, m.internal_tz, m.save_date,
	c.sent_date, c.sent_tz, c.email_id, c.thread_id FROM messages m JOIN contents c ON c.id = m.content_id`
	indexChanged = indexCols + ` WHERE m.mailbox_id = $1 AND m.modseq > $2 AND m.uid <= $3 ORDER BY m.uid`
	indexNew     = indexCols + ` WHERE m.mailbox_id = $1 AND m.uid > $2 ORDER BY m.uid`
)

func (a *account) IndexDelta(ctx context.Context, id int64, sinceModSeq uint64, sinceUID uint32) (store.IndexDelta, error) {
	var d store.IndexDelta
	err := a.read(ctx, "index delta", func(tx pgx.Tx) error {
		m, err := a.selectableByID(ctx, tx, id)
		if err != nil {
			return err
		}
		d.Head = m.head()
		fl := backend.FlagInterner{}
		if sinceModSeq > 0 {
			// Changed messages first: they all have lower UIDs than the new ones.
			if d.Rows, err = indexRows(ctx, tx, fl, d.Rows, indexChanged, id, sinceModSeq, sinceUID); err != nil {
				return err
			}
			if d.Expunged, err = expungedSince(ctx, tx, id, sinceModSeq, ^uint32(0)); err != nil {
				return err
			}
		}
		if d.Rows, err = indexRows(ctx, tx, fl, d.Rows, indexNew, id, sinceUID); err != nil {
			return err
		}
		d.Keywords, err = mailboxKeywords(ctx, tx, id)
		return err
	})
	return d, err
}

func indexRows(ctx context.Context, q querier, fl backend.FlagInterner, out []store.IndexRow, query string, args ...any) ([]store.IndexRow, error) {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return out, fmt.Errorf("read index rows: %w", err)
	}
	var (
		r                      store.IndexRow
		sys, idate, itz, sdate int64
		kws                    string
		sent, sentTZ           *int64
	)
	_, err = pgx.ForEachRow(rows, []any{&r.UID, &r.ModSeq, &sys, &kws, &r.Size, &idate, &itz, &sdate, &sent, &sentTZ, &r.EmailID, &r.ThreadID}, func() error {
		x := r
		x.Flags = fl.Flags(sys, kws)
		x.InternalDate = backend.JoinTime(idate, itz)
		x.SaveDate = time.Unix(sdate, 0).UTC()
		if sent != nil && sentTZ != nil {
			x.SentDate = backend.JoinTime(*sent, *sentTZ)
		}
		out = append(out, x)
		return nil
	})
	if err != nil {
		return out, fmt.Errorf("read index rows: %w", err)
	}
	return out, nil
}
