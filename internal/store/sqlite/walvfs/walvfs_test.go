package walvfs

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/ncruces/go-sqlite3/vfs"

	"github.com/tern-imap/tern/internal/store/sqlite/sqldb"
	"github.com/tern-imap/tern/internal/store/sqlite/vfshook"
)

// logCounts is what reached the log files under Name's wrapping: the
// writes, and the syncs by their flags.
type logCounts struct {
	writes, commitSyncs, fullSyncs atomic.Int64
}

func (c *logCounts) counts() (writes, commitSyncs, fullSyncs int64) {
	return c.writes.Load(), c.commitSyncs.Load(), c.fullSyncs.Load()
}

// testVFS registers Name's wrapping around an os VFS whose logs are
// counted, under a name of its own, and returns the counts.
func testVFS(t *testing.T) (string, *logCounts) {
	t.Helper()
	c := &logCounts{}
	name := "walvfs-" + strings.ReplaceAll(t.Name(), "/", "-")
	vfs.Register(name, Wrap(vfshook.Wrap(vfs.Find(""), &vfshook.Hooks{
		Files:   vfs.OPEN_WAL,
		WriteAt: func([]byte, int64) error { c.writes.Add(1); return nil },
		Sync: func(flags vfs.SyncFlag) error {
			switch flags {
			case vfs.SYNC_NORMAL:
				c.commitSyncs.Add(1)
			case vfs.SYNC_FULL:
				c.fullSyncs.Add(1)
			}
			return nil
		},
	})))
	t.Cleanup(func() { vfs.Unregister(name) })
	return name, c
}

