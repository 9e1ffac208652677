package sqlite

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"unicode/utf8"

	"github.com/klauspost/compress/s2"
	"github.com/ncruces/go-sqlite3"
	"github.com/ncruces/go-sqlite3/ext/fts5"

	"github.com/tern-imap/tern/internal/message"
	"github.com/tern-imap/tern/internal/search"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/sqlite/sqldb"
)

// The full-text index (schema version 7). One row per content (not per
// message: COPY and MOVE reuse it), rowid = contents.id, holding the
// searchable text exactly as the SEARCH scan sees it (search.Doc: folded,
// decoded), split by field. The FTS5 trigram tokenizer indexes which
// three-character sequences each row holds (detail=none: no positions,
// about a quarter of the text's size); a query asks for the rows holding
// every trigram of the needle, and the stored text is then compared byte
// for byte (search verification), so the answer is exactly the scan's.
// The text is already case-folded, hence case_sensitive 1: the tokenizer
// folds nothing more. BenchmarkFTSChoice and docs/PERFORMANCE.md have the
// numbers behind the choice.
//
// fts_pending is the durable queue of contents still to index: Append
// adds each new content in the transaction that creates it, the indexer
// (textIndexer) removes it in the transaction that writes its fts row.
// state 1 marks a content that cannot be indexed (its text is over
// maxIndexedText, or its body could not be read): it stays "pending" for
// good and SEARCH reads it from the body. fts_weak lists indexed
// contents whose text is not valid UTF-8: the tokenizer may split such
// bytes differently from a needle's, so they are candidates for every
// query (their stored text is still compared exactly). Every SEARCH
// finds the mailbox's queued contents (queuedIn) from the index
// fts_pending_state, not from the table, whose rows hold the queued
// contents' field lines (schema 18); schema version 20 adds the index to
// an existing mail.db. Listing the whole queue at every search was a
// seventh of compare.sh mixed's CPU after its append workloads had
// queued thousands of messages.
//
// Since schema version 14 fts indexes only the body and MIME columns;
// the header columns' trigrams are in fts_head (the side indexes,
// below), and tokenizing them twice cost a third of the indexing CPU.
// Keys that read the header take their candidates from fts_head, keys
// that read both (TEXT) from both.
//
// Since schema version 16 the text is kept in fts_text (id =
// contents.id; the body column S2-compressed, packText) and fts is a
// contentless index like its side indexes: FTS5's own content table kept
// the text as it is, about as much again as the mail in mail.db. The
// header columns, which header searches check, stay uncompressed.
//
// Since schema version 17 the field lines (search.Doc.Fields: From, To,
// Cc, Bcc and Subject) are kept apart, in fts_fields (id = contents.id):
// FROM..BCC and SUBJECT are decided on them field by field (searchField),
// and rows of a few hundred bytes let such a search read a mailbox's
// lines from a few pages instead of a page per message. fts_text's addr
// column stays, NULL.
const ftsSchema = ftsTextTable + ftsFieldsTable + ftsIndexTable + ftsQueueSchema

const ftsTextTable = `
CREATE TABLE IF NOT EXISTS fts_text(
	id INTEGER PRIMARY KEY,
	hdr BLOB,
	addr BLOB,
	body BLOB,
	mime BLOB
);
`

const ftsFieldsTable = `
CREATE TABLE IF NOT EXISTS fts_fields(
	id INTEGER PRIMARY KEY,
	lines BLOB
);
`

const ftsIndexTable = `
CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(body, mime, content='', contentless_delete=1, tokenize='trigram case_sensitive 1', detail=none);
`

// ftsQueueSchema is the indexing queue and the list of weak rows.
const ftsQueueSchema = `
CREATE TABLE IF NOT EXISTS fts_pending(
	content_id INTEGER PRIMARY KEY,
	state INTEGER NOT NULL DEFAULT 0,
	lines BLOB
);
CREATE INDEX IF NOT EXISTS fts_pending_state ON fts_pending(state);
CREATE TABLE IF NOT EXISTS fts_weak(
	content_id INTEGER PRIMARY KEY
);
`

// ftsSchemaV15 is the full-text index as schema versions 14 and 15 had
// it, FTS5 keeping the text: migrations from before version 7 create it,
// so that the steps up to version 15 find what they convert.
const ftsSchemaV15 = `
CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(hdr UNINDEXED, addr UNINDEXED, body, mime, tokenize='trigram case_sensitive 1', detail=none);
` + ftsQueueSchema

// fts_gone (schema version 13) lists the index rows (fts and its side
// indexes) whose content is gone. Deleting an FTS5 row tokenizes its text
// again and writes a segment at commit, about 40 % of an EXPUNGE's cost
// when done there; the indexer removes these rows instead, many per
// commit (purgeGoneText). Until then the rows are harmless: every query
// joins the index to the messages, which no longer name the content.
// Content ids can be reused (contents has no AUTOINCREMENT), so a new
// content whose id is listed drops the old rows at once (trigger
// contents_fts_reused): stale text is never taken for a new message's.
// The queue and fts_weak rows go with the content at once.
const ftsGoneSchema = `
CREATE TABLE IF NOT EXISTS fts_gone(
	content_id INTEGER PRIMARY KEY
);
CREATE TRIGGER IF NOT EXISTS contents_fts_deferred AFTER DELETE ON contents BEGIN
	INSERT OR IGNORE INTO fts_gone(content_id) SELECT OLD.id WHERE EXISTS (SELECT 1 FROM fts_text WHERE id = OLD.id);
	DELETE FROM fts_pending WHERE content_id = OLD.id;
	DELETE FROM fts_weak WHERE content_id = OLD.id;
END;
CREATE TRIGGER IF NOT EXISTS contents_fts_reused AFTER INSERT ON contents WHEN EXISTS (SELECT 1 FROM fts_gone WHERE content_id = NEW.id) BEGIN
	DELETE FROM fts WHERE rowid = NEW.id;
	DELETE FROM fts_head WHERE rowid = NEW.id;
	DELETE FROM fts_words WHERE rowid = NEW.id;
	DELETE FROM fts_text WHERE id = NEW.id;
	DELETE FROM fts_fields WHERE id = NEW.id;
	DELETE FROM fts_gone WHERE content_id = NEW.id;
END;
`

// purgeGone removes the index rows listed in fts_gone (purgeGoneText).
var purgeGone = []string{
	`DELETE FROM fts WHERE rowid IN (SELECT content_id FROM fts_gone)`,
	`DELETE FROM fts_head WHERE rowid IN (SELECT content_id FROM fts_gone)`,
	`DELETE FROM fts_words WHERE rowid IN (SELECT content_id FROM fts_gone)`,
	`DELETE FROM fts_text WHERE id IN (SELECT content_id FROM fts_gone)`,
	`DELETE FROM fts_fields WHERE id IN (SELECT content_id FROM fts_gone)`,
	`DELETE FROM fts_gone`,
}

// The side indexes (schema version 12): two contentless FTS5 tables
// beside fts, rowid = contents.id like it, written with it and removed
// with it (fts_gone).
// They hold no text (contentless), only postings; contentless_delete lets
// a row be deleted by its rowid.
//
// fts_head is a trigram index of the header columns alone (hdr, addr):
// with detail=none FTS5 has no column filters, so in fts a header key's
// candidates came from the bodies too (a name that also occurs in text
// proposed every message that mentions it). Header keys, exact and
// fuzzy, take their candidates from fts_head.
//
// fts_words indexes the words of the body column with FTS5's ascii
// tokenizer: a token is a maximal run of ASCII letters and digits and
// non-ASCII bytes, kept byte for byte (the tokenizer folds only A-Z,
// which folded text does not hold). A row holding the token N therefore
// holds the bytes N in its body: that proves BODY/TEXT N for the row
// without reading its text, for a needle that is one such token (see
// wordQuery). Rows whose text is not UTF-8 (fts_weak) are never proven
// this way. The text still decides every other candidate (N inside a
// longer word, across words).
const ftsSideSchema = `
CREATE VIRTUAL TABLE IF NOT EXISTS fts_head USING fts5(hdr, addr, content='', contentless_delete=1, tokenize='trigram case_sensitive 1', detail=none);
CREATE VIRTUAL TABLE IF NOT EXISTS fts_words USING fts5(body, content='', contentless_delete=1, tokenize='ascii', detail=none);
`

