package postgres

import (
	"context"
	"fmt"
	"math"
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
// mailbox index keeps, and the whole mailbox for a first load. For the
// new messages, each one's contents row is read by its own probe of
// contents' primary key (a LATERAL subquery kept apart by OFFSET 0): with
// a join, the generic plan PostgreSQL caches for the statement hashed the
// whole contents table, every user's, to catch up with one new message
// (292 buffers a call under imaptest, without statistics of the tables).
// A first load keeps the join: a probe per message made the load of
// 100,000 messages 1.7 times as long (BenchmarkIndexLoad100k). The
// changed messages are found through the modseq index, in modseq order
// behind a fence (OFFSET 0), then probed and sorted by UID: asked for
// them in UID order directly, PostgreSQL could walk the primary key and
// filter every message of the mailbox by modseq to save a sort of a few
// rows, as it does whenever it guesses that many messages changed.
const (
	indexCols = `SELECT m.uid, m.modseq, m.sysflags, m.keywords, m.size, m.internal_date, m.internal_tz, m.save_date,
	c.sent_date, c.sent_tz, c.email_id, c.thread_id`
	indexMsgCols = indexCols + ` FROM messages m`
	indexJoin    = ` JOIN contents c ON c.id = m.content_id`
	indexProbe   = ` CROSS JOIN LATERAL
	(SELECT c.sent_date, c.sent_tz, c.email_id, c.thread_id FROM contents c WHERE c.id = m.content_id OFFSET 0) c`
	indexChanged = indexCols + ` FROM (SELECT * FROM messages
		WHERE mailbox_id = $1 AND modseq > $2 AND uid <= $3 ORDER BY modseq OFFSET 0) m` + indexProbe + ` ORDER BY m.uid`
	indexAll = indexMsgCols + indexJoin + ` WHERE m.mailbox_id = $1 ORDER BY m.uid`
	indexNew = indexMsgCols + indexProbe + ` WHERE m.mailbox_id = $1 AND m.uid > $2 ORDER BY m.uid`
)

func (a *account) IndexDelta(ctx context.Context, id int64, sinceModSeq uint64, sinceUID uint32) (store.IndexDelta, error) {
	var d store.IndexDelta
	b := &pgx.Batch{}
	b.Queue(mboxByIDSQL, id, a.id)
	if sinceModSeq > 0 {
		// Changed messages first: they all have lower UIDs than the new ones.
		b.Queue(indexChanged, id, sinceModSeq, sinceUID)
		b.Queue(expungedSQL, id, sinceModSeq, int64(math.MaxUint32))
	}
	if sinceUID == 0 {
		b.Queue(indexAll, id)
	} else {
		b.Queue(indexNew, id, sinceUID)
	}
	b.Queue(keywordsSQL, id)
	err := a.readBatch(ctx, "index delta", b, func(br pgx.BatchResults) error {
		m, err := selectable(mboxFound(br.QueryRow(), id))
		if err != nil {
			return err
		}
		d.Head = m.head()
		fl := backend.FlagInterner{}
		if sinceModSeq > 0 {
			rows, err := br.Query()
			if d.Rows, err = indexRows(rows, err, fl, d.Rows); err != nil {
				return err
			}
			rows, err = br.Query()
			if d.Expunged, err = expungedUIDs(rows, err, math.MaxUint32); err != nil {
				return err
			}
		}
		rows, err := br.Query()
		if d.Rows, err = indexRows(rows, err, fl, d.Rows); err != nil {
			return err
		}
		d.Keywords, err = keywordList(br.Query())
		return err
	})
	return d, err
}

// indexRows appends the rows of an index query (indexChanged, indexAll,
// indexNew) to out.
func indexRows(rows pgx.Rows, err error, fl backend.FlagInterner, out []store.IndexRow) ([]store.IndexRow, error) {
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
