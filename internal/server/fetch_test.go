package server_test

import (
	"strings"
	"testing"
)

// TestFetchEveryItemMultipart checks the exact bytes of every FETCH item on
// a multipart message with a nested multipart message/rfc822. BODY and
// BODYSTRUCTURE were cross-checked byte for byte against Dovecot 2.3.
func TestFetchEveryItemMultipart(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "secret")
	c := ts.login("alice", "secret")
	c.appendMsg("INBOX", "", multipartMsg)
	c.ok("SELECT INBOX")
	q := func(s string) string { return strings.ReplaceAll(s, "'", `"`) }
	cases := []struct{ item, want string }{
		{"ENVELOPE", q(`* 1 FETCH (ENVELOPE ('Tue, 03 Mar 2026 10:00:00 +0100' '=?UTF-8?Q?Quarterly_r=C3=A9port?=' (('Alice Example' NIL 'alice' 'example.org')) (('Alice Example' NIL 'alice' 'example.org')) (('Alice Example' NIL 'alice' 'example.org')) (('Bob' NIL 'bob' 'example.org')(NIL NIL 'carol' 'example.org')) ((NIL NIL 'undisclosed-recipients' NIL)(NIL NIL NIL NIL)) NIL NIL '<q1@example.org>'))`)},
		{"BODY", q(`* 1 FETCH (BODY ((('text' 'plain' ('charset' 'utf-8') NIL NIL 'quoted-printable' 38 0)('text' 'html' ('charset' 'utf-8') NIL NIL '7bit' 21 0) 'alternative')('application' 'pdf' ('name' 'q1.pdf') NIL NIL 'base64' 28)('message' 'rfc822' NIL NIL NIL '7bit' 302 ('Mon, 02 Mar 2026 09:00:00 +0000' 'Fwd data' (('Dave' NIL 'dave' 'example.net')) (('Dave' NIL 'dave' 'example.net')) (('Dave' NIL 'dave' 'example.net')) ((NIL NIL 'alice' 'example.org')) NIL NIL NIL NIL) (('text' 'plain' ('charset' 'us-ascii') NIL NIL '7bit' 10 0)('text' 'csv' ('name' 'data.csv' 'charset' 'us-ascii') NIL NIL '7bit' 8 1) 'mixed') 17) 'mixed'))`)},
		{"BODYSTRUCTURE", q(`* 1 FETCH (BODYSTRUCTURE ((('text' 'plain' ('charset' 'utf-8') NIL NIL 'quoted-printable' 38 0 NIL NIL NIL NIL)('text' 'html' ('charset' 'utf-8') NIL NIL '7bit' 21 0 NIL NIL NIL NIL) 'alternative' ('boundary' 'alt') NIL NIL NIL)('application' 'pdf' ('name' 'q1.pdf') NIL NIL 'base64' 28 NIL ('attachment' ('filename' 'q1.pdf')) NIL NIL)('message' 'rfc822' NIL NIL NIL '7bit' 302 ('Mon, 02 Mar 2026 09:00:00 +0000' 'Fwd data' (('Dave' NIL 'dave' 'example.net')) (('Dave' NIL 'dave' 'example.net')) (('Dave' NIL 'dave' 'example.net')) ((NIL NIL 'alice' 'example.org')) NIL NIL NIL NIL) (('text' 'plain' ('charset' 'us-ascii') NIL NIL '7bit' 10 0 NIL NIL NIL NIL)('text' 'csv' ('name' 'data.csv' 'charset' 'us-ascii') NIL NIL '7bit' 8 1 NIL NIL NIL NIL) 'mixed' ('boundary' 'inner') NIL NIL NIL) 17 NIL NIL NIL NIL) 'mixed' ('boundary' 'outer') NIL NIL NIL))`)},
		{"BODY.PEEK[1]", "* 1 FETCH (BODY[1] {216}\r\n--alt\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nNumbers are up =E2=80=94 see attached.\r\n--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Numbers are up</p>\r\n--alt--\r\n)"},
		{"BODY.PEEK[1.2]", "* 1 FETCH (BODY[1.2] {21}\r\n<p>Numbers are up</p>)"},
		{"BODY.PEEK[2.MIME]", "* 1 FETCH (BODY[2.MIME] {135}\r\nContent-Type: application/pdf; name=\"q1.pdf\"\r\nContent-Disposition: attachment; filename=\"q1.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n)"},
		{"BODY.PEEK[3.HEADER]", "* 1 FETCH (BODY[3.HEADER] {182}\r\nFrom: Dave <dave@example.net>\r\nTo: alice@example.org\r\nSubject: Fwd data\r\nDate: Mon, 02 Mar 2026 09:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"inner\"\r\n\r\n)"},
		{"BODY.PEEK[3.TEXT]", "* 1 FETCH (BODY[3.TEXT] {120}\r\n--inner\r\nContent-Type: text/plain\r\n\r\ninner text\r\n--inner\r\nContent-Type: text/csv; name=data.csv\r\n\r\na,b\r\n1,2\r\n--inner--\r\n)"},
		{"BODY.PEEK[3.1]", "* 1 FETCH (BODY[3.1] {10}\r\ninner text)"},
		{"BODY.PEEK[3.2.MIME]", "* 1 FETCH (BODY[3.2.MIME] {41}\r\nContent-Type: text/csv; name=data.csv\r\n\r\n)"},
		{"BINARY.PEEK[1.1]", "* 1 FETCH (BINARY[1.1] {32}\r\nNumbers are up — see attached.)"},
		{"BINARY.PEEK[2]<1.3>", "* 1 FETCH (BINARY[2]<1> {3}\r\nPDF)"},
		{"BINARY.SIZE[2]", "* 1 FETCH (BINARY.SIZE[2] 19)"},
		{"BODY.PEEK[HEADER.FIELDS.NOT (Subject Date From To Cc Message-ID)]", "* 1 FETCH (BODY[HEADER.FIELDS.NOT (Subject Date From To Cc Message-ID)] {70}\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n)"},
		{"BODY.PEEK[4]", "* 1 FETCH (BODY[4] {0}\r\n)"},
		{"BODY.PEEK[TEXT]<10.20>", "* 1 FETCH (BODY[TEXT]<10> {20}\r\nmulti-part message i)"},
		{"BODY.PEEK[TEXT]<5000.20>", "* 1 FETCH (BODY[TEXT]<5000> {0}\r\n)"},
		{"RFC822.SIZE", "* 1 FETCH (RFC822.SIZE " + itoa(len(multipartMsg)) + ")"},
		{"RFC822.HEADER", "* 1 FETCH (RFC822.HEADER {302}\r\nFrom: \"Alice Example\" <alice@example.org>\r\nTo: Bob <bob@example.org>, carol@example.org\r\nCc: undisclosed-recipients:;\r\nSubject: =?UTF-8?Q?Quarterly_r=C3=A9port?=\r\nDate: Tue, 03 Mar 2026 10:00:00 +0100\r\nMessage-ID: <q1@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n)"},
		{"UID", "* 1 FETCH (UID 1)"},
		{"FLAGS", `* 1 FETCH (FLAGS (\Recent))`},
	}
	for _, tc := range cases {
		u := c.ok("FETCH 1 (" + tc.item + ")")
		if len(u) != 1 || u[0] != tc.want {
			t.Errorf("FETCH %s:\n got %q\nwant %q", tc.item, u, tc.want)
		}
	}
	// Non-peek forms set \Seen and report it.
	u := c.ok("FETCH 1 RFC822.TEXT")
	if len(u) != 1 || !strings.HasPrefix(u[0], "* 1 FETCH (RFC822.TEXT {") || !strings.HasSuffix(u[0], `--outer--`+"\r\n"+` FLAGS (\Seen \Recent))`) {
		t.Errorf("RFC822.TEXT: %q", u)
	}
	u = c.ok("FETCH 1 RFC822")
	if len(u) != 1 || u[0] != "* 1 FETCH (RFC822 {"+itoa(len(multipartMsg))+"}\r\n"+multipartMsg+")" {
		t.Errorf("RFC822: %q", u)
	}
	// Macros expand; FAST is FLAGS INTERNALDATE RFC822.SIZE.
	u = c.ok("FETCH 1 FAST")
	if len(u) != 1 || !strings.HasPrefix(u[0], `* 1 FETCH (FLAGS (\Seen \Recent) INTERNALDATE "`) || !strings.HasSuffix(u[0], " RFC822.SIZE "+itoa(len(multipartMsg))+")") {
		t.Errorf("FAST: %q", u)
	}
	// Failure paths.
	c.expect("FETCH 1 (FAST)", "BAD")
	c.expect("FETCH 1 BODY[1.HEADER.FIELDS]", "BAD")
	c.expect("FETCH 0 UID", "BAD")
	c.expect("FETCH 2 UID", "BAD")
	if u := c.ok("UID FETCH 99 UID"); len(u) != 0 {
		t.Errorf("UID FETCH of a missing UID returned %q", u)
	}
}