// The word vocabulary (schema version 15): every token fts_words holds,
// once (fts_vocab), with a trigram index of the tokens themselves
// (fts_vocab_tri, its rows added by a trigger). BODY of a needle that is
// one token's worth of characters (wordQuery) finds the tokens holding
// it in the vocabulary and takes their rows from fts_words: a row whose
// text is UTF-8 (not in fts_weak) holds the needle exactly when one of
// its tokens does, as every byte of the needle is a token byte, so no
// occurrence can straddle a token's end. That replaces intersecting the
// needle's trigram lists over every content (a third of a common word's
// search) with the same over a vocabulary far smaller than the mail, and
// proves the rows without reading their text. Tokens are never removed
// (one whose rows are all gone just finds nothing); a rebuild of the
// index empties the vocabulary with it.
const ftsVocabSchema = `
CREATE TABLE IF NOT EXISTS fts_vocab(
	id INTEGER PRIMARY KEY,
	term TEXT NOT NULL UNIQUE
);
CREATE VIRTUAL TABLE IF NOT EXISTS fts_vocab_tri USING fts5(term, content='fts_vocab', content_rowid='id', tokenize='trigram case_sensitive 1', detail=none);
CREATE TRIGGER IF NOT EXISTS fts_vocab_added AFTER INSERT ON fts_vocab BEGIN
	INSERT INTO fts_vocab_tri(rowid, term) VALUES(NEW.id, NEW.term);
END;
`

// ftsVocabBackfill fills the vocabulary from fts_words' own list of
// tokens (migration to schema version 15, tern check --repair).
var ftsVocabBackfill = []string{
	`CREATE VIRTUAL TABLE IF NOT EXISTS temp.fts_words_terms USING fts5vocab(main, fts_words, row)`,
	`INSERT OR IGNORE INTO fts_vocab(term) SELECT term FROM temp.fts_words_terms`,
	`DROP TABLE temp.fts_words_terms`,
}

// ftsHeaderUnindexed rebuilds an fts of schema version 13 or older
// (every column indexed) with hdr and addr UNINDEXED (ftsSchema): the
// text moves to a new table, tokenizing the body and MIME columns only,
// which takes the place of the old one. The triggers that name fts are
// dropped first (the schema statements create them again).
var ftsHeaderUnindexed = []string{
	`DROP TRIGGER IF EXISTS contents_fts_deferred`,
	`DROP TRIGGER IF EXISTS contents_fts_reused`,
	`CREATE VIRTUAL TABLE fts_v14 USING fts5(hdr UNINDEXED, addr UNINDEXED, body, mime, tokenize='trigram case_sensitive 1', detail=none)`,
	`INSERT INTO fts_v14(rowid, hdr, addr, body, mime) SELECT rowid, hdr, addr, body, mime FROM fts`,
	`DROP TABLE fts`,
	`ALTER TABLE fts_v14 RENAME TO fts`,
}

// ftsSideBackfill fills the side indexes from the text fts stored
// (migration to schema version 12, when FTS5 kept fts's text).
var ftsSideBackfill = []string{
	`INSERT INTO fts_head(rowid, hdr, addr) SELECT rowid, hdr, addr FROM fts`,
	`INSERT INTO fts_words(rowid, body) SELECT rowid, body FROM fts`,
}

// ftsRefill fills each index table from the stored text (tern check's
// repairs; the migration to schema version 16). Each statement may be
// narrowed to one row by appending ftsRefillOne.
var ftsRefill = map[string]string{
	"fts":       `INSERT INTO fts(rowid, body, mime) SELECT id, ` + unpackFunc + `(body), mime FROM fts_text`,
	"fts_head":  `INSERT INTO fts_head(rowid, hdr, addr) SELECT id, hdr, ` + addrOf + ` FROM fts_text f`,
	"fts_words": `INSERT INTO fts_words(rowid, body) SELECT id, ` + unpackFunc + `(body) FROM fts_text`,
}

// addrOf is the field lines of fts_text row f: in fts_fields, or in
// fts_text.addr (the normalized addresses only) during the migration
// steps before version 17.
const addrOf = `COALESCE((SELECT lines FROM fts_fields WHERE id = f.id), f.addr)`

// ftsRefillOne narrows an ftsRefill statement to the row given as its
// argument.
const ftsRefillOne = ` WHERE id = ?`

// ftsIndexTables are the tables ftsRefill fills.
var ftsIndexTables = []string{"fts", "fts_head", "fts_words"}

// ftsClear empties the index (tern index --rebuild), side indexes
// included.
var ftsClear = []string{`INSERT INTO fts(fts) VALUES('delete-all')`, `DELETE FROM fts_text`, `DELETE FROM fts_fields`, `DELETE FROM fts_weak`, `DELETE FROM fts_gone`,
	`INSERT INTO fts_head(fts_head) VALUES('delete-all')`, `INSERT INTO fts_words(fts_words) VALUES('delete-all')`,
	`INSERT INTO fts_vocab_tri(fts_vocab_tri) VALUES('delete-all')`, `DELETE FROM fts_vocab`}

// maxIndexedText is the most searchable text one content may have to be
// indexed; larger ones are searched by reading them (fts_pending state 1).
const maxIndexedText = 8 << 20

// ftsBatch is how many contents the background indexer extracts and
// writes per transaction, and ftsBatchText how much text at most (at
// least one content): small enough that a write of the user waiting for
// the write lock waits little (the index's inserts run under it; 32
// medium messages were tens of milliseconds). tern index, which has the
// user to itself in the common case, writes ftsBulkBatch per
// transaction, whatever their text.
const (
	ftsBatch     = 32
	ftsBatchText = 64 << 10
	ftsBulkBatch = 256
)

// Pending states.
const (
	ftsToDo     = 0
	ftsNotIndex = 1
)

// queueBackfill adds every content to the indexing queue (migration to
// schema version 7, tern index --rebuild).
const queueBackfill = `INSERT OR IGNORE INTO fts_pending(content_id) SELECT id FROM contents`

// ftsColumns are the stored text's columns in store.TextField bit order
// (addr is fts_fields.lines since version 17; fieldColumns).
var ftsColumns = [...]string{"hdr", "addr", "body", "mime"}

// ftsContent is the table that keeps the indexed text (ftsSchema), read
// by searches as a plain rowid lookup.
const ftsContent = "fts_text"

// packText returns what fts_text keeps of a body column: S2-compressed
// (nil for an empty one). Decoded text compresses to about 40 %.
func packText(text []byte) []byte {
	if len(text) == 0 {
		return nil
	}
	return s2.Encode(nil, text)
}

// unpackText returns the text packText stored. No text over
// maxIndexedText is indexed: a longer length header is damage, refused
// before anything is allocated.
func unpackText(packed []byte) ([]byte, error) {
	if packed == nil {
		return nil, nil
	}
	if n, err := s2.DecodedLen(packed); err != nil || n > maxIndexedText {
		return nil, fmt.Errorf("damaged text (%d bytes; %v)", n, err)
	}
	return s2.Decode(nil, packed)
}

// pendingIDsSQL lists the indexing queue's content ids, and
// pendingCountSQL counts them, from the queue's index alone (see
// fts_pending above).
const (
	pendingIDsSQL   = `SELECT group_concat(content_id) FROM fts_pending INDEXED BY fts_pending_state`
	pendingCountSQL = `SELECT count(*) FROM fts_pending INDEXED BY fts_pending_state`
)

// queuedIn returns the contents of cm that wait in the indexing queue,
// ascending. Listing costs per id, so it lists the whole queue only when
// that is no longer than the mailbox, and otherwise looks the mailbox's
// contents up in the queue (a folder of 100 messages while 5,000 new
// ones of the account wait: BenchmarkSearchQueued). Counting the queue
// reads its index's pages, not its rows.
func queuedIn(ctx context.Context, tx *sqlTx, cm *contentMap) ([]int64, error) {
	var n int
	if err := tx.QueryRowContext(ctx, pendingCountSQL).Scan(&n); err != nil {
		return nil, err
	}
	if n == 0 || len(cm.cids) == 0 {
		return nil, nil
	}
	var queued []int64
	if n <= len(cm.cids) {
		if err := postings(ctx, tx, &queued, pendingIDsSQL); err != nil {
			return nil, err
		}
		return cm.inMailbox(queued), nil
	}
	if err := postings(ctx, tx, &queued, `SELECT group_concat(p.content_id) FROM json_each(?) j CROSS JOIN fts_pending p ON p.content_id = j.value`, jsonIDs(cm.cids)); err != nil {
		return nil, err
	}
	return slices.Compact(queued), nil
}

