package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tern-imap/tern/internal/message"
	"github.com/tern-imap/tern/internal/search"
	"github.com/tern-imap/tern/internal/store"
)

// The full-text index (SEARCH BODY, TEXT, SUBJECT, FROM..BCC, HEADER).
//
// body_text keeps each body's searchable text, search.Extract's Doc, as
// bytes exactly as extracted (bytea: NUL separators and any byte the
// mail had stay as they are), under the body's hash: a body delivered to
// many users is extracted once, and its text goes with the body row
// (foreign key, ON DELETE CASCADE). A body's first reference queues it
// in text_queue (queueTextSQL, in the statement that stores the body);
// an indexer in every node that runs with Options.TextIndexer takes
// queued bodies a few seconds old (textIndexDelay: mail expunged at
// once, as in a mailbox that churns, is never extracted), in batches
// claimed with SKIP LOCKED, so nodes share the work and a node that dies
// mid-batch leaves its batch queued. SearchText compares the stored text
// byte for byte in the database (position(needle IN text)): the answer
// for an indexed message is the scan's. Messages whose body has no text
// yet are Pending, and the caller reads them as without an index. A
// body whose text cannot be extracted stays queued, marked failed (tern
// index --rebuild tries again); one whose object the blob store cannot
// give now stays queued as it is, tried again later. Nothing here is
// a trigram or word index: a search reads the mailbox's stored text in
// the database, which spares reading, decoding and parsing every
// message (and, with a blob store, fetching it).

// textIndexDelay is how old a queued body must be before the background
// indexer extracts it; textBatch is how many bodies one transaction
// extracts; textPoll is how often an idle indexer looks at the queue.
const (
	textIndexDelay = 10 * time.Second
	textBatch      = 32
	textPoll       = 2 * time.Second
)

// textColumns are body_text's text columns in store.TextField bit order
// (TextHeader, TextAddress, TextBody, TextMIME).
var textColumns = [...]string{"header", "fields", "body", "mime"}

// columnsOf returns the body_text columns (as t.name) that fields read.
func columnsOf(fields store.TextField) []string {
	var cols []string
	for i, c := range textColumns {
		if fields&(1<<i) != 0 {
			cols = append(cols, "t."+c)
		}
	}
	return cols
}

// indexTextEvery runs the background indexer until ctx ends.
func (s *Store) indexTextEvery(ctx context.Context) {
	delay := textIndexDelay
	if s.opts.textIndexDelay > 0 {
		delay = s.opts.textIndexDelay
	}
	var lastWarn time.Time
	for {
		n, err := s.indexQueued(ctx, delay, 0)
		if err != nil && ctx.Err() == nil && time.Since(lastWarn) >= time.Minute {
			lastWarn = time.Now()
			s.log.Warn("postgres store: full-text indexing failed; trying again later", "err", err)
		}
		if err == nil && n > 0 {
			continue // more may be waiting
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(textPoll):
		}
	}
}

// claimTextSQL takes up to $2 queued bodies at least $1 seconds old,
// locking their queue rows and, for the foreign key of the text to come,
// their body rows (SKIP LOCKED: another node's batch, or an expunge
// deleting the body, is left alone), with the part tree of one content
// that uses each; used is NULL for a body no content uses any more (one
// appended and expunged within textIndexDelay, left pending deletion),
// whose bytes are not read. userFilter (user $3's bodies only) goes where
// %s is.
const claimTextSQL = `SELECT q.hash, CASE WHEN c.used THEN b.data END, b.size, c.parts, c.used
	FROM text_queue q JOIN bodies b ON b.hash = q.hash
	LEFT JOIN LATERAL (SELECT c.parts, true AS used FROM contents c WHERE c.body_hash = q.hash LIMIT 1) c ON true
	WHERE NOT q.failed AND q.queued <= now() - make_interval(secs => $1)%s
	ORDER BY q.hash LIMIT $2
	FOR UPDATE OF q SKIP LOCKED FOR KEY SHARE OF b SKIP LOCKED`

// userFilter narrows claimTextSQL to the bodies user $3's messages use:
// a probe per queued body (a set of the user's bodies would be built by
// every batch).
const userFilter = `
	AND EXISTS (SELECT 1 FROM contents u WHERE u.body_hash = q.hash AND u.user_id = $3)`

