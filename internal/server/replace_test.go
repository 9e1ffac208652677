package server_test

import (
	"fmt"
	"strings"
	"testing"
)

const replacementMsg = "Date: Thu, 1 Jan 2015 00:05:00 -0500 (EST)\r\nFrom: Fred Foobar <foobar@example.com>\r\nSubject: Afternoon meeting 2\r\nTo: mooch@example.com\r\nMessage-Id: <B27397-0100000@example.com>\r\n\r\nHello Joe, could we change that to 4:00pm tomorrow?\r\n"

// replaceCmd is REPLACE/UID REPLACE with a non-synchronizing literal.
func replaceCmd(head, msg string) string {
	return fmt.Sprintf("%s {%d+}\r\n%s", head, len(msg), msg)
}

// RFC 8508 §4, first example: the replaced message is in the selected
// mailbox and the replacement goes to the same mailbox: APPENDUID in an
// untagged OK, then EXISTS, then EXPUNGE.
func TestReplaceSameMailbox(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "secret")
	c := ts.login("alice", "secret")
	if u := c.ok("CAPABILITY"); !strings.Contains(u[0], " REPLACE") {
		t.Fatalf("no REPLACE capability: %q", u)
	}
	c.ok("ENABLE IMAP4rev2")
	for range 4 {
		c.appendMsg("Drafts", `\Draft`, simpleMsg)
	}
	c.ok("SELECT Drafts")
	u := c.ok(replaceCmd(`REPLACE 4 Drafts (\Seen \Draft)`, replacementMsg))
	want := []string{"* OK [APPENDUID ", "* 5 EXISTS", "* 4 EXPUNGE"}
	if len(u) != len(want) {
		t.Fatalf("REPLACE responses: %q", u)
	}
	for i, w := range want {
		if !strings.HasPrefix(u[i], w) {
			t.Fatalf("REPLACE responses: %q, want %q", u, want)
		}
	}
	if !strings.HasSuffix(u[0], " 5] Replacement Message ready") {
		t.Fatalf("APPENDUID: %q", u[0])
	}
	u = c.ok("FETCH 4 (UID FLAGS BODY.PEEK[HEADER.FIELDS (Subject)])")
	if len(u) != 1 || !strings.Contains(u[0], `* 4 FETCH (UID 5 FLAGS (\Draft \Seen)`) || !strings.Contains(u[0], "Afternoon meeting 2") {
		t.Fatalf("replacement: %q", u)
	}
	hasLine(t, c.ok("STATUS Drafts (MESSAGES)"), "* STATUS Drafts (MESSAGES 4)")
}

// UID REPLACE into another mailbox under QRESYNC: APPENDUID, then VANISHED
// for the replaced UID; no EXISTS for the selected mailbox. literal8 and
// the date are taken as APPEND takes them.
func TestUIDReplaceOtherMailboxQresync(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "secret")
	c := ts.login("alice", "secret")
	c.appendMsg("INBOX", "", simpleMsg)
	c.appendMsg("INBOX", "", simpleMsg)
	c.ok("ENABLE QRESYNC")
	c.ok("SELECT INBOX")
	msg := replacementMsg
	u, tagged := c.do(fmt.Sprintf("UID REPLACE 1 Archive (\\Seen) \"05-Jan-2015 10:00:00 +0100\" ~{%d+}\r\n%s", len(msg), msg))
	st := c.ok("STATUS INBOX (HIGHESTMODSEQ)")
	var ms string
	if _, err := fmt.Sscanf(st[0], "* STATUS INBOX (HIGHESTMODSEQ %s", &ms); err != nil {
		t.Fatalf("STATUS: %q", st)
	}
	// Under QRESYNC the tagged OK carries the mailbox's new HIGHESTMODSEQ.
	if want := "OK [HIGHESTMODSEQ " + strings.TrimSuffix(ms, ")") + "] UID REPLACE completed"; tagged != want {
		t.Fatalf("tagged %q, want %q", tagged, want)
	}
	if len(u) != 2 || !strings.HasPrefix(u[0], "* OK [APPENDUID ") || !strings.HasSuffix(u[0], " 1] Replacement Message ready") || u[1] != "* VANISHED 1" {
		t.Fatalf("UID REPLACE responses: %q", u)
	}
	hasLine(t, c.ok("UID SEARCH ALL"), "* SEARCH 2")
	c.ok("SELECT Archive")
	u = c.ok("FETCH 1 (FLAGS INTERNALDATE)")
	hasLine(t, u, `* 1 FETCH (FLAGS (\Seen \Recent) INTERNALDATE "05-Jan-2015 10:00:00 +0100")`)
}

// A replacement that cannot be appended leaves the original; bad numbers
// get BAD or NO; a read-only mailbox refuses.
func TestReplaceFailures(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "secret")
	c := ts.login("alice", "secret")
	c.expect(replaceCmd("REPLACE 1 INBOX", replacementMsg), "BAD")
	c.appendMsg("INBOX", "", simpleMsg)
	c.ok("SELECT INBOX")
	if u := c.expect(replaceCmd("REPLACE 1 Nowhere", replacementMsg), "NO [TRYCREATE]"); len(u) != 0 {
		t.Fatalf("failed REPLACE sent %q", u)
	}
	c.expect(replaceCmd(`REPLACE 1 INBOX (\Bogus)`, replacementMsg), "BAD")
	c.expect(replaceCmd("REPLACE 2 INBOX", replacementMsg), "BAD")
	c.expect(replaceCmd("UID REPLACE 7 INBOX", replacementMsg), "NO [NONEXISTENT]")
	c.expect("REPLACE 1 INBOX {0+}\r\n", "NO [CANNOT]")
	c.expect("REPLACE 1 INBOX", "BAD")
	c.expect(replaceCmd("REPLACE 1:2 INBOX", replacementMsg), "BAD")
	c.expect(replaceCmd("REPLACE 1 INBOX", replacementMsg)+" {1+}\r\nx", "BAD") // one message only
	hasLine(t, c.ok("UID SEARCH ALL"), "* SEARCH 1")
	hasLine(t, c.ok("STATUS Archive (MESSAGES)"), "* STATUS Archive (MESSAGES 0)")
	c.ok("EXAMINE INBOX")
	c.expect(replaceCmd("REPLACE 1 Archive", replacementMsg), "NO [READ-ONLY]")
	c.ok("SELECT INBOX")
	// "*" is the last message.
	u := c.ok(replaceCmd("REPLACE * INBOX", replacementMsg))
	hasLine(t, u, "* 1 EXPUNGE")
	hasLine(t, c.ok("UID SEARCH ALL"), "* SEARCH 2")
}

// The message to replace was expunged by another session after this one
// last heard: the append is taken back and the answer is NO
// [EXPUNGEISSUED], with the pending EXPUNGE.
func TestReplaceOriginalExpungedMeanwhile(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "secret")
	a := ts.login("alice", "secret")
	b := ts.login("alice", "secret")
	a.appendMsg("INBOX", "", simpleMsg)
	a.ok("SELECT INBOX")
	b.ok("SELECT INBOX")
	b.ok(`STORE 1 +FLAGS (\Deleted)`)
	b.ok("EXPUNGE")
	u := a.expect(replaceCmd("REPLACE 1 Archive", replacementMsg), "NO [EXPUNGEISSUED]")
	hasLine(t, u, "* 1 EXPUNGE")
	hasLine(t, a.ok("STATUS Archive (MESSAGES)"), "* STATUS Archive (MESSAGES 0)")
}
