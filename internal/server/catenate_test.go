package server_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// lit is a non-synchronizing literal carrying s.
func lit(s string) string { return fmt.Sprintf("{%d+}\r\n%s", len(s), s) }

func catenateFixture(t *testing.T) (*client, string) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "secret")
	c := ts.login("alice", "secret")
	c.appendMsg("INBOX", "", crlf("From: a@x\nSubject: one\n\nHello world body\n"))
	c.appendMsg("INBOX", "", crlf("From: b@x\nContent-Type: multipart/mixed; boundary=BB\n\n--BB\nContent-Type: text/plain\n\npart one\n--BB\nContent-Type: text/plain\n\npart two\n--BB--\n"))
	c.ok("CREATE Dest")
	u := c.ok("STATUS INBOX (UIDVALIDITY)")
	m := regexp.MustCompile(`UIDVALIDITY (\d+)`).FindStringSubmatch(u[0])
	return c, m[1]
}

func fetchBody(t *testing.T, c *client, mbox string, seq int) string {
	t.Helper()
	c.ok("EXAMINE " + mbox)
	u := c.ok(fmt.Sprintf("FETCH %d BODY.PEEK[]", seq))
	if len(u) != 1 {
		t.Fatalf("FETCH: %q", u)
	}
	i := strings.Index(u[0], "}\r\n")
	return strings.TrimSuffix(u[0][i+3:], ")")
}

func TestCatenate(t *testing.T) {
	c, uv := catenateFixture(t)
	caps := c.ok("CAPABILITY")
	if !strings.Contains(caps[0], " CATENATE") {
		t.Fatalf("CATENATE not advertised: %q", caps)
	}
	// Header of message 1 + new text.
	_, tagged := c.do(`APPEND Dest (\Seen) CATENATE (URL "/INBOX;UIDVALIDITY=` + uv + `/;UID=1/;SECTION=HEADER" TEXT ` + lit("body1\r\n") + `)`)
	if !strings.HasPrefix(tagged, "OK [APPENDUID ") || !strings.HasSuffix(tagged, " 1] APPEND completed") {
		t.Fatalf("APPEND: %q", tagged)
	}
	if got, want := fetchBody(t, c, "Dest", 1), "From: a@x\r\nSubject: one\r\n\r\nbody1\r\n"; got != want {
		t.Fatalf("body = %q, want %q", got, want)
	}
	// Text, a MIME part (lowercase URL, %-encoded mailbox), text.
	c.ok("CREATE \"Sp ace\"")
	c.appendMsg(`"Sp ace"`, "", crlf("Subject: s\n\nspace body\n"))
	c.ok(`APPEND Dest CATENATE (TEXT ` + lit("Subject: x\r\n\r\n") + ` url "/inbox/;uid=2/;section=2" TEXT ` + lit("\r\n--\r\n") + ` URL "/Sp%20ace/;UID=1/;SECTION=TEXT")`)
	if got, want := fetchBody(t, c, "Dest", 2), "Subject: x\r\n\r\npart two\r\n--\r\nspace body\r\n"; got != want {
		t.Fatalf("body = %q, want %q", got, want)
	}
	// Whole message, PARTIAL, and an absolute URL with the user name.
	c.ok(`APPEND Dest CATENATE (URL "imap://alice@localhost/INBOX/;UID=1/;PARTIAL=0.11" TEXT ` + lit("\r\nx\r\n") + `)`)
	if got, want := fetchBody(t, c, "Dest", 3), "From: a@x\r\n\r\nx\r\n"; got != want {
		t.Fatalf("body = %q, want %q", got, want)
	}
	// Relative URL against the selected mailbox (RFC 4469 §5).
	c.ok("SELECT INBOX")
	c.ok(`APPEND Dest CATENATE (URL ";UID=1/;SECTION=HEADER.FIELDS%20(FROM)" TEXT ` + lit("\r\nrel\r\n") + `)`)
	if got, want := fetchBody(t, c, "Dest", 4), "From: a@x\r\n\r\n\r\nrel\r\n"; got != want {
		t.Fatalf("body = %q, want %q", got, want)
	}

	// Errors: no message is stored by a failing APPEND.
	for _, tc := range []struct{ url, want string }{
		{"/INBOX;UIDVALIDITY=1/;UID=1", "NO [BADURL /INBOX;UIDVALIDITY=1/;UID=1]"},
		{"/INBOX/;UID=99", "NO [BADURL /INBOX/;UID=99]"},
		{"/Nope/;UID=1", "NO [BADURL /Nope/;UID=1]"},
		{"imap://bob@localhost/INBOX/;UID=1", "NO [BADURL imap://bob@localhost/INBOX/;UID=1]"},
		{"/INBOX/;UID=1/;SECTION=BOGUS", "NO [BADURL /INBOX/;UID=1/;SECTION=BOGUS]"},
		{"/INBOX/;UID=1/;URLAUTH=anonymous", "NO [BADURL /INBOX/;UID=1/;URLAUTH=anonymous]"},
		{"/;UID=1", "NO [BADURL /;UID=1]"},
		{"imap://alice@h/;UID=1", "NO [BADURL imap://alice@h/;UID=1]"},
	} {
		_, tagged := c.do(`APPEND Dest CATENATE (TEXT ` + lit("a: b\r\n") + ` URL "` + tc.url + `" TEXT ` + lit("x\r\n") + `)`)
		if !strings.HasPrefix(tagged, tc.want+" ") {
			t.Errorf("%s: got %q, want %q", tc.url, tagged, tc.want)
		}
	}
	// Relative URL with nothing selected.
	c.ok("UNSELECT")
	c.expect(`APPEND Dest CATENATE (URL ";UID=1")`, "NO [BADURL ;UID=1]")
	// Missing destination wins over a bad URL.
	c.expect(`APPEND Nope CATENATE (URL "/INBOX;UIDVALIDITY=1/;UID=1")`, "NO [TRYCREATE]")
	// Syntax.
	c.expect(`APPEND Dest CATENATE ()`, "BAD")
	c.expect(`APPEND Dest CATENATE (FOO "x")`, "BAD")
	hasLine(t, c.ok("STATUS Dest (MESSAGES)"), "* STATUS Dest (MESSAGES 4)")
}

func TestCatenateMultiappend(t *testing.T) {
	c, _ := catenateFixture(t)
	// A CATENATE message, a plain literal; then a batch whose second
	// message has a bad URL, which must store nothing.
	c.ok(`APPEND Dest CATENATE (URL "/INBOX/;UID=1") (\Flagged) ` + lit("New: m\r\n\r\nb\r\n"))
	hasLine(t, c.ok("STATUS Dest (MESSAGES)"), "* STATUS Dest (MESSAGES 2)")
	if got, want := fetchBody(t, c, "Dest", 1), "From: a@x\r\nSubject: one\r\n\r\nHello world body\r\n"; got != want {
		t.Fatalf("body = %q, want %q", got, want)
	}
	if got, want := fetchBody(t, c, "Dest", 2), "New: m\r\n\r\nb\r\n"; got != want {
		t.Fatalf("body = %q, want %q", got, want)
	}
	c.expect(`APPEND Dest CATENATE (URL "/INBOX/;UID=1") CATENATE (URL "/INBOX/;UID=7")`, "NO [BADURL /INBOX/;UID=7]")
	hasLine(t, c.ok("STATUS Dest (MESSAGES)"), "* STATUS Dest (MESSAGES 2)")
}