// indexQueued extracts the text of up to textBatch queued bodies queued
// at least minAge ago (of user's messages only, unless user is 0) in
// one transaction and reports how many it dealt with (extracted, found
// unused, or marked failed). A body whose object the blob store cannot
// give stays queued; when no claimed body could be dealt with, that is
// the error.
func (s *Store) indexQueued(ctx context.Context, minAge time.Duration, user int64) (int, error) {
	n := 0
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		batch, err := claimBodies(ctx, tx, minAge, user)
		if err != nil || len(batch) == 0 {
			return err
		}
		b := &pgx.Batch{}
		var done, failed [][]byte
		var unreadable error // the last body the store could not give
		for _, c := range batch {
			if c.used == nil {
				done = append(done, c.hash) // no message left: nothing to search
				continue
			}
			data, err := s.bodyBytes(ctx, c.hash, c.data, c.size, c.parts)
			if err != nil {
				unreadable = err // left queued, tried again later
				continue
			}
			doc, err := extractText(data, c.parts)
			if err != nil {
				// Left without text, marked: its messages stay
				// pending, and the scan reads them as it always did.
				s.log.Debug("postgres store: no searchable text", "body", blobKey(c.hash), "err", err)
				failed = append(failed, c.hash)
				continue
			}
			done = append(done, c.hash)
			b.Queue(`INSERT INTO body_text(hash, header, fields, body, mime) VALUES($1, $2, $3, $4, $5)
				ON CONFLICT (hash) DO UPDATE SET header = EXCLUDED.header, fields = EXCLUDED.fields, body = EXCLUDED.body, mime = EXCLUDED.mime`,
				c.hash, nonNil(doc.Header), nonNil(doc.Fields), nonNil(doc.Body), nonNil(doc.MIME))
		}
		n = len(done) + len(failed)
		if n == 0 {
			return unreadable
		}
		b.Queue(`DELETE FROM text_queue WHERE hash = ANY($1)`, done)
		if len(failed) > 0 {
			b.Queue(`UPDATE text_queue SET failed = true WHERE hash = ANY($1)`, failed)
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return 0, fmt.Errorf("index text: %w", err)
	}
	return n, nil
}

// claimedBody is a row of claimTextSQL.
type claimedBody struct {
	hash, data, parts []byte
	size              int64
	used              *bool
}

// claimBodies runs claimTextSQL in tx.
func claimBodies(ctx context.Context, tx pgx.Tx, minAge time.Duration, user int64) ([]claimedBody, error) {
	q, args := fmt.Sprintf(claimTextSQL, ""), []any{minAge.Seconds(), textBatch}
	if user != 0 {
		q, args = fmt.Sprintf(claimTextSQL, userFilter), append(args, user)
	}
	rows, err := tx.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (claimedBody, error) {
		var c claimedBody
		err := row.Scan(&c.hash, &c.data, &c.size, &c.parts, &c.used)
		return c, err
	})
}

// bodyBytes returns a body's bytes: data, or, when data is nil, its
// object in the blob store. An error here is the store's, not the
// mail's: the caller gives up and tries again later.
func (s *Store) bodyBytes(ctx context.Context, hash, data []byte, size int64, parts []byte) ([]byte, error) {
	if data != nil {
		return data, nil
	}
	b, err := s.openBlobBody(ctx, hash, size, parts)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	buf := make([]byte, b.Size())
	if n, err := b.ReadAt(buf, 0); err != nil && !(errors.Is(err, io.EOF) && n == len(buf)) {
		return nil, fmt.Errorf("read body %s: %w", blobKey(hash), err)
	}
	return buf, nil
}

// extractText returns the searchable text of the message data, whose
// part tree is parts; an error means the mail cannot be read as stored.
func extractText(data, parts []byte) (search.Doc, error) {
	root, err := message.DecodeParts(parts)
	if err != nil {
		return search.Doc{}, err
	}
	return search.Extract(bytes.NewReader(data), root, nil)
}

