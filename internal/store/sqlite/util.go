package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/tern-imap/tern/internal/durable"
	"github.com/tern-imap/tern/internal/runs"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/sqlite/sqldb"
)

const userSchema = `
CREATE TABLE IF NOT EXISTS meta(
	key TEXT PRIMARY KEY,
	value INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS mailboxes(
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	name TEXT NOT NULL UNIQUE,
	uidvalidity INTEGER NOT NULL,
	uidnext INTEGER NOT NULL DEFAULT 1,
	highestmodseq INTEGER NOT NULL DEFAULT 1,
	recent_mark INTEGER NOT NULL DEFAULT 0,
	special_use TEXT NOT NULL DEFAULT '',
	noselect INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS keywords(
	folded TEXT PRIMARY KEY,
	name TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS mailbox_keywords(
	mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
	folded TEXT NOT NULL,
	PRIMARY KEY(mailbox_id, folded)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS contents(
	id INTEGER PRIMARY KEY,
	blob TEXT NOT NULL UNIQUE,
	size INTEGER NOT NULL,
	email_id TEXT NOT NULL,
	thread_id TEXT NOT NULL,
	sent_date INTEGER,
	sent_tz INTEGER,
	envelope BLOB,
	body BLOB,
	bodystructure BLOB,
	parts BLOB,
	header BLOB,
	preview TEXT
);
` + contentRefsTable + bodiesTable + `
CREATE INDEX IF NOT EXISTS content_refs_unref ON content_refs(content_id) WHERE refs <= 0;
CREATE TABLE IF NOT EXISTS messages(
	mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
	uid INTEGER NOT NULL,
	modseq INTEGER NOT NULL,
	sysflags INTEGER NOT NULL DEFAULT 0,
	keywords TEXT NOT NULL DEFAULT '',
	content_id INTEGER NOT NULL REFERENCES contents(id),
	size INTEGER NOT NULL,
	internal_date INTEGER NOT NULL,
	internal_tz INTEGER NOT NULL,
	save_date INTEGER NOT NULL,
	PRIMARY KEY(mailbox_id, uid)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS messages_modseq ON messages(mailbox_id, modseq);
CREATE INDEX IF NOT EXISTS messages_content ON messages(content_id);
-- The \Deleted messages of each mailbox, which EXPUNGE removes: found
-- without reading the mailbox's other messages (schema version 21).
CREATE INDEX IF NOT EXISTS messages_deleted ON messages(mailbox_id, uid) WHERE (sysflags & 8) != 0;
-- Expunged UIDs, kept forever for QRESYNC, as ranges: one expunge of many
-- consecutive UIDs is one row.
CREATE TABLE IF NOT EXISTS expunged(
	mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
	uid_lo INTEGER NOT NULL,
	uid_hi INTEGER NOT NULL,
	modseq INTEGER NOT NULL,
	PRIMARY KEY(mailbox_id, uid_lo)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS expunged_modseq ON expunged(mailbox_id, modseq);
-- The first UID each modseq allocated (append, copy, move). UIDs and
-- modseqs both ascend, so this tells which UIDs existed at any modseq:
-- QRESYNC never reports a UID the client could not have known.
CREATE TABLE IF NOT EXISTS uid_log(
	mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
	modseq INTEGER NOT NULL,
	uid_first INTEGER NOT NULL,
	PRIMARY KEY(mailbox_id, modseq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS subscriptions(
	name TEXT PRIMARY KEY
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS messages_ref AFTER INSERT ON messages BEGIN
	UPDATE content_refs SET refs = refs + 1 WHERE content_id = NEW.content_id;
END;
CREATE TRIGGER IF NOT EXISTS messages_unref AFTER DELETE ON messages BEGIN
	UPDATE content_refs SET refs = refs - 1 WHERE content_id = OLD.content_id;
END;
`

// bodiesTable keeps the bytes of small message bodies in the database
// (Options.InlineBodyMax): a content with a row here has no file, its blob
// name is only a unique name. Larger bodies stay in files under blobs/,
// which the kernel can copy to a socket (sendfile). Added in schema
// version 4; bodies stored before stay files. With split = 1 (schema
// version 6) data is the message after its top-level header, which is
// contents.header: the header is stored once, not twice. With split's
// bit 2 set (bodyCompressed, schema version 16) data is S2-compressed
// (packInline).
const bodiesTable = `
CREATE TABLE IF NOT EXISTS bodies(
	content_id INTEGER PRIMARY KEY REFERENCES contents(id) ON DELETE CASCADE,
	data BLOB NOT NULL,
	split INTEGER NOT NULL DEFAULT 0
);
`

