package server_test

import (
	"strings"
	"testing"
)

// RFC 9586: after ENABLE UIDONLY, commands with message sequence numbers
// are BAD [UIDREQUIRED], FETCH data comes as UIDFETCH keyed by UID, and
// expunges as VANISHED.
func TestUIDOnly(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "secret")
	c := ts.login("alice", "secret")
	other := ts.login("alice", "secret")
	if u := c.ok("CAPABILITY"); !strings.Contains(u[0], " UIDONLY") {
		t.Fatalf("no UIDONLY capability: %q", u)
	}
	for range 3 {
		c.appendMsg("INBOX", "", simpleMsg)
	}
	hasLine(t, c.ok("ENABLE IMAP4rev2 UIDONLY"), "* ENABLED IMAP4rev2 UIDONLY")
	c.expect("SELECT INBOX (QRESYNC (1 1 1:3 (1:3 1:3)))", "BAD [UIDREQUIRED]")
	c.ok("SELECT INBOX")
	for _, cmd := range []string{
		"FETCH 1:3 (FLAGS)",
		`STORE 1 +FLAGS (\Seen)`,
		"SEARCH ALL",
		"COPY 1 Archive",
		"MOVE 1 Archive",
		"SORT (DATE) UTF-8 ALL",
		"THREAD REFERENCES UTF-8 ALL",
		"REPLACE 1 INBOX {1+}\r\nx",
		"UID SEARCH 1:2",
		"UID SEARCH NOT (UID 1 OR SEEN 2)",
		"UID SORT (DATE) UTF-8 1",
	} {
		if u, tagged := c.do(cmd); !strings.HasPrefix(tagged, "BAD [UIDREQUIRED] ") || len(u) != 0 {
			t.Fatalf("%s: %q %q", cmd, u, tagged)
		}
	}
	u := c.ok("UID FETCH 1:* (FLAGS)")
	if len(u) != 3 || u[0] != "* 1 UIDFETCH (FLAGS ())" || u[2] != "* 3 UIDFETCH (FLAGS ())" {
		t.Fatalf("UID FETCH: %q", u)
	}
	hasLine(t, c.ok("UID FETCH 2 (UID FLAGS)"), "* 2 UIDFETCH (UID 2 FLAGS ())")
	hasLine(t, c.ok(`UID STORE 2 +FLAGS (\Deleted)`), `* 2 UIDFETCH (FLAGS (\Deleted))`)
	hasLine(t, c.ok("UID SEARCH RETURN (SAVE ALL) DELETED"), "* ESEARCH (TAG \""+c.lastTag()+"\") UID ALL 2")
	hasLine(t, c.ok("UID SEARCH RETURN (COUNT) $"), "* ESEARCH (TAG \""+c.lastTag()+"\") UID COUNT 1")

	// Another session's change arrives as UIDFETCH.
	other.ok("SELECT INBOX")
	other.ok(`STORE 3 +FLAGS (\Seen)`)
	hasLine(t, c.ok("NOOP"), `* 3 UIDFETCH (FLAGS (\Seen))`)

	if u := c.ok("EXPUNGE"); len(u) != 1 || u[0] != "* VANISHED 2" {
		t.Fatalf("EXPUNGE: %q", u)
	}
	u = c.ok("UID MOVE 3 Archive")
	if len(u) != 2 || !strings.HasPrefix(u[0], "* OK [COPYUID ") || u[1] != "* VANISHED 3" {
		t.Fatalf("UID MOVE: %q", u)
	}
	// Another session's expunge too.
	other.ok(`STORE 1 +FLAGS (\Deleted)`)
	other.ok("EXPUNGE")
	hasLine(t, c.ok("NOOP"), "* VANISHED 1")

	// CONDSTORE: the flag change carries MODSEQ but no UID item.
	c.appendMsg("INBOX", "", simpleMsg)
	c.ok("NOOP")
	c.ok("ENABLE CONDSTORE")
	u = c.ok(`UID STORE 4 +FLAGS (\Flagged)`)
	if len(u) != 1 || !strings.HasPrefix(u[0], `* 4 UIDFETCH (FLAGS (\Flagged) MODSEQ (`) {
		t.Fatalf("UID STORE under CONDSTORE: %q", u)
	}

	// UNAUTHENTICATE turns UIDONLY off again.
	c.ok("UNAUTHENTICATE")
	c.ok("LOGIN alice secret")
	c.ok("SELECT INBOX")
	hasLine(t, c.ok("FETCH 1 (UID)"), "* 1 FETCH (UID 4)")
}

// Before ENABLE UIDONLY nothing changes: FETCH responses stay FETCH.
func TestUIDOnlyNotEnabled(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "secret")
	c := ts.login("alice", "secret")
	c.appendMsg("INBOX", "", simpleMsg)
	c.ok("ENABLE IMAP4rev2")
	c.ok("SELECT INBOX")
	hasLine(t, c.ok("UID FETCH 1 (FLAGS)"), "* 1 FETCH (UID 1 FLAGS ())")
	hasLine(t, c.ok("FETCH 1 (FLAGS)"), "* 1 FETCH (FLAGS ())")
}
