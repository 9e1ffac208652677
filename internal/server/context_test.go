package server_test

import (
	"fmt"
	"strings"
	"testing"
)

// contextFixture: alice's INBOX with 5 messages (UIDs 2..6 after UID 1 is
// expunged, so sequence numbers and UIDs differ), selected.
func contextFixture(t *testing.T) (*testServer, *client) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "secret")
	c := ts.login("alice", "secret")
	for i := 0; i <= 5; i++ {
		c.appendMsg("INBOX", "", crlf(fmt.Sprintf("Subject: s%d\n\nbody %d\n", i, i)))
	}
	c.ok("SELECT INBOX")
	c.ok(`STORE 1 +FLAGS \Deleted`)
	c.ok("EXPUNGE")
	return ts, c
}

// expectLines runs cmd and compares its untagged responses exactly.
func expectLines(t *testing.T, c *client, cmd string, want ...string) {
	t.Helper()
	got := c.ok(cmd)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("%s:\ngot  %q\nwant %q", cmd, got, want)
	}
}

func TestSearchPartial(t *testing.T) {
	_, c := contextFixture(t)
	caps := c.ok("CAPABILITY")[0]
	if !strings.Contains(caps, " CONTEXT=SEARCH CONTEXT=SORT") {
		t.Fatalf("capabilities: %q", caps)
	}
	tag := func() string { return fmt.Sprintf("T%d", c.tag.Load()+1) }
	for _, tc := range []struct{ cmd, want string }{
		{"SEARCH RETURN (PARTIAL 1:1) ALL", `PARTIAL (1:1 1)`},
		{"SEARCH RETURN (PARTIAL 4:2) ALL", `PARTIAL (2:4 2:4)`},
		{"SEARCH RETURN (PARTIAL 1:9) 1:2,4:5", `PARTIAL (1:9 1:2,4:5)`},
		{"SEARCH RETURN (PARTIAL 6:6) ALL", `PARTIAL (6:6 NIL)`},
		{"SEARCH RETURN (PARTIAL -1:-2) ALL", `PARTIAL (-1:-2 4:5)`},
		{"SEARCH RETURN (PARTIAL -5:-9) ALL", `PARTIAL (-5:-9 1)`},
		{"SEARCH RETURN (COUNT PARTIAL 2:3) 2:5", `COUNT 4 PARTIAL (2:3 3:4)`},
		{"UID SEARCH RETURN (PARTIAL 2:3) ALL", `UID PARTIAL (2:3 3:4)`},
		{"UID SEARCH RETURN (PARTIAL -1:-1) ALL", `UID PARTIAL (-1:-1 6)`},
		{"SORT RETURN (PARTIAL 2:4) (REVERSE SUBJECT) UTF-8 ALL", `PARTIAL (2:4 4,3,2)`},
		{"UID SORT RETURN (PARTIAL 1:2) (REVERSE SUBJECT) UTF-8 ALL", `UID PARTIAL (1:2 6,5)`},
		{"SORT RETURN (PARTIAL -1:-2) (SUBJECT) UTF-8 ALL", `PARTIAL (-1:-2 4:5)`},
	} {
		expectLines(t, c, tc.cmd, `* ESEARCH (TAG "`+tag()+`") `+tc.want)
	}
	for _, cmd := range []string{
		"SEARCH RETURN (PARTIAL 1) ALL", "SEARCH RETURN (PARTIAL 1:*) ALL", "SEARCH RETURN (PARTIAL *:1) ALL",
		"SORT RETURN (PARTIAL 0:1) (ARRIVAL) UTF-8 ALL",
	} {
		c.expect(cmd, "BAD")
	}
}

