package walvfs

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ncruces/go-sqlite3/vfs"

	"github.com/tern-imap/tern/internal/store/sqlite/sqldb"
)

// countingVFS is the os VFS recording what reaches the log files: the
// writes, and the syncs by their flags.
type countingVFS struct {
	vfs.VFS
	mu     sync.Mutex
	writes int
	syncs  map[vfs.SyncFlag]int
}

func (c *countingVFS) OpenFilename(name *vfs.Filename, flags vfs.OpenFlag) (vfs.File, vfs.OpenFlag, error) {
	f, flags, err := c.VFS.(vfs.VFSFilename).OpenFilename(name, flags)
	if err != nil || flags&vfs.OPEN_WAL == 0 {
		return f, flags, err
	}
	return &countingFile{File: f, c: c}, flags, nil
}

type countingFile struct {
	vfs.File
	c *countingVFS
}

func (f *countingFile) WriteAt(p []byte, off int64) (int, error) {
	f.c.mu.Lock()
	f.c.writes++
	f.c.mu.Unlock()
	return f.File.WriteAt(p, off)
}

func (f *countingFile) Sync(flags vfs.SyncFlag) error {
	f.c.mu.Lock()
	f.c.syncs[flags]++
	f.c.mu.Unlock()
	return f.File.Sync(flags)
}

func (c *countingVFS) counts() (writes, commitSyncs, fullSyncs int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writes, c.syncs[vfs.SYNC_NORMAL], c.syncs[vfs.SYNC_FULL]
}

// testVFS registers Name's wrapping around a counting os VFS under a name
// of its own, and returns the counter.
func testVFS(t *testing.T) (string, *countingVFS) {
	t.Helper()
	c := &countingVFS{VFS: vfs.Find(""), syncs: map[vfs.SyncFlag]int{}}
	name := "walvfs-" + strings.ReplaceAll(t.Name(), "/", "-")
	vfs.Register(name, Wrap(c))
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
