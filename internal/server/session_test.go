package server_test

import (
	"crypto/tls"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

const simpleMsg = "From: Alice <alice@example.org>\r\nTo: bob@example.org\r\nSubject: hello\r\nDate: Mon, 7 Feb 1994 21:52:25 -0800\r\nMessage-ID: <1@example.org>\r\n\r\nHello Bob.\r\n"

func TestGreetingAndCapabilities(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	c := ts.dial()
	if !strings.Contains(c.greeting, "IMAP4rev2") || !strings.Contains(c.greeting, "STARTTLS") || !strings.Contains(c.greeting, "LOGINDISABLED") {
		t.Fatalf("plaintext greeting: %q", c.greeting)
	}
	if strings.Contains(c.greeting, "AUTH=PLAIN") {
		t.Fatalf("AUTH=PLAIN advertised before TLS: %q", c.greeting)
	}
	u := c.ok("CAPABILITY")
	if len(u) != 1 || !strings.HasPrefix(u[0], "* CAPABILITY IMAP4rev1 IMAP4rev2 ") {
		t.Fatalf("capability: %q", u)
	}
	c.ok("NOOP")
	u = c.expect("LOGOUT", "OK")
	hasLine(t, u, "* BYE Logging out")
}

func TestLoginRefusedWithoutTLS(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "secret")
	c := ts.dial()
	c.expect("LOGIN alice secret", "NO [PRIVACYREQUIRED]")
	c.expect("AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==", "NO [PRIVACYREQUIRED]")
}

func TestStartTLSThenLogin(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "secret")
	c := ts.dial()
	c.ok("STARTTLS")
	tc := tls.Client(c.conn, &tls.Config{RootCAs: ts.roots, ServerName: "localhost"})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c.conn = tc
	c.br.Reset(tc)
	u := c.ok("CAPABILITY")
	if !strings.Contains(u[0], "AUTH=PLAIN") || strings.Contains(u[0], "STARTTLS") || strings.Contains(u[0], "LOGINDISABLED") {
		t.Fatalf("capability after STARTTLS: %q", u[0])
	}
	c.expect("LOGIN alice wrong", "NO [AUTHENTICATIONFAILED]")
	_, tagged := c.do("LOGIN alice secret")
	if !strings.HasPrefix(tagged, "OK [CAPABILITY IMAP4rev1 IMAP4rev2 ") || !strings.Contains(tagged, "UIDPLUS") {
		t.Fatalf("login: %q", tagged)
	}
}

func TestStartTLSInjectionIsNotExecuted(t *testing.T) {
	ts := newTestServer(t, serverOpts{insecureAuth: true})
	ts.addUser("alice", "secret")
	c := ts.dial()
	// A pipelined command after STARTTLS in the same plaintext packet must
	// never run (CVE-2011-0411).
	c.write("a STARTTLS\r\nb LOGIN alice secret\r\n")
	if l := c.readLine(); !strings.HasPrefix(l, "a OK") {
		t.Fatalf("starttls: %q", l)
	}
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 100)
	n, err := c.br.Read(buf)
	if err == nil && strings.Contains(string(buf[:n]), "b OK") {
		t.Fatalf("injected command executed: %q", buf[:n])
	}
}

func TestAuthenticatePlain(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "secret")
	c := ts.dialTLS()
	// SASL-IR form.
	c.ok("AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==")
	// Continuation form, and cancel.
	c2 := ts.dialTLS()
	c2.write("x AUTHENTICATE PLAIN\r\n")
	if l := c2.readLine(); l != "+ " {
		t.Fatalf("continuation: %q", l)
	}
	c2.write("*\r\n")
	if l := c2.readLine(); !strings.HasPrefix(l, "x BAD") {
		t.Fatalf("cancel: %q", l)
	}
	c2.write("y AUTHENTICATE PLAIN\r\n")
	c2.readLine()
	c2.write("AGFsaWNlAHNlY3JldA==\r\n")
	if l := c2.readLine(); !strings.HasPrefix(l, "y OK") {
		t.Fatalf("authenticate: %q", l)
	}
}

