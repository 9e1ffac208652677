package server_test

import (
	"encoding/base64"
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

// TestFetchHeaderSectionsFromStoredHeader: a FETCH whose only message
// items are top-level header sections is answered from the stored header
// block without opening the messages; the bytes must be those the opened
// message gives (the same items fetched next to BODY[TEXT], which opens
// it), for small and large messages and a header with a NUL (literal8).
func TestFetchHeaderSectionsFromStoredHeader(t *testing.T) {
	ts := newTestServer(t, serverOpts{insecureAuth: true})
	ts.addUser("alice", "pw")
	c := ts.dial()
	c.ok("LOGIN alice pw")
	c.appendMsg("INBOX", "", crlf("From: A <a@example.org>\nSubject: one\nX-Folded: a\n b\nTo: b@example.org\n\nbody\n"))
	c.appendMsg("INBOX", "", bigMessage(40<<10))
	nul := "Subject: nul\x00here\r\nFrom: c@example.org\r\n\r\nbody\r\n"
	c.write(fmt.Sprintf("A1 APPEND INBOX ~{%d}\r\n%s\r\n", len(nul), nul))
	if _, tagged := c.readUntil("A1"); !strings.HasPrefix(tagged, "OK") {
		t.Fatalf("APPEND literal8: %q", tagged)
	}
	c.ok("EXAMINE INBOX")
	for _, items := range []string{
		"RFC822.HEADER",
		"BODY.PEEK[HEADER]",
		"BODY.PEEK[HEADER.FIELDS (Subject X-Folded)]",
		"BODY.PEEK[HEADER.FIELDS.NOT (Subject)]<5.20>",
	} {
		alone := c.ok("FETCH 1:3 (" + items + ")")
		opened := c.ok("FETCH 1:3 (" + items + " BODY.PEEK[TEXT])")
		if len(alone) != 3 || len(opened) != 3 {
			t.Fatalf("%s: %d and %d responses", items, len(alone), len(opened))
		}
		for i := range alone {
			cut := strings.LastIndex(opened[i], " BODY[TEXT]")
			if want := opened[i][:cut] + ")"; alone[i] != want {
				t.Fatalf("%s, message %d:\n got %q\nwant %q", items, i+1, alone[i], want)
			}
		}
	}
	if got := c.ok("FETCH 3 BODY.PEEK[HEADER]"); len(got) != 1 || !strings.Contains(got[0], "BODY[HEADER] ~{") {
		t.Fatalf("header with NUL not sent as literal8: %q", got)
	}
}

// attachmentMail is a message with a text part and a base64 attachment of
// n pseudo-random bytes in 76-column lines, as mail clients send them
// (the store keeps such an attachment decoded), and that attachment's
// encoded lines and bytes.
func attachmentMail(n int) (msg, encoded string, bin []byte) {
	bin = make([]byte, n)
	x := uint32(2463534242)
	for i := range bin {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		bin[i] = byte(x)
	}
	enc := base64.StdEncoding.EncodeToString(bin)
	var b strings.Builder
	for len(enc) > 0 {
		k := min(76, len(enc))
		b.WriteString(enc[:k] + "\r\n")
		enc = enc[k:]
	}
	encoded = strings.TrimSuffix(b.String(), "\r\n")
	msg = "From: a@example.org\r\nTo: b@example.org\r\nSubject: report\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nAttached.\r\n" +
		"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		encoded + "\r\n--b--\r\n"
	return msg, encoded, bin
}

// TestFetchPackedAttachment: a large message whose attachment the store
// keeps decoded is sent byte for byte as it was appended, whole, by part,
// decoded (BINARY), and cut at offsets inside base64 lines, over
// plaintext and TLS.
func TestFetchPackedAttachment(t *testing.T) {
	ts := newTestServer(t, serverOpts{insecureAuth: true})
	ts.addUser("alice", "pw")
	msg, encoded, bin := attachmentMail(200 << 10)
	ts.login("alice", "pw").appendMsg("INBOX", "", msg)

	plain := ts.dial()
	plain.ok("LOGIN alice pw")
	secure := ts.login("alice", "pw")
	off := strings.Index(msg, encoded) + 1000
	for _, tc := range []struct{ items, want string }{
		{"BODY.PEEK[]", fmt.Sprintf("* 1 FETCH (BODY[] {%d}\r\n%s)", len(msg), msg)},
		{"BODY.PEEK[2]", fmt.Sprintf("* 1 FETCH (BODY[2] {%d}\r\n%s)", len(encoded), encoded)},
		{fmt.Sprintf("BODY.PEEK[]<%d.100001>", off), fmt.Sprintf("* 1 FETCH (BODY[]<%d> {100001}\r\n%s)", off, msg[off:off+100001])},
		{"BODY.PEEK[2]<77.1>", "* 1 FETCH (BODY[2]<77> {1}\r\n" + encoded[77:78] + ")"},
		{"BINARY.PEEK[2]", fmt.Sprintf("* 1 FETCH (BINARY[2] ~{%d}\r\n%s)", len(bin), bin)},
	} {
		for name, c := range map[string]*client{"plain": plain, "tls": secure} {
			c.ok("EXAMINE INBOX")
			got := c.ok("FETCH 1 " + tc.items)
			if len(got) != 1 || got[0] != tc.want {
				t.Fatalf("%s FETCH 1 %s: got %d lines, first %.120q", name, tc.items, len(got), got)
			}
		}
	}
}
