package sqlite

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/tern-imap/tern/internal/store"
)

// TestScanConnectionsMapped: a user's scan connections ask for a memory
// map of scanMmapSize, and the everyday connections for none (that the
// map is made: TestFetchScansOnScanConnections).
func TestScanConnectionsMapped(t *testing.T) {
	_, a := reopenedAfter(t)
	u := a.(*account).u
	for _, c := range []struct {
		name string
		q    querier
		want int64
	}{{"scan", u.scan, scanMmapSize}, {"everyday", u.db, 0}} {
		var n int64
		if err := c.q.QueryRowContext(context.Background(), `PRAGMA mmap_size`).Scan(&n); err != nil || n != c.want {
			t.Errorf("%s connections: mmap_size = %d, %v; want %d", c.name, n, err, c.want)
		}
	}
}

// TestFetchScansOnScanConnections: a Fetch of one batch reads on the
// everyday connections; a Fetch of more than one batch reads on the scan
// connections (the only way they get a connection), through a memory map
// of mail.db (on Linux, seen in /proc/self/maps).
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
	if n := a.u.scan.OpenConnections(); n != 0 {
		t.Fatalf("a Fetch of one batch opened %d scan connections", n)
	}
	// Pages still in the write-ahead log are read from there, not mapped.
	if _, err := a.u.db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	fetch(fetchBatch + 10)
	if n := a.u.scan.OpenConnections(); n == 0 {
		t.Fatal("a Fetch of two batches opened no scan connection")
	}
	if mapped, seen := mailDBMapped(t, a.u); seen && !mapped {
		t.Errorf("the scan did not map %s", filepath.Join(a.u.dir, "mail.db"))
	}
}

// mailDBMapped reports whether this process has u's mail.db memory-mapped,
// as /proc/self/maps shows it; seen is false where there is none (not
// Linux).
func mailDBMapped(t *testing.T, u *userDB) (mapped, seen bool) {
	t.Helper()
	if runtime.GOOS != "linux" {
		return false, false
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains(string(maps), " "+filepath.Join(u.dir, "mail.db")+"\n"), true
}