func TestSelectAppendFetchStoreExpunge(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "secret")
	c := ts.login("alice", "secret")
	tagged := c.appendMsg("INBOX", `\Flagged`, simpleMsg)
	if !regexp.MustCompile(`^OK \[APPENDUID \d+ 1\] `).MatchString(tagged) {
		t.Fatalf("append: %q", tagged)
	}
	c.appendMsg("INBOX", "", simpleMsg)
	u, tagged := c.do("SELECT INBOX")
	if tagged != "OK [READ-WRITE] SELECT completed" {
		t.Fatalf("select: %q", tagged)
	}
	hasLine(t, u, `* FLAGS (\Answered \Flagged \Deleted \Seen \Draft)`)
	hasLine(t, u, "* 2 EXISTS")
	hasLine(t, u, "* 2 RECENT")
	hasLine(t, u, "* OK [UNSEEN 1] First unseen")
	hasLine(t, u, "* OK [UIDNEXT 3] Predicted next UID")

	u = c.ok("FETCH 1:* (UID FLAGS RFC822.SIZE)")
	size := len(simpleMsg)
	hasLine(t, u, "* 1 FETCH (UID 1 FLAGS (\\Flagged \\Recent) RFC822.SIZE "+itoa(size)+")")
	hasLine(t, u, "* 2 FETCH (UID 2 FLAGS (\\Recent) RFC822.SIZE "+itoa(size)+")")

	u = c.ok("FETCH 1 ENVELOPE")
	hasLine(t, u, `* 1 FETCH (ENVELOPE ("Mon, 7 Feb 1994 21:52:25 -0800" "hello" (("Alice" NIL "alice" "example.org")) (("Alice" NIL "alice" "example.org")) (("Alice" NIL "alice" "example.org")) ((NIL NIL "bob" "example.org")) NIL NIL NIL "<1@example.org>"))`)

	// BODY.PEEK does not set \Seen; BODY[] does, and reports FLAGS.
	u = c.ok("FETCH 1 BODY.PEEK[HEADER.FIELDS (Subject)]")
	hasLine(t, u, "* 1 FETCH (BODY[HEADER.FIELDS (Subject)] {18}\r\nSubject: hello\r\n\r\n)")
	u = c.ok("UID FETCH 2 BODY[TEXT]")
	hasLine(t, u, "* 2 FETCH (UID 2 BODY[TEXT] {12}\r\nHello Bob.\r\n FLAGS (\\Seen \\Recent))")
	u = c.ok("FETCH 1 BODY[]<0.4>")
	hasLine(t, u, "* 1 FETCH (BODY[]<0> {4}\r\nFrom FLAGS (\\Flagged \\Seen \\Recent))")

	u = c.ok("STORE 1 +FLAGS (\\Deleted $Label1)")
	hasLine(t, u, `* FLAGS (\Answered \Flagged \Deleted \Seen \Draft $Label1)`)
	hasLine(t, u, `* 1 FETCH (FLAGS (\Deleted \Flagged \Seen $Label1 \Recent))`)
	u = c.ok("STORE 1 -FLAGS.SILENT ($Label1)")
	if len(u) != 0 {
		t.Fatalf("silent store sent %q", u)
	}
	u = c.ok("EXPUNGE")
	hasLine(t, u, "* 1 EXPUNGE")
	u = c.ok("UID FETCH 1:* UID")
	if len(u) != 1 || u[0] != "* 1 FETCH (UID 2)" {
		t.Fatalf("after expunge: %q", u)
	}
	c.expect("FETCH 5 UID", "BAD")
	c.ok("CLOSE")
	c.expect("FETCH 1 UID", "BAD")
}

func TestCopyMoveUIDPlus(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "secret")
	c := ts.login("alice", "secret")
	for i := 0; i < 3; i++ {
		c.appendMsg("INBOX", "", simpleMsg)
	}
	c.ok("SELECT INBOX")
	_, tagged := c.do("COPY 1:2 Archive")
	if !regexp.MustCompile(`^OK \[COPYUID \d+ 1:2 1:2\] COPY completed$`).MatchString(tagged) {
		t.Fatalf("copy: %q", tagged)
	}
	c.expect("COPY 1 Nowhere", "NO [TRYCREATE]")
	u := c.ok("UID MOVE 2:3 Trash")
	if len(u) != 3 || !regexp.MustCompile(`^\* OK \[COPYUID \d+ 2:3 1:2\]`).MatchString(u[0]) || u[1] != "* 3 EXPUNGE" || u[2] != "* 2 EXPUNGE" {
		t.Fatalf("move: %q", u)
	}
	u = c.ok("STATUS Trash (MESSAGES UIDNEXT UNSEEN)")
	hasLine(t, u, "* STATUS Trash (MESSAGES 2 UIDNEXT 3 UNSEEN 2)")
	u = c.ok("STATUS Archive (MESSAGES SIZE)")
	hasLine(t, u, "* STATUS Archive (MESSAGES 2 SIZE "+itoa(2*len(simpleMsg))+")")
}

