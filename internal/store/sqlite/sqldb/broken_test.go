package sqldb

import (
	"errors"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/ncruces/go-sqlite3"
	"github.com/ncruces/go-sqlite3/vfs"

	"github.com/tern-imap/tern/internal/store/sqlite/vfshook"
)

// TestIOErrorClosesConnection: a connection that had an I/O error is
// closed when given back, not kept idle and handed out again.
func TestIOErrorClosesConnection(t *testing.T) {
	var fail atomic.Bool
	vfs.Register("sqldb-failing", vfshook.Wrap(vfs.Find(""), &vfshook.Hooks{
		Files: vfs.OPEN_MAIN_DB,
		ReadAt: func([]byte, int64) error {
			if fail.Load() {
				return syscall.EIO
			}
			return nil
		},
	}))
	t.Cleanup(func() { vfs.Unregister("sqldb-failing") })
	db, _ := openTest(t, "&vfs=sqldb-failing&_pragma=journal_mode(DELETE)")
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM t`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("count %d, %v", n, err)
	}
	if got := db.OpenConnections(); got != 1 {
		t.Fatalf("%d connections open, want 1 (idle)", got)
	}
	fail.Store(true)
	// journal_mode DELETE: each read transaction reads the file's header.
	err := db.QueryRow(`SELECT count(*) FROM t WHERE v > (SELECT count(*) FROM sqlite_schema)`).Scan(&n)
	fail.Store(false)
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