// contentRefsTable counts how many messages use each content, in a table
// of its own: contents rows are large (envelope, structure, header), and
// SQLite rewrites a whole row to change one column, so a counter there
// made every COPY and EXPUNGE rewrite each message's stored structure.
// (Databases from before schema version 3 keep an unused contents.refs.)
const contentRefsTable = `
CREATE TABLE IF NOT EXISTS content_refs(
	content_id INTEGER PRIMARY KEY REFERENCES contents(id) ON DELETE CASCADE,
	refs INTEGER NOT NULL
);`

// querier is what *sqldb.DB, *sqldb.Tx, *sqldb.Conn and *sqlTx have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sqldb.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sqldb.Row
}

// collectRows runs query on q and returns its rows, each read by scan,
// with the rows closed: the caller may then write through the same
// transaction.
func collectRows[T any](ctx context.Context, q querier, scan func(*sqldb.Rows, *T) error, query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var v T
		if err := scan(rows, &v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, rows.Close()
}

// --- UID sets ---

type uidRange struct{ lo, hi uint32 }

// toRanges sorts and dedups uids into ranges.
func toRanges(uids []uint32) []uidRange {
	var rs []uidRange
	for lo, hi := range runs.Of(runs.Sorted(uids)) {
		rs = append(rs, uidRange{lo, hi})
	}
	return rs
}

// uidMatch returns, for a SELECT over messages m whose mailbox id is
// parameter ?1, a FROM prefix and a condition on m.uid that match the UID
// ranges rs (at least one), with their arguments, which are parameters ?2
// on. It has two shapes, whatever rs holds, so the statements stay few in
// the statement cache, and both search the primary key range by range: one
// range is "m.uid BETWEEN ?2 AND ?3"; more are a join with json_each over
// the ranges in ascending order, each packed into one 64-bit integer
// lo<<32|hi (negative when lo >= 1<<31: SQLite's integers are signed).
func uidMatch(rs []uidRange) (from, cond string, args []any) {
	if len(rs) == 1 {
		return "", "m.uid BETWEEN ?2 AND ?3", []any{rs[0].lo, rs[0].hi}
	}
	b := make([]byte, 0, 12*len(rs)+2)
	b = append(b, '[')
	for i, r := range rs {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(uint64(r.lo)<<32|uint64(r.hi)), 10)
	}
	b = append(b, ']')
	return "json_each(?2) AS r CROSS JOIN ", "m.uid BETWEEN ((r.value >> 32) & 4294967295) AND (r.value & 4294967295)", []any{string(b)}
}

// uidIn returns a condition on column col matching exactly the UIDs in rs
// (at least one range), for UPDATE and DELETE, with its arguments, which
// are parameters ?first on: "col BETWEEN ?first AND ?first+1" for one
// range, else "col IN" the UIDs as a JSON array.
func uidIn(col string, rs []uidRange, first int) (cond string, args []any) {
	p := "?" + strconv.Itoa(first)
	if len(rs) == 1 {
		return col + " BETWEEN " + p + " AND ?" + strconv.Itoa(first+1), []any{rs[0].lo, rs[0].hi}
	}
	b := []byte{'['}
	for _, r := range rs {
		for u := uint64(r.lo); u <= uint64(r.hi); u++ {
			if len(b) > 1 {
				b = append(b, ',')
			}
			b = strconv.AppendUint(b, u, 10)
		}
	}
	b = append(b, ']')
	return col + " IN (SELECT value FROM json_each(" + p + "))", []any{string(b)}
}

// --- blobs ---

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// blobPath is where blob name lives: blobs/<first two hex digits>/<name>.
func (u *userDB) blobPath(name string) string {
	return filepath.Join(u.dir, "blobs", name[:2], name)
}

// writeBlobFile writes body as the new file path under blobs/xx,
// creating blobs/xx the first time one of its files is written (and
// syncing blobs/ so the new directory is durable). Created on demand:
// making all 256 at a user's first large message was 12 % of the
// server's CPU under imaptest's default profile, whose 100 new users
// each made 256 directories for a few files.
func (u *userDB) writeBlobFile(path string, body []byte) error {
	if !u.blobsSynced.Load() {
		if err := syncDir(filepath.Dir(filepath.Dir(path))); err != nil {
			return err
		}
		u.blobsSynced.Store(true)
	}
	err := durable.WriteNew(path, body)
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	if err := syncDir(filepath.Dir(dir)); err != nil {
		return err
	}
	return durable.WriteNew(path, body)
}

