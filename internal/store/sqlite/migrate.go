package sqlite

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/tern-imap/tern/internal/search"
	"github.com/tern-imap/tern/internal/store/sqlite/sqldb"
)

// userSchemaVersion is stored in each mail.db as PRAGMA user_version.
// Version 19 changes no table: from it on, body files may be packed
// (packed.go), which an older tern would serve as they are stored.
// Version 20 adds the index fts_pending_state (the schema statements
// create it; fts.go), from which SEARCH lists the indexing queue.
// Version 21 adds the partial index messages_deleted (util.go), from
// which EXPUNGE finds the \Deleted messages.
const userSchemaVersion = 21

// migrateUserDB brings a mail.db written by an older tern up to date and
// reports whether it already was (then the schema statements need not
// run). It runs before the schema statements, which only create what is
// missing.
//
// Version 0 -> 1: expunge tombstones went from one row per UID to UID
// ranges (uid_lo, uid_hi). Old rows become one-UID ranges; the uid_log that
// lets QRESYNC leave out UIDs a client never saw starts empty, so for
// expunges recorded before the upgrade VANISHED (EARLIER) may also name
// UIDs that came and went while the client was away (harmless to clients,
// RFC 7162 §3.2.5.1).
func migrateUserDB(ctx context.Context, db *sqldb.DB) (upToDate bool, err error) {
	var version int
	if err := db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&version); err != nil {
		return false, fmt.Errorf("read schema version: %w", err)
	}
	if version > userSchemaVersion {
		return false, fmt.Errorf("mail.db has schema version %d, newer than this tern knows (%d): %w", version, userSchemaVersion, errNewerSchema)
	}
	if version == userSchemaVersion {
		return true, nil
	}
	return false, migrateSteps(ctx, db, version)
}

