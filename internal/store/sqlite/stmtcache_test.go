package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/tern-imap/tern/internal/store"
)

func testCache(t *testing.T, max int) *stmtCache {
	t.Helper()
	db, err := sql.Open("sqlite", dsn(filepath.Join(t.TempDir(), "c.db")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TABLE t(k INTEGER PRIMARY KEY, v INTEGER)`); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if _, err := db.Exec(`INSERT INTO t VALUES(?, ?)`, i, i*i); err != nil {
			t.Fatal(err)
		}
	}
	c := newStmtCache(db)
	c.max = max
	t.Cleanup(c.Close)
	return c
}

// query i has its own text.
func nthQuery(i int) string { return fmt.Sprintf(`SELECT v + %d FROM t WHERE k = ?`, i) }

func TestStmtCacheLRU(t *testing.T) {
	ctx := context.Background()
	c := testCache(t, 3)
	get := func(i int) {
		t.Helper()
		var v int
		if err := c.QueryRowContext(ctx, nthQuery(i), 3).Scan(&v); err != nil || v != 9+i {
			t.Fatalf("query %d: %d, %v", i, v, err)
		}
	}
	for i := range 3 {
		get(i)
	}
	get(0) // 0 is now the most recent: 1 goes first
	get(3)
	if c.len() != 3 {
		t.Fatalf("%d statements cached, want 3", c.len())
	}
	c.mu.Lock()
	_, has0 := c.stmts[nthQuery(0)]
	_, has1 := c.stmts[nthQuery(1)]
	c.mu.Unlock()
	if !has0 || has1 {
		t.Fatalf("after LRU eviction: query 0 cached %v, query 1 cached %v", has0, has1)
	}
	for i := range 100 {
		get(i)
	}
	if c.len() != 3 {
		t.Fatalf("%d statements cached, want 3", c.len())
	}
}

// TestStmtCacheEvictInUse: a statement evicted while its rows are open, or
// while a transaction uses it, keeps working until they are done.
func TestStmtCacheEvictInUse(t *testing.T) {
	ctx := context.Background()
	c := testCache(t, 2)
	rows, err := c.QueryContext(ctx, `SELECT k FROM t ORDER BY k`)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		var v int
		if err := c.QueryRowContext(ctx, nthQuery(i), 2).Scan(&v); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for rows.Next() {
		n++
	}
	if err := rows.Err(); err != nil || n != 10 {
		t.Fatalf("rows of an evicted statement: %d, %v", n, err)
	}
	rows.Close()

	tx, err := c.begin(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	const upd = `UPDATE t SET v = v + 1 WHERE k = ?`
	if _, err := tx.ExecContext(ctx, upd, 1); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		var v int
		if err := c.QueryRowContext(ctx, nthQuery(i), 2).Scan(&v); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tx.ExecContext(ctx, upd, 1); err != nil {
		t.Fatalf("transaction statement after eviction: %v", err)
	}
	var v int
	if err := tx.QueryRowContext(ctx, `SELECT v FROM t WHERE k = ?`, 1).Scan(&v); err != nil || v != 3 {
		t.Fatalf("in transaction: v = %d, %v", v, err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// TestStmtCacheConcurrent: many goroutines on a tiny cache (run with -race).
func TestStmtCacheConcurrent(t *testing.T) {
	ctx := context.Background()
	c := testCache(t, 4)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				q := nthQuery((g + i) % 7)
				var v int
				if err := c.QueryRowContext(ctx, q, 4).Scan(&v); err != nil || v != 16+(g+i)%7 {
					errs <- fmt.Errorf("%s: %d, %v", q, v, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if c.len() > 4 {
		t.Fatalf("%d statements cached, want at most 4", c.len())
	}
}

// TestStmtCacheClosed: after Close queries still run, unprepared.
func TestStmtCacheClosed(t *testing.T) {
	ctx := context.Background()
	c := testCache(t, 4)
	var v int
	if err := c.QueryRowContext(ctx, nthQuery(1), 2).Scan(&v); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := c.QueryRowContext(ctx, nthQuery(1), 2).Scan(&v); err != nil || v != 5 {
		t.Fatalf("after Close: %d, %v", v, err)
	}
	if c.len() != 0 {
		t.Fatalf("%d statements cached after Close", c.len())
	}
}

// TestScanConnectionsMapped: a user's scan connections read mail.db
// through a memory map of scanMmapSize (SQLite silently ignores a size it
// was built without), and the everyday connections read without one.
func TestScanConnectionsMapped(t *testing.T) {
	_, a := reopenedAfter(t)
	u := a.(*account).u
	for _, c := range []struct {
		name string
		q    querier
		want int64
	}{{"scan", u.scan, scanMmapSize}, {"everyday", u.q, 0}} {
		var n int64
		if err := c.q.QueryRowContext(context.Background(), `PRAGMA mmap_size`).Scan(&n); err != nil || n != c.want {
			t.Errorf("%s connections: mmap_size = %d, %v; want %d", c.name, n, err, c.want)
		}
	}
}

// TestFetchScansOnScanConnections: a Fetch of one batch reads on the
// everyday connections; a Fetch of more than one batch reads on the scan
// connections (the only way they get a connection).
func TestFetchScansOnScanConnections(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir(), nil)
	t.Cleanup(func() { s.Close() })
	a := newUser(t, s)
	msgs := make([]store.NewMessage, fetchBatch+10)
	for i := range msgs {
		msgs[i] = store.NewMessage{Body: []byte(fmt.Sprintf("Subject: %d\r\n\r\nbody\r\n", i))}
	}
	if _, err := a.Append(ctx, "INBOX", msgs); err != nil {
		t.Fatal(err)
	}
	info, err := a.Mailbox(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	fetch := func(n int) {
		t.Helper()
		uids := make([]uint32, n)
		for i := range uids {
			uids[i] = uint32(i + 1)
		}
		got := 0
		if err := a.Fetch(ctx, info.ID, uids, store.WantHeader, func(*store.Message) error { got++; return nil }); err != nil || got != n {
			t.Fatalf("Fetch of %d: %d messages, %v", n, got, err)
		}
	}
	fetch(fetchBatch)
	if n := a.u.scan.db.Stats().OpenConnections; n != 0 {
		t.Fatalf("a Fetch of one batch opened %d scan connections", n)
	}
	fetch(fetchBatch + 10)
	if n := a.u.scan.db.Stats().OpenConnections; n == 0 {
		t.Fatal("a Fetch of two batches opened no scan connection")
	}
}
