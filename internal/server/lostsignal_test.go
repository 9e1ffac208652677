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

// lostSignalNodes opens two nodes on one PostgreSQL database with user
// alice: node A, the test server, and node B, a Store of its own whose
// account for alice it returns. killListener terminates A's listening
// connection, so a change made through B right after reaches no
// listener of A. admin is a connection of the test's own to the
// database, for changes no node signals.
func lostSignalNodes(t *testing.T) (ts *testServer, b store.Account, killListener func(), admin *pgx.Conn) {
	t.Helper()
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	ts = newTestServer(t, serverOpts{insecureAuth: true, openStore: func(t *testing.T, n store.Notifier) store.Store {
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
	t.Cleanup(func() { nodeB.Close() })
	if b, err = nodeB.Account(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	admin, err = pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(ctx) })
	killListener = func() {
		t.Helper()
		var killed int
		if err := admin.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE datname = current_database() AND query = 'LISTEN tern_changes'`).Scan(&killed); err != nil || killed != 1 {
			t.Fatalf("terminated %d listening connections, %v", killed, err)
		}
	}
	return ts, b, killListener, admin
}

// TestIdleSeesChangeWhoseSignalWasLost: a client IDLEs in INBOX on node
// A when A's listening connection is killed, and mail arrives through
// node B at once. The client still hears of it within seconds: A
// compares the heads of the mailboxes its sessions wait on with the
// database after the listener reconnects (and every two seconds).
func TestIdleSeesChangeWhoseSignalWasLost(t *testing.T) {
	ts, b, killListener, _ := lostSignalNodes(t)
	a := ts.dial()
	a.ok("LOGIN alice pw")
	a.ok("SELECT INBOX")
	a.write("I1 IDLE\r\n")
	if l := a.readLine(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("idle: %q", l)
	}
	killListener()
	start := time.Now()
	if _, err := b.Append(context.Background(), "INBOX", []store.NewMessage{{Body: []byte(crlf(simpleMsg))}}); err != nil {
		t.Fatal(err)
	}
	if l := a.readLine(); l != "* 1 EXISTS" {
		t.Fatalf("idle update: %q", l)
	}
	t.Logf("the IDLE update came %v after the append", time.Since(start))
	a.write("DONE\r\n")
	a.readUntil("I1")
}

// TestNotifySeesRenameWhoseSignalWasLost: a client on node A has NOTIFY
// watching its mailbox names; a mailbox is renamed through node B while
// A's listening connection is down. The client still gets the rename
// (RFC 5465 MailboxName, with OLDNAME): A's check of the watched users'
// mailbox lists compares names too.
func TestNotifySeesRenameWhoseSignalWasLost(t *testing.T) {
	ts, b, killListener, _ := lostSignalNodes(t)
	ctx := context.Background()
	if err := b.CreateMailbox(ctx, "Old", ""); err != nil {
		t.Fatal(err)
	}
	a := ts.dial()
	a.ok("LOGIN alice pw")
	a.ok("NOTIFY SET (PERSONAL (MailboxName SubscriptionChange))")
	// The first check after NOTIFY SET takes the user's list as it is;
	// the checks run every two seconds.
	time.Sleep(2500 * time.Millisecond)
	killListener()
	if err := b.RenameMailbox(ctx, "Old", "New"); err != nil {
		t.Fatal(err)
	}
	a.expectLines(`* LIST (\HasNoChildren) "/" New ("OLDNAME" (Old))`)
}

// sharingNodes is lostSignalNodes with bob, to whom alice (through node
// B) shares Projects with "lr" first if grant, logged in on node A with
// NOTIFY watching the mailboxes shared with him.
func sharingNodes(t *testing.T, grant bool) (bob *client, b store.Account, killListener func(), admin *pgx.Conn) {
	t.Helper()
	ts, b, killListener, admin := lostSignalNodes(t)
	ctx := context.Background()
	ts.addUser("bob", "hunter2")
	if err := b.CreateMailbox(ctx, "Projects", ""); err != nil {
		t.Fatal(err)
	}
	if grant {
		if _, err := b.SetACL(ctx, "Projects", "bob", store.FlagsReplace, "lr"); err != nil {
			t.Fatal(err)
		}
	}
	bob = ts.login("bob", "hunter2")
	bob.ok(`NOTIFY SET (SUBTREE "Other Users" (MessageNew MessageExpunge MailboxName))`)
	return bob, b, killListener, admin
}

// TestNotifySeesSharedRenameNoSignalTold: bob, on node A, has NOTIFY
// watch the mailboxes alice shares with him, and alice's shared mailbox
// is renamed without any signal (by SQL: as a signal lost without the
// listener noticing). Bob still hears of it within seconds: the check of
// the heads also reads the lists of the owners whose shared mailboxes
// NOTIFY watches.
func TestNotifySeesSharedRenameNoSignalTold(t *testing.T) {
	bob, _, _, admin := sharingNodes(t, true)
	// The first check after NOTIFY SET takes the owner's list as it is;
	// the checks run every two seconds.
	time.Sleep(2500 * time.Millisecond)
	if _, err := admin.Exec(context.Background(), `UPDATE mailboxes SET name = 'Work' WHERE name = 'Projects'`); err != nil {
		t.Fatal(err)
	}
	bob.expectLines(`* LIST (\HasNoChildren) "/" "Other Users/alice/Work" ("OLDNAME" ("Other Users/alice/Projects"))`)
}

// TestNotifySeesGrantWhoseSignalWasLost: bob, on node A, has NOTIFY watch
// the mailboxes shared with him when A's listening connection is
// killed, and alice grants him a mailbox through node B at once. Bob
// still hears of it: once A listens again, its NOTIFY sessions look at
// what is shared with them afresh.
func TestNotifySeesGrantWhoseSignalWasLost(t *testing.T) {
	bob, b, killListener, _ := sharingNodes(t, false)
	killListener()
	if _, err := b.SetACL(context.Background(), "Projects", "bob", store.FlagsReplace, "lr"); err != nil {
		t.Fatal(err)
	}
	bob.expectLines(`* LIST (\HasNoChildren) "/" "Other Users/alice/Projects"`)
}

// TestNotifySeesGrantNoSignalTold: bob, on node A, has NOTIFY watch the
// mailboxes shared with him, and an ACL entry for him appears without
// any signal (by SQL: as a signal lost with a node that died between
// its commit and the send). Bob still hears of it within seconds: the
// check of the heads also compares the ACL entries naming the users
// NOTIFY watches.
func TestNotifySeesGrantNoSignalTold(t *testing.T) {
	bob, _, _, admin := sharingNodes(t, false)
	// The first check after NOTIFY SET takes the entries as they are.
	time.Sleep(2500 * time.Millisecond)
	if _, err := admin.Exec(context.Background(), `INSERT INTO acl(mailbox_id, identifier, rights)
		SELECT id, 'bob', 'lr' FROM mailboxes WHERE name = 'Projects'`); err != nil {
		t.Fatal(err)
	}
	bob.expectLines(`* LIST (\HasNoChildren) "/" "Other Users/alice/Projects"`)
}
