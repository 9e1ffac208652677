package server_test

import (
	"strings"
	"testing"
)

// TestFetchPreview: FETCH PREVIEW (RFC 8970) answers the start of the
// decoded text, computed at delivery: the text/plain part of an
// alternative, HTML as rendered text, quoted-printable Latin-1, white
// space collapsed, at most 200 characters; the capability is announced.
func TestFetchPreview(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "secret")
	c := ts.login("alice", "secret")
	if caps := c.ok("CAPABILITY"); len(caps) == 0 || !strings.Contains(caps[0]+" ", " PREVIEW ") {
		t.Fatalf("PREVIEW not announced: %q", caps)
	}
	long := strings.Repeat("word ", 100)
	for _, m := range []string{
		"Subject: plain\n\nHello   there,\n\n  how are you?\n",
		"Subject: alt\nContent-Type: multipart/alternative; boundary=b\n\n--b\nContent-Type: text/html\n\n<p>html</p>\n--b\nContent-Type: text/plain\n\nthe plain one\n--b--\n",
		"Subject: html\nContent-Type: text/html; charset=utf-8\n\n<html><style>x{}</style><p>Caf&eacute; <b>au</b> lait</p></html>\n",
		"Subject: qp\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n\nCaf=E9 cr=E8me\n",
		"Subject: long\n\n" + long + "\n",
		"Subject: none\nContent-Type: application/octet-stream\n\nAAAA\n",
	} {
		c.appendMsg("INBOX", "", crlf(m))
	}
	c.ok("SELECT INBOX")
	lines := c.ok("FETCH 1:6 (PREVIEW)")
	for _, want := range []string{
		`* 1 FETCH (PREVIEW "Hello there, how are you?")`,
		`* 2 FETCH (PREVIEW "the plain one")`,
		"* 3 FETCH (PREVIEW {13}\r\nCafé au lait)",
		"* 4 FETCH (PREVIEW {12}\r\nCafé crème)",
		`* 5 FETCH (PREVIEW "` + strings.TrimSpace(long[:200]) + `")`,
		`* 6 FETCH (PREVIEW "")`,
	} {
		hasLine(t, lines, want)
	}
	c.ok("ENABLE UTF8=ACCEPT")
	lines = c.ok("UID FETCH 3:4 (PREVIEW (LAZY))")
	hasLine(t, lines, `* 3 FETCH (UID 3 PREVIEW "Café au lait")`)
	hasLine(t, lines, `* 4 FETCH (UID 4 PREVIEW "Café crème")`)
	if _, tagged := c.do("FETCH 1 (PREVIEW (FUZZY))"); !strings.HasPrefix(tagged, "BAD") {
		t.Fatalf("unknown preview modifier: %q", tagged)
	}
}

// TestFetchPreviewNotIndexed: mail stored before previews were kept
// (contents.preview NULL, as after the schema migration, before the
// background indexer reached it) still gets its PREVIEW at once: FETCH
// computes it from the message and keeps it. Only PREVIEW (LAZY) may
// answer NIL (RFC 8970), and does so only until a text is kept.
func TestFetchPreviewNotIndexed(t *testing.T) {
	needSQLite(t)
	dir := t.TempDir()
	ts := newTestServer(t, serverOpts{dataDir: dir, noTextIndexer: true})
	ts.addUser("alice", "secret")
	c := ts.login("alice", "secret")
	c.appendMsg("INBOX", "", crlf("Subject: a\n\nfirst   message\n"))
	c.appendMsg("INBOX", "", crlf("Subject: b\nContent-Type: text/html\n\n<p>second <b>one</b></p>\n"))
	c.appendMsg("INBOX", "", crlf("Subject: c\n\nthird\n"))
	db := userDB(t, dir, 1)
	if _, err := db.Exec(`UPDATE contents SET preview = NULL`); err != nil {
		t.Fatal(err)
	}
	c.ok("SELECT INBOX")
	lines := c.ok("FETCH 1:3 (PREVIEW (LAZY))")
	hasLine(t, lines, "* 1 FETCH (PREVIEW NIL)")
	lines = c.ok("FETCH 1:2 (PREVIEW)")
	hasLine(t, lines, `* 1 FETCH (PREVIEW "first message")`)
	hasLine(t, lines, `* 2 FETCH (PREVIEW "second one")`)
	var kept int
	if err := db.QueryRow(`SELECT COUNT(*) FROM contents WHERE preview IS NOT NULL`).Scan(&kept); err != nil {
		t.Fatal(err)
	}
	if kept != 2 {
		t.Fatalf("%d previews kept, want 2", kept)
	}
	lines = c.ok("FETCH 1:3 (PREVIEW (LAZY))")
	hasLine(t, lines, `* 1 FETCH (PREVIEW "first message")`)
	hasLine(t, lines, "* 3 FETCH (PREVIEW NIL)")
	lines = c.ok("UID FETCH 3 (BODY.PEEK[HEADER] PREVIEW)")
	hasLine(t, lines, "* 3 FETCH (UID 3 BODY[HEADER] {14}\r\nSubject: c\r\n\r\n PREVIEW \"third\")")
}
