package server_test

import (
	"strings"
	"testing"
)

// expectLines reads n unsolicited lines (the client sends nothing) and
// compares them with want.
func (c *client) expectLines(want ...string) {
	c.t.Helper()
	for _, w := range want {
		if got := c.readResponseLine(); got != w {
			c.t.Fatalf("unsolicited: got %q, want %q", got, w)
		}
	}
}

// quiet checks nothing more is pending: a NOOP brings no untagged lines.
func (c *client) quiet() {
	c.t.Helper()
	if u := c.ok("NOOP"); len(u) != 0 {
		c.t.Fatalf("unexpected untagged responses: %q", u)
	}
}

// notifyPair logs alice in twice: a with INBOX selected and NOTIFY set
// for the selected mailbox and her personal ones (without STATUS), b to
// make changes; b has created "Other".
func notifyPair(t *testing.T) (a, b *client) {
	t.Helper()
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "secret")
	a = ts.login("alice", "secret")
	b = ts.login("alice", "secret")
	b.ok("CREATE Other")
	a.ok("SELECT INBOX")
	if u := a.ok("NOTIFY SET (SELECTED (MessageNew (UID FLAGS) MessageExpunge FlagChange)) (PERSONAL (MessageNew MessageExpunge MailboxName SubscriptionChange))"); len(u) != 0 {
		t.Fatalf("NOTIFY SET without STATUS: %q", u)
	}
	return a, b
}

func TestNotifyBetweenCommandsAndIdle(t *testing.T) {
	a, b := notifyPair(t)

	// Between commands: a sends nothing and reads.
	b.appendMsg("INBOX", "", simpleMsg)
	a.expectLines("* 1 EXISTS", "* 1 RECENT", `* 1 FETCH (UID 1 FLAGS (\Recent))`)
	b.appendMsg("Other", "", simpleMsg)
	a.expectLines("* STATUS Other (MESSAGES 1 UIDNEXT 2)")
	b.ok("SELECT INBOX")
	b.ok(`STORE 1 +FLAGS (\Seen)`)
	a.expectLines(`* 1 FETCH (UID 1 FLAGS (\Seen \Recent))`)
	b.ok(`STORE 1 +FLAGS (\Deleted)`)
	a.expectLines(`* 1 FETCH (UID 1 FLAGS (\Deleted \Seen \Recent))`)
	b.ok("EXPUNGE")
	a.expectLines("* 1 EXPUNGE")
	b.ok("CREATE New")
	a.expectLines(`* LIST (\HasNoChildren) "/" New`)
	b.ok("RENAME New Newer")
	a.expectLines(`* LIST (\HasNoChildren) "/" Newer ("OLDNAME" (New))`)
	b.ok("SUBSCRIBE Newer")
	a.expectLines(`* LIST (\HasNoChildren \Subscribed) "/" Newer`)
	b.ok("UNSUBSCRIBE Newer")
	a.expectLines(`* LIST (\HasNoChildren) "/" Newer`)
	b.ok("DELETE Newer")
	a.expectLines(`* LIST (\NonExistent) "/" Newer`)
	b.ok("CREATE Par/Kid")
	a.expectLines(`* LIST (\HasChildren) "/" Par`, `* LIST (\HasNoChildren) "/" Par/Kid`)
	a.quiet()

	// The session's own changes are not echoed back.
	if u := a.ok("CREATE Mine"); len(u) != 0 {
		t.Fatalf("own CREATE echoed: %q", u)
	}
	a.appendMsg("Other", "", simpleMsg)
	a.quiet()

	// In IDLE. (b leaves INBOX so that a claims \Recent.)
	b.ok("UNSELECT")
	a.write("I1 IDLE\r\n")
	a.expectLines("+ idling")
	b.appendMsg("Other", "", simpleMsg)
	a.expectLines("* STATUS Other (MESSAGES 3 UIDNEXT 4)")
	b.appendMsg("INBOX", "", simpleMsg)
	a.expectLines("* 1 EXISTS", "* 1 RECENT", `* 1 FETCH (UID 2 FLAGS (\Recent))`)
	b.ok("CREATE Idle")
	a.expectLines(`* LIST (\HasNoChildren) "/" Idle`)
	a.write("DONE\r\n")
	a.expectLines("I1 OK IDLE completed")

	// NOTIFY NONE: nothing more.
	a.ok("NOTIFY NONE")
	b.appendMsg("Other", "", simpleMsg)
	b.ok("CREATE Quiet")
	a.quiet()
}

