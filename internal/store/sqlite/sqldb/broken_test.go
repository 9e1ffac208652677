package sqldb

import (
	"errors"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/ncruces/go-sqlite3"
	"github.com/ncruces/go-sqlite3/vfs"
)

// failingVFS is the os VFS whose main database files fail every read
// while fail is set.
type failingVFS struct {
	vfs.VFS
	fail atomic.Bool
}

func (v *failingVFS) OpenFilename(name *vfs.Filename, flags vfs.OpenFlag) (vfs.File, vfs.OpenFlag, error) {
	f, flags, err := v.VFS.(vfs.VFSFilename).OpenFilename(name, flags)
	if err != nil || flags&vfs.OPEN_MAIN_DB == 0 {
		return f, flags, err
	}
	return &failingFile{File: f, v: v}, flags, nil
}

type failingFile struct {
	vfs.File
	v *failingVFS
}

func (f *failingFile) ReadAt(p []byte, off int64) (int, error) {
	if f.v.fail.Load() {
		return 0, syscall.EIO
	}
	return f.File.ReadAt(p, off)
}

// TestIOErrorClosesConnection: a connection that had an I/O error is
// closed when given back, not kept idle and handed out again.
func TestIOErrorClosesConnection(t *testing.T) {
	v := &failingVFS{VFS: vfs.Find("")}
	vfs.Register("sqldb-failing", v)
	t.Cleanup(func() { vfs.Unregister("sqldb-failing") })
	db, _ := openTest(t, "&vfs=sqldb-failing&_pragma=journal_mode(DELETE)")
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM t`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("count %d, %v", n, err)
	}
	if got := db.OpenConnections(); got != 1 {
		t.Fatalf("%d connections open, want 1 (idle)", got)
	}
	v.fail.Store(true)
	// journal_mode DELETE and no cache after a change of the file: read it.
	err := db.QueryRow(`SELECT count(*) FROM t WHERE v > (SELECT count(*) FROM sqlite_schema)`).Scan(&n)
	v.fail.Store(false)
	if !errors.Is(err, sqlite3.IOERR) {
		t.Fatalf("read through a failing file: %v, want an I/O error", err)
	}
	if got := db.OpenConnections(); got != 0 {
		t.Fatalf("%d connections open after an I/O error, want 0 (closed)", got)
	}
	if err := db.QueryRow(`SELECT count(*) FROM t`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("a new connection: count %d, %v", n, err)
	}
}