func TestFetchUnknownTransferEncoding(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "secret")
	c := ts.login("alice", "secret")
	c.appendMsg("INBOX", "", "Subject: x\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 x\r\n")
	c.ok("SELECT INBOX")
	c.expect("FETCH 1 BINARY[1]", "NO [UNKNOWN-CTE]")
	hasLine(t, c.ok("FETCH 1 BODY.PEEK[1]"), "* 1 FETCH (BODY[1] {13}\r\nbegin 644 x\r\n)")
}

// TestSeqSetInEmptyMailbox: RFC 9051 §9 (seq-number): "*" is the number
// of messages in a non-empty mailbox, and a message sequence number above
// that count, "*" in an empty mailbox included, is answered BAD (as
// Dovecot does). UID sets stay OK: "*" is then UIDNEXT and "1:*" names
// nothing.
func TestSeqSetInEmptyMailbox(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "secret")
	c := ts.login("alice", "secret")
	c.ok("CREATE Other")
	c.ok("SELECT INBOX")
	for _, cmd := range []string{
		"FETCH * FLAGS",
		"FETCH 1:* FLAGS",
		"FETCH 1 FLAGS",
		`STORE 1:* +FLAGS (\Seen)`,
		`STORE * +FLAGS (\Seen)`,
		"COPY 1:* Other",
		"MOVE * Other",
	} {
		if u := c.expect(cmd, "BAD"); len(u) > 0 {
			t.Errorf("%s: untagged %q", cmd, u)
		}
	}
	for _, cmd := range []string{
		"UID FETCH 1:* FLAGS",
		"UID FETCH * FLAGS",
		`UID STORE 1:* +FLAGS (\Seen)`,
		"UID COPY 1:* Other",
		"UID MOVE 1:* Other",
	} {
		if u := c.ok(cmd); len(u) > 0 {
			t.Errorf("%s: untagged %q", cmd, u)
		}
	}
	// Once a message exists, "*" names it.
	c.appendMsg("INBOX", "", simpleMsg)
	c.ok("NOOP")
	if u := c.ok("FETCH * FLAGS"); len(u) != 1 || !strings.HasPrefix(u[0], "* 1 FETCH (FLAGS (") {
		t.Errorf("FETCH * with one message: %q", u)
	}
	c.expect("FETCH 2 FLAGS", "BAD")
}
