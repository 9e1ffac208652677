package server_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/server"
)

// waitClosed reads (and discards) from nc until the server closes it, and
// fails if that does not happen within d.
func waitClosed(t *testing.T, nc net.Conn, d time.Duration) {
	t.Helper()
	nc.SetReadDeadline(time.Now().Add(d))
	n, err := io.Copy(io.Discard, nc)
	t.Logf("drained %d bytes: %v", n, err)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("server did not close the connection within %v", d)
	}
}

// A client that never reads its FETCH output must not pin the connection
// (and the memory and mailbox it holds) forever: writes that make no
// progress for WriteTimeout end the connection.
func TestSlowReaderDropped(t *testing.T) {
	ts := newTestServer(t, serverOpts{insecureAuth: true, mutate: func(c *server.Config) {
		c.WriteTimeout = 500 * time.Millisecond
	}})
	ts.addUser("alice", "secret")
	c := ts.dial()
	c.ok("LOGIN alice secret")
	big := "Subject: big\r\n\r\n" + strings.Repeat(strings.Repeat("x", 998)+"\r\n", 1024) // 1 MiB
	c.appendMsg("INBOX", "", big)
	c.ok("SELECT INBOX")
	// Ask for far more than the socket buffers hold (up to 32 MiB receive
	// and 4 MiB send on Linux by default), and read nothing.
	var cmds strings.Builder
	for i := 0; i < 96; i++ {
		fmt.Fprintf(&cmds, "F%d FETCH 1 BODY.PEEK[]\r\n", i)
	}
	c.write(cmds.String())
	time.Sleep(2 * time.Second) // the server is blocked writing; the deadline passes
	// Now drain: the server must have given up and closed the connection.
	waitClosed(t, c.conn, 5*time.Second)
}