// SearchText implements store.Account.
func (a *account) SearchText(ctx context.Context, mailboxID int64, qs []store.TextQuery) (store.TextResult, error) {
	var res store.TextResult
	err := a.read(ctx, "search text", func(tx *sqlTx) error {
		cm, err := a.u.mailboxContents(ctx, tx, mailboxID)
		if err != nil {
			return err
		}
		pending, err := queuedIn(ctx, tx, cm)
		if err != nil {
			return err
		}
		var lined []int64
		if len(pending) > 0 && oneFieldQueries(qs) {
			// The mailbox's queued contents with field lines (written by
			// Append) are decided by them (searchField): not pending for
			// this search.
			if err := postings(ctx, tx, &lined, `SELECT group_concat(p.content_id) FROM json_each(?) j CROSS JOIN fts_pending p ON p.content_id = j.value
				WHERE p.lines IS NOT NULL`, jsonIDs(pending)); err != nil {
				return err
			}
			pending = subtractSorted(pending, lined)
		}
		res.Pending = cm.uidsOf(pending)
		res.Covered = cm.sortedUIDs()
		res.Hits = make([][]uint32, len(qs))
		res.Scores = make([][]uint8, len(qs))
		for i, q := range qs {
			if q.Fuzzy {
				res.Hits[i], res.Scores[i], err = searchFuzzy(ctx, tx, cm, q)
			} else {
				res.Hits[i], err = searchOne(ctx, tx, cm, q, lined)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	return res, err
}

// SavePreviews implements store.Account.
func (a *account) SavePreviews(ctx context.Context, mailboxID int64, previews map[uint32]string) error {
	if len(previews) == 0 {
		return nil
	}
	return a.write(ctx, "save previews", func(w *wtx) error {
		for uid, p := range previews {
			if _, err := w.tx.ExecContext(ctx, `UPDATE contents SET preview = ? WHERE preview IS NULL
				AND id = (SELECT content_id FROM messages WHERE mailbox_id = ? AND uid = ?)`, p, mailboxID, uid); err != nil {
				return err
			}
		}
		return nil
	})
}

// containsFunc is the SQL function tern_contains(text, needle): 1 when
// the stored text (BLOB or TEXT) holds needle byte for byte, else 0. It
// is Go's bytes.Contains run on SQLite's own buffers (VolatileArgs: no
// copy), much faster than SQLite's instr, which compares at every offset.
const containsFunc = "tern_contains"

// containsCalls counts tern_contains calls (tests check what a search
// reads).
var containsCalls atomic.Int64

// unpackFunc is the SQL function tern_unpack(packed): the text packText
// stored, NULL for NULL.
const unpackFunc = "tern_unpack"

// fieldHoldsFunc is the SQL function tern_field_holds(lines, name,
// needle): 1 when the stored field lines (search.Doc.Fields) have a line
// of field name holding needle (search.FieldHolds), else 0.
const fieldHoldsFunc = "tern_field_holds"

// fieldHoldsCalls counts tern_field_holds calls (tests check which rows a
// search reads).
var fieldHoldsCalls atomic.Int64

func init() {
	sqlite3.AutoExtension(fts5.Register) // the full-text index
	sqlite3.AutoExtension(registerFunctions)
}

// registerFunctions adds tern's SQL functions to a new connection.
func registerFunctions(c *sqlite3.Conn) error {
	const flags = sqlite3.DETERMINISTIC | sqlite3.INNOCUOUS
	fieldHolds := func(ctx sqlite3.Context, args ...sqlite3.Value) {
		fieldHoldsCalls.Add(1)
		name := args[1].Text()
		ctx.ResultBool(textBytes(args[0], func(addr []byte) bool {
			return textBytes(args[2], func(needle []byte) bool { return search.FieldHolds(addr, name, needle) })
		}))
	}
	unpack := func(ctx sqlite3.Context, args ...sqlite3.Value) {
		if args[0].Type() != sqlite3.BLOB {
			ctx.ResultNull()
			return
		}
		text, err := unpackText(args[0].RawBlob())
		if err != nil {
			ctx.ResultError(fmt.Errorf("%s: %w", unpackFunc, err))
			return
		}
		ctx.ResultBlob(text)
	}
	contains := func(ctx sqlite3.Context, args ...sqlite3.Value) {
		containsCalls.Add(1)
		ctx.ResultBool(textBytes(args[0], func(text []byte) bool {
			return textBytes(args[1], func(needle []byte) bool { return bytes.Contains(text, needle) })
		}))
	}
	return errors.Join(
		c.CreateFunction(fieldHoldsFunc, 3, flags, fieldHolds),
		c.CreateFunction(unpackFunc, 1, flags, unpack),
		c.CreateFunction(containsFunc, 2, flags, contains),
	)
}

// textBytes calls fn with the bytes of a TEXT or BLOB argument, without
// copying them; NULL (an empty field stored as nil) is empty text. Other
// types give false.
func textBytes(v sqlite3.Value, fn func([]byte) bool) bool {
	switch v.Type() {
	case sqlite3.NULL:
		return fn(nil)
	case sqlite3.BLOB:
		return fn(v.RawBlob())
	case sqlite3.TEXT:
		return fn(v.RawText())
	}
	return false
}

// searchOne answers one query in the mailbox whose contents cm maps:
// the candidate rows from the trigram indexes (indexTables: fts_head for
// the header columns, fts for the others; every indexed content of the
// mailbox when the needle has fewer than three characters), each decided by the word index
// (fts_words: the body holds the needle as a word, for rows not in
// fts_weak) or else by its stored text. The posting lists come back as
// group_concat lists, are taken apart and narrowed to the mailbox in Go
// (contentMap), and only the undecided rows' text is checked, inside
// SQLite (tern_contains on the stored bytes, no copy): a needle found in
// half the mailbox costs no row or blob copy per message, no text read
// where the word index proves the match, and no index seek per hit to
// find its UID.
func searchOne(ctx context.Context, tx *sqlTx, cm *contentMap, q store.TextQuery, lined []int64) ([]uint32, error) {
	if q.Fields&store.TextOneField != 0 {
		return searchField(ctx, tx, cm, q, lined)
	}
	cols := fieldColumns(q.Fields)
	if len(cols) == 0 {
		return nil, nil
	}
	needle := q.Needle
	if needle == nil {
		needle = []byte{}
	}
	var cand, proven, weak []int64
	if err := postings(ctx, tx, &weak, `SELECT group_concat(content_id) FROM fts_weak`); err != nil {
		return nil, err
	}
	if hits, ok, err := bodyByVocabulary(ctx, tx, cm, q, cols, weak); err != nil || ok {
		return hits, err
	}
	if match, ok := trigramQuery(q.Needle); ok {
		for _, t := range indexTables(q.Fields) {
			if err := postings(ctx, tx, &cand, `SELECT group_concat(rowid) FROM `+t+` WHERE `+t+` MATCH ?`, match); err != nil {
				return nil, err
			}
		}
		cand = cm.inMailbox(slices.Compact(cand))
	} else {
		cand = cm.contents()
	}
	if words, ok := wordQuery(q); ok {
		if err := postings(ctx, tx, &proven, `SELECT group_concat(rowid) FROM fts_words WHERE fts_words MATCH ?`, words); err != nil {
			return nil, err
		}
		proven = subtractSorted(cm.inMailbox(proven), weak)
	}
	// The rest: candidates not proven, and the mailbox's weak rows.
	rest := mergeSorted(subtractSorted(cand, proven), cm.inMailbox(weak))
	found, err := storedTextHolds(ctx, tx, cols, needle, rest)
	if err != nil {
		return nil, err
	}
	return cm.uidsOf(mergeSorted(proven, found)), nil
}

// searchField answers a one-field query (store.TextOneField) in the
// mailbox cm maps: each candidate (fieldCandidates) is decided by its
// field lines in fts_fields (search.FieldHolds), and each queued content
// of lined by the lines Append kept in fts_pending, so the answer is
// exact and no header is read.
func searchField(ctx context.Context, tx *sqlTx, cm *contentMap, q store.TextQuery, lined []int64) ([]uint32, error) {
	name, ok := search.FieldLineNames[q.Fields]
	if !ok {
		return nil, fmt.Errorf("full-text query: fields %#x name more than one field", q.Fields)
	}
	cand, err := fieldCandidates(ctx, tx, cm, q.Needle)
	if err != nil {
		return nil, err
	}
	needle := q.Needle
	if needle == nil {
		needle = []byte{}
	}
	var found []int64
	if err := linesHolding(ctx, tx, &found, `fts_fields`, `id`, cand, name, needle); err != nil {
		return nil, err
	}
	if err := linesHolding(ctx, tx, &found, `fts_pending`, `content_id`, lined, name, needle); err != nil {
		return nil, err
	}
	return cm.uidsOf(found), nil
}

// linesHolding appends to found the contents of ids whose field lines,
// column lines of table (keyed by idColumn), have a line of field name
// holding needle (search.FieldHolds).
func linesHolding(ctx context.Context, tx *sqlTx, found *[]int64, table, idColumn string, ids []int64, name string, needle []byte) error {
	if len(ids) == 0 {
		return nil
	}
	return postings(ctx, tx, found, `SELECT group_concat(a.`+idColumn+`) FROM json_each(?3) j CROSS JOIN `+table+` a ON a.`+idColumn+` = j.value
		WHERE a.lines IS NOT NULL AND `+fieldHoldsFunc+`(a.lines, ?1, ?2)`, name, needle, jsonIDs(ids))
}

// oneFieldQueries reports whether every query of qs is an exact one-field
// query (searchField), which queued contents with field lines answer.
func oneFieldQueries(qs []store.TextQuery) bool {
	for _, q := range qs {
		if _, ok := search.FieldLineNames[q.Fields]; !ok || q.Fuzzy {
			return false
		}
	}
	return len(qs) > 0
}

// directShare: a one-field query checks the field lines of
// every content of a mailbox that holds at most one in directShare of
// the account's (its largest content id standing for their number)
// instead of asking fts_head, whose posting lists cover the whole
// account: a small mailbox's lines fill a few pages of fts_fields. Measured
// on compare.sh's mail (SEARCH FROM, 400 messages in an account of
// 16,000): 0.48 ms directly against 0.87 ms through fts_head, idle; at
// 10,000 messages 8.1 ms against 4.7. In an account of 10,000, idle:
// 1,000 messages 2.0-2.3 ms directly against 2.5-2.7, 2,400 messages
// 4.0-4.1 against 3.1-3.2. While new mail is being indexed fts_head has
// more segments to read, and compare.sh's mixed workload (SEARCH FROM in
// folders of 300-600 in accounts of 2,000-10,000) spent 5 % less CPU per
// operation with 6 than with 32.
const directShare = 6

// fieldCandidates returns the contents of the mailbox cm maps whose
// field lines may hold needle: from fts_head (with the weak rows) in a
// large mailbox, every content in a small one (directShare) or for a
// needle under three characters.
func fieldCandidates(ctx context.Context, tx *sqlTx, cm *contentMap, needle []byte) ([]int64, error) {
	match, ok := trigramQuery(needle)
	if !ok {
		return cm.contents(), nil
	}
	var accountMax int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM fts_fields`).Scan(&accountMax); err != nil {
		return nil, fmt.Errorf("full-text query: %w", err)
	}
	if int64(len(cm.cids))*directShare <= accountMax {
		return cm.contents(), nil
	}
	var cand, weak []int64
	if err := postings(ctx, tx, &cand, `SELECT group_concat(rowid) FROM fts_head WHERE fts_head MATCH ?`, match); err != nil {
		return nil, err
	}
	if err := postings(ctx, tx, &weak, `SELECT group_concat(content_id) FROM fts_weak`); err != nil {
		return nil, err
	}
	return mergeSorted(cm.inMailbox(cand), cm.inMailbox(weak)), nil
}

// storedTextHolds returns the rows of ids (ascending) whose stored text
// holds needle in one of cols, checked inside SQLite (tern_contains on
// the stored bytes, no copy).
func storedTextHolds(ctx context.Context, tx *sqlTx, cols []string, needle []byte, ids []int64) ([]int64, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	checks := make([]string, len(cols))
	for i, c := range cols {
		checks[i] = containsFunc + "(" + c + ", ?1)"
	}
	var found []int64
	err := postings(ctx, tx, &found, `SELECT group_concat(f.id) FROM json_each(?2) j CROSS JOIN `+ftsContent+` f ON f.id = j.value LEFT JOIN fts_fields a ON a.id = f.id
		WHERE `+strings.Join(checks, " OR "), needle, jsonIDs(ids))
	return found, err
}

// maxVocabTerms is the most vocabulary tokens bodyByVocabulary asks
// fts_words for at once; a needle inside more (a short, common piece of
// words) goes the trigram way.
const maxVocabTerms = 256

// bodyByVocabulary answers BODY q in the mailbox cm maps from the word
// vocabulary (ftsVocabSchema) when it can, ok false leaving it to the
// trigram lists: the needle is a wordQuery one of at least three
// characters, found in at most maxVocabTerms tokens. The rows of those
// tokens in fts_words are hits, except weak rows, which (those of the
// mailbox) are decided by their stored text.
func bodyByVocabulary(ctx context.Context, tx *sqlTx, cm *contentMap, q store.TextQuery, cols []string, weak []int64) ([]uint32, bool, error) {
	if q.Fields != store.TextBody {
		return nil, false, nil
	}
	if _, ok := wordQuery(q); !ok {
		return nil, false, nil
	}
	match, ok := trigramQuery(q.Needle)
	if !ok {
		return nil, false, nil
	}
	terms, err := vocabTerms(ctx, tx, match, q.Needle)
	if err != nil || len(terms) > maxVocabTerms {
		return nil, false, err
	}
	var proven []int64
	if len(terms) > 0 {
		if err := postings(ctx, tx, &proven, `SELECT group_concat(rowid) FROM fts_words WHERE fts_words MATCH ?`, strings.Join(terms, " OR ")); err != nil {
			return nil, false, err
		}
		proven = subtractSorted(cm.inMailbox(proven), weak)
	}
	found, err := storedTextHolds(ctx, tx, cols, q.Needle, cm.inMailbox(weak))
	if err != nil {
		return nil, false, err
	}
	return cm.uidsOf(mergeSorted(proven, found)), true, nil
}

// vocabTerms returns, each as an FTS5 string ("token"), up to
// maxVocabTerms+1 vocabulary tokens that hold needle: the trigram index
// of the tokens proposes them (match: trigramQuery of needle), instr
// keeps those that hold it. Tokens hold only word bytes, never a quote.
func vocabTerms(ctx context.Context, tx *sqlTx, match string, needle []byte) ([]string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT term FROM fts_vocab_tri WHERE fts_vocab_tri MATCH ?1 AND instr(term, ?2) > 0 LIMIT ?3`,
		match, string(needle), maxVocabTerms+1)
	if err != nil {
		return nil, fmt.Errorf("word vocabulary: %w", err)
	}
	defer rows.Close()
	var terms []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return nil, fmt.Errorf("word vocabulary: %w", err)
		}
		terms = append(terms, `"`+t+`"`)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("word vocabulary: %w", err)
	}
	return terms, nil
}

// postings runs a query returning one group_concat of row ids (NULL for
// none) and appends them to dst, ascending.
func postings(ctx context.Context, tx *sqlTx, dst *[]int64, query string, args ...any) error {
	if err := queryIntList(ctx, tx, 1<<62, func(n uint64) { *dst = append(*dst, int64(n)) }, query, args...); err != nil {
		return err
	}
	slices.Sort(*dst) // FTS5 returns rowids ascending; sorting costs nothing then
	return nil
}

// jsonIDs returns ids as a JSON array (for json_each).
func jsonIDs(ids []int64) string {
	b := make([]byte, 0, 8*len(ids)+2)
	b = append(b, '[')
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, id, 10)
	}
	return string(append(b, ']'))
}

