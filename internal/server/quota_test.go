package server_test

import (
	"context"
	"strings"
	"testing"
)

func TestQuotaCommands(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "secret")
	c := ts.login("alice", "secret")
	u := c.ok("CAPABILITY")
	if !strings.Contains(u[0], " QUOTA QUOTA=RES-STORAGE QUOTA=RES-MESSAGE") {
		t.Fatalf("capability: %q", u[0])
	}
	// No limits: the root exists with no limited resources.
	u = c.ok("GETQUOTAROOT INBOX")
	hasLine(t, u, `* QUOTAROOT INBOX ""`)
	hasLine(t, u, `* QUOTA "" ()`)

	msg := crlf("Subject: q\n\n" + strings.Repeat("x", 2000) + "\n")
	c.appendMsg("INBOX", "", msg)

	acct, err := ts.store.Account(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	defer acct.Close()
	// 3 messages, 10 KiB.
	if err := acct.SetQuota(context.Background(), 10*1024, 3); err != nil {
		t.Fatal(err)
	}
	u = c.ok("GETQUOTA \"\"")
	hasLine(t, u, `* QUOTA "" (STORAGE 2 10 MESSAGE 1 3)`) // 2015 bytes round up to 2 KiB
	u = c.ok("GETQUOTAROOT Sent")
	hasLine(t, u, `* QUOTAROOT Sent ""`)
	hasLine(t, u, `* QUOTA "" (STORAGE 2 10 MESSAGE 1 3)`)
	c.expect("GETQUOTA other", "NO [NONEXISTENT]")
	c.expect("GETQUOTAROOT Nope", "NO [NONEXISTENT]")
	c.expect("GETQUOTA", "BAD")

	// Enforcement: APPEND over the storage limit, COPY over the message limit.
	big := crlf("Subject: big\n\n" + strings.Repeat(strings.Repeat("y", 70)+"\n", 130) + "\n")
	tag := "A1"
	c.write(tag + " APPEND INBOX {" + itoa(len(big)) + "}\r\n")
	if l := c.readLine(); !strings.HasPrefix(l, "+") {
		t.Fatalf("APPEND continuation: %q", l)
	}
	c.write(big + "\r\n")
	if _, tagged := c.readUntil(tag); !strings.HasPrefix(tagged, "NO [OVERQUOTA]") {
		t.Fatalf("APPEND over quota: %q", tagged)
	}
	c.appendMsg("INBOX", "", msg)
	c.ok("SELECT INBOX")
	c.expect("COPY 1:2 Archive", "NO [OVERQUOTA]")
	c.ok("COPY 1 Archive")
	u = c.ok("GETQUOTA \"\"")
	hasLine(t, u, `* QUOTA "" (STORAGE 6 10 MESSAGE 3 3)`)
	c.ok("MOVE 1 Trash") // a move does not add usage
	u = c.ok("GETQUOTAROOT INBOX")
	hasLine(t, u, `* QUOTA "" (STORAGE 6 10 MESSAGE 3 3)`)
}

func TestStatusDeletedStorage(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "secret")
	c := ts.login("alice", "secret")
	small := crlf("Subject: s\n\nsmall\n")
	big := crlf("Subject: b\n\n" + strings.Repeat(strings.Repeat("z", 70)+"\n", 40))
	c.appendMsg("INBOX", `\Deleted`, big)
	c.appendMsg("INBOX", "", small)
	c.appendMsg("INBOX", `\Deleted`, small)
	u := c.ok("STATUS INBOX (DELETED DELETED-STORAGE)")
	want := (len(big) + len(small) + 1023) / 1024
	hasLine(t, u, "* STATUS INBOX (DELETED 2 DELETED-STORAGE "+itoa(want)+")")
	c.ok("SELECT INBOX")
	c.ok("EXPUNGE")
	u = c.ok("STATUS INBOX (MESSAGES DELETED-STORAGE)")
	hasLine(t, u, "* STATUS INBOX (MESSAGES 1 DELETED-STORAGE 0)")
}
