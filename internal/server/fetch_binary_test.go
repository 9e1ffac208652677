package server_test

import (
	"fmt"
	"strings"
	"testing"
)

// TestFetchBinaryContentWithNUL: a message APPENDed as a literal8 whose
// body is Content-Transfer-Encoding: binary with NUL octets (Dovecot
// imaptest append-binary). No literal may carry a NUL: BODY[1] comes back
// base64-encoded (as Dovecot does), BINARY[1] and sections that are not a
// single part's body as literal8.
func TestFetchBinaryContentWithNUL(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "secret")
	c := ts.login("alice", "secret")
	body := "\x00-\xe4\r\n\r\n"
	msg := "From: user@domain.org\r\nMime-Version: 1.0\r\n" +
		"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n" + body
	c.write(fmt.Sprintf("A1 APPEND INBOX ~{%d}\r\n", len(msg)))
	if l := c.readLine(); !strings.HasPrefix(l, "+") {
		t.Fatalf("APPEND: expected continuation, got %q", l)
	}
	c.write(msg + "\r\n")
	if _, tagged := c.readUntil("A1"); !strings.HasPrefix(tagged, "OK") {
		t.Fatalf("APPEND: %q", tagged)
	}
	c.ok("SELECT INBOX")
	for _, tc := range []struct{ item, want string }{
		{"BODY.PEEK[1]", "* 1 FETCH (BODY[1] {12}\r\nAC3kDQoNCg==)"},
		{"BODY.PEEK[1]<4.100>", "* 1 FETCH (BODY[1]<4> {8}\r\nDQoNCg==)"},
		{"BINARY.SIZE[1] BINARY.PEEK[1]", "* 1 FETCH (BINARY.SIZE[1] 7 BINARY[1] ~{7}\r\n" + body + ")"},
		{"BODY.PEEK[TEXT]", "* 1 FETCH (BODY[TEXT] ~{7}\r\n" + body + ")"},
		{"BODY.PEEK[]", fmt.Sprintf("* 1 FETCH (BODY[] ~{%d}\r\n%s)", len(msg), msg)},
		{"BODY.PEEK[HEADER.FIELDS (From)]", "* 1 FETCH (BODY[HEADER.FIELDS (From)] {25}\r\nFrom: user@domain.org\r\n\r\n)"},
	} {
		u := c.ok("FETCH 1 (" + tc.item + ")")
		if len(u) != 1 || u[0] != tc.want {
			t.Errorf("FETCH %s:\n got %q\nwant %q", tc.item, u, tc.want)
		}
	}

	// In a multipart: the binary part is base64, the text part untouched,
	// the whole message a literal8.
	mp := "From: a@b.org\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n" +
		"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n" + body +
		"\r\n--b--\r\n"
	c.write(fmt.Sprintf("A2 APPEND INBOX ~{%d+}\r\n%s\r\n", len(mp), mp))
	if _, tagged := c.readUntil("A2"); !strings.HasPrefix(tagged, "OK") {
		t.Fatalf("APPEND: %q", tagged)
	}
	c.ok("NOOP")
	for _, tc := range []struct{ item, want string }{
		{"BODY.PEEK[1]", "* 2 FETCH (BODY[1] {5}\r\nhello)"},
		{"BODY.PEEK[2]", "* 2 FETCH (BODY[2] {12}\r\nAC3kDQoNCg==)"},
		{"BINARY.PEEK[2]", "* 2 FETCH (BINARY[2] ~{7}\r\n" + body + ")"},
		{"BODY.PEEK[]", fmt.Sprintf("* 2 FETCH (BODY[] ~{%d}\r\n%s)", len(mp), mp)},
		{"BODY.PEEK[2.MIME]", "* 2 FETCH (BODY[2.MIME] {77}\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n)"},
	} {
		u := c.ok("FETCH 2 (" + tc.item + ")")
		if len(u) != 1 || u[0] != tc.want {
			t.Errorf("FETCH %s:\n got %q\nwant %q", tc.item, u, tc.want)
		}
	}
}