func TestListVariants(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "secret")
	c := ts.login("alice", "secret")
	c.ok("CREATE Projects/tern/")
	c.ok(`CREATE "Caf&AOk-"`)
	c.expect("CREATE INBOX", "NO [ALREADYEXISTS]")
	u := c.ok(`LIST "" ""`)
	hasLine(t, u, `* LIST (\Noselect) "/" ""`)
	u = c.ok(`LIST "" "*"`)
	hasLine(t, u, `* LIST (\HasNoChildren) "/" INBOX`)
	hasLine(t, u, `* LIST (\HasNoChildren \Sent) "/" Sent`)
	hasLine(t, u, `* LIST (\HasChildren) "/" Projects`)
	hasLine(t, u, `* LIST (\HasNoChildren) "/" Projects/tern`)
	hasLine(t, u, `* LIST (\HasNoChildren) "/" Caf&AOk-`)
	if u[0] != `* LIST (\HasNoChildren) "/" INBOX` {
		t.Fatalf("INBOX not first: %q", u)
	}
	u = c.ok(`LIST "" "%"`)
	for _, l := range u {
		if strings.Contains(l, "Projects/tern") {
			t.Fatalf("%% matched across the separator: %q", l)
		}
	}
	u = c.ok(`LIST (SUBSCRIBED) "" "*" RETURN (SPECIAL-USE)`)
	hasLine(t, u, `* LIST (\HasNoChildren \Subscribed \Trash) "/" Trash`)
	for _, l := range u {
		if strings.Contains(l, "Projects") {
			t.Fatalf("unsubscribed mailbox listed: %q", l)
		}
	}
	u = c.ok(`LIST "" "INBOX" RETURN (STATUS (MESSAGES UIDNEXT))`)
	hasLine(t, u, `* STATUS INBOX (MESSAGES 0 UIDNEXT 1)`)
	u = c.ok(`LIST "" "inbox"`)
	hasLine(t, u, `* LIST (\HasNoChildren) "/" INBOX`)
	u = c.ok(`LSUB "" "*"`)
	hasLine(t, u, `* LSUB () "/" Archive`)
	c.ok("ENABLE UTF8=ACCEPT")
	u = c.ok(`LIST "" "Caf*"`)
	hasLine(t, u, `* LIST (\HasNoChildren) "/" "Café"`)
	c.ok(`RENAME Projects Work`)
	u = c.ok(`LIST "" "Work/*"`)
	hasLine(t, u, `* LIST (\HasNoChildren) "/" Work/tern`)
	c.ok(`DELETE Work/tern`)
	c.ok(`DELETE Work`)
	c.expect(`DELETE INBOX`, "NO")
	c.expect(`SELECT Work`, "NO [NONEXISTENT]")
}

func TestTwoSessionsSeeEachOther(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "secret")
	a := ts.login("alice", "secret")
	b := ts.login("alice", "secret")
	a.appendMsg("INBOX", "", simpleMsg)
	a.ok("SELECT INBOX")
	b.ok("SELECT INBOX")

	b.appendMsg("INBOX", "", simpleMsg)
	u := a.ok("NOOP")
	hasLine(t, u, "* 2 EXISTS")

	b.ok("STORE 1 +FLAGS (\\Seen)")
	u = a.ok("NOOP")
	hasLine(t, u, `* 1 FETCH (FLAGS (\Seen \Recent))`)

	// An expunge by b is not reported to a during FETCH, but is at NOOP.
	b.ok("STORE 2 +FLAGS (\\Deleted)")
	b.ok("EXPUNGE")
	u = a.ok("FETCH 1 UID")
	for _, l := range u {
		if strings.Contains(l, "EXPUNGE") {
			t.Fatalf("EXPUNGE sent during FETCH: %q", u)
		}
	}
	u = a.ok("NOOP")
	hasLine(t, u, "* 2 EXPUNGE")
}

func TestIdleSeesAppendAtOnce(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "secret")
	a := ts.login("alice", "secret")
	b := ts.login("alice", "secret")
	a.ok("SELECT INBOX")
	a.write("I1 IDLE\r\n")
	if l := a.readLine(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("idle: %q", l)
	}
	start := time.Now()
	b.appendMsg("INBOX", "", simpleMsg)
	if l := a.readLine(); l != "* 1 EXISTS" {
		t.Fatalf("idle update: %q", l)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("IDLE update took %v", d)
	}
	if l := a.readLine(); l != "* 1 RECENT" {
		t.Fatalf("idle update: %q", l)
	}
	a.write("DONE\r\n")
	if l := a.readLine(); l != "I1 OK IDLE completed" {
		t.Fatalf("done: %q", l)
	}
}