// migrateSteps runs the migrations of migrateUserDB in one transaction.
// Each inspects the layout before it changes anything, so running them
// again (after a crash before the version was recorded) is harmless. The
// version is recorded by setUserSchemaVersion once the schema statements
// have run. version is the one recorded before.
func migrateSteps(ctx context.Context, db *sqldb.DB, version int) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate schema: %w", err)
	}
	defer tx.Rollback()
	var oldLayout int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM pragma_table_info('expunged') WHERE name = 'uid'`).Scan(&oldLayout); err != nil {
		return fmt.Errorf("migrate schema: inspect expunged: %w", err)
	}
	if oldLayout > 0 {
		for _, q := range []string{
			`CREATE TABLE expunged_v1(
				mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
				uid_lo INTEGER NOT NULL,
				uid_hi INTEGER NOT NULL,
				modseq INTEGER NOT NULL,
				PRIMARY KEY(mailbox_id, uid_lo)
			) WITHOUT ROWID`,
			`INSERT INTO expunged_v1(mailbox_id, uid_lo, uid_hi, modseq) SELECT mailbox_id, uid, uid, modseq FROM expunged`,
			`DROP TABLE expunged`,
			`ALTER TABLE expunged_v1 RENAME TO expunged`,
		} {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("migrate schema: tombstones to ranges: %w", err)
			}
		}
	}
	// Version 1 -> 2: contents.header keeps the raw top-level header for
	// SEARCH. Older messages have none and are searched from their files.
	var hasContents, hasHeader int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM pragma_table_info('contents')`).Scan(&hasContents); err != nil {
		return fmt.Errorf("migrate schema: inspect contents: %w", err)
	}
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM pragma_table_info('contents') WHERE name = 'header'`).Scan(&hasHeader); err != nil {
		return fmt.Errorf("migrate schema: inspect contents: %w", err)
	}
	if hasContents > 0 && hasHeader == 0 {
		if _, err := tx.ExecContext(ctx, `ALTER TABLE contents ADD COLUMN header BLOB`); err != nil {
			return fmt.Errorf("migrate schema: add contents.header: %w", err)
		}
	}
	// fts_fields (version 17) is read by the refill of fts_head below
	// (addrOf); it is filled by the step to 17.
	if hasContents > 0 {
		if _, err := tx.ExecContext(ctx, ftsFieldsTable); err != nil {
			return fmt.Errorf("migrate schema: create fts_fields: %w", err)
		}
	}
	// Version 2 -> 3: reference counts move from contents.refs to the
	// narrow content_refs table (see contentRefsTable), recounted from the
	// messages; the old triggers and index go (the schema makes the new
	// ones), the old column stays unused.
	var hasRefs int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND name = 'content_refs'`).Scan(&hasRefs); err != nil {
		return fmt.Errorf("migrate schema: inspect content_refs: %w", err)
	}
	if hasContents > 0 && hasRefs == 0 {
		for _, q := range []string{
			contentRefsTable,
			`INSERT INTO content_refs(content_id, refs)
				SELECT c.id, (SELECT COUNT(*) FROM messages m WHERE m.content_id = c.id) FROM contents c`,
			`DROP TRIGGER IF EXISTS messages_ref`,
			`DROP TRIGGER IF EXISTS messages_unref`,
			`DROP INDEX IF EXISTS contents_unref`,
		} {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("migrate schema: reference counts to content_refs: %w", err)
			}
		}
	}
	// Version 3 -> 4: small bodies may be kept in the bodies table, which
	// the schema statements create; existing bodies stay files.
	// Version 4 -> 5: annotations (METADATA) get the metadata table and
	// its trigger (metadataSchema), which the schema statements create;
	// there is nothing to convert.
	// Version 5 -> 6: bodies.split marks bodies kept without their header
	// (bodiesTable); the rows stored before keep the whole message.
	var hasBodies, hasSplit int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM pragma_table_info('bodies')`).Scan(&hasBodies); err != nil {
		return fmt.Errorf("migrate schema: inspect bodies: %w", err)
	}
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM pragma_table_info('bodies') WHERE name = 'split'`).Scan(&hasSplit); err != nil {
		return fmt.Errorf("migrate schema: inspect bodies: %w", err)
	}
	if hasBodies > 0 && hasSplit == 0 {
		if _, err := tx.ExecContext(ctx, `ALTER TABLE bodies ADD COLUMN split INTEGER NOT NULL DEFAULT 0`); err != nil {
			return fmt.Errorf("migrate schema: add bodies.split: %w", err)
		}
	}
	// Version 6 -> 7: the full-text index (ftsSchema) and
	// contents.preview; every existing
	// content goes into its queue, which the indexer drains in the
	// background (until then SEARCH reads those messages).
	var hasFTS int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_schema WHERE name = 'fts_pending'`).Scan(&hasFTS); err != nil {
		return fmt.Errorf("migrate schema: inspect fts_pending: %w", err)
	}
	// contents.preview (FETCH PREVIEW) is filled by the indexer as it
	// goes through the queue.
	var hasPreview int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM pragma_table_info('contents') WHERE name = 'preview'`).Scan(&hasPreview); err != nil {
		return fmt.Errorf("migrate schema: inspect contents: %w", err)
	}
	if hasContents > 0 && hasPreview == 0 {
		if _, err := tx.ExecContext(ctx, `ALTER TABLE contents ADD COLUMN preview TEXT`); err != nil {
			return fmt.Errorf("migrate schema: add contents.preview: %w", err)
		}
	}
	if hasContents > 0 && hasFTS == 0 {
		for _, q := range []string{ftsSchemaV15, queueBackfill} {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("migrate schema: full-text index queue: %w", err)
			}
		}
	}
	// Version 7 -> 8: Sieve scripts (ManageSieve) get the sieve_scripts
	// table and its one-active index (sieveSchema), which the schema
	// statements create; there is nothing to convert.
	// Version 8 -> 9: access control lists (ACL) get the acl table, its
	// index and trigger (aclSchema), which the schema statements create;
	// existing mailboxes start with empty ACLs (only their owner).
	// Version 9 -> 10: Sieve action state (vacation replies sent,
	// duplicate ids seen) gets the sieve_state table and its index
	// (sieveStateSchema), which the schema statements create; it starts
	// empty.
	// Version 10 -> 11: the \Seen of users other than the owner on shared
	// mailboxes gets the private_seen table and its index
	// (privateSeenSchema), which the schema statements create; until now
	// \Seen was one flag for everyone, which stays the owner's.
	// Version 11 -> 12: the side indexes of the full-text index
	// (ftsSideSchema: fts_head, the header columns' trigrams; fts_words,
	// the body's words), filled from the text fts already stores.
	var hasSide int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_schema WHERE name = 'fts_words'`).Scan(&hasSide); err != nil {
		return fmt.Errorf("migrate schema: inspect fts_words: %w", err)
	}
	var hasFTSContent int // fts keeps its text (before version 16)
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_schema WHERE name = 'fts_content'`).Scan(&hasFTSContent); err != nil {
		return fmt.Errorf("migrate schema: inspect fts: %w", err)
	}
	if hasContents > 0 && hasSide == 0 {
		fill := ftsSideBackfill
		if hasFTSContent == 0 {
			fill = []string{ftsRefill["fts_head"], ftsRefill["fts_words"]}
		}
		for _, q := range append([]string{ftsSideSchema}, fill...) {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("migrate schema: full-text side indexes: %w", err)
			}
		}
	}
	// Version 12 -> 13: index rows of deleted contents are removed by the
	// indexer (fts_gone, see ftsGoneSchema) instead of in the deleting
	// transaction. The old delete triggers go; the schema statements
	// create fts_gone and the two new triggers.
	for _, q := range []string{`DROP TRIGGER IF EXISTS contents_fts_gone`, `DROP TRIGGER IF EXISTS contents_fts_side_gone`} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("migrate schema: drop the old index delete triggers: %w", err)
		}
	}
	// Version 13 -> 14: fts no longer indexes the header columns, whose
	// trigrams fts_head holds (ftsSchema); rebuilt from its own text.
	var ftsSQL string
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE((SELECT sql FROM sqlite_schema WHERE name = 'fts'), '')`).Scan(&ftsSQL); err != nil {
		return fmt.Errorf("migrate schema: inspect fts: %w", err)
	}
	if hasFTSContent > 0 && !strings.Contains(ftsSQL, "hdr UNINDEXED") {
		for _, q := range ftsHeaderUnindexed {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("migrate schema: full-text index without header columns: %w", err)
			}
		}
	}
	// Version 14 -> 15: the word vocabulary (ftsVocabSchema), filled from
	// the tokens fts_words already holds.
	var hasVocab int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_schema WHERE name = 'fts_vocab'`).Scan(&hasVocab); err != nil {
		return fmt.Errorf("migrate schema: inspect fts_vocab: %w", err)
	}
	if hasVocab == 0 && hasContents > 0 {
		if err := migrateVocabulary(ctx, tx); err != nil {
			return fmt.Errorf("migrate schema: word vocabulary: %w", err)
		}
	}
	// Version 15 -> 16: bodies.split gains the bodyCompressed bit (bodies
	// stored before stay uncompressed), and fts's text moves out of FTS5
	// into fts_text, its body column compressed; fts becomes contentless,
	// indexed again from that text. From this version on a tern refuses
	// a mail.db newer than it knows; a tern before it still opens one of
	// version 16, and its reads of compressed bodies and of the moved
	// text fail with errors.
	if hasFTSContent > 0 {
		if err := migrateTextTable(ctx, tx); err != nil {
			return fmt.Errorf("migrate schema: full-text index text to fts_text: %w", err)
		}
	}
	// Version 16 -> 17: the address lines move from fts_text.addr (left
	// NULL) to the narrow fts_fields, and gain each address field's value
	// beside its normalized addresses and the Subject (search.Doc.Fields),
	// so FROM..BCC and SUBJECT are decided field by field; rebuilt from
	// the stored headers. The
	// fts_head rows stay: the old text's trigrams are still a superset of
	// what the new lines hold. The trigger that drops a reused content's
	// rows is made again by the schema statements, naming fts_fields.
	if version < 17 && hasContents > 0 {
		if err := migrateFieldLines(ctx, tx); err != nil {
			return fmt.Errorf("migrate schema: field lines: %w", err)
		}
	}
	// Version 17 -> 18: the indexing queue keeps a new content's field
	// lines (fts_pending.lines, written by Append), so FROM..BCC and
	// SUBJECT decide queued messages without reading their headers. Rows
	// queued before stay without (NULL: read as before).
	if hasContents > 0 {
		if err := addPendingLines(ctx, tx); err != nil {
			return fmt.Errorf("migrate schema: fts_pending.lines: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate schema: %w", err)
	}
	return nil
}