// nonNil makes an empty text an empty bytea, not NULL.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// IndexText extracts the queued text of user's mail now (tern index),
// calling progress after each batch with the number done so far and the
// number still queued. With rebuild, the text of every body the user's
// messages use is extracted again.
func (s *Store) IndexText(ctx context.Context, user string, rebuild bool, progress func(done, left int)) error {
	id, err := s.userID(ctx, user)
	if err != nil {
		return err
	}
	if rebuild {
		if _, err := s.pool.Exec(ctx, `INSERT INTO text_queue(hash) SELECT DISTINCT body_hash FROM contents WHERE user_id = $1
			ON CONFLICT (hash) DO UPDATE SET failed = false`, id); err != nil {
			return fmt.Errorf("index text: queue again: %w", err)
		}
	}
	queued := 0 // counted once: a count per batch would read the user's whole queue each time
	if progress != nil {
		if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM text_queue q
			WHERE EXISTS (SELECT 1 FROM contents u WHERE u.body_hash = q.hash AND u.user_id = $1)`, id).Scan(&queued); err != nil {
			return fmt.Errorf("index text: %w", err)
		}
	}
	done := 0
	for {
		n, err := s.indexQueued(ctx, 0, id)
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		done += n
		if progress != nil {
			progress(done, max(queued-done, 0))
		}
	}
}

// mailboxTextSQL lists mailbox $1's messages with whether their text is
// extracted: the search's Covered, and its Pending where it is not.
const mailboxTextSQL = `SELECT m.uid, t.hash IS NOT NULL FROM messages m JOIN contents c ON c.id = m.content_id
	LEFT JOIN body_text t ON t.hash = c.body_hash WHERE m.mailbox_id = $1 ORDER BY m.uid`

// textRowsFrom is the FROM clause of a query over mailbox $1's messages
// with extracted text (t).
const textRowsFrom = ` FROM messages m JOIN contents c ON c.id = m.content_id JOIN body_text t ON t.hash = c.body_hash WHERE m.mailbox_id = $1`

// SearchText implements store.Account: in one snapshot, the mailbox's
// messages with and without extracted text, and per query the indexed
// messages whose text holds the needle. Exact queries are decided in
// the database; one-field queries there as candidates, then by
// search.FieldHolds on their field lines; fuzzy ones score each indexed
// message's text with search.FuzzyScore, as the scan does.
//
// A search of one-field queries alone is left to the caller
// (ErrNoTextIndex): the field lines would be read for every message of
// the mailbox each time, where the mailbox index (index/lines.go) reads
// them once and keeps them.
func (a *account) SearchText(ctx context.Context, mailboxID int64, qs []store.TextQuery) (store.TextResult, error) {
	if onlyOneField(qs) {
		return store.TextResult{}, store.ErrNoTextIndex
	}
	res := store.TextResult{Hits: make([][]uint32, len(qs)), Scores: make([][]uint8, len(qs))}
	b := &pgx.Batch{}
	b.Queue(mboxByIDSQL, mailboxID, a.id)
	b.Queue(mailboxTextSQL, mailboxID)
	for _, q := range qs {
		b.Queue(textQuerySQL(q), mailboxID, nonNil(q.Needle))
	}
	err := a.readBatch(ctx, "search text", b, func(br pgx.BatchResults) error {
		if _, err := selectable(mboxFound(br.QueryRow(), mailboxID)); err != nil {
			return err
		}
		var uid uint32
		var indexed bool
		rows, _ := br.Query()
		if _, err := pgx.ForEachRow(rows, []any{&uid, &indexed}, func() error {
			res.Covered = append(res.Covered, uid)
			if !indexed {
				res.Pending = append(res.Pending, uid)
			}
			return nil
		}); err != nil {
			return err
		}
		for i, q := range qs {
			rows, _ := br.Query()
			var err error
			res.Hits[i], res.Scores[i], err = textHits(rows, q)
			if err != nil {
				return err
			}
		}
		return nil
	})
	return res, err
}

// onlyOneField reports whether every query is an exact one-field query.
func onlyOneField(qs []store.TextQuery) bool {
	for _, q := range qs {
		if _, ok := search.FieldLineNames[q.Fields]; !ok || q.Fuzzy {
			return false
		}
	}
	return true
}

// textQuerySQL returns the statement that answers q over mailbox $1
// with needle $2: the UIDs whose text holds it (exact queries), or the
// UIDs and texts to decide in Go (one-field and fuzzy queries; the
// one-field ones narrowed to field lines that hold the needle).
func textQuerySQL(q store.TextQuery) string {
	if _, ok := search.FieldLineNames[q.Fields]; ok && !q.Fuzzy {
		return `SELECT m.uid, t.fields` + textRowsFrom + ` AND position($2 IN t.fields) > 0 ORDER BY m.uid`
	}
	cols := columnsOf(q.Fields)
	switch {
	case len(cols) == 0: // no text to look in: no rows ($2 is never NULL)
		return `SELECT m.uid` + textRowsFrom + ` AND $2::bytea IS NULL`
	case q.Fuzzy: // every indexed message, scored in Go ($2 unused there)
		return `SELECT m.uid, ` + strings.Join(cols, ", ") + textRowsFrom + ` AND $2::bytea IS NOT NULL ORDER BY m.uid`
	}
	conds := make([]string, len(cols))
	for i, c := range cols {
		conds[i] = "position($2 IN " + c + ") > 0"
	}
	return `SELECT m.uid` + textRowsFrom + ` AND (` + strings.Join(conds, " OR ") + `) ORDER BY m.uid`
}

// textHits reads the rows of textQuerySQL(q) and returns q's hits and,
// for a fuzzy q, their scores.
func textHits(rows pgx.Rows, q store.TextQuery) ([]uint32, []uint8, error) {
	defer rows.Close()
	name, oneField := search.FieldLineNames[q.Fields]
	oneField = oneField && !q.Fuzzy
	var grams []search.FuzzyGram
	if q.Fuzzy {
		grams = search.FuzzyGrams(q.Needle)
	}
	var hits []uint32
	var scores []uint8
	var uid uint32
	texts := make([][]byte, len(rows.FieldDescriptions())-1)
	dest := []any{&uid}
	for i := range texts {
		dest = append(dest, &texts[i])
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, nil, err
		}
		switch {
		case oneField:
			if !search.FieldHolds(texts[0], name, q.Needle) {
				continue
			}
		case q.Fuzzy:
			s := search.FuzzyScoreGrams(q.Needle, grams, texts...)
			if s == 0 {
				continue
			}
			scores = append(scores, s)
		}
		hits = append(hits, uid)
	}
	return hits, scores, rows.Err()
}