func TestSearch(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "secret")
	c := ts.login("alice", "secret")
	c.appendMsg("INBOX", `\Seen`, simpleMsg)
	c.appendMsg("INBOX", "", strings.Replace(simpleMsg, "Subject: hello", "Subject: =?UTF-8?Q?caf=C3=A9_menu?=", 1))
	c.appendMsg("INBOX", `\Flagged`, strings.Replace(simpleMsg, "Hello Bob.", "The quick brown fox", 1))
	c.ok("SELECT INBOX")
	hasLine(t, c.ok("SEARCH UNSEEN"), "* SEARCH 2 3")
	hasLine(t, c.ok("SEARCH CHARSET UTF-8 SUBJECT {5+}\r\ncafé"), "* SEARCH 2")
	hasLine(t, c.ok("UID SEARCH BODY quick"), "* SEARCH 3")
	hasLine(t, c.ok("SEARCH OR FLAGGED SEEN"), "* SEARCH 1 3")
	hasLine(t, c.ok("SEARCH NOT FROM alice"), "* SEARCH")
	hasLine(t, c.ok("SEARCH RETURN (MIN MAX COUNT ALL) ALL"), `* ESEARCH (TAG "`+c.lastTag()+`") MIN 1 MAX 3 COUNT 3 ALL 1:3`)
	u := c.ok("SEARCH RETURN (SAVE) FLAGGED")
	if len(u) != 0 {
		t.Fatalf("SAVE alone returned %q", u)
	}
	hasLine(t, c.ok("FETCH $ UID"), "* 3 FETCH (UID 3)")
	c.expect("SEARCH CHARSET KOI9-X ALL", "NO [BADCHARSET")
}

func TestRev2Behaviour(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "secret")
	c := ts.login("alice", "secret")
	hasLine(t, c.ok("ENABLE IMAP4rev2"), "* ENABLED IMAP4rev2")
	c.appendMsg("INBOX", "", simpleMsg)
	u := c.ok("SELECT INBOX")
	for _, l := range u {
		if strings.Contains(l, "RECENT") || strings.Contains(l, "UNSEEN") {
			t.Fatalf("rev2 SELECT sent %q", l)
		}
	}
	hasLine(t, u, `* LIST (\HasNoChildren) "/" INBOX`)
	hasLine(t, c.ok("SEARCH ALL"), `* ESEARCH (TAG "`+c.lastTag()+`") ALL 1`)
	c.ok("CREATE Sent/2026")
	hasLine(t, c.ok("EXAMINE Sent"), `* LIST (\HasChildren \Sent) "/" Sent`)
	c.ok("SELECT INBOX")
	hasLine(t, c.ok("FETCH 1 FLAGS"), `* 1 FETCH (FLAGS ())`)
}

func TestBadInputAnswersAndSurvives(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "secret")
	c := ts.login("alice", "secret")
	c.expect("FROB", "BAD")
	c.expect("FETCH 1 FLAGS", "BAD")
	c.ok("SELECT INBOX")
	c.expect("FETCH 1:* (FLAGS", "BAD")
	c.expect("STORE 1 +FLAGS (\\Bogus)", "BAD")
	c.write("x APPEND INBOX {999999999999}\r\n")
	if l := c.readLine(); !strings.HasPrefix(l, "x ") || strings.HasPrefix(l, "x OK") {
		t.Fatalf("huge literal: %q", l)
	}
	c.write("y NOOP\r\n")
	if l := c.readLine(); l != "y OK NOOP completed" {
		t.Fatalf("after huge literal: %q", l)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestMultiAppend(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "secret")
	c := ts.login("alice", "secret")
	m1, m2 := simpleMsg, strings.Replace(simpleMsg, "hello", "second", 1)
	_, tagged := c.do("APPEND INBOX (\\Seen) {" + itoa(len(m1)) + "+}\r\n" + m1 + " {" + itoa(len(m2)) + "+}\r\n" + m2)
	if !regexp.MustCompile(`^OK \[APPENDUID \d+ 1:2\] APPEND completed$`).MatchString(tagged) {
		t.Fatalf("multiappend: %q", tagged)
	}
	// All or nothing: a bad flag on the second message appends neither.
	c.expect("APPEND INBOX {"+itoa(len(m1))+"+}\r\n"+m1+" (\\Bogus) {"+itoa(len(m2))+"+}\r\n"+m2, "BAD")
	c.ok("SELECT INBOX")
	u := c.ok("FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (Subject)])")
	if len(u) != 2 || !strings.Contains(u[0], "Subject: hello") || !strings.Contains(u[1], "Subject: second") || !strings.Contains(u[0], `\Seen`) || strings.Contains(u[1], `\Seen`) {
		t.Fatalf("after multiappend: %q", u)
	}
}

