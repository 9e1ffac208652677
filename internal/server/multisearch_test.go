package server_test

import (
	"strings"
	"testing"
)

// TestMultiSearch: ESEARCH IN (...) (RFC 7377) searches the mailboxes its
// sources name, answers one ESEARCH per mailbox with matches (MAILBOX,
// UIDVALIDITY, UIDs), works without a selected mailbox, and refuses
// sequence numbers.
func TestMultiSearch(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "secret")
	c := ts.login("alice", "secret")
	for _, mb := range []string{"Work", "Work/Sub", "Work/Sub/Deep", "Other"} {
		c.ok("CREATE " + mb)
	}
	put := func(mb, body string) { c.appendMsg(mb, "", crlf("Subject: s\n\n"+body+"\n")) }
	put("INBOX", "the needle here")
	put("INBOX", "nothing")
	put("INBOX", "Needle again")
	put("Work", "a needle")
	put("Work/Sub", "no")
	put("Work/Sub", "needles")
	put("Work/Sub/Deep", "needle deep")
	put("Other", "nope")
	uidv := map[string]string{}
	for _, mb := range []string{"INBOX", "Work", "Work/Sub", "Work/Sub/Deep"} {
		for _, l := range c.ok("STATUS " + mb + " (UIDVALIDITY)") {
			if i := strings.Index(l, "UIDVALIDITY "); i > 0 {
				uidv[mb] = strings.TrimSuffix(l[i+len("UIDVALIDITY "):], ")")
			}
		}
	}
	line := func(mb, rest string) string {
		return `* ESEARCH (TAG "` + c.lastTag() + `" MAILBOX "` + mb + `" UIDVALIDITY ` + uidv[mb] + `) UID ` + rest
	}
	lines := c.ok("ESEARCH IN (personal) BODY needle")
	if len(lines) != 4 {
		t.Fatalf("IN (personal): %q", lines)
	}
	hasLine(t, lines, line("INBOX", "ALL 1,3"))
	hasLine(t, lines, line("Work", "ALL 1"))
	hasLine(t, lines, line("Work/Sub", "ALL 2"))
	hasLine(t, lines, line("Work/Sub/Deep", "ALL 1"))

	lines = c.ok("ESEARCH IN (subtree-one Work) RETURN (COUNT MIN) TEXT needle")
	if len(lines) != 2 {
		t.Fatalf("IN (subtree-one Work): %q", lines)
	}
	hasLine(t, lines, line("Work", "MIN 1 COUNT 1"))
	hasLine(t, lines, line("Work/Sub", "MIN 2 COUNT 1"))

	lines = c.ok(`ESEARCH IN (mailboxes ("Work/Sub/Deep" Missing) inboxes) BODY needle`)
	if len(lines) != 2 {
		t.Fatalf("IN (mailboxes ... inboxes): %q", lines)
	}
	hasLine(t, lines, line("Work/Sub/Deep", "ALL 1"))

	if lines := c.ok("ESEARCH IN (subtree Other) BODY needle"); len(lines) != 0 {
		t.Fatalf("no matches: %q", lines)
	}
	for _, cmd := range []string{"ESEARCH IN (personal) 1:3", "ESEARCH BODY needle", "ESEARCH IN (personal) RETURN (SAVE) ALL"} {
		if _, tagged := c.do(cmd); !strings.HasPrefix(tagged, "BAD") {
			t.Errorf("%s: %q", cmd, tagged)
		}
	}
	c.ok("SELECT Work/Sub")
	hasLine(t, c.ok("ESEARCH BODY needle"), line("Work/Sub", "ALL 2"))
}