// subtractSorted returns the elements of ascending a that are not in
// ascending b.
func subtractSorted(a, b []int64) []int64 {
	if len(b) == 0 {
		return a
	}
	out := make([]int64, 0, len(a))
	j := 0
	for _, v := range a {
		for j < len(b) && b[j] < v {
			j++
		}
		if j == len(b) || b[j] != v {
			out = append(out, v)
		}
	}
	return out
}

// mergeSorted returns the union of ascending a and b, ascending, without
// duplicates.
func mergeSorted(a, b []int64) []int64 {
	if len(b) == 0 {
		return a
	}
	out := append(slices.Clone(a), b...)
	slices.Sort(out)
	return slices.Compact(out)
}

// indexTables are the trigram indexes that propose candidates for
// fields: fts_head for the header columns (hdr, addr), fts for the
// others (body, mime; schema version 14).
func indexTables(fields store.TextField) []string {
	var ts []string
	if fields&(store.TextHeader|store.TextAddress) != 0 {
		ts = append(ts, "fts_head")
	}
	if fields&^(store.TextHeader|store.TextAddress) != 0 {
		ts = append(ts, "fts")
	}
	return ts
}

// maxWordNeedle bounds the needles wordQuery asks fts_words for (FTS5
// keeps at most 32 KiB of a token).
const maxWordNeedle = 256

