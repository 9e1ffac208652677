package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/backend"
)

const wantContent = store.WantDates | store.WantEnvelope | store.WantBody | store.WantBodyStructure | store.WantIDs | store.WantHeader | store.WantThreading | store.WantPreview

// fetchBatch bounds the messages one query of Fetch reads before fn runs:
// fn writes to a client's socket, and a slow client must not hold a
// connection of the pool (or a snapshot) for as long as it dawdles.
const fetchBatch = 256

// Fetch reads the messages in batches of at most fetchBatch UIDs, each
// read into memory with its rows closed before fn is called for its
// messages. A message expunged between two batches is skipped like any
// missing UID.
func (a *account) Fetch(ctx context.Context, mailboxID int64, uids []uint32, want store.Want, fn func(*store.Message) error) error {
	if a.closed.Load() {
		return fmt.Errorf("fetch: %w", errAccountClosed)
	}
	sorted := toRanges(uids)
	if sorted.empty() {
		if _, err := a.selectableByID(ctx, a.s.pool, mailboxID); err != nil {
			return fmt.Errorf("fetch: %w", err)
		}
		return nil
	}
	content := want&wantContent != 0
	msgs := make([]*store.Message, 0, min(fetchBatch, len(uids)))
	onReplica := content && want&^replicaWant == 0
	for rs, first := sorted, true; !rs.empty(); first = false {
		var batch uidRanges
		batch, rs = nextFetchBatch(rs, fetchBatch)
		q := fetchSQL(want, len(batch.lo))
		args := []any{mailboxID, batch.lo, batch.hi, a.id}
		var ok bool
		if onReplica {
			msgs, ok = a.fetchFromReplica(ctx, q, args, want, batch.count(), msgs[:0])
		}
		if !ok {
			var err error
			if msgs, err = a.fetchRows(ctx, first, q, args, want, content, msgs[:0]); err != nil {
				return fmt.Errorf("fetch: %w", err)
			}
		}
		for i, m := range msgs {
			msgs[i] = nil // fn may keep m; the batch slice must not
			if err := fn(m); err != nil {
				return fmt.Errorf("fetch: %w", err)
			}
		}
		if !rs.empty() {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("fetch: %w", err)
			}
		}
	}
	return nil
}

// fetchSQL is Fetch's statement for want: mailbox $1's messages in the
// UID ranges ($2, $3; n of them) of account $4, with their contents'
// columns when want asks for any.
func fetchSQL(want store.Want, n int) string {
	col := func(w store.Want, c string) string {
		if want&w != 0 {
			return c
		}
		return "NULL"
	}
	content := want&wantContent != 0
	q := `SELECT m.uid, m.modseq, m.sysflags, m.keywords, m.internal_date, m.internal_tz, m.save_date, m.size`
	if content {
		q += `, c.sent_date, c.sent_tz, ` + col(store.WantEnvelope, "c.envelope") + `, ` + col(store.WantBody, "c.body") +
			`, ` + col(store.WantBodyStructure, "c.bodystructure") + `, c.email_id, c.thread_id, ` + col(store.WantHeader, "c.header") +
			`, c.message_id, c.in_reply_to, c.refs, ` + col(store.WantPreview, "c.preview")
	}
	q += ` FROM ` + rowsInRanges("messages", "m.mailbox_id = $1", "$2", "$3", n)
	if content {
		q += ` JOIN contents c ON c.id = m.content_id`
	}
	// The mailbox row, joined, proves the mailbox is the account's and
	// selectable without a statement of its own (fetchRows).
	q += ` JOIN mailboxes mb ON mb.id = m.mailbox_id AND mb.user_id = $4 AND NOT mb.noselect WHERE m.mailbox_id = $1 ORDER BY m.uid`
	return q
}

