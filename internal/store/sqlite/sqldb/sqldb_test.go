package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ncruces/go-sqlite3"
)

func openTest(t *testing.T, params string) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "t.db")
	db, err := Open("file:" + path + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(2000)" + params)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TABLE t(k INTEGER PRIMARY KEY, v INTEGER, s TEXT, b BLOB);
		INSERT INTO t(k, v, s, b) VALUES(?, ?, ?, ?), (?, NULL, NULL, NULL)`, 1, 10, "ten", []byte{1, 0, 2}, 2); err != nil {
		t.Fatal(err)
	}
	return db, path
}

// TestOpenParams: _pragma runs on every connection, other URI parameters
// reach SQLite (mode=ro), and a bad _txlock is refused.
func TestOpenParams(t *testing.T) {
	db, path := openTest(t, "")
	var mode string
	var timeout int
	if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode %q, %v", mode, err)
	}
	if err := db.QueryRow(`PRAGMA busy_timeout`).Scan(&timeout); err != nil || timeout != 2000 {
		t.Fatalf("busy_timeout %d, %v", timeout, err)
	}
	ro, err := Open("file:" + path + "?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	_, err = ro.Exec(`DELETE FROM t`)
	var coded interface{ Code() int }
	if !errors.Is(err, sqlite3.READONLY) || !errors.As(err, &coded) || coded.Code()&0xff != 8 {
		t.Fatalf("write through mode=ro: %v, want SQLITE_READONLY (8)", err)
	}
	if _, err := Open("file:x?_txlock=sometimes"); err == nil {
		t.Fatal("_txlock=sometimes accepted")
	}
}

// TestScanTypes: what each destination type receives, NULL included.
func TestScanTypes(t *testing.T) {
	db, _ := openTest(t, "")
	type uid uint32
	type name string
	var (
		v    int64
		u    uid
		n    name
		s    string
		b    []byte
		raw  sql.RawBytes
		ok   bool
		anyv any
		ni   sql.NullInt64
		ns   sql.NullString
	)
	rows, err := db.Query(`SELECT v, v, s, s, b, b, v, v, v, s FROM t WHERE k = 1`)
	if err != nil {
		t.Fatal(err)
	}
	if !rows.Next() {
		t.Fatal("no row", rows.Err())
	}
	if err := rows.Scan(&v, &u, &n, &s, &b, &raw, &ok, &anyv, &ni, &ns); err != nil {
		t.Fatal(err)
	}
	if v != 10 || u != 10 || n != "ten" || s != "ten" || string(b) != "\x01\x00\x02" || string(raw) != "\x01\x00\x02" ||
		!ok || anyv != int64(10) || ni != (sql.NullInt64{Int64: 10, Valid: true}) || ns != (sql.NullString{String: "ten", Valid: true}) {
		t.Fatalf("scanned %v %v %q %q %v %v %v %v %v %v", v, u, n, s, b, raw, ok, anyv, ni, ns)
	}
	rows.Close()

	if err := db.QueryRow(`SELECT v, s, b FROM t WHERE k = 2`).Scan(&ni, &ns, &b); err != nil || ni.Valid || ns.Valid || b != nil {
		t.Fatalf("NULLs: %v %v %v, %v", ni, ns, b, err)
	}
	if err := db.QueryRow(`SELECT v FROM t WHERE k = 2`).Scan(&v); err == nil {
		t.Fatal("NULL scanned into int64 without an error")
	}
	if err := db.QueryRow(`SELECT v FROM t WHERE k = 3`).Scan(&v); err != sql.ErrNoRows {
		t.Fatalf("no row: %v", err)
	}
	if err := db.QueryRow(`SELECT v, s FROM t WHERE k = 1`).Scan(&v); err == nil {
		t.Fatal("two columns scanned into one destination")
	}
	if _, err := db.Exec(`UPDATE t SET v = ? WHERE k = ?`, 1); err == nil {
		t.Fatal("a missing argument went unnoticed")
	}
}

// TestScanBuffer: a Buffer takes a BLOB or TEXT column into its own
// array while it is large enough (one array for many reads), grows it
// when not, and reports a NULL as empty with Null set.
func TestScanBuffer(t *testing.T) {
	db, _ := openTest(t, "")
	buf := Buffer{B: make([]byte, 0, 16)}
	array := &buf.B[:1][0]
	if err := db.QueryRow(`SELECT b FROM t WHERE k = 1`).Scan(&buf); err != nil || string(buf.B) != "\x01\x00\x02" || buf.Null {
		t.Fatalf("BLOB: %q null=%v, %v", buf.B, buf.Null, err)
	}
	if &buf.B[0] != array {
		t.Fatal("BLOB read into a new array, not the buffer's")
	}
	if err := db.QueryRow(`SELECT s FROM t WHERE k = 1`).Scan(&buf); err != nil || string(buf.B) != "ten" || buf.Null || &buf.B[0] != array {
		t.Fatalf("TEXT: %q null=%v, %v", buf.B, buf.Null, err)
	}
	if err := db.QueryRow(`SELECT b FROM t WHERE k = 2`).Scan(&buf); err != nil || len(buf.B) != 0 || !buf.Null {
		t.Fatalf("NULL: %q null=%v, %v", buf.B, buf.Null, err)
	}
	long := string(make([]byte, 100))
	if err := db.QueryRow(`SELECT ?`, long).Scan(&buf); err != nil || string(buf.B) != long || buf.Null {
		t.Fatalf("longer than the array: %d bytes null=%v, %v", len(buf.B), buf.Null, err)
	}
}

// TestBindTypes: named types, nil slices and Valuers bind by what they are.
func TestBindTypes(t *testing.T) {
	db, _ := openTest(t, "")
	type uid uint32
	var nilBytes []byte
	var got string
	if err := db.QueryRow(`SELECT typeof(?) || typeof(?) || typeof(?) || typeof(?) || typeof(?) || typeof(?)`,
		uid(7), nilBytes, []byte{}, sql.NullInt64{}, true, 1.5).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != "integer"+"null"+"blob"+"null"+"integer"+"real" {
		t.Fatalf("types bound: %s", got)
	}
	if _, err := db.Exec(`SELECT ?`, struct{}{}); err == nil {
		t.Fatal("a struct was bound")
	}
}

// TestStatementsPrepared: a connection prepares a query text once, keeps
// at most maxStmts, and a query run inside the loop over its own rows
// gets a statement of its own.
func TestStatementsPrepared(t *testing.T) {
	db, _ := openTest(t, "")
	db.SetMaxOpenConns(1)
	ctx := context.Background()
	cn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer cn.Close()
	count := func() (n int) {
		for range cn.Raw().Stmts() {
			n++
		}
		return n
	}
	const q = `SELECT k FROM t ORDER BY k`
	before := count()
	for range 5 {
		var k int
		if err := cn.QueryRowContext(ctx, q).Scan(&k); err != nil || k != 1 {
			t.Fatalf("%d, %v", k, err)
		}
	}
	if n := count() - before; n != 1 {
		t.Fatalf("%d statements prepared for one query text run 5 times", n)
	}
	rows, err := cn.QueryContext(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	var outer []int
	for rows.Next() {
		var k, inner int
		if err := rows.Scan(&k); err != nil {
			t.Fatal(err)
		}
		outer = append(outer, k)
		if err := cn.QueryRowContext(ctx, q).Scan(&inner); err != nil || inner != 1 {
			t.Fatalf("inner query: %d, %v", inner, err)
		}
	}
	if fmt.Sprint(outer) != "[1 2]" || rows.Err() != nil {
		t.Fatalf("outer rows %v, %v", outer, rows.Err())
	}
	for i := range maxStmts + 50 {
		if _, err := cn.ExecContext(ctx, fmt.Sprintf(`SELECT %d`, i)); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(); n > maxStmts {
		t.Fatalf("%d statements kept, more than %d", n, maxStmts)
	}
}

// TestTx: commit, rollback, rows left open, ErrTxDone, and a read-only
// transaction not taking the write lock under _txlock=immediate.
func TestTx(t *testing.T) {
	db, _ := openTest(t, "&_txlock=immediate")
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`UPDATE t SET v = 11 WHERE k = 1`); err != nil {
		t.Fatal(err)
	}
	rows, err := tx.Query(`SELECT k FROM t`)
	if err != nil {
		t.Fatal(err)
	}
	rows.Next() // left open: Commit closes it
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if rows.Next() {
		t.Fatal("rows still open after Commit")
	}
	if err := tx.Rollback(); err != sql.ErrTxDone {
		t.Fatalf("Rollback after Commit: %v", err)
	}
	if _, err := tx.Exec(`SELECT 1`); err != sql.ErrTxDone {
		t.Fatalf("Exec after Commit: %v", err)
	}

	tx, err = db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Another writer waits for the write lock taken at BEGIN IMMEDIATE
	// (before any write); a read-only transaction does not.
	other, err := Open(db.name + "?_pragma=busy_timeout(50)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.BeginTx(ctx, nil); !errors.Is(err, sqlite3.BUSY) {
		t.Fatalf("second writer: %v, want BUSY", err)
	}
	if _, err := tx.Exec(`UPDATE t SET v = 12 WHERE k = 1`); err != nil {
		t.Fatal(err)
	}
	ro, err := other.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only transaction beside a writer: %v", err)
	}
	var v int
	if err := ro.QueryRow(`SELECT v FROM t WHERE k = 1`).Scan(&v); err != nil || v != 11 {
		t.Fatalf("read-only transaction reads %d, %v; want the committed 11", v, err)
	}
	ro.Rollback()
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`SELECT v FROM t WHERE k = 1`).Scan(&v); err != nil || v != 11 {
		t.Fatalf("after rollback v = %d, %v", v, err)
	}
}

// TestInterrupt: a cancelled context stops a running statement with the
// context's error, and the connection works afterwards.
func TestInterrupt(t *testing.T) {
	db, _ := openTest(t, "")
	db.SetMaxOpenConns(1)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	var n int64
	err := db.QueryRowContext(ctx, `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c`).Scan(&n)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("endless query: %v", err)
	}
	if _, err := db.ExecContext(ctx, `SELECT 1`); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("call with a done context: %v", err)
	}
	if err := db.QueryRow(`SELECT count(*) FROM t`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("after the interrupt: %d, %v", n, err)
	}
}

// TestPool: idle connections are bounded, a connection left in a
// transaction is not reused, and many goroutines share the pool (-race).
func TestPool(t *testing.T) {
	db, _ := openTest(t, "")
	db.SetMaxIdleConns(2)
	ctx := context.Background()
	var conns []*Conn
	for range 4 {
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	if n := db.OpenConnections(); n != 4 {
		t.Fatalf("%d connections open, want 4", n)
	}
	if _, err := conns[0].ExecContext(ctx, `BEGIN`); err != nil {
		t.Fatal(err)
	}
	for _, c := range conns {
		c.Close()
	}
	if n := db.OpenConnections(); n != 2 {
		t.Fatalf("%d connections open after giving 4 back, want the 2 idle", n)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				var v int
				if err := db.QueryRowContext(ctx, `SELECT ? + v FROM t WHERE k = 1`, g*i).Scan(&v); err != nil || v != 10+g*i {
					errs <- fmt.Errorf("goroutine %d: %d, %v", g, v, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestDiskFullIsENOSPC: a write that fills the file system fails with an
// error that says so (syscall.ENOSPC), not only with SQLite's I/O error.
// Needs a small tmpfs (root); skipped otherwise.
func TestDiskFullIsENOSPC(t *testing.T) {
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root): %v", err)
	}
	defer syscall.Unmount(mnt, syscall.MNT_DETACH)
	db, err := Open("file:" + filepath.Join(mnt, "t.db") + "?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE t(b BLOB)`); err != nil {
		t.Fatal(err)
	}
	for range 1000 {
		_, err := db.Exec(`INSERT INTO t VALUES(randomblob(10000))`)
		if err == nil {
			continue
		}
		if !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("write on a full disk: %v, not ENOSPC", err)
		}
		return
	}
	t.Fatal("1 MiB took 10 MB")
}

// TestConnAndLockWait: a Conn after Close refuses work, closing it rolls
// back its open transaction, a wait for the write lock ends with the
// context's error when the context is done, and Row.Scan refuses
// RawBytes (they would outlive the row).
func TestConnAndLockWait(t *testing.T) {
	db, _ := openTest(t, "&_txlock=immediate")
	ctx := context.Background()
	cn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := cn.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`DELETE FROM t`); err != nil {
		t.Fatal(err)
	}
	// Another pool's writer waits for the lock until its context ends.
	other, err := Open(db.name + "?_pragma=busy_timeout(5000)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := other.BeginTx(short, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("writer waiting past its context: %v", err)
	}
	if err := cn.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := cn.ExecContext(ctx, `SELECT 1`); err != sql.ErrConnDone {
		t.Fatalf("Exec after Close: %v", err)
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM t`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("after closing a Conn with an open transaction: %d rows, %v; want its DELETE undone", n, err)
	}
	var raw sql.RawBytes
	if err := db.QueryRow(`SELECT b FROM t WHERE k = 1`).Scan(&raw); err == nil {
		t.Fatal("Row.Scan took RawBytes")
	}
}
