package server_test

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/sqlite/sqldb"
)

// TestSlowFetchDoesNotPinWAL: a client that sends a large FETCH and reads
// nothing blocks the server on the socket; meanwhile no read transaction
// of that FETCH may stay open, so a checkpoint of the user's WAL from
// another connection completes (wal_checkpoint(TRUNCATE) reports busy=0).
func TestSlowFetchDoesNotPinWAL(t *testing.T) {
	needSQLite(t)
	ctx := context.Background()
	dir := t.TempDir()
	// No background text indexer: indexing the 300 new messages takes read
	// transactions of its own, which would hold the checkpoint too.
	ts := newTestServer(t, serverOpts{insecureAuth: true, dataDir: dir, noTextIndexer: true})
	ts.addUser("alice", "secret")
	acct, err := ts.store.Account(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	// 300 messages of 64 KiB: about 19 MiB of FETCH output, far more than
	// the socket buffers hold (4 MiB send by default on Linux, and the
	// client's receive buffer is fixed at 1 MiB below), and more than one of
	// the store's read batches.
	const n = 300
	body := "Subject: big\r\n\r\n" + strings.Repeat(strings.Repeat("y", 1022)+"\r\n", 64)
	msgs := make([]store.NewMessage, n)
	for i := range msgs {
		msgs[i] = store.NewMessage{Body: []byte(body)}
	}
	if _, err := acct.Append(ctx, "INBOX", msgs); err != nil {
		t.Fatal(err)
	}
	acct.Close()

	db, err := sqldb.Open(filepath.Join(dir, "users", "1", "mail.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	checkpoint := func() int {
		t.Helper()
		var busy, logFrames, done int
		if err := db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logFrames, &done); err != nil {
			t.Fatalf("checkpoint: %v", err)
		}
		return busy
	}

	c := ts.dial()
	if err := c.conn.(*net.TCPConn).SetReadBuffer(1 << 20); err != nil {
		t.Fatal(err)
	}
	c.ok("LOGIN alice secret")
	c.ok("SELECT INBOX")
	// Empty the WAL, then commit a small write: the FETCH's reads begin
	// with frames in the WAL that a checkpoint has to wait for while a
	// read transaction that can see them stays open.
	if busy := checkpoint(); busy != 0 {
		t.Fatalf("checkpoint before the FETCH: busy=%d", busy)
	}
	c.ok(`STORE 1 +FLAGS.SILENT (\Flagged)`)
	c.write("F1 FETCH 1:* (BODYSTRUCTURE BODY.PEEK[])\r\n")
	time.Sleep(300 * time.Millisecond) // the server fills the buffers and blocks

	var busy int
	deadline := time.Now().Add(3 * time.Second)
	for {
		if busy = checkpoint(); busy == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if busy != 0 {
		t.Errorf("WAL checkpoint while a FETCH waits for its client: busy=%d, want 0 (a read transaction stays open while writing to the socket)", busy)
	}

	// The FETCH was still waiting for the client: read it all now.
	untagged, tagged := c.readUntil("F1")
	if !strings.HasPrefix(tagged, "OK") {
		t.Fatalf("FETCH: %q", tagged)
	}
	fetched := 0
	for _, l := range untagged {
		if strings.Contains(l, " FETCH (") {
			if !strings.Contains(l, "y\r\n)") {
				t.Fatalf("FETCH response without the body's end: %.200q", l)
			}
			fetched++
		}
	}
	if fetched != n {
		t.Errorf("%d FETCH responses, want %d", fetched, n)
	}
}