// fetchRows runs one query of Fetch and returns its messages, appended to
// out, with the rows closed. The query only finds messages of a
// selectable mailbox of the account (it joins the mailbox row); with
// check, a query that found nothing asks why, so that a mailbox that is
// gone is an error and not an empty answer.
func (a *account) fetchRows(ctx context.Context, check bool, q string, args []any, want store.Want, content bool, out []*store.Message) ([]*store.Message, error) {
	rows, err := a.s.pool.Query(ctx, q, args...)
	if err != nil {
		return out, err
	}
	n := len(out)
	if out, err = scanFetchRows(rows, want, content, out); err != nil || !check || len(out) > n {
		return out, err
	}
	_, err = a.selectableByID(ctx, a.s.pool, args[0].(int64))
	return out, err
}

// scanFetchRows reads the rows of Fetch's query into messages appended to
// out, and closes them.
func scanFetchRows(rows pgx.Rows, want store.Want, content bool, out []*store.Message) ([]*store.Message, error) {
	return scanFetchRowsAfter(rows, nil, want, content, out)
}

// scanFetchRowsAfter is scanFetchRows for a query with one more column
// before Fetch's, scanned into first (nil: none).
func scanFetchRowsAfter(rows pgx.Rows, first *int64, want store.Want, content bool, out []*store.Message) ([]*store.Message, error) {
	var (
		uid                    uint32
		modseq                 uint64
		sys, idate, itz, sdate int64
		size                   int64
		kws                    string
		sent, sentTZ           *int64
		env, body, bs, header  []byte
		emailID, threadID      string
		msgID, irt, refs       string
		preview                *string
	)
	dest := []any{&uid, &modseq, &sys, &kws, &idate, &itz, &sdate, &size}
	if first != nil {
		dest = append([]any{first}, dest...)
	}
	if content {
		dest = append(dest, &sent, &sentTZ, &env, &body, &bs, &emailID, &threadID, &header, &msgID, &irt, &refs, &preview)
	}
	fl := backend.FlagInterner{}
	_, err := pgx.ForEachRow(rows, dest, func() error {
		msg := &store.Message{UID: uid, ModSeq: modseq}
		if want&store.WantSize != 0 {
			msg.Size = size
		}
		if want&store.WantFlags != 0 {
			msg.Flags = fl.Flags(sys, kws)
		}
		if want&store.WantDates != 0 {
			msg.InternalDate = backend.JoinTime(idate, itz)
			msg.SaveDate = time.Unix(sdate, 0).UTC()
			if sent != nil && sentTZ != nil {
				msg.SentDate = backend.JoinTime(*sent, *sentTZ)
			}
		}
		// pgx copies bytea into []byte destinations: safe to keep.
		msg.Envelope, msg.Body, msg.BodyStructure, msg.Header = env, body, bs, header
		env, body, bs, header = nil, nil, nil, nil
		if want&store.WantIDs != 0 {
			msg.EmailID, msg.ThreadID = emailID, threadID
		}
		if want&store.WantThreading != 0 {
			msg.MessageID, msg.InReplyTo, msg.References = msgID, strings.Fields(irt), strings.Fields(refs)
		}
		if want&store.WantPreview != 0 {
			msg.Preview, preview = preview, nil
		}
		out = append(out, msg)
		return nil
	})
	return out, err
}

// nextFetchBatch splits off the first ranges of rs covering at most n
// UIDs, splitting a range if needed, and returns them and the rest.
func nextFetchBatch(rs uidRanges, n int) (batch, rest uidRanges) {
	left := int64(n)
	for i := range rs.lo {
		size := rs.hi[i] - rs.lo[i] + 1
		if size < left {
			left -= size
			continue
		}
		if size == left {
			return uidRanges{rs.lo[:i+1], rs.hi[:i+1]}, uidRanges{rs.lo[i+1:], rs.hi[i+1:]}
		}
		cut := rs.lo[i] + left - 1
		batch = uidRanges{append(rs.lo[:i:i], rs.lo[i]), append(rs.hi[:i:i], cut)}
		restLo := append([]int64{cut + 1}, rs.lo[i+1:]...)
		return batch, uidRanges{restLo, rs.hi[i:]}
	}
	return rs, uidRanges{}
}