func openDB(t *testing.T, path, vfsName string, commitFsync bool) *sqldb.DB {
	t.Helper()
	fsync := "0"
	if commitFsync {
		fsync = "1"
	}
	dsn := "file:" + path + "?vfs=" + vfsName + "&" + CommitFsyncParam + "=" + fsync + "&_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)"
	for _, p := range Pragmas {
		dsn += "&_pragma=" + p
	}
	db, err := sqldb.Open(dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func exec(t *testing.T, db *sqldb.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.ExecContext(context.Background(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// insertMany commits one transaction that changes many pages.
func insertMany(t *testing.T, db *sqldb.DB, rows int) {
	t.Helper()
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range rows {
		if _, err := tx.ExecContext(ctx, `INSERT INTO t(v) VALUES(?)`, strings.Repeat(string(rune('a'+i%26)), 2000)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

func TestCommitWritesItsFramesAtOnce(t *testing.T) {
	name, c := testVFS(t)
	db := openDB(t, filepath.Join(t.TempDir(), "a.db"), name, true)
	exec(t, db, `CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)`)
	w0, s0, _ := c.counts()
	insertMany(t, db, 100) // about 50 pages of rows and more of the tree
	w1, s1, _ := c.counts()
	// SQLite writes each frame as two writes: over a hundred calls for
	// this transaction. Gathered, it is one.
	if w := w1 - w0; w != 1 {
		t.Errorf("one commit of about 50 pages made %d writes to the log, want 1", w)
	}
	if s := s1 - s0; s != 1 {
		t.Errorf("commit synced the log %d times, want 1 (commits are synced)", s)
	}
}

func TestCommitIsVisibleToOtherConnectionsAtOnce(t *testing.T) {
	name, _ := testVFS(t)
	path := filepath.Join(t.TempDir(), "a.db")
	writer := openDB(t, path, name, false)
	reader := openDB(t, path, Name, true) // another pool, other file handles
	exec(t, writer, `CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)`)
	for round := 1; round <= 5; round++ {
		insertMany(t, writer, 30)
		var n int
		var sum int64
		if err := reader.QueryRowContext(context.Background(), `SELECT count(*), sum(length(v)) FROM t`).Scan(&n, &sum); err != nil {
			t.Fatalf("round %d: reader: %v", round, err)
		}
		if n != 30*round || sum != int64(n)*2000 {
			t.Fatalf("round %d: reader sees %d rows of %d bytes, want %d", round, n, sum, 30*round)
		}
	}
}

func TestCommitsUnsyncedCheckpointsSynced(t *testing.T) {
	name, c := testVFS(t)
	db := openDB(t, filepath.Join(t.TempDir(), "a.db"), name, false)
	exec(t, db, `CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)`)
	_, commit0, full0 := c.counts()
	for range 10 {
		insertMany(t, db, 3)
	}
	_, commit1, full1 := c.counts()
	if commit1 != commit0 || full1 != full0 {
		t.Errorf("10 commits whose sync is off synced the log %d (commit) + %d (full) times, want 0", commit1-commit0, full1-full0)
	}
	exec(t, db, `PRAGMA wal_checkpoint(FULL)`)
	if _, _, full2 := c.counts(); full2 == full1 {
		t.Error("a checkpoint did not sync the log")
	}
}

// TestRolledBackFramesNeverLandOnCommittedOnes: a transaction larger
// than its page cache spills frames to the log before it ends; rolled
// back, those frames are garbage, and another connection then commits
// frames at the same offsets. Gathered and written only at the first
// connection's next use of its log (here, the close of its pool), the
// garbage overwrote the committed frames. They are written before the
// connection gives up the log's write lock.
func TestRolledBackFramesNeverLandOnCommittedOnes(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "a.db")
	a := openDB(t, path, Name, false)
	b := openDB(t, path, Name, false)
	exec(t, a, `CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)`)
	// An empty log: the rollback rereads its pages from the database
	// file, not from the log (a read of the log would write the gathered
	// bytes while the lock is still held).
	exec(t, a, `PRAGMA wal_checkpoint(TRUNCATE)`)
	// b's frames stay in the log, where readers read them (its automatic
	// checkpoint would copy them to the database file at once).
	exec(t, b, `PRAGMA wal_autocheckpoint = 0`)
	tx, err := a.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2000 { // 5 MB: more than the page cache holds
		if _, err := tx.ExecContext(ctx, `INSERT INTO t(v) VALUES(?)`, strings.Repeat(string(rune('a'+i%26)), 2500)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	insertMany(t, b, 4000)            // 8 MB of frames over the 6 MB a wrote and undid
	if err := a.Close(); err != nil { // a's connections close their logs
		t.Fatal(err)
	}
	c := openDB(t, path, Name, false)
	for _, db := range []*sqldb.DB{b, c} {
		var check string
		if err := db.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
			t.Fatalf("integrity_check: %.120q…, %v", check, err)
		}
		var n int
		var sum int64
		if err := db.QueryRowContext(ctx, `SELECT count(*), sum(length(v)) FROM t`).Scan(&n, &sum); err != nil {
			t.Fatal(err)
		}
		if n != 4000 || sum != 4000*2000 {
			t.Fatalf("after the rollback and the other commit: %d rows of %d bytes, want 4000 of 2000", n, sum)
		}
	}
}

// TestFailedWriteFailsTheLogForGood: once gathered bytes could not be
// written, every later call on the log fails, even when the file would
// take writes again: a commit must never follow frames that were lost.
func TestFailedWriteFailsTheLogForGood(t *testing.T) {
	f, _, err := vfs.Find("").(vfs.VFSFilename).OpenFilename(nil, vfs.OPEN_READWRITE|vfs.OPEN_CREATE|vfs.OPEN_DELETEONCLOSE)
	if err != nil {
		t.Fatal(err)
	}
	var fail bool
	under := vfshook.File(f, &vfshook.Hooks{WriteAt: func([]byte, int64) error {
		if fail {
			return syscall.ENOSPC
		}
		return nil
	}})
	l := wrapFile(under, vfs.OPEN_WAL, &dbFile{}, true).(*logFile)
	defer l.Close()
	if _, err := l.WriteAt(make([]byte, 4120), 32); err != nil {
		t.Fatal(err)
	}
	fail = true
	if err := l.Sync(vfs.SYNC_NORMAL); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("sync after a failed write: %v, want ENOSPC", err)
	}
	fail = false
	if _, err := l.WriteAt(make([]byte, 4120), 4152); err == nil {
		t.Error("a write after the failure succeeded")
	}
	if _, err := l.ReadAt(make([]byte, 10), 0); err == nil {
		t.Error("a read after the failure succeeded")
	}
	if err := l.Sync(vfs.SYNC_NORMAL); err == nil {
		t.Error("a sync after the failure succeeded")
	}
}

// TestCommitFailsWhenItsFramesCannotBeWritten: a commit whose frames
// cannot be written fails, even with synchronous=NORMAL (no sync to
// report it), and no other connection sees a torn log.
func TestCommitFailsWhenItsFramesCannotBeWritten(t *testing.T) {
	var fail atomic.Bool
	vfs.Register("walvfs-failing", Wrap(vfshook.Wrap(vfs.Find(""), &vfshook.Hooks{
		Files: vfs.OPEN_WAL,
		WriteAt: func([]byte, int64) error {
			if fail.Load() {
				return syscall.ENOSPC
			}
			return nil
		},
	})))
	t.Cleanup(func() { vfs.Unregister("walvfs-failing") })
	path := filepath.Join(t.TempDir(), "a.db")
	db, err := sqldb.Open("file:" + path + "?vfs=walvfs-failing&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	reader := openDB(t, path, Name, true)
	exec(t, db, `CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)`)
	fail.Store(true)
	_, err = db.ExecContext(context.Background(), `INSERT INTO t(v) VALUES('x')`)
	fail.Store(false)
	if err == nil {
		t.Fatal("a commit whose frames could not be written succeeded")
	}
	var n int
	var check string
	if err := reader.QueryRowContext(context.Background(), `SELECT count(*) FROM t`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("another connection: %d rows, %v; want 0", n, err)
	}
	if err := reader.QueryRowContext(context.Background(), `PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check: %.120q, %v", check, err)
	}
}

// TestDatabaseFileKeepsItsInterfaces: every optional interface of the os
// VFS's files that the engine looks for is still there on a dbFile (an
// upgrade of go-sqlite3 that adds one fails here), and a log whose
// database's file is unknown does not gather.
func TestDatabaseFileKeepsItsInterfaces(t *testing.T) {
	f, _, err := vfs.Find("").(vfs.VFSFilename).OpenFilename(nil, vfs.OPEN_READWRITE|vfs.OPEN_CREATE|vfs.OPEN_DELETEONCLOSE|vfs.OPEN_MAIN_DB)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d := wrapFile(f, vfs.OPEN_MAIN_DB, nil, true)
	for _, c := range []struct {
		name string
		is   func(vfs.File) bool
	}{
		{"FileLockState", func(x vfs.File) bool { _, ok := x.(vfs.FileLockState); return ok }},
		{"FilePersistWAL", func(x vfs.File) bool { _, ok := x.(vfs.FilePersistWAL); return ok }},
		{"FilePowersafeOverwrite", func(x vfs.File) bool { _, ok := x.(vfs.FilePowersafeOverwrite); return ok }},
		{"FileChunkSize", func(x vfs.File) bool { _, ok := x.(vfs.FileChunkSize); return ok }},
		{"FileSizeHint", func(x vfs.File) bool { _, ok := x.(vfs.FileSizeHint); return ok }},
		{"FileHasMoved", func(x vfs.File) bool { _, ok := x.(vfs.FileHasMoved); return ok }},
		{"FileOverwrite", func(x vfs.File) bool { _, ok := x.(vfs.FileOverwrite); return ok }},
		{"FileSync", func(x vfs.File) bool { _, ok := x.(vfs.FileSync); return ok }},
		{"FileCommitPhaseTwo", func(x vfs.File) bool { _, ok := x.(vfs.FileCommitPhaseTwo); return ok }},
		{"FileBatchAtomicWrite", func(x vfs.File) bool { _, ok := x.(vfs.FileBatchAtomicWrite); return ok }},
		{"FileCheckpoint", func(x vfs.File) bool { _, ok := x.(vfs.FileCheckpoint); return ok }},
		{"FilePragma", func(x vfs.File) bool { _, ok := x.(vfs.FilePragma); return ok }},
		{"FileBusyHandler", func(x vfs.File) bool { _, ok := x.(vfs.FileBusyHandler); return ok }},
		{"FileSharedMemory", func(x vfs.File) bool { _, ok := x.(vfs.FileSharedMemory); return ok }},
		{"FileMemoryMapper", func(x vfs.File) bool { _, ok := x.(vfs.FileMemoryMapper); return ok }},
	} {
		if c.is(f) && !c.is(d) {
			t.Errorf("the os VFS's file is a vfs.%s, a dbFile is not", c.name)
		}
	}
	if _, ok := wrapFile(f, vfs.OPEN_WAL, nil, false).(*plainLog); !ok {
		t.Error("a log without its database's file gathers its writes")
	}
}