// wordQuery returns the fts_words query whose rows hold q's needle in
// their body as a whole token, which proves the match of a key that
// reads the body; false when the needle is not exactly one token of the
// ascii tokenizer (a byte other than a-z, 0-9 and non-ASCII: such bytes
// separate tokens, and A-Z would be folded) or the key does not read the
// body.
func wordQuery(q store.TextQuery) (string, bool) {
	if q.Fuzzy || q.Fields&store.TextBody == 0 || len(q.Needle) == 0 || len(q.Needle) > maxWordNeedle || !utf8.Valid(q.Needle) {
		return "", false
	}
	for _, b := range q.Needle {
		if b < utf8.RuneSelf && !('a' <= b && b <= 'z' || '0' <= b && b <= '9') {
			return "", false
		}
	}
	return `"` + string(q.Needle) + `"`, true
}

// queryIntList runs a query returning one group_concat of integers in
// 0..limit (NULL for none) and calls fn with each: one row and one string
// instead of a row per integer.
func queryIntList(ctx context.Context, q querier, limit uint64, fn func(uint64), query string, args ...any) error {
	var list []byte
	if err := q.QueryRowContext(ctx, query, args...).Scan(&list); err != nil {
		return fmt.Errorf("full-text query: %w", err)
	}
	if err := parseIntList(list, limit, fn); err != nil {
		return fmt.Errorf("full-text query: %w", err)
	}
	return nil
}

// parseIntList calls fn with each integer of a group_concat list of
// integers in 0..limit (empty for none).
func parseIntList(list []byte, limit uint64, fn func(uint64)) error {
	if len(list) == 0 {
		return nil
	}
	var n uint64
	digits := false
	for i := 0; i <= len(list); i++ {
		if i < len(list) && '0' <= list[i] && list[i] <= '9' {
			d := uint64(list[i] - '0')
			if n > (limit-d)/10 {
				return fmt.Errorf("number over %d in list %.40q", limit, list)
			}
			n, digits = n*10+d, true
			continue
		}
		if !digits || i < len(list) && list[i] != ',' {
			return fmt.Errorf("bad list %.40q", list)
		}
		fn(n)
		n, digits = 0, false
	}
	return nil
}

// searchFuzzy answers a fuzzy query (RFC 6203): the index tells, per
// content, which of the needle's inner trigrams it holds (one posting
// list each); a content that cannot reach search.FuzzyMinPresent even if
// it held every word-start gram is no candidate. The candidates' stored
// text is then scored with search.FuzzyScoreMasked, exactly as the scan
// scores a message: a trigram the index does not list for a content is
// not in its text, so it is not looked for there (nor is the whole
// needle). Needles whose grams cannot narrow (too few inner trigrams)
// score every indexed message of the mailbox.
func searchFuzzy(ctx context.Context, tx *sqlTx, cm *contentMap, q store.TextQuery) ([]uint32, []uint8, error) {
	cols := fieldColumns(q.Fields)
	if len(cols) == 0 {
		return nil, nil, nil
	}
	grams := search.FuzzyGrams(q.Needle)
	// unknown: the grams the index cannot answer (word starts, bytes
	// that are not UTF-8), always looked for; inner: the others.
	var unknown, inner uint64
	for i, g := range grams {
		if g.WordStart || !utf8.Valid(g.Text) {
			unknown |= 1 << i
		} else {
			inner |= 1 << i
		}
	}
	need := search.FuzzyMinPresent(len(grams)) - bits.OnesCount64(unknown)
	if need <= 0 || inner == 0 {
		return scoreContents(ctx, tx, cm, q, cols, grams, cm.contents(), nil)
	}
	var masks gramMasks
	for i, g := range grams {
		if inner&(1<<i) == 0 {
			continue
		}
		// One group_concat per posting list: a trigram common in
		// headers lists most of the account.
		for _, t := range indexTables(q.Fields) {
			if err := queryIntList(ctx, tx, 1<<62, func(id uint64) { masks.add(int64(id), 1<<i) },
				`SELECT group_concat(rowid) FROM `+t+` WHERE `+t+` MATCH ?`, `"`+strings.ReplaceAll(string(g.Text), `"`, `""`)+`"`); err != nil {
				return nil, nil, fmt.Errorf("fuzzy query: %w", err)
			}
		}
	}
	weak, err := queryIDs(ctx, tx, `SELECT content_id FROM fts_weak`)
	if err != nil {
		return nil, nil, fmt.Errorf("fuzzy query: %w", err)
	}
	for _, id := range weak {
		masks.add(id, uint32(inner)) // its bytes may tokenize differently: every gram may be there
	}
	var cand []int64
	var maybe []uint64
	masks.each(func(id int64, m uint32) {
		if bits.OnesCount32(m) >= need && cm.has(id) {
			cand = append(cand, id)
			maybe = append(maybe, uint64(m)|unknown)
		}
	})
	return scoreContents(ctx, tx, cm, q, cols, grams, cand, maybe)
}

// scoreContents scores the stored text (columns cols) of the contents
// cids (ascending; maybe[i], if given, the grams cids[i] may hold) with
// search.FuzzyScoreMasked and returns the UIDs of the mailbox's messages
// holding those that match, with their scores.
func scoreContents(ctx context.Context, tx *sqlTx, cm *contentMap, q store.TextQuery, cols []string, grams []search.FuzzyGram, cids []int64, maybe []uint64) ([]uint32, []uint8, error) {
	if len(cids) == 0 {
		return nil, nil, nil
	}
	var matched []int64
	var matchedScores []uint8
	next := 0 // rows come in the order of cids (json_each)
	score := func(cid int64, texts [][]byte) {
		m := ^uint64(0)
		if maybe != nil {
			for next < len(cids) && cids[next] < cid {
				next++
			}
			if next < len(cids) && cids[next] == cid {
				m = maybe[next]
			}
		}
		if s := search.FuzzyScoreMasked(q.Needle, grams, m, texts...); s > 0 {
			matched = append(matched, cid)
			matchedScores = append(matchedScores, s)
		}
	}
	if err := scanTexts(ctx, tx, len(cols), score, `SELECT f.id, `+strings.Join(cols, ", ")+` FROM json_each(?) j CROSS JOIN `+ftsContent+` f ON f.id = j.value LEFT JOIN fts_fields a ON a.id = f.id`,
		jsonIDs(cids)); err != nil {
		return nil, nil, err
	}
	// json_each gives the contents in the order of cids; sorting costs
	// nothing then.
	order := make([]int, len(matched))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(matched[a], matched[b]) })
	sorted := make([]int64, len(order))
	for i, j := range order {
		sorted[i] = matched[j]
	}
	var uids []uint32
	var scores []uint8
	cm.eachUID(sorted, func(i int, uid uint32) {
		uids = append(uids, uid)
		scores = append(scores, matchedScores[order[i]])
	})
	return sortScored(uids, scores)
}

// gramMasks holds, per content id, which grams (bits) a content holds: a
// slice indexed by id (ids are dense), a map for ids too large for one.
type gramMasks struct {
	dense  []uint32
	sparse map[int64]uint32
}

// maxDenseID bounds the ids gramMasks keeps in its slice.
const maxDenseID = 1 << 24

func (c *gramMasks) add(id int64, bits uint32) {
	if id < 0 || id >= maxDenseID {
		if c.sparse == nil {
			c.sparse = map[int64]uint32{}
		}
		c.sparse[id] |= bits
		return
	}
	if int(id) >= len(c.dense) {
		c.dense = append(c.dense, make([]uint32, int(id)+1-len(c.dense)+len(c.dense)/2)...)
	}
	c.dense[id] |= bits
}

// each calls fn with every id seen and its grams, ascending by id.
func (c *gramMasks) each(fn func(id int64, m uint32)) {
	for id, m := range c.dense {
		if m != 0 {
			fn(int64(id), m)
		}
	}
	sparse := slices.Sorted(maps.Keys(c.sparse))
	for _, id := range sparse {
		fn(id, c.sparse[id])
	}
}

// fieldColumns returns the text of fields as expressions over fts_text f
// and fts_fields a, joined (the body unpacked; see ftsContent).
func fieldColumns(fields store.TextField) []string {
	var cols []string
	for i, c := range ftsColumns {
		if fields&(1<<i) != 0 {
			switch c {
			case "body":
				cols = append(cols, unpackFunc+"(f.body)")
			case "addr":
				cols = append(cols, "COALESCE(a.lines, f.addr)")
			default:
				cols = append(cols, "f."+c)
			}
		}
	}
	return cols
}

