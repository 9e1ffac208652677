package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tern-imap/tern/internal/pgtest"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/postgres"
)

// TestIdleSeesChangeWhoseSignalWasLost: two nodes on one PostgreSQL
// database; a client IDLEs in INBOX on node A when A's listening
// connection is killed, and mail arrives through node B at once, so its
// change signal reaches no listener of A. The client still hears of it
// within seconds: A compares the heads of the mailboxes its sessions
// wait on with the database after the listener reconnects (and every
// two seconds).
func TestIdleSeesChangeWhoseSignalWasLost(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	ts := newTestServer(t, serverOpts{insecureAuth: true, openStore: func(t *testing.T, n store.Notifier) store.Store {
		st, err := postgres.Open(ctx, url, postgres.Options{Notifier: n})
		if err != nil {
			t.Fatalf("open store: %v", err)
		}
		return st
	}})
	ts.addUser("alice", "pw")
	nodeB, err := postgres.Open(ctx, url, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer nodeB.Close()
	b, err := nodeB.Account(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	a := ts.dial()
	a.ok("LOGIN alice pw")
	a.ok("SELECT INBOX")
	a.write("I1 IDLE\r\n")
	if l := a.readLine(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("idle: %q", l)
	}
	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	var killed int
	if err := admin.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND query = 'LISTEN tern_changes'`).Scan(&killed); err != nil || killed != 1 {
		t.Fatalf("terminated %d listening connections, %v", killed, err)
	}
	start := time.Now()
	if _, err := b.Append(ctx, "INBOX", []store.NewMessage{{Body: []byte(crlf(simpleMsg))}}); err != nil {
		t.Fatal(err)
	}
	if l := a.readLine(); l != "* 1 EXISTS" {
		t.Fatalf("idle update: %q", l)
	}
	t.Logf("the IDLE update came %v after the append", time.Since(start))
	a.write("DONE\r\n")
	a.readUntil("I1")
}