func TestSearchUpdate(t *testing.T) {
	ts, c := contextFixture(t)
	other := ts.login("alice", "secret")
	other.ok("SELECT INBOX")

	t1, t2 := nextTag(c), ""
	expectLines(t, c, "SEARCH RETURN (UPDATE) SEEN", `* ESEARCH (TAG "`+t1+`")`)
	t2 = nextTag(c)
	expectLines(t, c, "UID SEARCH RETURN (UPDATE ALL) UNSEEN SUBJECT s", `* ESEARCH (TAG "`+t2+`") UID ALL 2:6`)
	// Our own STORE: FETCH, then the changes to both contexts.
	expectLines(t, c, `STORE 1,2,4 +FLAGS.SILENT (\Seen)`,
		`* ESEARCH (TAG "`+t1+`") ADDTO (0 1:2,4)`,
		`* ESEARCH (TAG "`+t2+`") UID REMOVEFROM (0 2:3,5)`)
	// Another session's change arrives with NOOP.
	other.ok(`STORE 1 -FLAGS.SILENT (\Seen)`)
	expectLines(t, c, "NOOP",
		`* 1 FETCH (FLAGS (\Recent))`,
		`* ESEARCH (TAG "`+t1+`") REMOVEFROM (0 1)`,
		`* ESEARCH (TAG "`+t2+`") UID ADDTO (0 2)`)
	// Expunge: REMOVEFROM with the sequence numbers before the EXPUNGEs.
	c.ok(`STORE 4,5 +FLAGS.SILENT (\Deleted)`)
	expectLines(t, c, "EXPUNGE",
		`* ESEARCH (TAG "`+t1+`") REMOVEFROM (0 4)`,
		`* ESEARCH (TAG "`+t2+`") UID REMOVEFROM (0 6)`,
		`* 5 EXPUNGE`, `* 4 EXPUNGE`)
	// A new message: EXISTS, then ADDTO.
	expectLines(t, c, `APPEND INBOX (\Seen) `+lit(crlf("Subject: new\n\nx\n")),
		`* 4 EXISTS`, `* 4 RECENT`, `* ESEARCH (TAG "`+t1+`") ADDTO (0 4)`)
	expectLines(t, c, "NOOP")
	other.appendMsg("INBOX", `\Seen`, crlf("Subject: s9\n\nx\n"))
	expectLines(t, c, "NOOP", `* 5 EXISTS`, `* 4 RECENT`, `* ESEARCH (TAG "`+t1+`") ADDTO (0 5)`)
	// CANCELUPDATE ends T10 only.
	c.ok(`CANCELUPDATE "` + t1 + `"`)
	expectLines(t, c, `STORE 1 FLAGS.SILENT (\Seen)`, `* ESEARCH (TAG "`+t2+`") UID REMOVEFROM (0 2)`)
	// Closing the mailbox drops the contexts.
	c.ok("UNSELECT")
	c.ok("SELECT INBOX")
	other.ok(`STORE 1 -FLAGS.SILENT (\Seen)`)
	for _, l := range c.ok("NOOP") {
		if strings.Contains(l, "ESEARCH") {
			t.Fatalf("update after reselect: %q", l)
		}
	}
}

func TestSortUpdate(t *testing.T) {
	ts, c := contextFixture(t)
	other := ts.login("alice", "secret")
	other.ok("SELECT INBOX")
	// Reverse subject order of the unseen messages: s5 s4 s3 s2 s1.
	t1 := nextTag(c)
	expectLines(t, c, "SORT RETURN (UPDATE ALL) (REVERSE SUBJECT) UTF-8 UNSEEN", `* ESEARCH (TAG "`+t1+`") ALL 5,4,3,2,1`)
	// s4 and s2 leave: positions 2 and 3 once s4 is gone.
	expectLines(t, c, `STORE 2,4 +FLAGS.SILENT (\Seen)`, `* ESEARCH (TAG "`+t1+`") REMOVEFROM (2 4 3 2)`)
	// Both come back, and a new message sorts first.
	other.ok(`STORE 2,4 -FLAGS.SILENT (\Seen)`)
	other.appendMsg("INBOX", "", crlf("Subject: s9\n\nx\n"))
	expectLines(t, c, "NOOP",
		`* 2 FETCH (FLAGS (\Recent))`, `* 4 FETCH (FLAGS (\Recent))`, `* 6 EXISTS`, `* 5 RECENT`,
		`* ESEARCH (TAG "`+t1+`") ADDTO (1 6 3 4 5 2)`)
	t2 := nextTag(c)
	expectLines(t, c, "UID SORT RETURN (UPDATE) (SUBJECT) UTF-8 SUBJECT s1", `* ESEARCH (TAG "`+t2+`") UID`)
	expectLines(t, c, `STORE 1 +FLAGS.SILENT (\Seen)`,
		`* ESEARCH (TAG "`+t1+`") REMOVEFROM (6 1)`)
}

func nextTag(c *client) string { return fmt.Sprintf("T%d", c.tag.Load()+1) }