// addPendingLines adds fts_pending.lines (schema version 18) to a queue
// that lacks it.
func addPendingLines(ctx context.Context, tx *sqldb.Tx) error {
	var columns, hasLines int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(name = 'lines'), 0) FROM pragma_table_info('fts_pending')`).Scan(&columns, &hasLines); err != nil {
		return err
	}
	if columns == 0 || hasLines > 0 {
		return nil
	}
	_, err := tx.ExecContext(ctx, `ALTER TABLE fts_pending ADD COLUMN lines BLOB`)
	return err
}

// errNewerSchema is returned for a mail.db written by a newer tern.
var errNewerSchema = errors.New("upgrade tern")

// setUserSchemaVersion records that a mail.db has the current schema.
func setUserSchemaVersion(ctx context.Context, db *sqldb.DB) error {
	if _, err := db.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, userSchemaVersion)); err != nil {
		return fmt.Errorf("record schema version: %w", err)
	}
	return nil
}

// migrateVocabulary creates the word vocabulary (schema 15) and fills it
// from fts_words' term list; rows holding a token FTS5 cut (longWordRows)
// become weak first.
func migrateVocabulary(ctx context.Context, tx *sqldb.Tx) error {
	for _, q := range []string{ftsVocabSchema, ftsVocabBackfill[0]} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	long, err := longWordRows(ctx, tx)
	if err != nil {
		return err
	}
	if err := markWeak(ctx, tx, long); err != nil {
		return err
	}
	for _, q := range ftsVocabBackfill[1:] {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

// migrateTextTable moves the text FTS5 kept for fts (fts_content: id,
// c0..c3 in ftsColumns order) to fts_text, batch by batch with each body
// packed, and replaces fts by the contentless index (schema version 16),
// filled from fts_text. The triggers naming fts go first; the schema
// statements create them again.
func migrateTextTable(ctx context.Context, tx *sqldb.Tx) error {
	for _, q := range []string{`DROP TRIGGER IF EXISTS contents_fts_deferred`, `DROP TRIGGER IF EXISTS contents_fts_reused`, ftsTextTable} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	for last := int64(-1); ; {
		n, err := copyTextBatch(ctx, tx, &last)
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
	}
	for _, q := range []string{`DROP TABLE fts`, ftsIndexTable, ftsRefill["fts"]} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

// migrateFieldLines writes every fts_text row's field lines to
// fts_fields from its content's stored header (search.FieldLines) and
// clears fts_text.addr; a content indexed without a stored header (from
// before schema version 2) is queued to be indexed again.
func migrateFieldLines(ctx context.Context, tx *sqldb.Tx) error {
	for _, q := range []string{`DROP TRIGGER IF EXISTS contents_fts_reused`} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	type row struct {
		id     int64
		live   bool
		header []byte
	}
	for last := int64(-1); ; {
		batch, err := collectRows(ctx, tx, func(rows *sqldb.Rows, r *row) error { return rows.Scan(&r.id, &r.live, &r.header) },
			`SELECT f.id, c.id IS NOT NULL, c.header FROM fts_text f LEFT JOIN contents c ON c.id = f.id WHERE f.id > ? ORDER BY f.id LIMIT ?`, last, textBatch)
		if err != nil || len(batch) == 0 {
			return err
		}
		for _, r := range batch {
			last = r.id
			lines, ok := fieldLines(r.header)
			switch {
			case !r.live: // gone: the indexer drops it (fts_gone)
			case !ok:
				err = dropText(ctx, tx, r.id)
			default:
				_, err = tx.ExecContext(ctx, `INSERT OR REPLACE INTO fts_fields(id, lines) VALUES(?, ?)`, r.id, lines)
			}
			if err == nil && r.live && ok {
				_, err = tx.ExecContext(ctx, `UPDATE fts_text SET addr = NULL WHERE id = ?`, r.id)
			}
			if err != nil {
				return err
			}
		}
	}
}

// fieldLines is search.FieldLines of a stored header; false when there
// is none or it cannot be decoded (the indexer's extraction, which
// guards against panics the same way, then decides).
func fieldLines(header []byte) (lines []byte, ok bool) {
	if header == nil {
		return nil, false
	}
	defer func() {
		if recover() != nil {
			lines, ok = nil, false
		}
	}()
	return search.FieldLines(header), true
}

// textBatch is how many rows copyTextBatch copies at once.
const textBatch = 256

// copyTextBatch copies the fts_content rows after *last (at most
// textBatch) to fts_text, advancing *last, and reports how many.
func copyTextBatch(ctx context.Context, tx *sqldb.Tx, last *int64) (int, error) {
	type row struct {
		id                    int64
		hdr, addr, body, mime []byte
	}
	batch, err := collectRows(ctx, tx, func(rows *sqldb.Rows, r *row) error { return rows.Scan(&r.id, &r.hdr, &r.addr, &r.body, &r.mime) },
		`SELECT id, c0, c1, c2, c3 FROM fts_content WHERE id > ? ORDER BY id LIMIT ?`, *last, textBatch)
	if err != nil {
		return 0, err
	}
	for _, r := range batch {
		if _, err := tx.ExecContext(ctx, `INSERT INTO fts_text(id, hdr, addr, body, mime) VALUES(?, ?, ?, ?, ?)`,
			r.id, r.hdr, r.addr, packText(r.body), r.mime); err != nil {
			return 0, err
		}
		*last = r.id
	}
	return len(batch), nil
}
