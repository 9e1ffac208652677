package server_test

import (
	"strings"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/server"
)

// TestBodyBufferGivenBackAfterFetch: over TCP, a FETCH of a body gives its
// 1 MiB output buffer back when it ends, also when the client pipelined
// the start of a next command and stalls in it (the buffer is the
// command's, not the session's).
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
	deadline := time.Now().Add(2 * time.Second)
	for server.BodyBuffersInUse() != before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := server.BodyBuffersInUse(); n != before {
		t.Fatalf("%d body buffers in use while the session waits for its next command, %d before the FETCH", n, before)
	}
	c.write("P\r\n")
	if _, tagged := c.readUntil("f2"); !strings.HasPrefix(tagged, "OK") {
		t.Fatalf("NOOP: %s", tagged)
	}
}