// scanTexts runs a query returning a row id and n text columns and calls
// fn with each row (the texts are valid only during the call).
func scanTexts(ctx context.Context, tx *sqlTx, n int, fn func(int64, [][]byte), query string, args ...any) error {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("full-text query: %w", err)
	}
	defer rows.Close()
	vals := make([]sql.RawBytes, n)
	texts := make([][]byte, n)
	dest := make([]any, 1+n)
	var id int64
	dest[0] = &id
	for i := range vals {
		dest[1+i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("full-text query: %w", err)
		}
		for i, v := range vals {
			texts[i] = v
		}
		fn(id, texts)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("full-text query: %w", err)
	}
	return nil
}

// sortScored sorts uids ascending with their scores.
func sortScored(uids []uint32, scores []uint8) ([]uint32, []uint8, error) {
	idx := make([]int, len(uids))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return int(uids[a]) - int(uids[b]) })
	su, ss := make([]uint32, len(idx)), make([]uint8, len(idx))
	for i, j := range idx {
		su[i], ss[i] = uids[j], scores[j]
	}
	return su, ss, nil
}

// maxQueryTrigrams bounds the trigrams of one index query: a long needle
// asks for an evenly spread sample (fewer conditions only widen the
// candidates, which are checked against the text anyway).
const maxQueryTrigrams = 12

// trigramQuery returns the FTS5 query for rows holding the trigrams of
// needle, or false when the index cannot narrow the search: fewer than
// three characters, or bytes that are not UTF-8.
func trigramQuery(needle []byte) (string, bool) {
	if !utf8.Valid(needle) || utf8.RuneCount(needle) < 3 {
		return "", false
	}
	r := []rune(string(needle))
	var grams []string
	for i := 0; i+3 <= len(r); i++ {
		if t := string(r[i : i+3]); !slices.Contains(grams, t) {
			grams = append(grams, t)
		}
	}
	if len(grams) > maxQueryTrigrams {
		sample := make([]string, maxQueryTrigrams)
		for i := range sample {
			sample[i] = grams[i*(len(grams)-1)/(maxQueryTrigrams-1)]
		}
		grams = sample
	}
	var b strings.Builder
	for i, t := range grams {
		if i > 0 {
			b.WriteString(" AND ")
		}
		b.WriteByte('"')
		b.WriteString(strings.ReplaceAll(t, `"`, `""`))
		b.WriteByte('"')
	}
	return b.String(), true
}

// pendingContent is one content the indexer read for indexing.
type pendingContent struct {
	id       int64
	blob     string
	size     int64
	inline   []byte // the whole message when kept in mail.db (wholeInline)
	parts    []byte
	header   []byte
	doc      search.Doc
	indexErr error // not indexable: stays in fts_pending with state 1

	needPreview bool   // contents.preview is NULL (stored before it existed)
	preview     string // computed when needPreview
}

// indexPending indexes up to batch contents of the queue and reports how
// many it took (0: the queue is empty), and whether the queue may hold
// more that was queued before it was read (the batch was full, or cut by
// maxText): more is false when it took all there was.
func (a *account) indexPending(ctx context.Context, batch, maxText int) (n int, more bool, err error) {
	var todo []*pendingContent
	err = a.read(ctx, "index: read queue", func(tx *sqlTx) error {
		rows, err := tx.QueryContext(ctx, `SELECT p.content_id, c.blob, c.size, c.parts, c.header, b.data, `+inlineKind+`, c.preview IS NULL FROM fts_pending p
			JOIN contents c ON c.id = p.content_id LEFT JOIN bodies b ON b.content_id = c.id
			WHERE p.state = 0 ORDER BY p.content_id LIMIT ?`, batch)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			p := &pendingContent{}
			var kind int
			if err := rows.Scan(&p.id, &p.blob, &p.size, &p.parts, &p.header, &p.inline, &kind, &p.needPreview); err != nil {
				return err
			}
			if p.inline, err = wholeInline(p.inline, p.header, kind, p.size); err != nil {
				p.indexErr = err
			}
			todo = append(todo, p)
		}
		return rows.Err()
	})
	if err != nil || len(todo) == 0 {
		return 0, false, err
	}
	more = len(todo) == batch
	var text uint64
	for i, p := range todo {
		if p.indexErr != nil {
			continue // its body could not be read
		}
		p.doc, p.indexErr = a.u.extractText(p)
		if a.u.renamedBlob(ctx, p.id, &p.blob, p.indexErr) {
			p.doc, p.indexErr = a.u.extractText(p)
		}
		text += uint64(p.doc.Len())
		if maxText > 0 && text >= uint64(maxText) {
			more = more || i+1 < len(todo)
			todo = todo[:i+1] // the rest stays queued for the next batch
			break
		}
	}
	// The index never takes the last free space: a full disk must still
	// let deliveries fail cleanly and small writes (flags, \Recent)
	// succeed. Searches read the queued messages meanwhile.
	if free, ok := sqldb.DiskFree(a.u.dir); ok && free < ftsDiskReserve+4*text {
		return 0, false, fmt.Errorf("index: %d bytes free on disk, keeping %d: %w", free, ftsDiskReserve+4*text, errLowDisk)
	}
	// Lazy under FsyncOptimized: a power failure that undoes this commit
	// undoes the queue rows' removal with it, and the mail is indexed
	// again.
	err = a.lazyWrite(ctx, "index: write", func(w *wtx) error {
		words := map[string]struct{}{}
		for _, p := range todo {
			if p.needPreview && p.indexErr == nil {
				if _, err := w.tx.ExecContext(ctx, `UPDATE contents SET preview = ? WHERE id = ?`, p.preview, p.id); err != nil {
					return err
				}
			}
			if p.indexErr != nil {
				if _, err := w.tx.ExecContext(ctx, `UPDATE fts_pending SET state = ? WHERE content_id = ?`, ftsNotIndex, p.id); err != nil {
					return err
				}
				continue
			}
			// The content may have gone (its last message expunged)
			// since the queue was read: then its queue row went too.
			r, err := w.tx.ExecContext(ctx, `DELETE FROM fts_pending WHERE content_id = ? AND state = 0`, p.id)
			if err != nil {
				return err
			}
			if n, err := r.RowsAffected(); err != nil || n == 0 {
				continue
			}
			if err := insertDoc(ctx, w.tx, p.id, &p.doc, words); err != nil {
				return err
			}
		}
		return addVocabulary(ctx, w.tx, words)
	})
	if err != nil {
		return 0, false, err
	}
	for _, p := range todo {
		if p.indexErr != nil {
			a.s.log.Warn("index: content left to scanning", "user", a.u.name, "content", p.id, "err", p.indexErr)
		}
	}
	return len(todo), more, nil
}

// purgeGoneText removes the fts rows of deleted contents (fts_gone), all
// in one lazy commit; it writes nothing when there are none.
func (a *account) purgeGoneText(ctx context.Context) error {
	var any bool
	if err := a.read(ctx, "index: read deleted", func(tx *sqlTx) error {
		return tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM fts_gone)`).Scan(&any)
	}); err != nil || !any {
		return err
	}
	// Lazy under FsyncOptimized: a power failure that undoes it leaves
	// the rows listed, and they go with the next purge.
	return a.lazyWrite(ctx, "index: remove deleted", func(w *wtx) error {
		for _, q := range purgeGone {
			if _, err := w.tx.ExecContext(ctx, q); err != nil {
				return err
			}
		}
		return nil
	})
}

// insertDoc writes the fts row of content id (and its fts_weak row when
// its text is not UTF-8), and adds the tokens of a UTF-8 body to words,
// which the caller records in the vocabulary once for its whole batch
// (addVocabulary).
func insertDoc(ctx context.Context, tx *sqlTx, id int64, d *search.Doc, words map[string]struct{}) error {
	// A row left by an interrupted rebuild or migration is replaced.
	for _, q := range []string{`DELETE FROM fts WHERE rowid = ?`, `DELETE FROM fts_head WHERE rowid = ?`, `DELETE FROM fts_words WHERE rowid = ?`,
		`DELETE FROM fts_text WHERE id = ?`, `DELETE FROM fts_fields WHERE id = ?`} {
		if _, err := tx.ExecContext(ctx, q, id); err != nil {
			return fmt.Errorf("insert text of content %d: %w", id, err)
		}
	}
	for _, ins := range []struct {
		query string
		args  []any
	}{
		{`INSERT INTO fts_text(id, hdr, body, mime) VALUES(?, ?, ?, ?)`, []any{id, d.Header, packText(d.Body), d.MIME}},
		{`INSERT INTO fts_fields(id, lines) VALUES(?, ?)`, []any{id, d.Fields}},
		{`INSERT INTO fts(rowid, body, mime) VALUES(?, ?, ?)`, []any{id, d.Body, d.MIME}},
		{`INSERT INTO fts_head(rowid, hdr, addr) VALUES(?, ?, ?)`, []any{id, d.Header, d.Fields}},
		{`INSERT INTO fts_words(rowid, body) VALUES(?, ?)`, []any{id, d.Body}},
	} {
		if _, err := tx.ExecContext(ctx, ins.query, ins.args...); err != nil {
			return fmt.Errorf("insert text of content %d: %w", id, err)
		}
	}
	if !utf8.Valid(d.Header) || !utf8.Valid(d.Fields) || !utf8.Valid(d.Body) || !utf8.Valid(d.MIME) || hasLongWord(d.Body) {
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO fts_weak(content_id) VALUES(?)`, id); err != nil {
			return fmt.Errorf("insert text of content %d: %w", id, err)
		}
		return nil // a weak row is never proven by its words
	}
	addWordTokens(words, d.Body)
	return nil
}