// A rev1 session that sends raw UTF-8 (as go-imap does) gets the mailbox it
// means; invalid modified UTF-7 is refused with the right code.
func TestRawUTF8NamesFromRev1Clients(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "secret")
	c := ts.login("alice", "secret")
	c.ok(`CREATE "Café Notes"`)
	hasLine(t, c.ok(`LIST "" "Caf*"`), `* LIST (\HasNoChildren) "/" "Caf&AOk- Notes"`)
	c.ok(`SELECT "Caf&AOk- Notes"`)
	c.expect(`CREATE "bad&name"`, "NO [CANNOT]")
	c.expect(`SELECT "bad&name"`, "NO [NONEXISTENT]")
}

func TestDeleteAndRenameSelected(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "secret")
	c := ts.login("alice", "secret")
	c.ok("ENABLE IMAP4rev2")
	c.appendMsg("INBOX", "", simpleMsg)
	// RENAME INBOX moves its messages; the selected INBOX stays selected.
	c.ok("SELECT INBOX")
	c.ok("RENAME INBOX Old")
	c.ok("DELETE Old")
	c.ok("NOOP")
	// Still selected (empty INBOX: no output). A sequence-number FETCH
	// would be BAD in an empty mailbox whether selected or not.
	c.ok("UID FETCH 1:* FLAGS")
	// DELETE of the selected mailbox deselects it with [CLOSED].
	c.ok("CREATE Gone")
	c.ok("SELECT Gone")
	hasLine(t, c.ok("DELETE Gone"), "* OK [CLOSED] Selected mailbox deleted")
	c.expect("UID FETCH 1:* FLAGS", "BAD")
	// A failed DELETE leaves the selection alone.
	c.ok("SELECT INBOX")
	c.expect("DELETE Nowhere", "NO")
	c.ok("UID FETCH 1:* FLAGS")
	c.ok("CREATE P/C")
	c.ok("DELETE P")
	c.expect("DELETE P", "NO [HASCHILDREN]")
}

// TestAppendToSelectedClaimsRecent: a session appending to the mailbox it
// has selected gets \Recent for its message (claimed by the Append
// itself), and no other session does, whether it had the mailbox
// selected before or selects it after.
func TestAppendToSelectedClaimsRecent(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "secret")
	a := ts.login("alice", "secret")
	b := ts.login("alice", "secret")
	a.ok("SELECT INBOX")
	b.ok("SELECT INBOX")
	a.write("A1 APPEND INBOX {" + itoa(len(simpleMsg)) + "+}\r\n" + simpleMsg + "\r\n")
	u, tagged := a.readUntil("A1")
	if !strings.HasPrefix(tagged, "OK [APPENDUID ") {
		t.Fatalf("append: %q", tagged)
	}
	hasLine(t, u, "* 1 EXISTS")
	hasLine(t, u, "* 1 RECENT")
	hasLine(t, a.ok("FETCH 1 (FLAGS)"), `* 1 FETCH (FLAGS (\Recent))`)
	u = b.ok("NOOP")
	hasLine(t, u, "* 1 EXISTS")
	hasLine(t, u, "* 0 RECENT")
	hasLine(t, b.ok("FETCH 1 (FLAGS)"), `* 1 FETCH (FLAGS ())`)
	c := ts.login("alice", "secret")
	hasLine(t, c.ok("SELECT INBOX"), "* 0 RECENT")

	// b's own message is b's; a keeps its first.
	b.write("B1 APPEND INBOX {" + itoa(len(simpleMsg)) + "+}\r\n" + simpleMsg + "\r\n")
	u, _ = b.readUntil("B1")
	hasLine(t, u, "* 2 EXISTS")
	hasLine(t, u, "* 1 RECENT")
	u = a.ok("NOOP")
	hasLine(t, u, "* 2 EXISTS")
	hasLine(t, u, "* 1 RECENT")
	hasLine(t, a.ok("FETCH 1:2 (FLAGS)"), `* 2 FETCH (FLAGS ())`)
}
