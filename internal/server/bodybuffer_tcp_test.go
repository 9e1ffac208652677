package server_test

import (
	"strings"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/server"
)

// TestBodyBufferGivenBackAfterFetch: over TCP, a FETCH of a body gives its
// 1 MiB output buffer back when the session waits for the client: when
// the client pipelined only the start of a next command and stalls in it,
// and when a pipelined APPEND asks for its literal.
func TestBodyBufferGivenBackAfterFetch(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "secret")
	c := ts.login("alice", "secret")
	c.appendMsg("INBOX", "", crlf("Subject: big\n\n"+strings.Repeat("0123456789abcdef\n", 20000)))
	c.ok("SELECT INBOX")
	before := server.BodyBuffersInUse()
	c.write("f1 FETCH 1 BODY.PEEK[]\r\nf2 NOO") // f2 unfinished: the session waits for the rest
	if _, tagged := c.readUntil("f1"); !strings.HasPrefix(tagged, "OK") {
		t.Fatalf("FETCH: %s", tagged)
	}
	waitBodyBuffers(t, before, "while the session waits for the rest of its next command")
	c.write("P\r\n")
	if _, tagged := c.readUntil("f2"); !strings.HasPrefix(tagged, "OK") {
		t.Fatalf("NOOP: %s", tagged)
	}
	// Pipelined with an APPEND, whose whole first line is there: the buffer
	// goes on to it, and back when it asks for its literal.
	c.write("f3 FETCH 1 BODY.PEEK[]\r\nf4 APPEND INBOX {12}\r\n")
	if _, tagged := c.readUntil("f3"); !strings.HasPrefix(tagged, "OK") {
		t.Fatalf("FETCH: %s", tagged)
	}
	if line := c.readLine(); !strings.HasPrefix(line, "+ ") {
		t.Fatalf("APPEND: %q, want a continuation request", line)
	}
	waitBodyBuffers(t, before, "while the session waits for a literal")
	c.write("Subject:\r\n\r\n\r\n") // the literal, then the end of the command line
	if _, tagged := c.readUntil("f4"); !strings.HasPrefix(tagged, "OK") {
		t.Fatalf("APPEND: %s", tagged)
	}
}

// waitBodyBuffers waits up to two seconds for want body buffers in use
// (the server gives one back right after sending what it held).
func waitBodyBuffers(t *testing.T, want int, when string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for server.BodyBuffersInUse() != want && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := server.BodyBuffersInUse(); n != want {
		t.Fatalf("%d body buffers in use %s, %d before the FETCH", n, when, want)
	}
}