// addVocabulary records words in the word vocabulary (ftsVocabSchema),
// one statement for a batch of contents: most of a text's tokens are in
// its neighbours' too, and each is looked up once.
func addVocabulary(ctx context.Context, tx *sqlTx, words map[string]struct{}) error {
	if len(words) == 0 {
		return nil
	}
	b := make([]byte, 0, 16*len(words))
	b = append(b, '[')
	for w := range words {
		if len(b) > 1 {
			b = append(b, ',')
		}
		// A token holds only ASCII letters and digits and valid UTF-8
		// beyond ASCII: a JSON string as it is, between quotes.
		b = append(b, '"')
		b = append(b, w...)
		b = append(b, '"')
	}
	b = append(b, ']')
	if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO fts_vocab(term) SELECT value FROM json_each(?)`, string(b)); err != nil {
		return fmt.Errorf("record words in the vocabulary: %w", err)
	}
	return nil
}

// isWordByte reports whether FTS5's ascii tokenizer (fts_words) keeps b
// in a token: ASCII letters and digits, and every non-ASCII byte.
func isWordByte(b byte) bool {
	return b >= utf8.RuneSelf || 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9'
}

// maxWordToken is FTS5's FTS5_MAX_TOKEN_SIZE: it keeps at most this many
// bytes of a token, when it indexes a row and when it parses a query. A
// row with a longer token (a very long run of letters, digits or CJK
// text) is weak: "T" would also match rows whose tokens only share T's
// first bytes, and a needle past them would be in no term.
const maxWordToken = 32768

// hasLongWord reports whether text has a token of maxWordToken bytes or
// more (one FTS5 may have cut).
func hasLongWord(text []byte) bool {
	n := 0
	for _, b := range text {
		if !isWordByte(b) {
			n = 0
			continue
		}
		if n++; n >= maxWordToken {
			return true
		}
	}
	return false
}

// longWordRows returns the rows of fts_words, not weak, that hold a token
// FTS5 cut at maxWordToken bytes (schema 15's invariant: such rows are
// weak). It reads the term list of temp.fts_words_terms
// (ftsVocabBackfill[0]).
func longWordRows(ctx context.Context, tx *sqldb.Tx) ([]int64, error) {
	terms, err := queryStrings(ctx, tx, `SELECT term FROM temp.fts_words_terms WHERE length(CAST(term AS BLOB)) >= `+strconv.Itoa(maxWordToken))
	if err != nil {
		return nil, fmt.Errorf("long words: %w", err)
	}
	var ids []int64
	for _, t := range terms {
		got, err := queryIDs(ctx, tx, `SELECT rowid FROM fts_words WHERE fts_words MATCH ? AND rowid NOT IN (SELECT content_id FROM fts_weak)`, `"`+t+`"`)
		if err != nil {
			return nil, fmt.Errorf("long words: %w", err)
		}
		ids = append(ids, got...)
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

// markWeak adds contents to fts_weak.
func markWeak(ctx context.Context, tx *sqldb.Tx, ids []int64) error {
	for _, id := range ids {
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO fts_weak(content_id) VALUES(?)`, id); err != nil {
			return fmt.Errorf("mark content %d weak: %w", id, err)
		}
	}
	return nil
}

// addWordTokens adds to words the tokens of text as FTS5's ascii
// tokenizer makes them (maximal runs of word bytes, A-Z folded). text
// must be UTF-8; then so is every token, which starts and ends at an
// ASCII byte or an end of the text.
func addWordTokens(words map[string]struct{}, text []byte) {
	for i := 0; i < len(text); {
		if !isWordByte(text[i]) {
			i++
			continue
		}
		j := i
		for j < len(text) && isWordByte(text[j]) {
			j++
		}
		if _, known := words[string(text[i:j])]; !known { // no allocation for a known token
			words[foldASCIIUpper(text[i:j])] = struct{}{}
		}
		i = j
	}
}

// foldASCIIUpper returns t with A-Z folded to a-z, as the tokenizer does.
func foldASCIIUpper(t []byte) string {
	for _, c := range t {
		if 'A' <= c && c <= 'Z' {
			return strings.Map(func(r rune) rune {
				if 'A' <= r && r <= 'Z' {
					return r + 'a' - 'A'
				}
				return r
			}, string(t))
		}
	}
	return string(t)
}

var errTextTooLarge = errors.New("searchable text over the index limit")

// errLowDisk stops indexing while the disk is nearly full.
var errLowDisk = errors.New("disk nearly full: indexing waits")

// ftsDiskReserve is the free disk space the indexer leaves alone (plus
// four times the text of the batch it would write).
const ftsDiskReserve = 64 << 20

// extractText reads a queued content's body and returns its searchable
// text, as the SEARCH scan would decode it.
func (u *userDB) extractText(p *pendingContent) (doc search.Doc, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("extract text: panic: %v", r)
		}
	}()
	root, err := message.DecodeParts(p.parts)
	if err != nil {
		return doc, fmt.Errorf("extract text: %w", err)
	}
	if root == nil {
		return doc, errors.New("extract text: no part tree")
	}
	var r io.ReaderAt
	if p.inline != nil {
		r = bytes.NewReader(p.inline)
	} else {
		f, err := u.openBlobFile(p.blob, p.size, nil)
		if err != nil {
			return doc, fmt.Errorf("extract text: %w", err)
		}
		defer f.Close()
		r = f
	}
	doc, err = search.Extract(r, root, p.header)
	if err != nil {
		return doc, fmt.Errorf("extract text: %w", err)
	}
	if p.needPreview {
		p.preview = search.Preview(r, root)
	}
	if doc.Len() > maxIndexedText {
		return doc, errTextTooLarge
	}
	return doc, nil
}

// checkText verifies the full-text index (tern check): FTS5's own
// integrity check, every content indexed or queued, no index row
// without its content, and each row's text equal to what the message
// gives now. With repair, bad rows are dropped and their contents queued
// again (the caller drains the queue), orphans removed, and a damaged
// FTS5 structure rebuilt.
func (u *userDB) checkText(ctx context.Context, tx *sqldb.Tx, repair bool) ([]string, error) {
	var problems []string
	for _, t := range ftsIndexTables {
		if _, err := tx.ExecContext(ctx, `INSERT INTO `+t+`(`+t+`) VALUES('integrity-check')`); err != nil {
			problems = append(problems, fmt.Sprintf("full-text index %s damaged: %v", t, err))
			if repair {
				if err := refillIndex(ctx, tx, t); err != nil {
					return problems, err
				}
			}
		}
	}
	// dropRows reports ids with problem and, with repair, drops their
	// index rows and queues them again (dropText).
	dropRows := func(ids []int64, problem string) error {
		for _, id := range ids {
			problems = append(problems, fmt.Sprintf(problem, id))
			if repair {
				if err := dropText(ctx, tx, id); err != nil {
					return err
				}
			}
		}
		return nil
	}
	damaged, err := damagedText(ctx, tx)
	if err != nil {
		return problems, err
	}
	if err := dropRows(damaged, "full-text index row %d: stored text damaged"); err != nil {
		return problems, err
	}
	type rowCheck struct{ query, problem, fix string }
	var checks []rowCheck
	for _, t := range ftsIndexTables {
		checks = append(checks,
			rowCheck{`SELECT id FROM fts_text WHERE id NOT IN (SELECT rowid FROM ` + t + `)`,
				"full-text index row %d is missing from " + t, ftsRefill[t] + ftsRefillOne},
			rowCheck{`SELECT rowid FROM ` + t + ` WHERE rowid NOT IN (SELECT id FROM fts_text) AND rowid NOT IN (SELECT content_id FROM fts_gone)`,
				t + " row %d has no stored text", `DELETE FROM ` + t + ` WHERE rowid = ?`})
	}
	checks = append(checks,
		rowCheck{`SELECT id FROM fts_fields WHERE id NOT IN (SELECT id FROM fts_text)`,
			"field lines %d have no stored text", `DELETE FROM fts_fields WHERE id = ?`},
		rowCheck{`SELECT id FROM fts_text WHERE id NOT IN (SELECT id FROM contents) AND id NOT IN (SELECT content_id FROM fts_gone)`,
			"full-text index row %d has no content", `INSERT INTO fts_gone(content_id) VALUES(?)`},
		rowCheck{`SELECT content_id FROM fts_pending WHERE content_id NOT IN (SELECT id FROM contents)`,
			"index queue names content %d, which is gone", `DELETE FROM fts_pending WHERE content_id = ?`},
		rowCheck{`SELECT id FROM contents WHERE id NOT IN (SELECT id FROM fts_text) AND id NOT IN (SELECT content_id FROM fts_pending)`,
			"content %d is neither indexed nor queued", `INSERT OR IGNORE INTO fts_pending(content_id) VALUES(?)`})
	for _, c := range checks {
		ids, err := queryIDs(ctx, tx, c.query)
		if err != nil {
			return problems, err
		}
		for _, id := range ids {
			problems = append(problems, fmt.Sprintf(c.problem, id))
			if repair {
				if _, err := tx.ExecContext(ctx, c.fix, id); err != nil {
					return problems, err
				}
			}
		}
	}
	vp, err := checkVocab(ctx, tx, repair)
	problems = append(problems, vp...)
	if err != nil {
		return problems, err
	}
	stale, err := u.staleText(ctx, tx)
	if err != nil {
		return problems, err
	}
	if err := dropRows(stale, "full-text index row %d differs from its message"); err != nil {
		return problems, err
	}
	return problems, nil
}

