package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/tern-imap/tern/internal/message"
	"github.com/tern-imap/tern/internal/runs"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/backend"
)

// uidRanges is a UID set as two parallel arrays of range bounds,
// ascending and disjoint: statements read it through rowsInRanges, each
// range an index range scan.
type uidRanges struct{ lo, hi []int64 }

// rowsInRanges is a FROM item: the rows of table (as m) that meet cond
// and whose uid is in the ranges (n of them) of the bigint[] parameters
// lo and hi, each range read by an index range scan of its own. The
// flattened join ("messages m JOIN unnest(...) ON m.uid BETWEEN r.lo AND
// r.hi") let PostgreSQL's cached generic plan (used after a prepared
// statement's fifth run) read every row of the mailbox and filter them:
// a STORE on one message of a large mailbox read the whole mailbox.
//
// Up to orRangesMax ranges (one UID, a:b, a few: most commands) are
// BETWEENs on the arrays' elements, statements whose generic plan
// PostgreSQL finds as cheap as a custom one and keeps. More go through a
// LATERAL subquery with OFFSET 0, never flattened into a join; PostgreSQL
// plans it again at every run (it estimates an array parameter at ten
// elements, so the generic plan never looks cheaper).
func rowsInRanges(table, cond, lo, hi string, n int) string {
	if n <= orRangesMax {
		between := make([]string, n)
		for i := range between {
			between[i] = fmt.Sprintf(`m.uid BETWEEN (%s::bigint[])[%d] AND (%s::bigint[])[%d]`, lo, i+1, hi, i+1)
		}
		return `(SELECT * FROM ` + table + ` m WHERE ` + cond + ` AND (` + strings.Join(between, " OR ") + `)) m`
	}
	return `unnest(` + lo + `::bigint[], ` + hi + `::bigint[]) AS r(lo, hi) CROSS JOIN LATERAL (SELECT * FROM ` + table +
		` m WHERE ` + cond + ` AND m.uid BETWEEN r.lo AND r.hi OFFSET 0) m`
}

// orRangesMax is how many UID ranges rowsInRanges reads with BETWEENs.
const orRangesMax = 4

func toRanges(uids []uint32) uidRanges {
	var r uidRanges
	for lo, hi := range runs.Of(runs.Sorted(uids)) {
		r.lo = append(r.lo, int64(lo))
		r.hi = append(r.hi, int64(hi))
	}
	return r
}

func (r uidRanges) empty() bool { return len(r.lo) == 0 }

// uidsOfRows lists the UIDs of rows.
func uidsOfRows(rows []msgRow) []uint32 {
	uids := make([]uint32, len(rows))
	for i, r := range rows {
		uids[i] = r.uid
	}
	return uids
}

// uidsOfRows64 lists the UIDs of rows as a bigint[] parameter.
func uidsOfRows64(rows []msgRow) []int64 {
	uids := make([]int64, len(rows))
	for i, r := range rows {
		uids[i] = int64(r.uid)
	}
	return uids
}

// msgRow is one messages row.
type msgRow struct {
	uid       uint32
	modseq    uint64
	sys       int64
	kws       string
	contentID int64
	size      int64
	idate     int64
	itz       int64
	sdate     int64
}

// msgRows reads the messages of a mailbox among rs (or all), ascending.
func (w *wtx) msgRows(mailboxID int64, rs uidRanges, all, onlyDeleted bool) ([]msgRow, error) {
	if !all && rs.empty() {
		return nil, nil
	}
	q, args := msgRowsSQL(mailboxID, rs, all, onlyDeleted)
	rows, err := w.tx.Query(w.ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read messages: %w", err)
	}
	return collectMsgRows(rows)
}

// msgRowsSQL is msgRows's statement and its arguments.
func msgRowsSQL(mailboxID int64, rs uidRanges, all, onlyDeleted bool) (string, []any) {
	q := `SELECT m.uid, m.modseq, m.sysflags, m.keywords, m.content_id, m.size, m.internal_date, m.internal_tz, m.save_date FROM `
	args := []any{mailboxID}
	if all {
		q += `messages m `
	} else {
		q += rowsInRanges("messages", "m.mailbox_id = $1", "$2", "$3", len(rs.lo))
		args = append(args, rs.lo, rs.hi)
	}
	q += ` WHERE m.mailbox_id = $1`
	if onlyDeleted {
		q += ` AND m.sysflags & 8 <> 0`
	}
	return q + ` ORDER BY m.uid`, args
}

// collectMsgRows reads the result of msgRowsSQL.
func collectMsgRows(rows pgx.Rows) ([]msgRow, error) {
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (msgRow, error) {
		var r msgRow
		err := row.Scan(&r.uid, &r.modseq, &r.sys, &r.kws, &r.contentID, &r.size, &r.idate, &r.itz, &r.sdate)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("read messages: %w", err)
	}
	return out, nil
}

// selectedRows is what a write on a mailbox's messages reads first: the
// mailbox, the messages it acts on and, for COPY and MOVE, the
// destination.
type selectedRows struct {
	src, dest mbox
	rows      []msgRow
}