func TestNotifyStatusAndErrors(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "secret")
	a := ts.login("alice", "secret")
	b := ts.login("alice", "secret")
	a.ok("CREATE Other")
	a.ok("CREATE Sub/One")
	a.appendMsg("Other", "", simpleMsg)
	u := a.ok("STATUS Other (UIDVALIDITY)")
	uv := strings.TrimSuffix(strings.TrimPrefix(u[0], "* STATUS Other (UIDVALIDITY "), ")")

	u = a.ok("NOTIFY SET STATUS (MAILBOXES Other (MessageNew MessageExpunge))")
	if len(u) != 1 || u[0] != "* STATUS Other (MESSAGES 1 UIDNEXT 2 UIDVALIDITY "+uv+")" {
		t.Fatalf("NOTIFY SET STATUS: %q", u)
	}
	u = a.ok("NOTIFY SET STATUS (SUBTREE Sub (MessageNew MessageExpunge FlagChange)) (MAILBOXES (Nope Other) (MessageNew MessageExpunge))")
	if len(u) != 3 || !strings.HasPrefix(u[0], "* STATUS Other (MESSAGES 1 UIDNEXT 2 UIDVALIDITY ") ||
		!strings.HasPrefix(u[1], "* STATUS Sub (MESSAGES 0 UIDNEXT 1 UIDVALIDITY ") || !strings.Contains(u[1], " HIGHESTMODSEQ ") ||
		!strings.HasPrefix(u[2], "* STATUS Sub/One (MESSAGES 0 UIDNEXT 1 UIDVALIDITY ") || !strings.Contains(u[2], " HIGHESTMODSEQ ") {
		t.Fatalf("NOTIFY SET STATUS with FlagChange: %q", u)
	}
	// Flag changes elsewhere: UNSEEN without CONDSTORE, HIGHESTMODSEQ with.
	b.ok("SELECT Sub/One")
	b.appendMsg("Sub/One", "", simpleMsg)
	a.expectLines("* STATUS Sub/One (MESSAGES 1 UIDNEXT 2 UNSEEN 1)")
	b.ok(`STORE 1 +FLAGS (\Seen)`)
	a.expectLines("* STATUS Sub/One (UNSEEN 0)")
	b.ok(`STORE 1 +FLAGS (\Flagged)`) // no UNSEEN change, no CONDSTORE: nothing
	a.ok("ENABLE CONDSTORE")
	b.ok(`STORE 1 -FLAGS (\Flagged)`)
	l := a.readLine()
	if !strings.HasPrefix(l, "* STATUS Sub/One (UIDVALIDITY ") || !strings.Contains(l, " HIGHESTMODSEQ ") {
		t.Fatalf("flag change with CONDSTORE: %q", l)
	}
	// The +\Flagged change may reach this session only after ENABLE
	// CONDSTORE (the signal races the command); then it too is reported,
	// the same way. Nothing else may come.
	for _, l := range a.ok("NOOP") {
		if !strings.HasPrefix(l, "* STATUS Sub/One (UIDVALIDITY ") || !strings.Contains(l, " HIGHESTMODSEQ ") {
			t.Fatalf("unexpected after the flag changes: %q", l)
		}
	}
	a.quiet()

	// RFC 5465 §5: "If one of MessageNew or MessageExpunge is specified,
	// then both events MUST be specified. Otherwise, the server MUST
	// respond with the tagged BAD response."
	a.expect("NOTIFY SET (PERSONAL (MessageNew))", "BAD")
	a.expect("NOTIFY SET STATUS (MAILBOXES Other (MessageExpunge))", "BAD")
	a.expect("NOTIFY SET (MAILBOXES Other (MessageNew FlagChange))", "BAD")
	a.expect("NOTIFY SET (PERSONAL (FlagChange))", "BAD")
	a.expect("NOTIFY SET (SELECTED (MailboxName))", "BAD")
	a.expect("NOTIFY SET (SELECTED (MessageNew MessageExpunge)) (SELECTED-DELAYED (MessageNew MessageExpunge))", "BAD")
	a.expect("NOTIFY SET (PERSONAL (MessageNew (UID) MessageExpunge))", "BAD")
	a.expect("NOTIFY SET (PERSONAL (MessageNew MessageExpunge AnnotationChange))",
		"NO [BADEVENT (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange)]")
	a.expect("NOTIFY SET (INBOXES (ServerMetadataChange))", "NO [BADEVENT")
	// A refused NOTIFY SET leaves the previous registration in place.
	b.appendMsg("Other", "", simpleMsg)
	l = a.readLine()
	if !strings.HasPrefix(l, "* STATUS Other (MESSAGES 2 UIDNEXT 3 HIGHESTMODSEQ ") {
		t.Fatalf("after refused NOTIFY: %q", l)
	}
	if !strings.Contains(a.ok("CAPABILITY")[0], " NOTIFY") {
		t.Fatal("NOTIFY not advertised")
	}
}

func TestNotifySelectedDelayed(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "secret")
	a := ts.login("alice", "secret")
	b := ts.login("alice", "secret")
	b.appendMsg("INBOX", "", simpleMsg)
	b.appendMsg("INBOX", "", simpleMsg)
	a.ok("ENABLE IMAP4rev2")
	a.ok("SELECT INBOX")
	a.ok("NOTIFY SET (SELECTED-DELAYED (MessageNew MessageExpunge FlagChange))")
	b.ok("SELECT INBOX")
	b.ok(`STORE 1 +FLAGS (\Deleted)`)
	a.expectLines(`* 1 FETCH (UID 1 FLAGS (\Deleted))`)
	b.ok("EXPUNGE")
	b.appendMsg("INBOX", "", simpleMsg)
	// The arrival is told at once; the expunge waits for a command that
	// allows it.
	a.expectLines("* 3 EXISTS")
	u, tagged := a.do("FETCH 2 (UID)")
	if len(u) != 1 || u[0] != "* 2 FETCH (UID 2)" || !strings.HasPrefix(tagged, "OK") {
		t.Fatalf("FETCH during delayed expunge: %q %q", u, tagged)
	}
	u = a.ok("NOOP")
	if len(u) != 1 || u[0] != "* 1 EXPUNGE" {
		t.Fatalf("NOOP: %q", u)
	}
}