// checkVocab verifies the word vocabulary (tern check): its trigram
// index matches its rows, and every token fts_words holds for a row that
// is not weak is in it (a weak row's tokens need not be). With repair,
// the trigram index is rebuilt and missing tokens are added.
func checkVocab(ctx context.Context, tx *sqldb.Tx, repair bool) ([]string, error) {
	var problems []string
	if _, err := tx.ExecContext(ctx, `INSERT INTO fts_vocab_tri(fts_vocab_tri, rank) VALUES('integrity-check', 1)`); err != nil {
		problems = append(problems, fmt.Sprintf("word vocabulary index damaged: %v", err))
		if repair {
			if _, err := tx.ExecContext(ctx, `INSERT INTO fts_vocab_tri(fts_vocab_tri) VALUES('rebuild')`); err != nil {
				return problems, fmt.Errorf("rebuild word vocabulary index: %w", err)
			}
		}
	}
	if _, err := tx.ExecContext(ctx, ftsVocabBackfill[0]); err != nil {
		return problems, fmt.Errorf("check word vocabulary: %w", err)
	}
	defer tx.ExecContext(context.WithoutCancel(ctx), ftsVocabBackfill[2])
	long, err := longWordRows(ctx, tx)
	if err != nil {
		return problems, fmt.Errorf("check word vocabulary: %w", err)
	}
	for _, id := range long {
		problems = append(problems, fmt.Sprintf("content %d holds a word longer than the index keeps and is not marked weak", id))
	}
	if repair {
		if err := markWeak(ctx, tx, long); err != nil {
			return problems, err
		}
	}
	missing, err := queryStrings(ctx, tx, `SELECT term FROM temp.fts_words_terms WHERE term NOT IN (SELECT term FROM fts_vocab)
		AND length(CAST(term AS BLOB)) < `+strconv.Itoa(maxWordToken))
	if err != nil {
		return problems, fmt.Errorf("check word vocabulary: %w", err)
	}
	for _, t := range missing {
		var n int
		err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM fts_words WHERE fts_words MATCH ? AND rowid NOT IN (SELECT content_id FROM fts_weak)`, `"`+t+`"`).Scan(&n)
		if err != nil {
			return problems, fmt.Errorf("check word vocabulary: %w", err)
		}
		if n > 0 {
			problems = append(problems, fmt.Sprintf("word %q of %d indexed contents is missing from the word vocabulary", t, n))
		}
	}
	if repair && len(problems) > len(long) {
		if _, err := tx.ExecContext(ctx, ftsVocabBackfill[1]); err != nil {
			return problems, fmt.Errorf("fill word vocabulary: %w", err)
		}
	}
	return problems, nil
}

// queryStrings returns the first column of query's rows.
func queryStrings(ctx context.Context, tx *sqldb.Tx, query string) ([]string, error) {
	rows, err := tx.QueryContext(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// refillSideIndex empties side index t (fts_head or fts_words) and fills
// damagedText returns the fts_text rows whose body does not decompress
// (unpackText). Searches that read such a row fail with an error; tern
// check reports it, and --repair drops it (dropText).
func damagedText(ctx context.Context, tx *sqldb.Tx) ([]int64, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id, body FROM fts_text WHERE body IS NOT NULL ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("check stored text: %w", err)
	}
	defer rows.Close()
	var damaged []int64
	for rows.Next() {
		var id int64
		var body []byte
		if err := rows.Scan(&id, &body); err != nil {
			return nil, fmt.Errorf("check stored text: %w", err)
		}
		if _, err := unpackText(body); err != nil {
			damaged = append(damaged, id)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("check stored text: %w", err)
	}
	return damaged, nil
}

// dropText removes content id's rows from the index and its stored text
// and queues the content to be indexed again.
func dropText(ctx context.Context, tx *sqldb.Tx, id int64) error {
	for _, q := range []string{`DELETE FROM fts WHERE rowid = ?`, `DELETE FROM fts_head WHERE rowid = ?`, `DELETE FROM fts_words WHERE rowid = ?`,
		`DELETE FROM fts_text WHERE id = ?`, `DELETE FROM fts_fields WHERE id = ?`, `INSERT OR REPLACE INTO fts_pending(content_id, state) VALUES(?, 0)`} {
		if _, err := tx.ExecContext(ctx, q, id); err != nil {
			return fmt.Errorf("drop text of content %d: %w", id, err)
		}
	}
	return nil
}

// refillIndex empties index table t (one of ftsIndexTables) and fills it
// again from the stored text.
func refillIndex(ctx context.Context, tx *sqldb.Tx, t string) error {
	for _, q := range []string{`INSERT INTO ` + t + `(` + t + `) VALUES('delete-all')`, ftsRefill[t]} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("rebuild %s: %w", t, err)
		}
	}
	return nil
}

// staleText returns the indexed contents whose stored text differs from
// their message's text extracted now (a message that cannot be read is
// left to the body checks).
func (u *userDB) staleText(ctx context.Context, tx *sqldb.Tx) ([]int64, error) {
	rows, err := tx.QueryContext(ctx, `SELECT c.id, c.blob, c.size, c.parts, c.header, b.data, `+inlineKind+`, f.hdr, `+addrOf+`, f.body, f.mime
		FROM fts_text f JOIN contents c ON c.id = f.id LEFT JOIN bodies b ON b.content_id = c.id ORDER BY c.id`)
	if err != nil {
		return nil, fmt.Errorf("check full-text index: %w", err)
	}
	defer rows.Close()
	var stale []int64
	for rows.Next() {
		var p pendingContent
		var got search.Doc
		var kind int
		if err := rows.Scan(&p.id, &p.blob, &p.size, &p.parts, &p.header, &p.inline, &kind, &got.Header, &got.Fields, &got.Body, &got.MIME); err != nil {
			return nil, fmt.Errorf("check full-text index: %w", err)
		}
		inline, err := wholeInline(p.inline, p.header, kind, p.size)
		if err != nil {
			continue // reported by the body check
		}
		if got.Body, err = unpackText(got.Body); err != nil {
			continue // reported by damagedText
		}
		p.inline = inline
		want, err := u.extractText(&p)
		if err != nil {
			continue // a body that cannot be read is reported by the body check
		}
		if !bytes.Equal(got.Header, want.Header) || !bytes.Equal(got.Fields, want.Fields) ||
			!bytes.Equal(got.Body, want.Body) || !bytes.Equal(got.MIME, want.MIME) {
			stale = append(stale, p.id)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("check full-text index: %w", err)
	}
	return stale, nil
}

// queryIDs runs a query returning one integer column.
func queryIDs(ctx context.Context, q querier, query string, args ...any) ([]int64, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("query ids: %w", err)
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("query ids: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query ids: %w", err)
	}
	return ids, nil
}
