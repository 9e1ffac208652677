package sqlite

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/tern-imap/tern/internal/store/sqlite/sqldb"
)

// Compaction gives a user's free pages back to the file system (tern
// check --compact), after compressing the bodies kept in mail.db before
// schema version 16 (packBodies) and packing the body files stored
// before schema version 19 (packStoredFiles). SQLite reuses the pages of deleted rows but never
// shrinks the file by itself: the migration to schema 14 rebuilt the
// full-text table and left the old one's pages free (mail.db grew from
// 1.34 to 1.97 GB per 100,000 messages, docs/PERFORMANCE.md), as does
// expunging much mail. VACUUM rewrites the file without them; in WAL
// mode the new pages go through the log, so the file shrinks at the
// checkpoint after it.

// Compacted is what compacting one user's mail.db did: the bytes of
// mail.db and its write-ahead log before and after, and the body files
// stored before schema version 19 that it packed (packed.go) and the
// bytes that saved.
type Compacted struct {
	User          string
	Before, After int64
	FilesPacked   int
	FilesSaved    int64
}

// Compact rewrites user's mail.db without its free pages (VACUUM), with
// the log checkpointed before and after, and reports its size before and
// after. Other processes' writes of the user wait meanwhile
// (writers.lock); the whole file is rewritten, so a server should be
// stopped (it waits for the writer lock only writerWait).
func (s *Store) Compact(ctx context.Context, user string) (Compacted, error) {
	id, err := s.userID(ctx, user)
	if err != nil {
		return Compacted{}, fmt.Errorf("compact: %w", err)
	}
	u, err := s.acquireID(ctx, id, user)
	if err != nil {
		return Compacted{}, fmt.Errorf("compact: %w", err)
	}
	defer s.release(u)
	res := Compacted{User: user}
	if res.Before, err = u.dbBytes(); err != nil {
		return res, fmt.Errorf("compact %q: %w", user, err)
	}
	if res.FilesPacked, res.FilesSaved, err = u.vacuum(ctx); err != nil {
		return res, fmt.Errorf("compact %q: %w", user, err)
	}
	if res.After, err = u.dbBytes(); err != nil {
		return res, fmt.Errorf("compact %q: %w", user, err)
	}
	return res, nil
}

// vacuum runs VACUUM on u's mail.db between two TRUNCATE checkpoints,
// holding u's write lock, with no background checkpoint running, and
// (outside the server) writers.lock exclusively; it fails unless the
// file has no free page left.
func (u *userDB) vacuum(ctx context.Context) (filesPacked int, filesSaved int64, err error) {
	u.wmu.Lock()
	defer u.wmu.Unlock()
	u.checkpoints.Wait() // started under wmu only: none starts now
	release, err := u.beginWriters()
	if err != nil {
		return 0, 0, err
	}
	defer release()
	conn, err := u.db.Conn(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("vacuum: %w", err)
	}
	defer conn.Close()
	if err := truncateLog(ctx, conn); err != nil {
		return 0, 0, fmt.Errorf("before vacuum: %w", err)
	}
	if err := packBodies(ctx, conn); err != nil {
		return 0, 0, fmt.Errorf("before vacuum: %w", err)
	}
	filesPacked, filesSaved, err = u.packStoredFiles(ctx, conn)
	if err != nil {
		return filesPacked, filesSaved, fmt.Errorf("before vacuum: %w", err)
	}
	if _, err := conn.ExecContext(ctx, `VACUUM`); err != nil {
		return filesPacked, filesSaved, fmt.Errorf("vacuum: %w", err)
	}
	if err := truncateLog(ctx, conn); err != nil {
		return filesPacked, filesSaved, fmt.Errorf("after vacuum: %w", err)
	}
	u.walFrames.Store(0)
	u.sinceCheckpoint.Store(0)
	var free int64
	if err := conn.QueryRowContext(ctx, `PRAGMA freelist_count`).Scan(&free); err != nil {
		return filesPacked, filesSaved, fmt.Errorf("after vacuum: %w", err)
	}
	if free != 0 {
		return filesPacked, filesSaved, fmt.Errorf("after vacuum: %d free pages left", free)
	}
	return filesPacked, filesSaved, nil
}

// packBodies compresses the bodies rows kept uncompressed (stored before
// schema version 16) where that pays (packInline), a batch of textBatch
// rows per transaction on conn, so that compaction gives their pages back
// too.
func packBodies(ctx context.Context, conn *sqldb.Conn) error {
	for last := int64(-1); ; {
		n, err := packBodyBatch(ctx, conn, &last)
		if err != nil {
			return fmt.Errorf("compress bodies: %w", err)
		}
		if n == 0 {
			return nil
		}
	}
}

// packBodyBatch compresses the uncompressed bodies rows after content
// id *last (at most textBatch), advancing *last, and reports how many it
// looked at.
func packBodyBatch(ctx context.Context, conn *sqldb.Conn, last *int64) (int, error) {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	type row struct {
		id   int64
		data []byte
	}
	batch, err := collectRows(ctx, tx, func(rows *sqldb.Rows, r *row) error { return rows.Scan(&r.id, &r.data) },
		`SELECT content_id, data FROM bodies WHERE split & ? = 0 AND content_id > ? ORDER BY content_id LIMIT ?`,
		bodyCompressed, *last, textBatch)
	if err != nil {
		return 0, err
	}
	for _, r := range batch {
		*last = r.id
		packed, flag := packInline(r.data)
		if flag == 0 {
			continue
		}
		if _, err := tx.ExecContext(ctx, `UPDATE bodies SET data = ?, split = split | ? WHERE content_id = ?`, packed, flag, r.id); err != nil {
			return 0, err
		}
	}
	return len(batch), tx.Commit()
}

// truncateLog copies the whole write-ahead log into the database and
// empties it (PRAGMA wal_checkpoint(TRUNCATE)); it fails if a reader or
// writer kept it from finishing.
func truncateLog(ctx context.Context, conn *sqldb.Conn) error {
	var busy, logFrames, copied int
	if err := conn.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logFrames, &copied); err != nil {
		return fmt.Errorf("wal checkpoint: %w", err)
	}
	if busy != 0 {
		return errors.New("wal checkpoint: the log is in use by another connection (is the server running?)")
	}
	return nil
}

// dbBytes returns the size of u's mail.db plus its write-ahead log.
func (u *userDB) dbBytes() (int64, error) {
	var n int64
	for _, name := range []string{"mail.db", "mail.db-wal"} {
		fi, err := os.Stat(filepath.Join(u.dir, name))
		if errors.Is(err, fs.ErrNotExist) && name != "mail.db" {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("size of %s: %w", name, err)
		}
		n += fi.Size()
	}
	return n, nil
}