// selectableRows reads, in one round trip, mailbox id (selectable), its
// messages among rs (or all, as msgRows) and, unless destName is empty,
// the selectable mailbox of that name. Each statement sees the
// transaction's lock on the user's row, so the three agree.
func (w *wtx) selectableRows(id int64, destName string, rs uidRanges, all, onlyDeleted bool) (selectedRows, error) {
	var out selectedRows
	b := &pgx.Batch{}
	b.Queue(mboxByIDSQL, id, w.a.id).QueryRow(func(row pgx.Row) error {
		var err error
		out.src, err = selectable(mboxFound(row, id))
		return err
	})
	if destName != "" {
		b.Queue(mboxByNameSQL, w.a.id, destName).QueryRow(func(row pgx.Row) error {
			var err error
			out.dest, err = selectable(mboxNamed(row, destName))
			return err
		})
	}
	if all || !rs.empty() {
		q, args := msgRowsSQL(id, rs, all, onlyDeleted)
		b.Queue(q, args...).Query(func(rows pgx.Rows) error {
			var err error
			out.rows, err = collectMsgRows(rows)
			return err
		})
	}
	if err := w.tx.SendBatch(w.ctx, b).Close(); err != nil {
		return out, err
	}
	return out, nil
}

// canonKeywords maps keywords to their account-wide first spelling,
// recording new ones (one round trip, none without keywords).
func (w *wtx) canonKeywords(kws []string) ([]string, error) {
	if len(kws) == 0 {
		return nil, nil
	}
	if out, ok := w.a.keywords.spellings(w.a.s.breaks.Load(), kws); ok {
		return out, nil
	}
	folded := foldAll(kws)
	rows, err := w.tx.Query(w.ctx, `WITH k AS (SELECT * FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS k(folded, name, ord)),
		ins AS (INSERT INTO keywords(user_id, folded, name) SELECT DISTINCT ON (folded) $1, folded, name FROM k ORDER BY folded, ord
			ON CONFLICT DO NOTHING RETURNING folded, name)
		SELECT COALESCE(ins.name, kw.name) FROM k
			LEFT JOIN ins ON ins.folded = k.folded
			LEFT JOIN keywords kw ON kw.user_id = $1 AND kw.folded = k.folded
		ORDER BY k.ord`, w.a.id, folded, kws)
	if err != nil {
		return nil, fmt.Errorf("record keywords: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("record keywords: %w", err)
	}
	for i, f := range folded {
		w.kwSeen.spelling(f, out[i])
	}
	return out, nil
}

// addMailboxKeywordsSQL adds keywords ($2, folded) to mailbox $1's list.
const addMailboxKeywordsSQL = `INSERT INTO mailbox_keywords(mailbox_id, folded) SELECT DISTINCT $1::bigint, f FROM unnest($2::text[]) AS f
	ON CONFLICT DO NOTHING`

func foldAll(kws []string) []string {
	folded := make([]string, len(kws))
	for i, k := range kws {
		folded[i] = strings.ToLower(k)
	}
	return folded
}

// addMailboxKeywords adds (canonical) keywords to a mailbox's list and
// reports whether it grew.
func (w *wtx) addMailboxKeywords(mailboxID int64, kws []string) (bool, error) {
	folded := foldAll(kws)
	if w.a.keywords.listed(w.a.s.breaks.Load(), mailboxID, folded) {
		return false, nil
	}
	tag, err := w.tx.Exec(w.ctx, addMailboxKeywordsSQL, mailboxID, folded)
	if err != nil {
		return false, fmt.Errorf("add mailbox keywords: %w", err)
	}
	w.kwSeen.listed(mailboxID, folded)
	return tag.RowsAffected() > 0, nil
}

// insertCopies adds rows (from any mailbox of the account) to mailbox d
// with new UIDs in order, keeping flags and internal dates; SaveDate
// becomes now unless keepSaveDate. d is the destination as this
// transaction has it; its UIDNEXT and HIGHESTMODSEQ are advanced.
func (w *wtx) insertCopies(d *mbox, rows []msgRow, keepSaveDate bool) ([]uint32, error) {
	if uint64(d.uidNext)+uint64(len(rows)) > math.MaxUint32 {
		return nil, fmt.Errorf("mailbox %q: UIDs exhausted", d.name)
	}
	// The rows lack the content fields the index keeps (sent date, object
	// ids): the index catches up with a query.
	w.delta(d).Unusable = true
	modseq := d.highest + 1
	t := now()
	uids := make([]uint32, len(rows))
	var (
		uidCol, sysCol, cidCol, sizeCol, idateCol, itzCol, sdateCol []int64
		kwsCol, kws                                                 []string
		size                                                        int64
	)
	seen := map[string]bool{}
	for i, r := range rows {
		uid := d.uidNext + uint32(i)
		save := t
		if keepSaveDate {
			save = r.sdate
		}
		uids[i] = uid
		uidCol = append(uidCol, int64(uid))
		sysCol = append(sysCol, r.sys)
		kwsCol = append(kwsCol, r.kws)
		cidCol = append(cidCol, r.contentID)
		sizeCol = append(sizeCol, r.size)
		idateCol = append(idateCol, r.idate)
		itzCol = append(itzCol, r.itz)
		sdateCol = append(sdateCol, save)
		size += r.size
		for _, k := range backend.ParseKeywords(r.kws) {
			if !seen[k] {
				seen[k] = true
				kws = append(kws, k)
			}
		}
	}
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO messages(mailbox_id, uid, modseq, sysflags, keywords, content_id, size, internal_date, internal_tz, save_date)
		SELECT $1, r.uid, $2, r.sys, r.kws, r.cid, r.size, r.idate, r.itz, r.sdate
		FROM unnest($3::bigint[], $4::bigint[], $5::text[], $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[])
			AS r(uid, sys, kws, cid, size, idate, itz, sdate)`,
		d.id, modseq, uidCol, sysCol, kwsCol, cidCol, sizeCol, idateCol, itzCol, sdateCol)
	w.queueAllocated(b, d, len(rows), modseq, kws, int64(len(rows)), size)
	if err := w.tx.SendBatch(w.ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("copy messages: %w", err)
	}
	return uids, nil
}

// queueAllocated adds to b, behind the inserts of n new messages (msgs,
// bytes) with UIDs from d.uidNext at modseq, what goes with them: their
// keywords in the mailbox's list, the uid_log row, the mailbox row's
// counters and the user's usage; d and the change set are advanced (the
// batch failing fails the transaction).
func (w *wtx) queueAllocated(b *pgx.Batch, d *mbox, n int, modseq uint64, kws []string, msgs, bytes int64) (listsKeywords bool) {
	if folded := foldAll(kws); !w.a.keywords.listed(w.a.s.breaks.Load(), d.id, folded) {
		b.Queue(addMailboxKeywordsSQL, d.id, folded)
		w.kwSeen.listed(d.id, folded)
		listsKeywords = true
	}
	b.Queue(allocatedSQL, d.id, modseq, d.uidNext, d.uidNext+uint32(n), msgs, bytes, w.a.id, int64(d.recentMark))
	d.uidNext += uint32(n)
	d.highest = modseq
	w.changed[d.id] = modseq
	return listsKeywords
}

// allocatedSQL records that modseq $2 allocated the UIDs from $3 in
// mailbox $1 (uid_log), moves the mailbox's UIDNEXT to $4, its
// HIGHESTMODSEQ to $2 and its recent mark up to $8 (an APPEND's claim of
// \Recent; never down), and changes user $7's usage by $5 messages of $6
// bytes: one statement (the four used to be one each).
const allocatedSQL = `WITH log AS (INSERT INTO uid_log(mailbox_id, modseq, uid_first) VALUES($1, $2, $3) ON CONFLICT DO NOTHING),
	used AS (UPDATE users SET used_messages = used_messages + $5, used_storage = used_storage + $6 WHERE id = $7)
	UPDATE mailboxes SET uidnext = $4, highestmodseq = $2, recent_mark = GREATEST(recent_mark, $8::bigint) WHERE id = $1`

// expungeSQL deletes mailbox $1's messages $8 (a bigint[] of n UIDs,
// by inArray), records that modseq $4 expunged the UID ranges ($2, $3),
// moves the mailbox's HIGHESTMODSEQ to $4 and changes user $7's usage by
// $5 messages of $6 bytes: one statement (a delete and a statement of
// tombstones before session 35). The messages were read under the
// user's row lock, so all n are there; if a different number were
// deleted, the division by zero would fail the statement and with it
// the transaction.
func expungeSQL(n int) string {
	return `WITH del AS (DELETE FROM messages m WHERE m.mailbox_id = $1 AND m.uid ` + inArray("$8", n) + ` RETURNING 1),
	tomb AS (INSERT INTO expunged(mailbox_id, uid_lo, uid_hi, modseq)
		SELECT $1, lo, hi, $4 FROM unnest($2::bigint[], $3::bigint[]) AS r(lo, hi)
		ON CONFLICT (mailbox_id, uid_lo) DO UPDATE SET uid_hi = excluded.uid_hi, modseq = excluded.modseq),
	used AS (UPDATE users SET used_messages = used_messages + $5, used_storage = used_storage + $6 WHERE id = $7)
	UPDATE mailboxes SET highestmodseq = $4 WHERE id = $1 AND 1 / ((SELECT count(*) FROM del) = $9)::int = 1`
}

// threadLookupIDs is the CTE of the ids a new message names ($2), in the
// order they are tried (threadLookup), for nearestThreadSQL.
const threadLookupIDs = `ids AS (SELECT * FROM unnest($2::text[]) WITH ORDINALITY AS u(id, ord))`

// insertMessageSQL inserts one new message of user $1 in mailbox $17
// with its content and threading ids (insertNew).
const insertMessageSQL = `WITH ` + threadLookupIDs + `,
	tid AS (SELECT COALESCE((` + nearestThreadSQL + `), $3) AS thread_id),
	rec AS (INSERT INTO thread_ids(user_id, message_id, thread_id) SELECT $1, ids.id, tid.thread_id FROM ids, tid
		ON CONFLICT DO NOTHING),
	c AS (INSERT INTO contents(user_id, body_hash, size, email_id, thread_id, sent_date, sent_tz, envelope, body, bodystructure, parts, header,
		message_id, in_reply_to, refs, preview)
		SELECT $1, $4, $5, $6, tid.thread_id, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $25 FROM tid RETURNING id)
	INSERT INTO messages(mailbox_id, uid, modseq, sysflags, keywords, content_id, size, internal_date, internal_tz, save_date)
	SELECT $17, $18, $19, $20, $21, c.id, $5, $22, $23, $24 FROM c
	RETURNING (SELECT thread_id FROM tid)`

// nearestThreadSQL selects the thread of the first id of ids that user
// $1 has one for. OFFSET 0 keeps the lookup a LATERAL subquery, run once
// per id as an index probe, never flattened into a join.
const nearestThreadSQL = `SELECT x.thread_id FROM ids CROSS JOIN LATERAL
	(SELECT t.thread_id FROM thread_ids t WHERE t.user_id = $1 AND t.message_id = ids.id OFFSET 0) x
	ORDER BY ids.ord LIMIT 1`

// inArray is the condition that a value is an element of the bigint[]
// parameter p, which holds n elements: "= ANY(p)", or "= (p)[1]" for
// one. PostgreSQL estimates an array parameter at ten elements, so the
// generic plan of "= ANY(p)" looks dearer than a custom plan for one
// element and a statement that mostly gets one is planned again at
// every run; with "= (p)[1]" it keeps its generic plan.
func inArray(p string, n int) string {
	if n == 1 {
		return `= (` + p + `::bigint[])[1]`
	}
	return `= ANY(` + p + `::bigint[])`
}

// expungeRows removes rows (at least one) from mailbox m, leaving
// tombstones, and returns the mailbox's new modseq. m is the mailbox as
// this transaction has it; its HIGHESTMODSEQ is advanced. Unless moved
// (the rows were copied elsewhere in this transaction, keeping their
// contents), their contents are dropped at commit if nothing uses them.
// The removal itself goes with the commit (atCommit): every caller
// expunges last.
func (w *wtx) expungeRows(m *mbox, rows []msgRow, moved bool) uint64 {
	od := w.delta(m)
	modseq := m.highest + 1
	rs := toRanges(uidsOfRows(rows))
	var size int64
	contents := make([]int64, 0, len(rows))
	for _, r := range rows {
		size += r.size
		contents = append(contents, r.contentID)
	}
	w.atCommit(expungeSQL(len(rows)), m.id, rs.lo, rs.hi, modseq, -int64(len(rows)), -size, w.a.id,
		uidsOfRows64(rows), int64(len(rows)))
	m.highest = modseq
	for _, r := range rows {
		od.AddExpunged(r.uid, modseq)
	}
	od.D.Head = m.head()
	w.changed[m.id] = modseq
	if !moved {
		w.dropped = append(w.dropped, contents...)
	}
	return modseq
}

// prepared is one message of an Append, parsed before the transaction.
type prepared struct {
	store.NewMessage
	hash   []byte
	info   *message.Info
	header []byte
	// preview is the FETCH PREVIEW text (backend.Preview).
	preview string
	sys     int64
	kws     []string
	idate   time.Time
}

func (a *account) Append(ctx context.Context, mailbox string, msgs []store.NewMessage) (store.AppendResult, error) {
	var res store.AppendResult
	n, err := backend.LookupName(mailbox)
	if err != nil {
		return res, err
	}
	preps := make([]prepared, len(msgs))
	t := time.Now()
	var size int64
	for i, m := range msgs {
		sys, kws, err := backend.SplitFlags(m.Flags)
		if err != nil {
			return res, fmt.Errorf("append: %w", err)
		}
		idate := m.InternalDate
		if idate.IsZero() {
			idate = t
		}
		info := backend.ParseMessage(a.s.log, a.name, m.Body)
		preps[i] = prepared{NewMessage: m, hash: bodyHash(m.Body), info: info, header: backend.HeaderBlock(m.Body, info),
			preview: backend.Preview(m.Body, info), sys: sys, kws: kws, idate: idate}
		size += int64(len(m.Body))
	}
	if err := a.s.putBlobs(ctx, preps); err != nil {
		return res, fmt.Errorf("append: %w", err)
	}
	if a.s.appendHook != nil {
		a.s.appendHook()
	}
	err = a.genericWrite(ctx, "append", func(w *wtx) error {
		ctx := w.ctx // the commit's context, not the caller's (see groupcommit.go)
		// The mailbox and the quota in one round trip.
		var (
			m  mbox
			qt store.Quota
		)
		b := &pgx.Batch{}
		b.Queue(mboxQuotaSQL, a.id, n).QueryRow(func(row pgx.Row) error {
			var err error
			m, err = selectable(mboxNamed(withQuota{row, &qt}, n))
			return err
		})
		if err := w.tx.SendBatch(ctx, b).Close(); err != nil {
			return err
		}
		if uint64(m.uidNext)+uint64(len(msgs)) > math.MaxUint32 {
			return fmt.Errorf("mailbox %q: UIDs exhausted", m.name)
		}
		res = store.AppendResult{MailboxID: m.id, UIDValidity: m.uidValidity}
		if len(msgs) == 0 {
			return nil
		}
		if err := quotaAllows(qt, int64(len(msgs)), size); err != nil {
			return err
		}
		if last := m.uidNext + uint32(len(msgs)) - 1; msgs[0].ClaimRecent && last > m.recentMark {
			// Under the user's lock, as ClaimRecent: the mark read is the
			// last claim's. The mailbox row's update (allocatedSQL) moves
			// it, and it is in the delta's head (insertNew).
			res.RecentFrom = m.recentMark + 1
			m.recentMark = last
		}
		uids, err := w.insertNew(&m, preps, t.Unix())
		res.UIDs = uids
		return err
	})
	if err != nil {
		return store.AppendResult{}, err
	}
	return res, nil
}

// insertNew stores new messages in m: bodies, contents, threading ids and
// messages rows, all in one batch (one round trip), then advances the
// mailbox's counters and the usage.
//
// A new message's thread is found by threadLookupIDs and nearestThreadSQL
// (the ids it names, $2, in order; the user $1): one index probe of
// thread_ids per id. A join of the ids to thread_ids read every row the
// user has there (planned with the user's rows on one side, under the
// generic plan and the custom one alike): an APPEND cost O(the user's
// messages).
func (w *wtx) insertNew(m *mbox, preps []prepared, saveDate int64) ([]uint32, error) {
	var allKws []string
	for _, p := range preps {
		allKws = append(allKws, p.kws...)
	}
	allCanon, err := w.canonKeywords(allKws)
	if err != nil {
		return nil, err
	}
	canon := allCanon
	od := w.delta(m)
	modseq := m.highest + 1
	b := &pgx.Batch{}
	uids := make([]uint32, len(preps))
	first := len(od.D.Rows) // this Append's rows in the delta, in order
	var size int64
	for i, p := range preps {
		kws := canon[:len(p.kws):len(p.kws)]
		canon = canon[len(p.kws):]
		w.queueSaveBody(b, &preps[i])
		var sent, sentTZ *int64
		if !p.info.SentDate.IsZero() {
			s, tz := backend.SplitTime(p.info.SentDate)
			sent, sentTZ = &s, &tz
		}
		id := randomHex(8)
		uid := m.uidNext + uint32(i)
		uids[i] = uid
		isec, itz := backend.SplitTime(p.idate)
		size += int64(len(p.Body))
		// The thread: that of the nearest id the message refers to, or of
		// a message already delivered that referred to it; else a new one.
		// Its own id and its references are recorded under it. Each
		// statement of the batch sees the ones before it, so a message
		// threads with one delivered earlier in the same Append.
		b.Queue(insertMessageSQL,
			w.a.id, textSafeAll(threadLookup(p.info)), "T"+id,
			p.hash, len(p.Body), "M"+id, sent, sentTZ,
			p.info.Envelope, p.info.Body, p.info.BodyStructure, p.info.Parts, p.header,
			textSafe(p.info.MessageID), textSafe(backend.JoinIDs(p.info.InReplyTo)), textSafe(backend.JoinIDs(p.info.References)),
			m.id, uid, modseq, p.sys, backend.FormatKeywords(kws), isec, itz, saveDate, textSafe(p.preview)).
			QueryRow(func(row pgx.Row) error { return row.Scan(&od.D.Rows[first+i].ThreadID) })
		var sentDate time.Time
		if sent != nil {
			sentDate = backend.JoinTime(*sent, *sentTZ)
		}
		od.D.Rows = append(od.D.Rows, store.IndexRow{UID: uid, ModSeq: modseq, Flags: backend.FlagList(p.sys, backend.FormatKeywords(kws)),
			Size: int64(len(p.Body)), InternalDate: backend.JoinTime(isec, itz), SaveDate: time.Unix(saveDate, 0).UTC(),
			SentDate: sentDate, EmailID: "M" + id})
	}
	// Keywords the mailbox's list may not hold yet may grow it, which a
	// delta does not carry. Those the keyword cache knows are listed do
	// not: the list only grows, and the index, exactly at od.From when it
	// takes the delta, holds them already (an APPEND with keywords made a
	// catch-up query of seven statements after it, 40 % of imaptest's).
	listsKeywords := w.queueAllocated(b, m, len(preps), modseq, allCanon, int64(len(preps)), size)
	od.Unusable = od.Unusable || listsKeywords
	od.D.Head = m.head()
	if w.a.s.opts.Blobs == nil {
		// Nothing reads what the batch writes before the commit, and its
		// results (the thread ids) fill the delta, which is used only
		// after the commit: the batch goes with the commit (atCommit).
		w.tail.QueuedQueries = append(w.tail.QueuedQueries, b.QueuedQueries...)
		return uids, nil
	}
	// The new bodies' objects are checked before the commit, holding the
	// rows' locks (settleBlobs): the batch goes now.
	w.unverified, w.retired = w.unverified[:0], w.retired[:0]
	if err := w.tx.SendBatch(w.ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("insert messages: %w", err)
	}
	if err := w.settleBlobs(); err != nil {
		return nil, err
	}
	return uids, nil
}

// flagChanges are the new flags of the messages a STORE changes, as
// parallel columns.
type flagChanges struct {
	uids, sys []int64
	kws       []string
}

// updateFlagsRowsSQL sets the flags ($4 system, $5 keywords) of mailbox
// $1's messages $3 and their modseq to $2. "m.uid = ANY($3)" makes the
// messages' primary key the scan in any plan; joined to the unnest alone,
// the cached generic plan read the whole mailbox (rowsInRanges).
const updateFlagsRowsSQL = `UPDATE messages m SET modseq = $2, sysflags = c.sys, keywords = c.kws
		FROM unnest($3::bigint[], $4::bigint[], $5::text[]) AS c(uid, sys, kws)
		WHERE m.mailbox_id = $1 AND m.uid = ANY($3::bigint[]) AND m.uid = c.uid`

// setHighestModSeqSQL moves mailbox $1's HIGHESTMODSEQ to $2.
const setHighestModSeqSQL = `UPDATE mailboxes SET highestmodseq = $2 WHERE id = $1`

// updateFlagsSQL is updateFlagsRowsSQL that also moves the mailbox's
// HIGHESTMODSEQ to $2: one statement for any mix of resulting flag
// states.
const updateFlagsSQL = `WITH u AS (` + updateFlagsRowsSQL + `) ` + setHighestModSeqSQL

// flagUpdateChunk bounds the messages of one updateFlagsRowsSQL. Its
// generic plan, which PostgreSQL may run for any arrays once it judged it
// no dearer on earlier runs, joins the messages to the unnest by a nested
// loop: n² comparisons (4.7 s for 5,000 messages when forced). In chunks
// the cost stays linear whatever the plan.
const flagUpdateChunk = 64

// queueFlagUpdates queues, for the commit, the update of the changed
// flags ch of mailbox id's messages at modseq: one statement for up to
// flagUpdateChunk messages, else one per chunk and one for the mailbox's
// HIGHESTMODSEQ.
func (w *wtx) queueFlagUpdates(id int64, modseq uint64, ch flagChanges) {
	switch n := len(ch.uids); {
	case n == 1:
		w.atCommit(updateOneFlagsSQL, id, modseq, ch.uids[0], ch.sys[0], ch.kws[0])
	case n <= flagUpdateChunk:
		w.atCommit(updateFlagsSQL, id, modseq, ch.uids, ch.sys, ch.kws)
	default:
		for lo := 0; lo < n; lo += flagUpdateChunk {
			hi := min(lo+flagUpdateChunk, n)
			w.atCommit(updateFlagsRowsSQL, id, modseq, ch.uids[lo:hi], ch.sys[lo:hi], ch.kws[lo:hi])
		}
		w.atCommit(setHighestModSeqSQL, id, modseq)
	}
}

// updateOneFlagsSQL is updateFlagsSQL for one message ($3): no arrays.
const updateOneFlagsSQL = `WITH u AS (UPDATE messages SET modseq = $2, sysflags = $4, keywords = $5
		WHERE mailbox_id = $1 AND uid = $3) ` + setHighestModSeqSQL

func (a *account) StoreFlags(ctx context.Context, mailboxID int64, uids []uint32, op store.FlagOp, flags []string, unchangedSince uint64, hasUnchangedSince bool) (store.StoreResult, error) {
	var res store.StoreResult
	opSys, opKws, err := backend.SplitFlags(flags)
	if err != nil {
		return res, fmt.Errorf("store flags: %w", err)
	}
	if op != store.FlagsReplace && op != store.FlagsAdd && op != store.FlagsRemove && op != store.FlagsReplaceKeepSeen {
		return res, fmt.Errorf("store flags: unknown operation %d", op)
	}
	rs := toRanges(uids)
	err = a.lazyWrite(ctx, "store flags", func(w *wtx) error {
		ctx := w.ctx // the commit's context, not the caller's (see groupcommit.go)
		res = store.StoreResult{}
		sel, err := w.selectableRows(mailboxID, "", rs, false, false)
		if err != nil || len(sel.rows) == 0 {
			return err
		}
		m, rows := sel.src, sel.rows
		kws := opKws
		if op != store.FlagsRemove {
			if kws, err = w.canonKeywords(opKws); err != nil {
				return err
			}
		}
		modseq := m.highest + 1
		// New flags are computed here and written, with the mailbox's
		// HIGHESTMODSEQ, in one statement (queueFlagUpdates).
		var ch flagChanges
		res.Updated = make([]store.MessageMeta, 0, len(rows))
		fl := backend.FlagInterner{}
		for _, r := range rows {
			if hasUnchangedSince && r.modseq > unchangedSince {
				res.Modified = append(res.Modified, r.uid)
				continue
			}
			ns, nk := backend.ApplyFlags(op, r.sys, r.kws, opSys, kws)
			ms := r.modseq
			if ns != r.sys || nk != r.kws {
				ch.uids = append(ch.uids, int64(r.uid))
				ch.sys = append(ch.sys, ns)
				ch.kws = append(ch.kws, nk)
				ms = modseq
			}
			res.Updated = append(res.Updated, store.MessageMeta{UID: r.uid, ModSeq: ms, Flags: fl.Flags(ns, nk)})
		}
		if len(ch.uids) > 0 {
			// Nothing below reads the flags: the update goes with the commit.
			w.queueFlagUpdates(m.id, modseq, ch)
			w.changed[m.id] = modseq
			res.ModSeq = modseq
		}
		if op != store.FlagsRemove && len(kws) > 0 && len(res.Updated) > 0 {
			grew, err := w.addMailboxKeywords(m.id, kws)
			if err != nil {
				return err
			}
			if grew {
				if res.Keywords, err = mailboxKeywords(ctx, w.tx, m.id); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return res, err
}

func (a *account) Expunge(ctx context.Context, mailboxID int64, uids []uint32, onlyDeleted bool) ([]uint32, error) {
	var out []uint32
	rs := toRanges(uids)
	err := a.lazyWrite(ctx, "expunge", func(w *wtx) error {
		out = nil
		sel, err := w.selectableRows(mailboxID, "", rs, uids == nil, onlyDeleted)
		if err != nil || len(sel.rows) == 0 {
			return err
		}
		w.expungeRows(&sel.src, sel.rows, false)
		out = uidsOfRows(sel.rows)
		return nil
	})
	return out, err
}

func (a *account) Copy(ctx context.Context, srcMailboxID int64, uids []uint32, dest string) (store.CopyResult, error) {
	return a.copyMove(ctx, srcMailboxID, uids, dest, false)
}

func (a *account) Move(ctx context.Context, srcMailboxID int64, uids []uint32, dest string) (store.CopyResult, error) {
	return a.copyMove(ctx, srcMailboxID, uids, dest, true)
}

func (a *account) copyMove(ctx context.Context, srcID int64, uids []uint32, dest string, move bool) (store.CopyResult, error) {
	var res store.CopyResult
	dn, err := backend.LookupName(dest)
	if err != nil {
		return res, err
	}
	what := "copy"
	if move {
		what = "move"
	}
	rs := toRanges(uids)
	// Durable even under RelaxedCommits: the new UIDs go to the client
	// (COPYUID), and a copy undone by a database crash would let later
	// messages take them again, which a client that cached them would
	// mistake for the copies.
	err = a.write(ctx, what, func(w *wtx) error {
		res = store.CopyResult{}
		sel, err := w.selectableRows(srcID, dn, rs, false, false)
		if err != nil {
			return err
		}
		src, d, rows := sel.src, sel.dest, sel.rows
		res.DestMailboxID, res.DestUIDValidity = d.id, d.uidValidity
		res.SrcModSeq = src.highest
		if len(rows) == 0 {
			return nil
		}
		if !move { // a MOVE within one account never grows usage
			var size int64
			for _, r := range rows {
				size += r.size
			}
			if err := w.checkQuota(int64(len(rows)), size); err != nil {
				return err
			}
		}
		sp, dp := &src, &d
		if d.id == src.id {
			dp = sp
		}
		if res.DestUIDs, err = w.insertCopies(dp, rows, false); err != nil {
			return err
		}
		res.SrcUIDs = uidsOfRows(rows)
		if move {
			res.SrcModSeq = w.expungeRows(sp, rows, true)
		}
		return nil
	})
	return res, err
}

// scanMeta reads (uid, modseq, sysflags, keywords) rows.
func scanMeta(rows pgx.Rows, fl backend.FlagInterner) ([]store.MessageMeta, error) {
	var out []store.MessageMeta
	var mm store.MessageMeta
	var sys int64
	var kws string
	_, err := pgx.ForEachRow(rows, []any{&mm.UID, &mm.ModSeq, &sys, &kws}, func() error {
		mm.Flags = fl.Flags(sys, kws)
		out = append(out, mm)
		return nil
	})
	return out, err
}

func (a *account) Changes(ctx context.Context, mailboxID int64, sinceModSeq uint64, sinceUID uint32) (store.ChangeSet, error) {
	var cs store.ChangeSet
	b := &pgx.Batch{}
	b.Queue(mboxByIDSQL, mailboxID, a.id)
	b.Queue(`SELECT uid, modseq, sysflags, keywords FROM messages WHERE mailbox_id = $1 AND uid > $2 ORDER BY uid`, mailboxID, sinceUID)
	b.Queue(`SELECT uid, modseq, sysflags, keywords FROM messages WHERE mailbox_id = $1 AND modseq > $2 AND uid <= $3 ORDER BY uid`,
		mailboxID, sinceModSeq, sinceUID)
	b.Queue(expungedSQL, mailboxID, sinceModSeq, int64(math.MaxUint32))
	b.Queue(keywordsSQL, mailboxID)
	err := a.readBatch(ctx, "changes", b, func(br pgx.BatchResults) error {
		m, err := selectable(mboxFound(br.QueryRow(), mailboxID))
		if err != nil {
			return err
		}
		cs.HighestModSeq, cs.UIDNext = m.highest, m.uidNext
		fl := backend.FlagInterner{}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		if cs.New, err = scanMeta(rows, fl); err != nil {
			return err
		}
		if rows, err = br.Query(); err != nil {
			return err
		}
		if cs.Changed, err = scanMeta(rows, fl); err != nil {
			return err
		}
		rows, err = br.Query()
		exp, err := expungedUIDs(rows, err, math.MaxUint32)
		if err != nil {
			return err
		}
		for _, e := range exp {
			cs.Expunged = append(cs.Expunged, e.UID)
		}
		cs.Keywords, err = keywordList(br.Query())
		return err
	})
	return cs, err
}

func (a *account) Vanished(ctx context.Context, mailboxID int64, sinceModSeq uint64) ([]uint32, error) {
	var uids []uint32
	err := a.read(ctx, "vanished", func(tx pgx.Tx) error {
		if _, err := a.mboxByID(ctx, tx, mailboxID); err != nil {
			return err
		}
		// UIDs from the first one allocated after sinceModSeq on did not
		// exist then: a client synchronised to sinceModSeq never saw them.
		bound := int64(math.MaxUint32) + 1
		err := tx.QueryRow(ctx, `SELECT uid_first FROM uid_log WHERE mailbox_id = $1 AND modseq > $2
			ORDER BY modseq LIMIT 1`, mailboxID, sinceModSeq).Scan(&bound)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		exp, err := expungedSince(ctx, tx, mailboxID, sinceModSeq, uint32(bound-1))
		for _, e := range exp {
			uids = append(uids, e.UID)
		}
		return err
	})
	return uids, err
}

// expungedSince expands the expunge ranges with a modseq above since into
// ascending UIDs no greater than maxUID, with their modseqs.
func expungedSince(ctx context.Context, q querier, mailboxID int64, since uint64, maxUID uint32) ([]store.ExpungedUID, error) {
	rows, err := q.Query(ctx, expungedSQL, mailboxID, since, maxUID)
	return expungedUIDs(rows, err, maxUID)
}

// expungedSQL selects the expunge ranges of mailbox $1 with a modseq
// above $2 that start at or below UID $3.
const expungedSQL = `SELECT uid_lo, uid_hi, modseq FROM expunged WHERE mailbox_id = $1 AND modseq > $2 AND uid_lo <= $3 ORDER BY uid_lo`

// expungedUIDs expands the rows of expungedSQL.
func expungedUIDs(rows pgx.Rows, err error, maxUID uint32) ([]store.ExpungedUID, error) {
	if err != nil {
		return nil, fmt.Errorf("read expunged: %w", err)
	}
	var out []store.ExpungedUID
	var lo, hi uint32
	var ms uint64
	_, err = pgx.ForEachRow(rows, []any{&lo, &hi, &ms}, func() error {
		for u := lo; u <= min(hi, maxUID); u++ {
			out = append(out, store.ExpungedUID{UID: u, ModSeq: ms})
			if u == math.MaxUint32 {
				break
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read expunged: %w", err)
	}
	return out, nil
}

// openBodySQL finds the body of message $2 in mailbox $1 of user $3, and
// the mailbox's HIGHESTMODSEQ (which says how recent a replica's answer
// is).
const openBodySQL = `SELECT c.parts, b.data, b.hash, b.size, mb.highestmodseq FROM messages m
	JOIN mailboxes mb ON mb.id = m.mailbox_id
	JOIN contents c ON c.id = m.content_id
	JOIN bodies b ON b.hash = c.body_hash
	WHERE m.mailbox_id = $1 AND m.uid = $2 AND mb.user_id = $3`

// OpenBody implements store.Account. The row is looked up on the replica
// first, if there is one (replica.go).
func (a *account) OpenBody(ctx context.Context, mailboxID int64, uid uint32) (store.Body, error) {
	if a.closed.Load() {
		return nil, fmt.Errorf("open body: %w", errAccountClosed)
	}
	var parts, data, hash []byte
	var size, boxModseq int64
	read := func(q querier) error {
		return q.QueryRow(ctx, openBodySQL, mailboxID, uid, a.id).Scan(&parts, &data, &hash, &size, &boxModseq)
	}
	var err error
	if !a.s.fromReplica(ctx, func(r querier) (bool, error) {
		err := read(r)
		if errors.Is(err, pgx.ErrNoRows) { // not replayed yet
			return false, nil
		}
		return err == nil && a.s.replica.floor.reached(mailboxID, boxModseq), err
	}) {
		err = read(a.s.pool)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("open body of UID %d: %w", uid, store.ErrNoSuchMessage)
	}
	if err != nil {
		return nil, fmt.Errorf("open body of UID %d: %w", uid, err)
	}
	if data == nil {
		b, err := a.s.openBlobBody(ctx, hash, size, parts)
		if err != nil {
			return nil, fmt.Errorf("open body of UID %d: %w", uid, err)
		}
		return b, nil
	}
	return store.NewMemBody(data, parts), nil
}

// threadLookup lists the ids a new message is threaded by, nearest
// first: the ids it refers to, then its own.
func threadLookup(info *message.Info) []string {
	ids := backend.ThreadRefs(info)
	if info.MessageID != "" {
		ids = append(ids, info.MessageID)
	}
	return ids
}

// textSafe makes s storable in a PostgreSQL text column, which holds
// neither NUL nor invalid UTF-8: message ids come from mail as it was
// sent, and a malformed one must not make a delivery fail. Both are
// replaced by U+FFFD, the same way for a message and for the ones that
// refer to it, so threading still matches them.
func textSafe(s string) string {
	if utf8.ValidString(s) && !strings.Contains(s, "\x00") {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

func textSafeAll(ids []string) []string {
	for i, id := range ids {
		ids[i] = textSafe(id)
	}
	return ids
}

// SavePreviews implements store.Account.
func (a *account) SavePreviews(ctx context.Context, mailboxID int64, previews map[uint32]string) error {
	if len(previews) == 0 {
		return nil
	}
	return a.write(ctx, "save previews", func(w *wtx) error {
		for uid, p := range previews {
			if _, err := w.tx.Exec(ctx, `UPDATE contents SET preview = $1 WHERE preview IS NULL
				AND id = (SELECT m.content_id FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id
					WHERE m.mailbox_id = $2 AND m.uid = $3 AND b.user_id = $4)`, textSafe(p), mailboxID, int64(uid), a.id); err != nil {
				return err
			}
		}
		return nil
	})
}
