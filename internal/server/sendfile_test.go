package server_test

import (
	"fmt"
	"strings"
	"testing"
)

// bigMessage is a two-part message of about size bytes whose bytes differ
// at every position, so a copy from a wrong offset cannot pass.
func bigMessage(size int) string {
	var b strings.Builder
	b.WriteString("From: a@example.org\r\nTo: b@example.org\r\nSubject: big\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\n")
	for i := 0; b.Len() < size/2; i++ {
		fmt.Fprintf(&b, "line %07d of the first part\r\n", i)
	}
	b.WriteString("--b\r\nContent-Type: text/plain\r\n\r\n")
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, "row %07d of the second part\r\n", i)
	}
	b.WriteString("--b--\r\n")
	return b.String()
}

// TestFetchLargeBodiesPlainAndTLS fetches bodies above the size at which a
// plaintext connection lets the kernel copy the file (sendfile) and checks
// the bytes, whole, by part and cut to a partial range, against what the
// message is and what a TLS connection (always buffered) sends.
func TestFetchLargeBodiesPlainAndTLS(t *testing.T) {
	ts := newTestServer(t, serverOpts{insecureAuth: true})
	ts.addUser("alice", "pw")
	msg := bigMessage(600 << 10) // more than one sendfile chunk
	setup := ts.login("alice", "pw")
	setup.appendMsg("INBOX", "", msg)
	setup.appendMsg("INBOX", "", bigMessage(20<<10))

	plain := ts.dial()
	plain.ok("LOGIN alice pw")
	secure := ts.login("alice", "pw")
	head := strings.Index(msg, "\r\n\r\n") + 4
	off := len(msg) - 300000
	for _, tc := range []struct{ items, want string }{
		{"BODY.PEEK[]", fmt.Sprintf("* 1 FETCH (BODY[] {%d}\r\n%s)", len(msg), msg)},
		{"BODY.PEEK[TEXT]", fmt.Sprintf("* 1 FETCH (BODY[TEXT] {%d}\r\n%s)", len(msg)-head, msg[head:])},
		{fmt.Sprintf("BODY.PEEK[]<%d.200000>", off), fmt.Sprintf("* 1 FETCH (BODY[]<%d> {200000}\r\n%s)", off, msg[off:off+200000])},
		{"(BODY.PEEK[]<100.20000> UID)", fmt.Sprintf("* 1 FETCH (BODY[]<100> {20000}\r\n%s UID 1)", msg[100:20100])},
	} {
		for name, c := range map[string]*client{"plain": plain, "tls": secure} {
			c.ok("EXAMINE INBOX")
			got := c.ok("FETCH 1 " + tc.items)
			if len(got) != 1 || got[0] != tc.want {
				t.Fatalf("%s FETCH 1 %s: got %d lines, first %.120q", name, tc.items, len(got), got)
			}
		}
	}
	// Two large literals in one response, over two messages: plain and TLS
	// send the same bytes.
	const cmd = "FETCH 1:2 (BODY.PEEK[1] BODY.PEEK[2])"
	p, s := plain.ok(cmd), secure.ok(cmd)
	if len(p) != 2 || strings.Join(p, "\n") != strings.Join(s, "\n") {
		t.Fatalf("%s: plain and TLS differ (%d and %d lines)", cmd, len(p), len(s))
	}
	part1 := msg[strings.Index(msg, "line 0000000"):strings.Index(msg, "\r\n--b\r\nContent-Type: text/plain\r\n\r\nrow")]
	if !strings.Contains(p[0], fmt.Sprintf("BODY[1] {%d}\r\n%s BODY[2]", len(part1), part1)) {
		t.Fatalf("%s: part 1 of message 1 is not the stored part", cmd)
	}
}