// writeBlobs gives every body a new random blob name and writes the
// bodies larger than inlineMax as files under it (packed where that
// saves space: packed.go), durably (file created,
// written, fsynced, directory fsynced); smaller ones go into the database
// with their content row (bodiesTable). No temporary name and rename are
// needed: nothing refers to a body file until the row naming it commits,
// so a file cut short by a crash is only an unreferenced file, which
// `tern check --repair` removes.
func (u *userDB) writeBlobs(bodies [][]byte, inlineMax int) (names []string, err error) {
	defer func() {
		if err != nil {
			u.removeBlobs(names)
			names = nil
		}
	}()
	var files []string
	for _, body := range bodies {
		name := randomHex(16)
		if len(body) <= inlineMax {
			names = append(names, name)
			continue
		}
		if packed := u.pack(body); packed != nil {
			name, body = name+packedSuffix, packed
		}
		path := u.blobPath(name)
		if err := u.writeBlobFile(path, body); err != nil {
			return names, fmt.Errorf("write blob: %w", err)
		}
		names = append(names, name)
		files = append(files, name)
	}
	return names, u.syncBlobDirs(files)
}

func (u *userDB) removeBlobs(names []string) []error {
	var errs []error
	for _, n := range names {
		if err := os.Remove(u.blobPath(n)); err != nil && !os.IsNotExist(err) {
			errs = append(errs, err)
		}
	}
	return errs
}

// syncLog makes every commit written so far durable by syncing the
// write-ahead log (durable.SyncData): under FsyncOptimized a lazy commit is in the log but
// maybe not on disk. A log that is gone was checkpointed into mail.db,
// which the checkpoint synced.
func (u *userDB) syncLog() error {
	if testSyncLog != nil {
		testSyncLog()
	}
	f, err := os.OpenFile(filepath.Join(u.dir, "mail.db-wal"), os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	defer f.Close()
	if err := durable.SyncData(f); err != nil {
		return fmt.Errorf("sync log: %w", err)
	}
	return nil
}

// testSyncLog, if set (tests only), is called by syncLog first.
var testSyncLog func()

// testSyncDir, if set (tests only), is called by syncDir instead of
// syncing.
var testSyncDir func(dir string) error

// syncDir makes dir's entries (files created or renamed in it) durable.
func syncDir(dir string) error {
	if testSyncDir != nil {
		return testSyncDir(dir)
	}
	return durable.SyncDir(dir)
}

// splitBody is a body kept in mail.db as its stored header (contents.header)
// and the rest (bodies.data), read as one message without copying the two
// together.
type splitBody struct {
	head, rest, parts []byte
	buf               *bodyBuffer // rest's array, reused after Close; nil if none
}

func (b *splitBody) Size() int64   { return int64(len(b.head) + len(b.rest)) }
func (b *splitBody) Parts() []byte { return b.parts }

// Close hands rest's array back for reuse; the body reads nothing after.
func (b *splitBody) Close() error {
	if b.buf != nil {
		b.buf.release()
		b.buf, b.head, b.rest = nil, nil, nil
	}
	return nil
}
func (b *splitBody) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("splitBody.ReadAt: negative offset")
	}
	if off >= b.Size() {
		return 0, io.EOF
	}
	n := 0
	if off < int64(len(b.head)) {
		n = copy(p, b.head[off:])
	}
	if rest := off + int64(n) - int64(len(b.head)); n < len(p) && rest < int64(len(b.rest)) {
		n += copy(p[n:], b.rest[rest:])
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// blobFile is an open message body kept in a file.
type blobFile struct {
	*os.File
	size  int64
	parts []byte
}

func (b *blobFile) Size() int64   { return b.size }
func (b *blobFile) Parts() []byte { return b.parts }

// OSFile is the open body file, for copies the kernel can do (sendfile).
func (b *blobFile) OSFile() *os.File { return b.File }

// openBlobFile opens the body file of blob name, of size bytes: a
// packed file re-encodes its base64 as it is read (packed.go).
func (u *userDB) openBlobFile(name string, size int64, parts []byte) (store.Body, error) {
	path := u.blobPath(name)
	if isPacked(name) {
		p, err := openPacked(path)
		if err != nil {
			return nil, err
		}
		if p.size != size {
			p.Close()
			return nil, fmt.Errorf("%s: holds %d bytes, want %d: %w", path, p.size, size, errBadPacked)
		}
		p.parts = parts
		return p, nil
	}
	f, err := openBodyFile(path)
	if err != nil {
		return nil, err
	}
	return &blobFile{File: f, size: size, parts: parts}, nil
}
